//! A whole HTTP answer as every adapter builds it before putting it into its
//! platform's response type, and the one shape of a failed invocation's answer:
//! `{"error": "<errorType>", "message": "<what happened>"}`, the status an
//! API gateway would use, and `Retry-After` when the function is overloaded.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use nimbus_core::logs::{LogSink, format_record};
use nimbus_core::{Invocation, InvokeError};

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
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = match serde_json::to_vec(value) {
        Ok(b) => b,
        // Only a map with keys that are not strings cannot be JSON; none of the answers has one.
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be written as JSON");
            return Reply {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                headers,
                body: Bytes::from_static(br#"{"error":"Nimbus.Internal","message":"the answer could not be encoded"}"#),
            };
        }
    };
    Reply {
        status,
        headers,
        body: Bytes::from(body),
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
    if let Some(retry_after) = e.retry_after() {
        r.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    }
    r
}

/// Reads a guest's whole response, for a platform whose answer is one document (Lambda's JSON response, an
/// Azure Functions `Outputs.res`): a body over `max_response_body` is too large, a guest that fails while
/// sending it has trapped.
pub async fn collect(resp: http::Response<nimbus_core::Body>) -> Result<Reply, InvokeError> {
    let (parts, body) = resp.into_parts();
    let body: Bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(match e {
                nimbus_core::HttpError::HttpResponseBodySize(limit) => {
                    InvokeError::response_too_large("response body", limit.unwrap_or(0) + 1, limit.unwrap_or(0))
                }
                other => InvokeError::Trap(format!(
                    "the function failed while sending its response body: {other:?}"
                )),
            });
        }
    };
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Logs a failed invocation of a platform adapter: one `invocation failed` line with the invocation's fields,
/// the error type and the whole message (a trap's backtrace included, which the caller's answer leaves out).
pub fn log_failure(sink: &LogSink, inv: &Invocation, error_type: &str, message: &str) {
    let fields = [("error_type", error_type.into()), ("error", message.into())];
    sink.write_line(&format_record("ERROR", "invocation failed", Some(inv), &fields));
}
