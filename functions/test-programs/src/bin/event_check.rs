//! An event function that validates its input: `{"n": <number>}` doubles it,
//! `{"fail": "msg"}` fails, `{"panic": true}` traps, `{"spin": true}` loops
//! until the host stops it, anything else is an invalid event. It logs one stdout line per number doubled
//! and one stderr line per failure, for the tests of log lines.

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
        eprintln!("event-check: failing: {msg}");
        return Err(Error::failed(msg));
    }
    let n = v
        .get("n")
        .and_then(|n| n.as_i64())
        .ok_or_else(|| Error::invalid("expected {\"n\": <integer>}"))?;
    println!("event-check: doubling {n}");
    Ok(serde_json::json!({ "doubled": n * 2 }))
}

nimbus_sdk::event_function!(handle);

fn main() {}
