//! The `websocket` section: parsing, defaults, route selection and subprotocols.

use super::*;

#[test]
fn websocket_section_parses_and_defaults_to_api_gateway_quotas() {
    let m = parse(
        r#"
manifest_version = 1

[function.chat]
component = "chat.wasm"

[function.chat.websocket]
path = "/chat"
route_selection = "$request.body.meta.action"
routes = ["join", "send", "$default"]
allowed_origins = ["http://LocalHost:8080/", "https://app.example.com"]
max_message = "256KiB"
idle_timeout = "1m"
max_lifetime = "30m"
heartbeat = "5s"
max_connections_per_ip = 1000
messages_per_second = 10
send_queue = 8

[function.plain]
component = "p.wasm"
websocket = {}
"#,
    )
    .unwrap();
    let ws = m.function("chat").unwrap().websocket.clone().unwrap();
    assert_eq!(ws.path.as_deref(), Some("/chat"));
    assert_eq!(
        ws.route_selection,
        RouteSelection::Body(vec!["meta".into(), "action".into()])
    );
    // `$default` is always there; listing it changes nothing.
    assert_eq!(ws.routes, ["join", "send"]);
    assert_eq!(
        ws.allowed_origins.as_deref(),
        Some(
            &[
                "http://localhost:8080".to_string(),
                "https://app.example.com".to_string()
            ][..]
        )
    );
    assert_eq!((ws.max_message, ws.max_frame), (256 << 10, DEFAULT_MAX_FRAME));
    assert_eq!(ws.idle_timeout, Duration::from_secs(60));
    assert_eq!(ws.max_lifetime, Duration::from_secs(1800));
    assert_eq!(ws.heartbeat, Duration::from_secs(5));
    assert_eq!(
        (ws.max_connections_per_ip, ws.messages_per_second, ws.send_queue),
        (1000, 10, 8)
    );
    assert!(ws.origin_allowed("http://localhost:8080"));
    assert!(!ws.origin_allowed("http://localhost:8081"));

    let d = m.function("plain").unwrap().websocket.clone().unwrap();
    assert_eq!(d, WebSocketSpec::default());
    assert_eq!(d.max_message, 128 << 10, "API Gateway's message quota");
    assert_eq!(d.max_frame, 32 << 10, "API Gateway's frame quota");
    assert_eq!(d.idle_timeout, Duration::from_secs(600));
    assert_eq!(d.max_lifetime, Duration::from_secs(7200));
    assert_eq!(
        RouteSelection::parse(DEFAULT_ROUTE_SELECTION).unwrap(),
        d.route_selection
    );
    assert!(d.origin_allowed("https://anything.example"));
    assert_eq!(m.function("plain").unwrap().websocket.as_ref().unwrap().path, None);
    // A small max_message lowers the frame limit with it.
    let small =
        parse("manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nwebsocket = { max_message = \"4KiB\" }\n")
            .unwrap();
    let small = small.functions[0].websocket.as_ref().unwrap();
    assert_eq!((small.max_message, small.max_frame), (4096, 4096));
}

#[test]
fn route_selection_prints_as_written_for_api_gateway() {
    for expr in ["$request.body.action", "$request.body.meta.type", "chat"] {
        assert_eq!(RouteSelection::parse(expr).unwrap().to_string(), expr);
    }
}

#[test]
fn websocket_route_selection_picks_declared_routes_else_default() {
    use crate::websocket::Message;
    let spec = |expr: &str| WebSocketSpec {
        route_selection: RouteSelection::parse(expr).unwrap(),
        routes: vec!["join".into(), "send".into()],
        ..WebSocketSpec::default()
    };
    let text = |t: &str| Message::Text(t.into());
    let body = spec("$request.body.action");
    assert_eq!(body.route_key(&text(r#"{"action":"join","room":1}"#)), "join");
    assert_eq!(body.route_key(&text(r#"{"action":"leave"}"#)), "$default");
    assert_eq!(body.route_key(&text(r#"{"action":7}"#)), "$default");
    assert_eq!(body.route_key(&text("not json")), "$default");
    assert_eq!(body.route_key(&text(r#"["join"]"#)), "$default");
    assert_eq!(
        body.route_key(&Message::Binary(br#"{"action":"join"}"#.to_vec())),
        "$default"
    );
    let nested = spec("$request.body.meta.kind");
    assert_eq!(nested.route_key(&text(r#"{"meta":{"kind":"send"}}"#)), "send");
    assert_eq!(nested.route_key(&text(r#"{"meta":"send"}"#)), "$default");
    assert_eq!(spec("send").route_key(&text("anything")), "send");
    assert_eq!(spec("other").route_key(&text("anything")), "$default");
    assert_eq!(spec("$default").route_key(&text("x")), "$default");
}

#[test]
fn websocket_subprotocols_pick_the_first_declared_one_the_client_offers() {
    use crate::manifest::offered_subprotocols;
    let m = parse(
        "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n\
         websocket = { subprotocols = [\"chat.v2\", \"chat.v1\"] }\n",
    )
    .unwrap();
    let spec = m.functions[0].websocket.as_ref().unwrap();
    assert_eq!(spec.subprotocols, ["chat.v2", "chat.v1"]);
    let headers = |values: &[&str]| -> Vec<(String, String)> {
        values
            .iter()
            .map(|v| ("sec-websocket-protocol".to_owned(), (*v).to_owned()))
            .chain([("host".to_owned(), "h".to_owned())])
            .collect()
    };
    let pick = |values: &[&str]| {
        let h = headers(values);
        spec.select_subprotocol(offered_subprotocols(&h))
            .map(|p| p.map(str::to_owned))
    };
    // The server's preference wins, across header lines and with odd spacing.
    assert_eq!(pick(&["chat.v1, chat.v2"]), Ok(Some("chat.v2".into())));
    assert_eq!(pick(&["x", " chat.v1 ,y"]), Ok(Some("chat.v1".into())));
    assert_eq!(pick(&[]), Ok(None), "a client offering none connects without one");
    let e = pick(&["mqtt, wamp"]).unwrap_err();
    assert!(
        e.contains("(mqtt, wamp)") && e.contains(r#"["chat.v2", "chat.v1"]"#),
        "{e}"
    );
    // Declaring none answers none, whatever the client offers.
    let none = WebSocketSpec::default();
    assert_eq!(
        none.select_subprotocol(offered_subprotocols(&headers(&["mqtt"]))),
        Ok(None)
    );
}

#[test]
fn websocket_section_rejects_bad_settings_with_line_and_key() {
    let base = "manifest_version = 1\n[function.chat]\ncomponent = \"c.wasm\"\n[function.chat.websocket]\n";
    let cases: &[(&str, &str, &str)] = &[
        ("pth = \"/chat\"", "function.chat.websocket.pth", "unknown field `pth`"),
        ("path = \"chat\"", "function.chat.websocket.path", "must start with '/'"),
        (
            "path = \"/chat/{room}\"",
            "function.chat.websocket.path",
            "no parameters",
        ),
        (
            "route_selection = \"$request.header.x\"",
            "function.chat.websocket.route_selection",
            "not supported",
        ),
        (
            "route_selection = \"$request.body.\"",
            "function.chat.websocket.route_selection",
            "each field",
        ),
        (
            "route_selection = \"${request.body.action}\"",
            "function.chat.websocket.route_selection",
            "not supported",
        ),
        ("routes = [\"$join\"]", "function.chat.websocket.routes", "reserved"),
        ("routes = [\"a b\"]", "function.chat.websocket.routes", "without spaces"),
        (
            "routes = [\"a\", \"a\"]",
            "function.chat.websocket.routes",
            "listed twice",
        ),
        (
            "allowed_origins = [\"localhost\"]",
            "function.chat.websocket.allowed_origins",
            "invalid origin",
        ),
        (
            "max_message = \"12\"",
            "function.chat.websocket.max_message",
            "out of range",
        ),
        (
            "max_message = \"1GiB\"",
            "function.chat.websocket.max_message",
            "out of range",
        ),
        (
            "max_message = \"16KiB\"\nmax_frame = \"32KiB\"",
            "function.chat.websocket.max_frame",
            "out of range",
        ),
        (
            "idle_timeout = \"soon\"",
            "function.chat.websocket.idle_timeout",
            "invalid duration",
        ),
        (
            "idle_timeout = \"1ms\"",
            "function.chat.websocket.idle_timeout",
            "out of range",
        ),
        (
            "max_lifetime = \"30d\"",
            "function.chat.websocket.max_lifetime",
            "out of range",
        ),
        (
            "heartbeat = \"2h\"",
            "function.chat.websocket.heartbeat",
            "out of range",
        ),
        (
            "max_connections_per_ip = 0",
            "function.chat.websocket.max_connections_per_ip",
            "out of range",
        ),
        (
            "messages_per_second = 0",
            "function.chat.websocket.messages_per_second",
            "out of range",
        ),
        (
            "send_queue = 100000",
            "function.chat.websocket.send_queue",
            "out of range",
        ),
        (
            "subprotocols = [\"chat v1\"]",
            "function.chat.websocket.subprotocols",
            "not an HTTP token",
        ),
        (
            "subprotocols = [\"a\", \"a\"]",
            "function.chat.websocket.subprotocols",
            "listed twice",
        ),
    ];
    let mut wrong = Vec::new();
    for (line, key, needle) in cases {
        let text = format!("{base}{line}\n");
        let e = parse(&text).expect_err(&text);
        // The offending line is the last one.
        let want_line = text.lines().count();
        if !e.to_string().contains(needle) || e.key.as_deref() != Some(*key) || e.line != Some(want_line) {
            wrong.push(format!("{line:?}\n  got line {:?} key {:?}: {e}", e.line, e.key));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let twice = "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nwebsocket = { path = \"/ws\" }\n\
                 [function.b]\ncomponent = \"b.wasm\"\nwebsocket = { path = \"/ws\" }\n";
    let e = parse(twice).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("function.b.websocket.path"));
    assert_eq!(e.line, Some(7));
    assert!(e.message.contains("already function `a`'s"), "{e}");
}
