//! WebSocket route selection: a client's message → its route key (`WebSocketSpec::route_key` in
//! `manifest/websocket.rs`), under a route selection expression and routes that come from a manifest
//! (`RouteSelection::parse` and the `websocket` section's checks, through `Manifest::parse`).
//!
//! Input: line 1 is the `route_selection` expression, line 2 the comma-separated `routes`, line 3 the
//! comma-separated subprotocols the client offers and its `Origin`, separated by a space; the rest is the
//! message (text if UTF-8, and always as binary). Each message is routed under the input's own spec (from a
//! manifest made of lines 1-2 when that manifest is valid, else built directly from them when the expression
//! parses) and under a fixed spec parsed once from a manifest (`$request.body.meta.action`). The routed
//! message also goes through `nimbus_core::websocket::WsEvent::route_key`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_core::Manifest;
use nimbus_core::manifest::{DEFAULT_ROUTE, RouteSelection, WebSocketSpec, offered_subprotocols};
use nimbus_core::websocket::{IncomingMessage, Message, WsEvent};
use std::path::Path;

fn fixed() -> &'static WebSocketSpec {
    nimbus_fuzz::chat_websocket()
}

/// The spec a manifest with this `route_selection` and these `routes` gives, if it is valid.
fn from_manifest(expr: &str, routes: &[&str]) -> Option<WebSocketSpec> {
    // JSON string literals are TOML basic strings (or refused by TOML, which is fine).
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let routes: Vec<String> = routes.iter().map(|r| quote(r)).collect();
    let text = format!(
        "manifest_version = 1\n[function.ws]\ncomponent = \"ws.wasm\"\n[function.ws.websocket]\n\
         route_selection = {}\nroutes = [{}]\n",
        quote(expr),
        routes.join(", ")
    );
    let m = Manifest::parse(&text, Path::new("fuzz/nimbus.toml"), Path::new("fuzz")).ok()?;
    let spec = m.function("ws")?.websocket.clone()?;
    assert_eq!(RouteSelection::parse(expr).as_ref(), Ok(&spec.route_selection), "{expr:?}");
    Some(spec)
}

fn route(spec: &WebSocketSpec, message: &Message) {
    let key = spec.route_key(message);
    assert!(key == DEFAULT_ROUTE || spec.routes.iter().any(|r| r == key), "{key:?} is no route of {spec:?}");
    let event = WsEvent::Message(IncomingMessage {
        connection_id: "c".into(),
        route_key: key.to_owned(),
        message: message.clone(),
    });
    assert_eq!(event.route_key(), key);
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let expr = String::from_utf8_lossy(parts.next().unwrap_or(b""));
    let routes_line = String::from_utf8_lossy(parts.next().unwrap_or(b""));
    let client = String::from_utf8_lossy(parts.next().unwrap_or(b""));
    let message = parts.next().unwrap_or(b"");
    let routes: Vec<&str> = routes_line.split(',').filter(|r| !r.is_empty()).collect();

    let own = from_manifest(&expr, &routes).or_else(|| {
        let route_selection = RouteSelection::parse(&expr).ok()?;
        assert_eq!(RouteSelection::parse(&route_selection.to_string()).as_ref(), Ok(&route_selection));
        Some(WebSocketSpec {
            route_selection,
            routes: routes.iter().map(|r| r.to_string()).collect(),
            ..WebSocketSpec::default()
        })
    });

    let mut messages = vec![Message::Binary(message.to_vec())];
    if let Ok(text) = std::str::from_utf8(message) {
        messages.push(Message::Text(text.to_owned()));
    }
    for m in &messages {
        route(fixed(), m);
        if let Some(spec) = &own {
            route(spec, m);
        }
    }

    let (offered, origin) = client.split_once(' ').unwrap_or((client.as_ref(), ""));
    let headers = vec![("sec-websocket-protocol".to_owned(), offered.to_owned())];
    let offered: Vec<&str> = offered_subprotocols(&headers).collect();
    if let Ok(Some(p)) = fixed().select_subprotocol(offered.iter().copied()) {
        assert!(offered.contains(&p));
    }
    let _ = fixed().origin_allowed(origin);
});
