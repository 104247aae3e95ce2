//! Echoes the request back as JSON so a test can check, field by field, how
//! a platform's event became a request: method, scheme, authority, path,
//! query, every header (repeats included) and the body (hex, so binary
//! survives), with the config values and the trace context the guest sees, so the same request can be
//! compared across platforms. Query switches shape the response: `status=NNN`,
//! `cookies=N` (N `Set-Cookie` headers), `binary=1` (an octet-stream body).

use nimbus_sdk::http::{HeaderValue, Request, Response, StatusCode, header};

fn handle(req: Request) -> Response {
    let query = req.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    if param("binary").is_some() {
        let mut r = Response::new((0u8..=255).collect());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return r;
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body_hex: String = req.body().iter().map(|b| format!("{b:02x}")).collect();
    let mut r = nimbus_sdk::http::json(&serde_json::json!({
        "method": req.method().as_str(),
        "scheme": req.uri().scheme_str(),
        "authority": req.uri().authority().map(|a| a.to_string()),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
        "body_hex": body_hex,
        "config": nimbus_sdk::config::all().unwrap_or_default(),
        "traceparent": nimbus_sdk::invocation::current().traceparent,
    }));
    if let Some(s) = param("status").and_then(|s| s.parse::<u16>().ok())
        && let Ok(s) = StatusCode::from_u16(s)
    {
        *r.status_mut() = s;
    }
    let cookies = param("cookies").and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    for i in 0..cookies {
        if let Ok(v) = HeaderValue::from_str(&format!("c{i}=v{i}; Path=/")) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

nimbus_sdk::http_function!(handle);

fn main() {}
