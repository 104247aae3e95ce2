//! `quote`: an HTTP function with a dependency, for the resilience examples. `GET /quote` fetches a quote
//! from the upstream its config names (`upstream`) and answers it. When the host's circuit breaker for that
//! upstream is open (`[function.quote.breaker]` in nimbus.toml), it does not wait on a failing host: it
//! answers at once with a degraded quote, so callers keep getting answers while the dependency is down.

use nimbus_sdk::http::{Request, Response, StatusCode, get, json, status};
use serde_json::json;

fn quote(_req: Request) -> Response {
    let upstream = match nimbus_sdk::config::get("upstream") {
        Ok(Some(url)) => url,
        _ => return status(StatusCode::INTERNAL_SERVER_ERROR, "config key `upstream` is not set"),
    };
    match get(&upstream) {
        Ok(resp) if resp.status().is_success() => json(&json!({
            "quote": String::from_utf8_lossy(resp.body()),
            "source": "upstream",
        })),
        Ok(resp) => {
            let mut r = json(&json!({ "error": format!("upstream answered {}", resp.status()) }));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
        Err(e) if e.circuit_open().is_some() => json(&json!({
            "quote": "The best way out is always through.",
            "source": "fallback",
            "degraded": true,
        })),
        Err(e) => {
            let mut r = json(&json!({ "error": format!("upstream unreachable: {e}") }));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    }
}

nimbus_sdk::http_function!(quote);
