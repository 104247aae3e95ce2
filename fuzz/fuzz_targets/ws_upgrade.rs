//! The HTTP side of a WebSocket connect under `nimbus serve` (`local::websocket::handshake`): the upgrade
//! checks, the `101` answer, and the `connect-request` a function's `on-connect` receives, then the checks
//! the gateway makes on it (`Origin`, subprotocol selection) for the fixed route `nimbus_fuzz::chat_websocket`.
//!
//! Input: line 1 is the request line (`METHOD TARGET VERSION`), then `name: value` header lines, an empty
//! line and a body (ignored), as `nimbus_fuzz::split_http` reads them. A request line hyper would refuse
//! (a method or target `http` cannot parse) ends the input.
#![no_main]

use http::{HeaderValue, Method, Request, StatusCode, Version, header};
use libfuzzer_sys::fuzz_target;
use nimbus_core::manifest::{WebSocketSpec, offered_subprotocols};
use nimbus_platforms::local::websocket::handshake::{self, BadUpgrade};

fn spec() -> &'static WebSocketSpec {
    nimbus_fuzz::chat_websocket()
}

fn request(data: &[u8]) -> Option<Request<()>> {
    let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = data[..line_end].strip_suffix(b"\r").unwrap_or(&data[..line_end]);
    let mut words = line.split(|&b| b == b' ');
    let method = Method::from_bytes(words.next()?).ok()?;
    let uri = http::Uri::try_from(words.next()?).ok()?;
    let version = match words.next() {
        Some(b"HTTP/1.0") => Version::HTTP_10,
        Some(b"HTTP/2") | Some(b"HTTP/2.0") => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    let (lines, _body) = nimbus_fuzz::split_http(data.get(line_end + 1..).unwrap_or(b""));
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .version(version)
        .body(())
        .ok()?;
    *req.headers_mut() = nimbus_fuzz::header_map(&lines);
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    let Some(req) = request(data) else {
        return;
    };
    let upgrade = handshake::is_upgrade(&req);
    match handshake::accept_key(&req) {
        Ok(accept) => {
            assert_eq!(req.method(), Method::GET);
            assert_eq!(req.version(), Version::HTTP_11);
            assert_eq!(
                req.headers().get(header::SEC_WEBSOCKET_KEY).map(HeaderValue::len),
                Some(24)
            );
            // base64 of a SHA-1: 28 characters.
            assert_eq!(accept.len(), 28, "{accept:?}");
            let resp = handshake::switching_protocols(&accept, Some("chat.v2"));
            assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
            assert_eq!(resp.headers()[header::SEC_WEBSOCKET_ACCEPT], accept.as_str());
        }
        Err(bad) => {
            let resp = bad.response();
            let expected = if bad == BadUpgrade::Version {
                StatusCode::UPGRADE_REQUIRED
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(resp.status(), expected, "{bad:?}");
            if bad == BadUpgrade::Version {
                assert_eq!(resp.headers()[header::SEC_WEBSOCKET_VERSION], "13");
            }
        }
    }
    if !upgrade {
        assert_eq!(
            handshake::upgrade_required(req.uri().path()).status(),
            StatusCode::UPGRADE_REQUIRED
        );
    }

    let connect = handshake::connect_request("c", &req, "192.0.2.1:5000".parse().unwrap());
    assert_eq!(connect.path, req.uri().path());
    // One entry per header value, names as HTTP keeps them (lowercase).
    assert_eq!(connect.headers.len(), req.headers().len());
    assert!(
        connect
            .headers
            .iter()
            .all(|(k, _)| !k.bytes().any(|b| b.is_ascii_uppercase()))
    );
    let parts = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .count();
    assert_eq!(connect.query.len(), parts);
    assert_eq!(connect.source_ip.as_deref(), Some("192.0.2.1"));

    let offered: Vec<&str> = offered_subprotocols(&connect.headers).collect();
    if let Ok(Some(chosen)) = spec().select_subprotocol(offered.iter().copied()) {
        assert!(offered.contains(&chosen) && spec().subprotocols.iter().any(|p| p == chosen));
    }
    for origin in req.headers().get_all(header::ORIGIN) {
        let _ = spec().origin_allowed(&String::from_utf8_lossy(origin.as_bytes()));
    }
});
