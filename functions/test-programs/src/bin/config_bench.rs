//! Times `wasi:config/store.get` from inside the guest: `{"key": "k", "n": N}`
//! reads the key N times and answers `{"ns_per_get": …, "value": …}`.
//! Used by `tests/examples/config_cost.rs`.

use nimbus_sdk::event::{Error, Event};
use std::time::Instant;

fn handle(event: Event) -> Result<serde_json::Value, Error> {
    let v: serde_json::Value = event.json()?;
    let key = v["key"].as_str().ok_or_else(|| Error::invalid("expected \"key\""))?;
    let n = v["n"].as_u64().unwrap_or(1000).max(1);
    let started = Instant::now();
    let mut value = None;
    for _ in 0..n {
        value = nimbus_sdk::config::get(key).map_err(|e| Error::failed(format!("config: {e:?}")))?;
    }
    let ns = started.elapsed().as_nanos() as f64 / n as f64;
    Ok(serde_json::json!({ "ns_per_get": ns, "value": value }))
}

nimbus_sdk::event_function!(handle);

fn main() {}
