//! Returns the invocation context and writes log lines to stdout and stderr.

use nimbus_sdk::http::{Request, Response, json};

fn handle(_req: Request) -> Response {
    let ctx = nimbus_sdk::invocation::current();
    println!("context line one");
    eprintln!("context line two");
    nimbus_sdk::log::error("context sdk record");
    nimbus_sdk::log::log(nimbus_sdk::log::Level::Debug, "billing", "context sdk debug");
    json(&serde_json::json!({
        "request_id": ctx.request_id,
        "function": ctx.function_name,
        "deadline_ms": ctx.deadline_ms,
        "remaining_ms": nimbus_sdk::invocation::remaining().as_millis() as u64,
        "traceparent": ctx.traceparent,
        "tracestate": ctx.tracestate,
        "xray": nimbus_sdk::invocation::xray_trace_id(),
        "xray_env": std::env::var("_X_AMZN_TRACE_ID").ok(),
        "env_count": std::env::vars().count(),
    }))
}

nimbus_sdk::http_function!(handle);

fn main() {}
