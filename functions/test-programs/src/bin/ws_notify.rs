//! An event function that sends to WebSocket clients through `connections`, the way a backend job
//! notifies connected users.
//!
//! Input: `{"to": ["ID", ...], "text": "hi"}` sends `text` to each id; `"size": N` sends N bytes of `x`
//! instead, `"repeat": N` sends each message N times; `{"close": "ID"}` closes a connection. Output: the
//! count of each outcome, `{"ok": N, "gone": N, "throttled": N, "other": ["TooLarge(4096)", ...]}`.

use nimbus_sdk::connections::{self, Error as SendError};
use nimbus_sdk::event::{Error, Event};

fn handle(event: Event) -> Result<serde_json::Value, Error> {
    let v: serde_json::Value = event.json()?;
    if let Some(id) = v.get("close").and_then(|c| c.as_str()) {
        return Ok(serde_json::json!({ "closed": connections::close(id).map_err(|e| format!("{e:?}")) }));
    }
    let to = v
        .get("to")
        .and_then(|t| t.as_array())
        .ok_or_else(|| Error::invalid("expected {\"to\": [ids], \"text\": \"...\"}"))?;
    let text = match v.get("size").and_then(|s| s.as_u64()) {
        Some(n) => "x".repeat(n as usize),
        None => v.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
    };
    let repeat = v.get("repeat").and_then(|r| r.as_u64()).unwrap_or(1);
    let (mut ok, mut gone, mut throttled, mut other) = (0, 0, 0, Vec::new());
    for id in to.iter().filter_map(|i| i.as_str()) {
        for _ in 0..repeat {
            match connections::send_text(id, &text) {
                Ok(()) => ok += 1,
                Err(SendError::Gone) => gone += 1,
                Err(SendError::Throttled) => throttled += 1,
                Err(e) => other.push(format!("{e:?}")),
            }
        }
    }
    Ok(serde_json::json!({ "ok": ok, "gone": gone, "throttled": throttled, "other": other }))
}

nimbus_sdk::event_function!(handle);

fn main() {}
