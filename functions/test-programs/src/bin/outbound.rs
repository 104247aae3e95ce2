//! Fetches `?url=...` through `wasi:http/outgoing-handler` and reports the
//! status or the error code, to test the outbound allow-list.

use nimbus_sdk::http::{Request, Response, json};
use test_programs::fetch;

fn handle(req: Request) -> Response {
    let url = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("url="))
        .unwrap_or("http://127.0.0.1:1/")
        .to_owned();
    match fetch(&url) {
        Ok(status) => json(&serde_json::json!({ "status": status })),
        Err(e) => json(&serde_json::json!({ "error": e })),
    }
}

nimbus_sdk::http_function!(handle);

fn main() {}
