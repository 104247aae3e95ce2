//! Counts the invocations its instance has served, in a global: 1 on every
//! call with fresh instances, 1, 2, 3, … with `reuse`. `/panic` traps and
//! `/spin` loops until the deadline, so tests can check that a failed
//! instance is never reused.

use nimbus_sdk::http::{Request, Response, json};
use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

fn handle(req: Request) -> Response {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    println!("warm-counter call {calls}");
    match req.uri().path() {
        "/panic" => panic!("asked to panic on call {calls}"),
        "/spin" => loop {
            std::hint::black_box(calls);
        },
        _ => {}
    }
    json(&serde_json::json!({
        "calls": calls,
        "request_id": nimbus_sdk::invocation::request_id(),
        "traceparent": nimbus_sdk::invocation::current().traceparent,
        "xray": nimbus_sdk::invocation::xray_trace_id(),
        "xray_env": std::env::var("_X_AMZN_TRACE_ID").ok(),
    }))
}

nimbus_sdk::http_function!(handle);

fn main() {}
