//! Reading a whole request body under its quota, for the local endpoints that take one document (direct
//! event invocations, task starts).

use bytes::Bytes;
use http_body_util::BodyExt;
use nimbus_core::InvokeError;

/// The whole body, at most `limit` bytes (`max_request_body`): past it, `what` is too large (413), at once
/// when its declared length (`Content-Length`) already is; a body that cannot be read is a bad event (400).
pub(crate) async fn read_limited<B>(body: B, limit: u64, what: &'static str) -> Result<Bytes, InvokeError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // A declared length past the limit is refused before a byte of it is read.
    let declared = http_body::Body::size_hint(&body).lower();
    if declared > limit {
        return Err(InvokeError::request_too_large(what, declared, limit));
    }
    match http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(InvokeError::request_too_large(what, limit.saturating_add(1), limit))
        }
        Err(e) => Err(InvokeError::BadEvent(format!("cannot read the request body: {e}"))),
    }
}
