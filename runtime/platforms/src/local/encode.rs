//! Gateway responses: JSON bodies and errors in the shape of
//! [`crate::reply`].

use crate::reply::{self, Reply};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use nimbus_core::{Body, InvokeError};

fn full(body: Bytes) -> Body {
    Full::new(body).map_err(|never| match never {}).boxed_unsync()
}

/// A JSON response with `body`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A whole answer as a gateway response.
pub fn reply_response(e: Reply) -> Response<Body> {
    let mut r = Response::new(full(e.body));
    *r.status_mut() = e.status;
    *r.headers_mut() = e.headers;
    r
}

/// An error response with an explicit status and type.
pub fn plain_error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    reply_response(reply::plain(status, error_type, message))
}

/// The gateway's answer for a failed invocation.
pub fn error(e: &InvokeError) -> Response<Body> {
    reply_response(reply::for_error(e))
}

/// A response with no body (`101 Switching Protocols`).
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A plain-text response (a WebSocket connect's rejection reason).
pub fn text_response(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
