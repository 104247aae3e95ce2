//! Alibaba Cloud Function Compute requests (`fc/mod.rs`): the input is an HTTP head and body (see
//! `nimbus_fuzz::split_http`); the head's lines become the request's `HeaderMap`, read by
//! `fc::decode::{control_path, request_id, function_timeout, strip_platform_headers}` and
//! `fc::credentials::from_headers`, the trace context (`TraceContext::from_headers`, as every adapter does)
//! and the listener's authority check (`listener::authority::resolve`); the body is an `/invoke` payload
//! for `fc::decode::event_source`.
#![no_main]

use http::{Request, Version};
use libfuzzer_sys::fuzz_target;
use nimbus_core::TraceContext;
use nimbus_platforms::fc::{credentials, decode};
use nimbus_platforms::listener::authority;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let (lines, body) = nimbus_fuzz::split_http(data);
    let mut headers = nimbus_fuzz::header_map(&lines);

    if let Ok(path) = decode::control_path(&headers) {
        assert!(decode::ControlPath::ALL.contains(&path));
    }
    if let Some(id) = decode::request_id(&headers) {
        assert!(!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()), "{id:?}");
    }
    if let decode::FunctionTimeout::Seconds(t) = decode::function_timeout(&headers) {
        assert!(t >= Duration::from_secs(1) && t <= Duration::from_secs(86_400), "{t:?}");
    }
    if let Some(key) = credentials::from_headers(&headers) {
        assert!(!key.id.trim().is_empty() && !key.secret.trim().is_empty());
    }
    let _ = decode::event_source(body);

    let trace = TraceContext::from_headers(|name| headers.get_all(name).into_iter().map(|v| v.as_bytes()));
    assert!(nimbus_core::caps::trace::headers::parse_traceparent(&trace.traceparent).is_some(), "{trace:?}");

    for version in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
        let mut req = Request::new(());
        *req.version_mut() = version;
        *req.headers_mut() = headers.clone();
        let _ = authority::resolve(&mut req, "127.0.0.1:9000".parse().unwrap());
    }

    let before = headers.len();
    let removed = decode::strip_platform_headers(&mut headers);
    assert_eq!(headers.len(), before - removed);
    assert!(headers.keys().all(|n| !decode::is_platform_header(n)));
});
