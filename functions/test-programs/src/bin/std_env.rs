//! A `wasi:http/proxy` component that also uses Rust std's environment,
//! arguments and clock — so it imports `wasi:cli/environment`, which
//! `wasmtime serve` refuses without `-Scli`. Nimbus serves it, and the
//! environment it sees is empty.

use nimbus_sdk::http::{Request, Response, json};

fn handle(_req: Request) -> Response {
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let args: Vec<String> = std::env::args().collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json(&serde_json::json!({ "env": env, "args": args, "now": now }))
}

nimbus_sdk::http_function!(handle);

fn main() {}
