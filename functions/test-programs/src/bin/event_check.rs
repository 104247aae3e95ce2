//! An event function that validates its input: `{"n": <number>}` doubles it,
//! `{"fail": "msg"}` fails, `{"panic": true}` traps, `{"spin": true}` loops
//! until the host stops it, anything else is an invalid event.

use nimbus_sdk::event::{Error, Event};

fn handle(event: Event) -> Result<serde_json::Value, Error> {
    let v: serde_json::Value = event.json()?;
    if v.get("panic").is_some() {
        panic!("asked to panic");
    }
    if v.get("spin").is_some() {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    if let Some(msg) = v.get("fail").and_then(|m| m.as_str()) {
        return Err(Error::failed(msg));
    }
    let n = v
        .get("n")
        .and_then(|n| n.as_i64())
        .ok_or_else(|| Error::invalid("expected {\"n\": <integer>}"))?;
    Ok(serde_json::json!({ "doubled": n * 2 }))
}

nimbus_sdk::event_function!(handle);

fn main() {}
