//! Nimbus outcomes → Function Compute responses. Pure functions.
//!
//! Every response carries `x-fc-status` (`200`: the function succeeded, `404`: it failed, as the custom
//! runtime specification has it) and none of the headers Function Compute forbids in a response:
//! `x-fc-*`, `connection`, `keep-alive` and the other hop-by-hop headers, `content-length`, `date`,
//! `server`, and `content-disposition: attachment` ([`forbidden`]). A guest's headers go through
//! [`filter_headers`], which drops those and says which it dropped.
//!
//! hyper would add two of them itself: `date` (turned off on the FC listener) and `content-length` for a
//! body of known size. [`Unframed`] hides the body's size, so an HTTP/1.1 response goes out chunked
//! (`transfer-encoding` is how the body is framed without `content-length`; Function Compute re-frames
//! the answer for its client).

use crate::reply::{self, Reply};
use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use nimbus_core::error::Direction;
use nimbus_core::{Body, InvokeError};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The response header that tells Function Compute whether the function succeeded.
pub const STATUS_HEADER: &str = "x-fc-status";

/// What `x-fc-status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FcStatus {
    /// `200`: the function ran and answered (an HTTP function's own 4xx or 5xx included).
    Succeeded,
    /// `404`: the invocation failed (a trap, the deadline, a bad event, a refused request).
    Failed,
}

impl FcStatus {
    /// The header's value.
    pub fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            FcStatus::Succeeded => "200",
            FcStatus::Failed => "404",
        })
    }
}

/// The hop-by-hop headers (RFC 9110 section 7.6.1, and the legacy ones proxies still drop).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Why Function Compute would refuse a response carrying this header, or `None` if it may pass. The
/// framing (`transfer-encoding`) is the server's to set, so a guest's is dropped too.
pub fn forbidden(name: &HeaderName, value: &HeaderValue) -> Option<&'static str> {
    let n = name.as_str();
    if n.starts_with(super::decode::PLATFORM_PREFIX) {
        return Some("x-fc-* headers are Function Compute's own");
    }
    if HOP_BY_HOP.contains(&n) || n == header::TRANSFER_ENCODING {
        return Some("a hop-by-hop header");
    }
    if n == header::CONTENT_LENGTH || n == header::DATE || n == header::SERVER {
        return Some("Function Compute sets it itself");
    }
    if n == header::CONTENT_DISPOSITION && is_attachment(value) {
        return Some("Function Compute forbids content-disposition: attachment");
    }
    None
}

/// Whether a `content-disposition` value's type is `attachment` (case-insensitive, before any parameter).
fn is_attachment(value: &HeaderValue) -> bool {
    let kind = value.as_bytes().split(|&b| b == b';').next().unwrap_or_default();
    kind.trim_ascii().eq_ignore_ascii_case(b"attachment")
}

/// Drops every header [`forbidden`] names from `headers`; returns the names dropped, each once.
pub fn filter_headers(headers: &mut HeaderMap) -> Vec<HeaderName> {
    let mut dropped: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        if forbidden(name, value).is_some() && !dropped.contains(name) {
            dropped.push(name.clone());
        }
    }
    for name in &dropped {
        if name == header::CONTENT_DISPOSITION {
            // Only the `attachment` lines go; an `inline` one stays.
            let kept: Vec<HeaderValue> = headers
                .get_all(name)
                .iter()
                .filter(|v| !is_attachment(v))
                .cloned()
                .collect();
            headers.remove(name);
            for v in kept {
                headers.append(name.clone(), v);
            }
        } else {
            headers.remove(name);
        }
    }
    dropped
}

/// A body whose size is not announced, so that hyper frames it (HTTP/1.1: chunked) instead of adding the
/// `content-length` Function Compute forbids.
pub struct Unframed(pub Body);

impl HttpBody for Unframed {
    type Data = Bytes;
    type Error = nimbus_core::HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    // `is_end_stream` keeps its default (`false`): an empty body is framed like any other.
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A whole Function Compute response: `status`, the allowed part of `headers`, `x-fc-status`, `body`
/// ([`Unframed`]). Returns it with the names of the headers dropped ([`filter_headers`]).
pub fn response(
    status: StatusCode,
    mut headers: HeaderMap,
    body: Body,
    fc: FcStatus,
) -> (Response<Body>, Vec<HeaderName>) {
    let dropped = filter_headers(&mut headers);
    headers.insert(STATUS_HEADER, fc.value());
    let mut r = Response::new(Unframed(body).boxed_unsync());
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    (r, dropped)
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// A whole answer of Nimbus's own (its headers are Nimbus's, never forbidden ones).
pub fn reply(r: Reply, fc: FcStatus) -> Response<Body> {
    response(r.status, r.headers, full(r.body), fc).0
}

/// An event function's result: `200`, its bytes as they are.
pub fn event_output(out: Vec<u8>) -> Response<Body> {
    response(
        StatusCode::OK,
        HeaderMap::new(),
        full(Bytes::from(out)),
        FcStatus::Succeeded,
    )
    .0
}

/// A failed event invocation as Function Compute reports a function error: `404` and `x-fc-status: 404`,
/// `{"errorMessage", "errorType"}` (a trap's details stay in the log). An event over `max_request_body` is
/// refused with `413` instead: the caller's fault, not the function's.
pub fn event_error(e: &InvokeError) -> Response<Body> {
    let status = match e {
        InvokeError::TooLarge {
            direction: Direction::In,
            ..
        } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::NOT_FOUND,
    };
    let body = serde_json::json!({ "errorMessage": e.public_message(), "errorType": e.error_type() });
    reply(reply::json(status, &body), FcStatus::Failed)
}

/// A failed HTTP invocation: the status and body `nimbus serve` answers with (504 at the deadline, 500 for a
/// trap, 413 for a body over `max_request_body`, ...), and `x-fc-status: 404`.
pub fn http_error(e: &InvokeError) -> Response<Body> {
    reply(reply::for_error(e), FcStatus::Failed)
}

/// A request this runtime refuses before any invocation, in Function Compute's error shape
/// (`{"ErrorCode", "ErrorMessage"}`), with `x-fc-status: 404`.
pub fn refusal(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "ErrorCode": code, "ErrorMessage": message });
    reply(reply::json(status, &body), FcStatus::Failed)
}

/// A lifecycle hook's answer: `200`, empty.
pub fn hook_done() -> Response<Body> {
    response(
        StatusCode::OK,
        HeaderMap::new(),
        full(Bytes::new()),
        FcStatus::Succeeded,
    )
    .0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("content-type", "application/json"),
            ("x-fc-status", "200"),
            ("x-fc-request-id", "forged"),
            ("X-FC-Anything", "x"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("content-length", "999"),
            ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("server", "guest/1.0"),
            ("content-disposition", "Attachment; filename=\"a.txt\""),
            ("set-cookie", "a=1"),
            ("cache-control", "no-store"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h
    }

    #[test]
    fn forbidden_headers_from_a_hostile_guest_are_dropped_and_named_once() {
        let mut h = hostile();
        let dropped = filter_headers(&mut h);
        let mut names: Vec<&str> = dropped.iter().map(HeaderName::as_str).collect();
        names.sort_unstable();
        let mut expected = [
            "x-fc-status",
            "x-fc-request-id",
            "x-fc-anything",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "te",
            "trailer",
            "content-length",
            "date",
            "server",
            "content-disposition",
        ];
        expected.sort_unstable();
        assert_eq!(names, expected);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["cache-control", "content-type", "set-cookie"]);
        assert_eq!(
            h.get_all("set-cookie").iter().count(),
            2,
            "repeated allowed headers all stay"
        );
    }

    #[test]
    fn only_attachment_dispositions_are_forbidden() {
        let cd = HeaderName::from_static("content-disposition");
        assert!(forbidden(&cd, &HeaderValue::from_static("attachment")).is_some());
        assert!(forbidden(&cd, &HeaderValue::from_static(" ATTACHMENT ;filename=x")).is_some());
        assert!(forbidden(&cd, &HeaderValue::from_static("inline")).is_none());
        assert!(forbidden(&cd, &HeaderValue::from_static("inline; filename=attachment.txt")).is_none());
        let mut h = HeaderMap::new();
        h.append(cd.clone(), HeaderValue::from_static("attachment; filename=a"));
        h.append(cd.clone(), HeaderValue::from_static("inline"));
        assert_eq!(filter_headers(&mut h), std::slice::from_ref(&cd));
        assert_eq!(h.get_all(&cd).iter().collect::<Vec<_>>(), ["inline"]);
    }

    #[test]
    fn every_response_carries_x_fc_status_and_no_forbidden_header() {
        let (r, dropped) = response(
            StatusCode::CREATED,
            hostile(),
            full(Bytes::from_static(b"x")),
            FcStatus::Succeeded,
        );
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers().get_all(STATUS_HEADER).iter().collect::<Vec<_>>(), ["200"]);
        assert!(!dropped.is_empty());
        for (n, v) in r.headers() {
            assert!(n == STATUS_HEADER || forbidden(n, v).is_none(), "{n} passed");
        }
        assert_eq!(r.body().size_hint().exact(), None, "the size is not announced");
    }

    #[test]
    fn failures_are_reported_as_function_errors() {
        let e = InvokeError::BadEvent("expected JSON".into());
        let r = event_error(&e);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[STATUS_HEADER], "404");
        let r = event_error(&InvokeError::request_too_large("event", 11, 10));
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers()[STATUS_HEADER], "404");
        let r = http_error(&InvokeError::Deadline(nimbus_core::DeadlineCause::Timeout(
            std::time::Duration::from_secs(1),
        )));
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(r.headers()[STATUS_HEADER], "404");
        let r = refusal(StatusCode::BAD_REQUEST, "InvalidArgument", "no control path");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[STATUS_HEADER], "404");
        assert_eq!(hook_done().headers()[STATUS_HEADER], "200");
        assert_eq!(event_output(b"{}".to_vec()).headers()[STATUS_HEADER], "200");
    }
}
