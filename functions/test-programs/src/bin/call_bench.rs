//! Times host calls from inside the guest, with the WASI monotonic clock:
//! - `{"call": "config-get", "key": "k", "n": N}` reads the key N times;
//! - `{"call": "span", "n": N}` starts N spans, sets one integer attribute
//!   on each and ends it.
//!
//! Answers `{"ns_per_call": …}`. Used by `tests/examples/call_cost.rs`.

use nimbus_sdk::event::{Error, Event};
use nimbus_sdk::trace::Span;
use std::time::Instant;

fn handle(event: Event) -> Result<serde_json::Value, Error> {
    let v: serde_json::Value = event.json()?;
    let n = v["n"].as_u64().unwrap_or(1000).max(1);
    let started = Instant::now();
    match v["call"].as_str() {
        Some("config-get") => {
            let key = v["key"].as_str().ok_or_else(|| Error::invalid("expected \"key\""))?;
            for _ in 0..n {
                nimbus_sdk::config::get(key).map_err(|e| Error::failed(format!("config: {e:?}")))?;
            }
        }
        Some("span") => {
            for i in 0..n {
                Span::start("bench").set("i", i as i64);
            }
        }
        _ => return Err(Error::invalid("expected \"call\": \"config-get\" or \"span\"")),
    }
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    Ok(serde_json::json!({ "ns_per_call": ns }))
}

nimbus_sdk::event_function!(handle);

fn main() {}
