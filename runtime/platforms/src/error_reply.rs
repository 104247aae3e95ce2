//! The one shape every adapter answers a failed HTTP invocation with:
//! `{"error": "<errorType>", "message": "<what happened>"}`, the status an
//! API gateway would use, and `Retry-After` when the function is overloaded.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use nimbus_core::InvokeError;

/// An error answer before it is put into a platform's response type.
pub struct ErrorReply {
    /// The HTTP status.
    pub status: StatusCode,
    /// `Content-Type: application/json`, and `Retry-After` for overload.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Bytes,
}

/// An error answer with an explicit status and type (routing errors and the like).
pub fn plain(status: StatusCode, error_type: &str, message: &str) -> ErrorReply {
    let body = serde_json::json!({ "error": error_type, "message": message }).to_string();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    ErrorReply {
        status,
        headers,
        body: Bytes::from(body),
    }
}

/// The answer for a failed invocation.
pub fn for_error(e: &InvokeError) -> ErrorReply {
    let mut r = plain(e.http_status(), e.error_type(), &e.to_string());
    if let InvokeError::Overloaded { retry_after, .. } = e {
        r.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    }
    r
}
