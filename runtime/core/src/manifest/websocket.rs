//! `[function.NAME.websocket]`: how a WebSocket function's clients connect and what the gateway allows them.
//!
//! Every default is API Gateway's own quota for WebSocket APIs (128 KB messages in frames of at most 32 KB,
//! 10 minutes idle, 2 hours per connection), so what works under `nimbus serve` works once deployed; the
//! settings with no AWS counterpart (heartbeat, per-IP connections, message rate, send queue) have defaults
//! that protect a laptop without getting in a developer's way.
//!
//! ```toml
//! [function.chat.websocket]
//! path = "/chat"                           # where `nimbus serve` accepts upgrades
//! route_selection = "$request.body.action" # API Gateway's route selection expression
//! routes = ["join", "send"]                # custom route keys; other messages go to `$default`
//! subprotocols = ["chat.v2", "chat.v1"]    # `Sec-WebSocket-Protocol` values spoken, preferred first
//! ```

use crate::websocket::Message;
use std::time::Duration;

/// A WebSocket function's settings (`websocket = { ... }`), defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketSpec {
    /// `path = "/chat"`: where `nimbus serve` accepts upgrades; without it the function is not served
    /// locally (on AWS the WebSocket API has its own URL).
    pub path: Option<String>,
    /// `route_selection = "$request.body.action"` (the default): how a message's route key is chosen.
    pub route_selection: RouteSelection,
    /// `routes = ["join", "send"]`: the custom route keys; a message selecting anything else gets `$default`.
    pub routes: Vec<String>,
    /// `allowed_origins = ["http://localhost:8080"]`: browser origins allowed to connect (lowercase, no
    /// trailing `/`); `None` (the default) allows any. A request without `Origin` (not a browser) is allowed.
    pub allowed_origins: Option<Vec<String>>,
    /// `max_message = "128KiB"`: the largest message a client may send (API Gateway: 128 KB); larger closes
    /// the connection with 1009. Also the largest a function may send to a client (`too-large`).
    pub max_message: u64,
    /// `max_frame = "32KiB"`: the largest single frame a client may send (API Gateway: 32 KB; at most
    /// `max_message`); larger closes the connection with 1009.
    pub max_frame: u64,
    /// `idle_timeout = "10m"`: a connection with no message either way for this long is closed with 1001
    /// (API Gateway: 10 minutes).
    pub idle_timeout: Duration,
    /// `max_lifetime = "2h"`: a connection is closed with 1001 after this long (API Gateway: 2 hours).
    pub max_lifetime: Duration,
    /// `heartbeat = "30s"`: the gateway pings each client this often; a client that has not answered by the
    /// next ping is dropped (`heartbeat timeout`).
    pub heartbeat: Duration,
    /// `max_connections_per_ip = 100`: open connections from one client address; more get 429.
    pub max_connections_per_ip: u32,
    /// `messages_per_second = 50`: per connection, a token bucket with a burst of the same size; a client
    /// sending faster is closed with 1008 (`rate limit`).
    pub messages_per_second: u32,
    /// `send_queue = 64`: messages queued for one client before `connections.send` returns `throttled`.
    pub send_queue: u32,
    /// `subprotocols = ["chat.v2", "chat.v1"]`: the `Sec-WebSocket-Protocol` values the function speaks,
    /// preferred first (see [`WebSocketSpec::select_subprotocol`]); empty (the default) answers none.
    pub subprotocols: Vec<String>,
}

/// `websocket.max_message` when the manifest does not set it: API Gateway's message payload quota.
pub const DEFAULT_MAX_MESSAGE: u64 = 128 << 10;
/// `websocket.max_frame` when the manifest does not set it: API Gateway's frame size quota.
pub const DEFAULT_MAX_FRAME: u64 = 32 << 10;
/// `websocket.idle_timeout` when the manifest does not set it: API Gateway's idle connection timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// `websocket.max_lifetime` when the manifest does not set it: API Gateway's connection duration quota.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);
/// `websocket.heartbeat` when the manifest does not set it.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// `websocket.max_connections_per_ip` when the manifest does not set it.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 100;
/// `websocket.messages_per_second` when the manifest does not set it.
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 50;
/// `websocket.send_queue` when the manifest does not set it.
pub const DEFAULT_SEND_QUEUE: u32 = 64;
/// The route key of a message no custom route matches.
pub const DEFAULT_ROUTE: &str = "$default";
/// The route selection expression when the manifest does not set one (API Gateway's usual one).
pub const DEFAULT_ROUTE_SELECTION: &str = "$request.body.action";

impl Default for WebSocketSpec {
    fn default() -> Self {
        WebSocketSpec {
            path: None,
            route_selection: RouteSelection::Body(vec!["action".into()]),
            routes: Vec::new(),
            allowed_origins: None,
            max_message: DEFAULT_MAX_MESSAGE,
            max_frame: DEFAULT_MAX_FRAME,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            heartbeat: DEFAULT_HEARTBEAT,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            send_queue: DEFAULT_SEND_QUEUE,
            subprotocols: Vec::new(),
        }
    }
}

impl WebSocketSpec {
    /// The route key of a client's message: a declared route the selection expression picks, else `$default`.
    pub fn route_key(&self, message: &Message) -> &str {
        let declared = match (&self.route_selection, message) {
            (RouteSelection::Literal(key), _) => self.declared(key),
            (RouteSelection::Body(fields), Message::Text(text)) => {
                body_field(text, fields).and_then(|v| self.declared(&v))
            }
            // A binary message has no JSON body to select from.
            (RouteSelection::Body(_), Message::Binary(_)) => None,
        };
        declared.unwrap_or(DEFAULT_ROUTE)
    }

    /// The declared custom route `key`, if it is one.
    fn declared(&self, key: &str) -> Option<&str> {
        self.routes.iter().find(|r| *r == key).map(String::as_str)
    }

    /// The subprotocol a connect is answered with, from the client's `Sec-WebSocket-Protocol` offer: the
    /// first declared one the client offered. A client offering none connects without one (as does every
    /// client when none are declared); a client offering only others is refused, with the reason, since it
    /// would fail the handshake itself.
    pub fn select_subprotocol<'a>(&self, offered: impl IntoIterator<Item = &'a str>) -> Result<Option<&str>, String> {
        if self.subprotocols.is_empty() {
            return Ok(None);
        }
        let offered: Vec<&str> = offered.into_iter().collect();
        if offered.is_empty() {
            return Ok(None);
        }
        match self.subprotocols.iter().find(|p| offered.contains(&p.as_str())) {
            Some(p) => Ok(Some(p)),
            None => Err(format!(
                "none of the subprotocols offered ({}) is spoken here (websocket.subprotocols = [{}])",
                offered.join(", "),
                self.subprotocols
                    .iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Whether a browser on `origin` (the upgrade's `Origin` header) may connect.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.allowed_origins
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)))
    }
}

/// A route selection expression, as API Gateway evaluates it on each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSelection {
    /// `$request.body.a.b`: the string at that path of a JSON text message.
    Body(Vec<String>),
    /// A literal key: every message gets it (if declared in `routes`, else `$default`).
    Literal(String),
}

impl RouteSelection {
    /// Parses `$request.body.<field>[.<field>...]` or a literal route key.
    pub fn parse(expr: &str) -> Result<RouteSelection, String> {
        if let Some(path) = expr.strip_prefix("$request.body.") {
            let fields: Vec<String> = path.split('.').map(str::to_owned).collect();
            if fields.iter().any(|f| !is_field(f)) {
                return Err(format!(
                    "route_selection {expr:?}: each field after `$request.body.` must be letters, digits, \
                     '_' or '-' (e.g. \"$request.body.action\")"
                ));
            }
            return Ok(RouteSelection::Body(fields));
        }
        if expr.contains('$') && expr != DEFAULT_ROUTE {
            return Err(format!(
                "route_selection {expr:?} is not supported: use \"$request.body.<field>\" (fields may nest: \
                 \"$request.body.meta.type\") or a literal route key"
            ));
        }
        check_route_key(expr).map_err(|m| format!("route_selection: {m}"))?;
        Ok(RouteSelection::Literal(expr.to_owned()))
    }
}

impl std::fmt::Display for RouteSelection {
    /// The expression as written in the manifest (and as API Gateway takes it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteSelection::Body(fields) => write!(f, "$request.body.{}", fields.join(".")),
            RouteSelection::Literal(key) => f.write_str(key),
        }
    }
}

fn is_field(f: &str) -> bool {
    !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The values a client offers in its `Sec-WebSocket-Protocol` headers (`headers` as `on-connect` gets them:
/// lowercase names, one entry per header line), in its order.
pub fn offered_subprotocols(headers: &[(String, String)]) -> impl Iterator<Item = &str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// The string at `fields` in a JSON object text, if it is one.
fn body_field(text: &str, fields: &[String]) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    for f in fields {
        value = value.get_mut(f.as_str())?.take();
    }
    match value {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

/// Route keys are what API Gateway accepts: 1 to 128 printable characters without spaces.
pub(super) fn check_route_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 128 || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "invalid route key {key:?}: use 1 to 128 characters without spaces"
        ));
    }
    Ok(())
}
