//! An event function that reports what it got, byte for byte: the payload (hex), its source kind, the
//! config values and the trace context, so the same event can be compared across platforms (`echo`, the
//! example, parses the payload as JSON and so cannot show its bytes).

use nimbus_sdk::event::{Error, Event};

fn handle(event: Event) -> Result<serde_json::Value, Error> {
    let ctx = nimbus_sdk::invocation::current();
    Ok(serde_json::json!({
        "payload_hex": event.payload.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "source": event.source.as_str(),
        "config": nimbus_sdk::config::all().unwrap_or_default(),
        "traceparent": ctx.traceparent,
        "request_id": ctx.request_id,
    }))
}

nimbus_sdk::event_function!(handle);

fn main() {}
