//! A whole HTTP answer as every adapter builds it before putting it into its
//! platform's response type, and the one shape of a failed invocation's answer:
//! `{"error": "<errorType>", "message": "<what happened>"}`, the status an
//! API gateway would use, and `Retry-After` when the function is overloaded.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use nimbus_core::InvokeError;

/// A whole HTTP response, before it is put into a platform's response type.
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Reply {
        status,
        headers,
        body: Bytes::from(value.to_string()),
    }
}

/// An error answer with an explicit status and type (routing errors and the like).
pub fn plain(status: StatusCode, error_type: &str, message: &str) -> Reply {
    json(status, &serde_json::json!({ "error": error_type, "message": message }))
}

/// The answer for a failed invocation: its type and [`InvokeError::public_message`] (a trap's backtrace
/// stays in the log).
pub fn for_error(e: &InvokeError) -> Reply {
    let mut r = plain(e.http_status(), e.error_type(), &e.public_message());
    if let InvokeError::Overloaded { retry_after, .. } = e {
        r.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    }
    r
}
