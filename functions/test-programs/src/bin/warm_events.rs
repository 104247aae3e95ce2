//! The event twin of `warm_counter`: answers `{"calls": n}` with the number
//! of invocations its instance has served. `{"fail": "msg"}` returns an
//! error value (the instance stays sound), `{"panic": true}` traps.

use nimbus_sdk::event::{Error, Event};
use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

fn handle(event: Event) -> Result<serde_json::Value, Error> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let v: serde_json::Value = event.json()?;
    if v.get("panic").is_some() {
        panic!("asked to panic on call {calls}");
    }
    if let Some(msg) = v.get("fail").and_then(|m| m.as_str()) {
        return Err(Error::failed(msg));
    }
    Ok(serde_json::json!({ "calls": calls }))
}

nimbus_sdk::event_function!(handle);

fn main() {}
