//! WebSocket functions under `nimbus serve`: the local stand-in for an API Gateway WebSocket API.
//!
//! Each WebSocket function with a `websocket.path` accepts upgrades there. Before answering `101`, the
//! gateway checks the `Origin` (403), the client address's open connections (429) and asks the function
//! (`on-connect`: its rejection's status and reason, e.g. 401). An accepted connection gets a random,
//! URL-safe id and its own session ([`session`]): each data message is routed by the function's route
//! selection expression and handed to `on-message`, whose reply goes back to the sender; any function
//! reaches any client by id through [`Connections`]. API Gateway's quotas apply by default (128 KB
//! messages, 32 KB frames, 10 minutes idle, 2 hours per connection) and each refusal names the quota.
//!
//! Close codes the gateway sends: 1000 when a function closed the connection, 1001 for idle timeout, max
//! lifetime and shutdown, 1008 for the rate limit, 1009 for a message or frame too big, 1013 when the
//! function is overloaded. A client that does not answer pings is dropped without one.

pub mod handshake;
mod limits;
mod registry;
mod session;

pub use registry::Connections;

use super::{GatewayOptions, Routed, encode};
use crate::listener::PerIp;
use base64::Engine;
use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use nimbus_core::logs::LogSink;
use nimbus_core::manifest::{WebSocketSpec, offered_subprotocols};
use nimbus_core::websocket::{Message, WsEvent, WsOutcome};
use nimbus_core::{Body, Host, InvokeError, Outcome, Payload, TraceContext};
use session::Session;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

/// What a connection's writer sends, in queue order.
pub(super) enum Out {
    /// A data message: a reply or a function's send.
    Message(Message),
    /// A heartbeat ping.
    Ping,
    /// The last frame.
    Close(CloseFrame),
}

/// One live session, counted until dropped (shutdown waits for the count to reach zero).
pub(super) struct Live(watch::Sender<usize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A WebSocket function served at a path.
struct Route {
    /// Index into `host.functions()`.
    function: usize,
    spec: Arc<WebSocketSpec>,
    per_ip: PerIp,
}

/// The gateway's WebSocket side: the served paths, the open connections and their sessions.
pub(super) struct WebSockets {
    by_path: HashMap<String, Route>,
    connections: Arc<Connections>,
    /// Sessions still running.
    live: watch::Sender<usize>,
    /// Turns true when the gateway shuts down.
    stop: watch::Receiver<bool>,
    log_sink: LogSink,
    access_log: bool,
}

impl WebSockets {
    /// The WebSocket functions of `host` that have a `websocket.path`.
    pub(super) fn new(
        host: &Host,
        connections: Arc<Connections>,
        stop: watch::Receiver<bool>,
        opts: &GatewayOptions,
    ) -> WebSockets {
        let by_path = host
            .functions()
            .iter()
            .enumerate()
            .filter_map(|(function, f)| {
                let spec = f.websocket.clone()?;
                let path = spec.path.clone()?;
                let per_ip = PerIp::new(spec.max_connections_per_ip);
                let route = Route {
                    function,
                    spec: Arc::new(spec),
                    per_ip,
                };
                Some((path, route))
            })
            .collect();
        WebSockets {
            by_path,
            connections,
            live: watch::Sender::new(0),
            stop,
            log_sink: opts.log_sink.clone(),
            access_log: opts.access_log,
        }
    }

    /// The connection registry.
    pub(super) fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// Whether `path` is a WebSocket function's.
    pub(super) fn serves(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// Waits until every session has ended (after shutdown closed them), at most `timeout`; `false` if some
    /// are still open.
    pub(super) async fn closed(&self, timeout: Duration) -> bool {
        let mut live = self.live.subscribe();
        tokio::time::timeout(timeout, live.wait_for(|n| *n == 0)).await.is_ok()
    }

    /// Answers an upgrade request on a WebSocket path: checks, `on-connect`, then `101` and the session.
    pub(super) async fn upgrade(
        &self,
        host: &Arc<Host>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        trace: TraceContext,
    ) -> Routed {
        let path = req.uri().path();
        let Some(route) = self.by_path.get(path) else {
            return (None, Err(handshake::upgrade_required(path)));
        };
        let accept = match handshake::accept_key(&req) {
            Ok(a) => a,
            Err(bad) => return (None, Err(bad.response())),
        };
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            if !route.spec.origin_allowed(&origin) {
                let message = format!("origin {origin} is not allowed (websocket.allowed_origins)");
                return (
                    None,
                    Err(encode::plain_error(StatusCode::FORBIDDEN, "Forbidden", &message)),
                );
            }
        }
        let id = new_connection_id();
        let connect = handshake::connect_request(&id, &req, peer);
        let subprotocol = match route.spec.select_subprotocol(offered_subprotocols(&connect.headers)) {
            Ok(p) => p.map(str::to_owned),
            Err(m) => {
                return (
                    None,
                    Err(encode::plain_error(StatusCode::BAD_REQUEST, "BadRequest", &m)),
                );
            }
        };
        let Some(slot) = route.per_ip.acquire(peer.ip()) else {
            let max = route.per_ip.max();
            let message = format!(
                "{} already has {max} open connections (websocket.max_connections_per_ip = {max})",
                peer.ip()
            );
            let mut resp = encode::plain_error(StatusCode::TOO_MANY_REQUESTS, "TooManyConnections", &message);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return (None, Err(resp));
        };

        let f = &host.functions()[route.function];
        let inv = host.new_invocation(f, None, trace);
        let rid = inv.request_id.clone();
        let tag = Some((f.name.clone(), rid.clone()));
        let event = WsEvent::Connect(connect);
        let failed = |e: &InvokeError| super::failed(&self.log_sink, host.app(), &f.name, &rid, e);
        let refused = match host
            .invoke(f, inv, Payload::WebSocket(event, Some(self.connections.clone())))
            .await
        {
            Ok(Outcome::WebSocket(WsOutcome::Accepted)) => None,
            Ok(Outcome::WebSocket(WsOutcome::Rejected(r))) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
                Some(encode::text_response(status, r.reason))
            }
            Ok(other) => Some(failed(&InvokeError::internal(format!("on-connect answered {other:?}")))),
            Err(e) => Some(failed(&e)),
        };
        if let Some(resp) = refused {
            return (tag, Err(resp));
        }

        self.live.send_modify(|n| *n += 1);
        let session = Session {
            host: host.clone(),
            function: route.function,
            spec: route.spec.clone(),
            id,
            connections: self.connections.clone(),
            stop: self.stop.clone(),
            log_sink: self.log_sink.clone(),
            access_log: self.access_log,
            _slot: slot,
            _live: Live(self.live.clone()),
        };
        tokio::spawn(session.run(hyper::upgrade::on(&mut req)));
        (tag, Ok(handshake::switching_protocols(&accept, subprotocol.as_deref())))
    }
}

/// Whether a request asks for a WebSocket.
pub(super) fn is_upgrade<B>(req: &Request<B>) -> bool {
    handshake::is_upgrade(req)
}

/// The answer to a plain HTTP request on a WebSocket path (426).
pub(super) fn upgrade_required(path: &str) -> http::Response<Body> {
    handshake::upgrade_required(path)
}

/// A new connection id: 128 random bits, URL-safe base64 (22 characters).
fn new_connection_id() -> Arc<str> {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (not seen on Linux): ids need only be unique within this process.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        bytes[8..].copy_from_slice(&nanos.to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn connection_ids_are_url_safe_and_distinct() {
        let a = super::new_connection_id();
        let b = super::new_connection_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
    }
}
