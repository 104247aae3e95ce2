//! The HTTP side of a WebSocket connect (RFC 6455 §4.2): checking the upgrade request, the `101 Switching
//! Protocols` answer, and the `connect-request` the function's `on-connect` receives.
//!
//! Public so the fuzz target `ws_upgrade` can reach it: every part of an upgrade request is the client's.

use super::super::encode;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use nimbus_core::Body;
use nimbus_core::websocket::ConnectRequest;
use percent_encoding::percent_decode_str;
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Whether `value` (a comma-separated header) holds `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether the request asks for a WebSocket (`Upgrade: websocket`).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    has_token(req.headers(), header::UPGRADE, "websocket")
}

/// Why an upgrade request is refused before the function is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadUpgrade {
    /// Not an HTTP/1.1 GET.
    #[error("a WebSocket upgrade is an HTTP/1.1 GET request")]
    NotGet,
    /// No `Connection: Upgrade`.
    #[error("a WebSocket upgrade needs `Connection: Upgrade`")]
    NoConnectionUpgrade,
    /// A WebSocket version other than 13.
    #[error("only WebSocket version 13 is supported")]
    Version,
    /// No usable `Sec-WebSocket-Key`.
    #[error("a WebSocket upgrade needs a valid `Sec-WebSocket-Key`")]
    Key,
}

impl BadUpgrade {
    /// The answer: 400, or 426 with the supported version.
    pub fn response(self) -> Response<Body> {
        if self != BadUpgrade::Version {
            return encode::plain_error(StatusCode::BAD_REQUEST, "BadRequest", &self.to_string());
        }
        let mut resp = encode::plain_error(StatusCode::UPGRADE_REQUIRED, "UpgradeRequired", &self.to_string());
        resp.headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        resp
    }
}

/// Checks an upgrade request and returns its `Sec-WebSocket-Accept` value.
pub fn accept_key<B>(req: &Request<B>) -> Result<String, BadUpgrade> {
    if req.method() != Method::GET || req.version() != Version::HTTP_11 {
        return Err(BadUpgrade::NotGet);
    }
    if !has_token(req.headers(), header::CONNECTION, "upgrade") {
        return Err(BadUpgrade::NoConnectionUpgrade);
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(BadUpgrade::Version);
    }
    match req.headers().get(header::SEC_WEBSOCKET_KEY) {
        // The key is 16 random bytes in base64 (24 characters).
        Some(key) if key.len() == 24 => Ok(derive_accept_key(key.as_bytes())),
        _ => Err(BadUpgrade::Key),
    }
}

/// The answer to a plain request on a WebSocket path: 426 with what to send.
pub fn upgrade_required(path: &str) -> Response<Body> {
    let mut resp = encode::plain_error(
        StatusCode::UPGRADE_REQUIRED,
        "UpgradeRequired",
        &format!("{path} accepts WebSocket connections only (send `Upgrade: websocket`)"),
    );
    resp.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    resp
}

/// `101 Switching Protocols` with the accept key and the subprotocol chosen, if any.
pub fn switching_protocols(accept: &str, subprotocol: Option<&str>) -> Response<Body> {
    let mut resp = encode::empty_response(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(v) = subprotocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
}

/// What `on-connect` receives: the path, the headers (lowercase names, one entry per value), the decoded
/// query parameters in order, and the client's address.
pub fn connect_request<B>(connection_id: &str, req: &Request<B>, peer: SocketAddr) -> ConnectRequest {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    ConnectRequest {
        connection_id: connection_id.to_owned(),
        path: req.uri().path().to_owned(),
        headers,
        query: query_pairs(req.uri().query().unwrap_or("")),
        source_ip: Some(peer.ip().to_string()),
    }
}

/// `a=1&b=x%20y&flag` → `[("a","1"), ("b","x y"), ("flag","")]`.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get("/chat?room=a%20b&deny");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn accept_key_follows_rfc_6455() {
        let req = upgrade(GOOD);
        assert!(is_upgrade(&req));
        // The RFC's own example.
        assert_eq!(accept_key(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn bad_upgrades_are_refused_with_400_or_426() {
        let without = |name: &str| {
            let h: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != name).collect();
            accept_key(&upgrade(&h)).unwrap_err().response().status()
        };
        assert_eq!(without("connection"), StatusCode::BAD_REQUEST);
        assert_eq!(without("sec-websocket-key"), StatusCode::BAD_REQUEST);
        assert_eq!(without("sec-websocket-version"), StatusCode::UPGRADE_REQUIRED);
        let post = Request::post("/chat").body(()).unwrap();
        assert_eq!(accept_key(&post), Err(BadUpgrade::NotGet));
        assert!(!is_upgrade(&post));
    }

    #[test]
    fn connect_request_carries_decoded_query_and_lowercase_headers() {
        let req = upgrade(&[("X-Token", "t1"), ("x-token", "t2")]);
        let c = connect_request("id1", &req, "10.0.0.1:5000".parse().unwrap());
        assert_eq!(c.path, "/chat");
        assert_eq!(c.query, [("room".into(), "a b".into()), ("deny".into(), String::new())]);
        let tokens: Vec<_> = c
            .headers
            .iter()
            .filter(|(k, _)| k == "x-token")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(tokens, ["t1", "t2"]);
        assert_eq!(c.source_ip.as_deref(), Some("10.0.0.1"));
    }
}
