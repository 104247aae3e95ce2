//! Gateway responses for errors, in one JSON shape:
//! `{"error": "<errorType>", "message": "<what happened>"}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use nimbus_core::{Body, InvokeError};

/// A JSON response with `body`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An error response with an explicit status and type.
pub fn plain_error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": error_type, "message": message }).to_string();
    json_response(status, Bytes::from(body))
}

/// The gateway's answer for a failed invocation.
pub fn error(e: &InvokeError) -> Response<Body> {
    let mut r = plain_error(e.http_status(), e.error_type(), &e.to_string());
    if let InvokeError::Overloaded { retry_after, .. } = e {
        let secs = retry_after.as_secs().max(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}
