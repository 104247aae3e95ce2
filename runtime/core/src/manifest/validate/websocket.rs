//! The `websocket` section's checks. Its settings depend on each other (a frame is at most a message), so the
//! section is checked and completed with its own defaults ([`WebSocketSpec::default`]) in one pass.

use super::in_range;
use crate::manifest::error::Problem;
use crate::manifest::raw::RawWebSocket;
use crate::manifest::websocket::{DEFAULT_ROUTE, RouteSelection, WebSocketSpec, check_route_key};
use crate::manifest::{ByteSize, Count, Dur};
use std::time::Duration;
use toml::Spanned;

/// The shortest duration any WebSocket timer accepts.
const MIN_TIMER: Duration = Duration::from_millis(100);

/// Checks each setting of a function's `websocket` section (`prefix` is `function.NAME`) against its range
/// and applies the section's defaults.
pub(in crate::manifest) fn websocket(w: &RawWebSocket, prefix: &str) -> Result<WebSocketSpec, Problem> {
    let key = |name: &str| format!("{prefix}.websocket.{name}");
    let mut spec = WebSocketSpec::default();

    if let Some(p) = &w.path {
        let path = p.get_ref();
        if !path.starts_with('/') || path.contains(['{', '}', '?', '#']) || path.contains(char::is_whitespace) {
            return Err(Problem::at(
                p.span(),
                key("path"),
                format!("websocket path {path:?} must start with '/' and be a plain path (no parameters)"),
            ));
        }
        spec.path = Some(path.clone());
    }
    if let Some(r) = &w.route_selection {
        spec.route_selection =
            RouteSelection::parse(r.get_ref()).map_err(|m| Problem::at(r.span(), key("route_selection"), m))?;
    }
    for r in &w.routes {
        let k = r.get_ref();
        // The predefined routes always exist; listing them (as API Gateway's console does) is harmless.
        if ["$connect", "$disconnect", DEFAULT_ROUTE].contains(&k.as_str()) {
            continue;
        }
        let bad = |m: String| Problem::at(r.span(), key("routes"), m);
        if k.starts_with('$') {
            return Err(bad(format!(
                "route key {k:?}: keys starting with '$' are reserved ($connect, $disconnect, $default)"
            )));
        }
        check_route_key(k).map_err(bad)?;
        if spec.routes.contains(k) {
            return Err(bad(format!("route key {k:?} is listed twice")));
        }
        spec.routes.push(k.clone());
    }
    for p in &w.subprotocols {
        let name = p.get_ref();
        let bad = |m: String| Problem::at(p.span(), key("subprotocols"), m);
        if !is_token(name) {
            return Err(bad(format!(
                "subprotocol {name:?} is not an HTTP token: use letters, digits and `!#$%&'*+-.^_`|~` \
                 (e.g. \"chat.v1\")"
            )));
        }
        if spec.subprotocols.contains(name) {
            return Err(bad(format!("subprotocol {name:?} is listed twice")));
        }
        spec.subprotocols.push(name.clone());
    }
    if let Some(origins) = &w.allowed_origins {
        let mut allowed = Vec::with_capacity(origins.len());
        for o in origins {
            allowed.push(origin(o.get_ref()).map_err(|m| Problem::at(o.span(), key("allowed_origins"), m))?);
        }
        spec.allowed_origins = Some(allowed);
    }

    let size = |v: &Option<Spanned<ByteSize>>, name: &str, hi: u64, default: u64| match v {
        None => Ok(default),
        Some(s) => in_range(s, ByteSize(1 << 10), ByteSize(hi), key(name), name).map(|b| b.0),
    };
    spec.max_message = size(&w.max_message, "max_message", 64 << 20, spec.max_message)?;
    // A message is one frame or more: the frame limit follows a lower message limit down.
    spec.max_frame = size(
        &w.max_frame,
        "max_frame",
        spec.max_message,
        spec.max_frame.min(spec.max_message),
    )?;

    let timer = |v: &Option<Spanned<Dur>>, name: &str, hi: Duration, default: Duration| match v {
        None => Ok(default),
        Some(d) => in_range(d, Dur(MIN_TIMER), Dur(hi), key(name), name).map(|d| d.0),
    };
    spec.idle_timeout = timer(
        &w.idle_timeout,
        "idle_timeout",
        Duration::from_secs(24 * 3600),
        spec.idle_timeout,
    )?;
    spec.max_lifetime = timer(
        &w.max_lifetime,
        "max_lifetime",
        Duration::from_secs(7 * 24 * 3600),
        spec.max_lifetime,
    )?;
    spec.heartbeat = timer(&w.heartbeat, "heartbeat", Duration::from_secs(3600), spec.heartbeat)?;

    let count = |v: &Option<Spanned<Count>>, name: &str, hi: u32, default: u32| match v {
        None => Ok(default),
        Some(n) => in_range(n, Count(1), Count(hi), key(name), name).map(|n| n.0),
    };
    spec.max_connections_per_ip = count(
        &w.max_connections_per_ip,
        "max_connections_per_ip",
        1_000_000,
        spec.max_connections_per_ip,
    )?;
    spec.messages_per_second = count(
        &w.messages_per_second,
        "messages_per_second",
        1_000_000,
        spec.messages_per_second,
    )?;
    spec.send_queue = count(&w.send_queue, "send_queue", 65_536, spec.send_queue)?;
    Ok(spec)
}

/// An HTTP token (RFC 9110 §5.6.2), what a `Sec-WebSocket-Protocol` value must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `"https://app.example.com"`, `"http://localhost:8080"` or `"*"`, lowercased without a trailing `/`.
fn origin(origin: &str) -> Result<String, String> {
    if origin == "*" {
        return Ok(origin.to_owned());
    }
    let o = origin.trim_end_matches('/');
    let ok = o
        .split_once("://")
        .is_some_and(|(scheme, host)| !scheme.is_empty() && !host.is_empty() && !host.contains('/'));
    if !ok {
        return Err(format!(
            "invalid origin {origin:?}: expected scheme://host[:port], e.g. \"http://localhost:8080\", or \"*\""
        ));
    }
    Ok(o.to_ascii_lowercase())
}
