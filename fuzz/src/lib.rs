//! What the fuzz targets share: reading a fuzz input as an HTTP message head and body, and the fixed
//! WebSocket route the WebSocket targets check against.
//!
//! The header-driven targets take inputs in the shape of the fixtures in `tests/fixtures/knative/*.http`:
//! `name: value` lines, an empty line, then the body. A line without a `:` is skipped; so is a name or value
//! HTTP cannot carry when a [`HeaderMap`] is built, as hyper would have refused them before any adapter saw
//! the request.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header lines and the body of `data`: the lines before the first empty line (`\n\n` or `\r\n\r\n`),
/// each split at its first `:` with the name and the value trimmed of spaces and tabs, and everything after
/// that empty line. Without an empty line, all of `data` is header lines and the body is empty.
pub fn split_http(data: &[u8]) -> (Vec<(&[u8], &[u8])>, &[u8]) {
    let (head, body) = match find(data, b"\r\n\r\n").map(|i| (i, 4)).or_else(|| find(data, b"\n\n").map(|i| (i, 2))) {
        Some((i, n)) => (&data[..i], &data[i + n..]),
        None => (data, &data[data.len()..]),
    };
    (header_lines(head), body)
}

/// `name: value` lines (`\n` or `\r\n` separated); lines without a `:` are skipped.
pub fn header_lines(head: &[u8]) -> Vec<(&[u8], &[u8])> {
    head.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            Some((trim(&line[..colon]), trim(&line[colon + 1..])))
        })
        .collect()
}

/// A header map of the lines HTTP can carry, in order (repeated names appended).
pub fn header_map(lines: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in lines {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The fixed WebSocket route of `ws_route` and `ws_upgrade`: function `chat` on `/chat`, with a route
/// selection expression, routes, subprotocols and allowed origins.
const CHAT: &str = r#"
manifest_version = 1

[function.chat]
component = "chat.wasm"

[function.chat.websocket]
path = "/chat"
route_selection = "$request.body.meta.action"
routes = ["join", "send", "leave", "$default"]
subprotocols = ["chat.v2", "chat.v1"]
allowed_origins = ["http://localhost:8080", "https://app.example.com/"]
"#;

/// The `websocket` section of the fixed route (parsed once through `Manifest::parse`).
pub fn chat_websocket() -> &'static nimbus_core::manifest::WebSocketSpec {
    static SPEC: std::sync::OnceLock<nimbus_core::manifest::WebSocketSpec> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::path::Path::new("fuzz/nimbus.toml");
        let m = nimbus_core::Manifest::parse(CHAT, path, std::path::Path::new("fuzz")).expect("the fixed manifest");
        m.function("chat")
            .and_then(|f| f.websocket.clone())
            .expect("its websocket section")
    })
}
