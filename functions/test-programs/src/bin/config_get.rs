//! Reports what configuration and environment the guest can see.

use nimbus_sdk::http::{Request, Response, json};

fn handle(req: Request) -> Response {
    let query = req.uri().query().unwrap_or("");
    let key = query.strip_prefix("key=").unwrap_or("greeting");
    let value = nimbus_sdk::config::get(key).ok().flatten();
    let all = nimbus_sdk::config::all().unwrap_or_default();
    let env: Vec<(String, String)> = std::env::vars().collect();
    json(&serde_json::json!({ "key": key, "value": value, "all": all, "env": env }))
}

nimbus_sdk::http_function!(handle);

fn main() {}
