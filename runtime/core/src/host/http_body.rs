//! HTTP body plumbing around a guest: a body that fails past its quota (request and response alike) and a
//! response body that carries its invocation's span to the end of the stream.

use crate::Body;
use crate::telemetry::InvocationRecord;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// The `Content-Length` a request or response announces, if it is a number.
pub(super) fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// A response body that carries its invocation's span, exported when the
/// body is done with (sent, collected or dropped).
pub(super) struct RecordedBody {
    body: Body,
    record: InvocationRecord,
}

impl RecordedBody {
    pub(super) fn new(body: Body, record: InvocationRecord) -> RecordedBody {
        RecordedBody { body, record }
    }
}

impl http_body::Body for RecordedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            this.record.failed(match e {
                wasmtime_wasi_http::Error::HttpResponseBodySize(_) => "Nimbus.PayloadTooLarge",
                _ => "Nimbus.Trap",
            });
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A body that fails once more than `limit` bytes have passed through it.
pub(super) struct LimitedBody<B> {
    inner: B,
    seen: u64,
    limit: u64,
    tripped: Arc<AtomicBool>,
    error: fn(Option<u64>) -> wasmtime_wasi_http::Error,
}

impl<B> LimitedBody<B> {
    /// `inner` limited to `limit` bytes; past it, `tripped` is set and the body fails with `error`.
    pub(super) fn new(
        inner: B,
        limit: u64,
        tripped: Arc<AtomicBool>,
        error: fn(Option<u64>) -> wasmtime_wasi_http::Error,
    ) -> Self {
        LimitedBody {
            inner,
            seen: 0,
            limit,
            tripped,
            error,
        }
    }
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err((this.error)(Some(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
