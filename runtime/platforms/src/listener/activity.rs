//! What one connection is doing, as far as its time limits care: waiting for a request head, serving
//! requests, or idle between them. Three observers keep it current: the socket wrapper ([`Tracked`])
//! sees bytes arrive, the service sees each request head ([`Activity::request`]), and the response body
//! wrapper ([`InFlightBody`]) sees each answer finish. [`Activity::next`] turns that into the next
//! deadline and what happens when it passes.

use bytes::Bytes;
use http::Version;
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// No timestamp.
const NONE: u64 = u64::MAX;

/// One connection's state, shared by its socket, its service and its response bodies (which HTTP/2 polls
/// from other tasks, hence atomics).
pub(super) struct Activity {
    /// When the connection was accepted; the timestamps below count milliseconds from it.
    accepted: Instant,
    /// Requests whose head has arrived and whose response body is not yet sent.
    in_flight: AtomicU32,
    /// Whether a request head has arrived yet.
    served: AtomicBool,
    /// Whether the connection speaks HTTP/2 (known from its first request).
    http2: AtomicBool,
    /// When the first byte of the pending request head arrived (HTTP/1 only), or [`NONE`].
    head_since: AtomicU64,
    /// When the last response finished, or [`NONE`].
    idle_since: AtomicU64,
    /// Woken when a change may bring the deadline forward.
    pub(super) changed: Notify,
}

/// What happens when a connection's deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    /// The request head did not arrive in time: the connection is dropped.
    Header,
    /// No request for the idle limit: the connection is closed gracefully.
    Idle,
}

impl Activity {
    /// A connection accepted now.
    pub(super) fn new() -> Activity {
        Activity {
            accepted: Instant::now(),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            head_since: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(NONE),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    /// Bytes arrived. Between HTTP/1 requests, the first of them starts the next head's clock. (Bytes
    /// read while a request is in flight are its body, or a pipelined head: that one is bounded by the
    /// idle limit instead.)
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.served.load(Ordering::Relaxed)
            && !self.http2.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// A request head arrived: no deadline applies until its response is sent (the invocation has its
    /// own). The guard ends the request when dropped.
    pub(super) fn request(self: &Arc<Self>, version: Version) -> InFlight {
        self.served.store(true, Ordering::Relaxed);
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The next deadline and what it means, or `None` while requests are in flight.
    pub(super) fn next(&self, limits: &super::ListenerLimits) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Relaxed) {
            // Silence, protocol sniffing and a slow first head: all on the accept's clock.
            return Some((self.accepted + limits.header_read_timeout, Expiry::Header));
        }
        let idle_since = match self.idle_since.load(Ordering::Relaxed) {
            NONE => self.now(),
            t => t,
        };
        let idle = (self.at(idle_since) + limits.keep_alive_idle, Expiry::Idle);
        let head = match self.head_since.load(Ordering::Relaxed) {
            NONE => None,
            t => Some((self.at(t) + limits.header_read_timeout, Expiry::Header)),
        };
        Some(match head {
            Some(head) if head.0 <= idle.0 => head,
            _ => idle,
        })
    }
}

/// One request in flight; dropping it (the response body is sent or dropped, or the request's future
/// is dropped) ends the request and starts the idle clock.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.head_since.store(NONE, Ordering::Relaxed);
            a.idle_since.store(a.now(), Ordering::Relaxed);
            a.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until it is sent.
pub(super) struct InFlightBody {
    body: nimbus_core::Body,
    _request: InFlight,
}

impl InFlightBody {
    /// `body`, ending `request` when done with.
    pub(super) fn new(body: nimbus_core::Body, request: InFlight) -> InFlightBody {
        InFlightBody {
            body,
            _request: request,
        }
    }
}

impl Body for InFlightBody {
    type Data = Bytes;
    type Error = nimbus_core::HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The accepted socket: reports reads to its [`Activity`] and holds the connection's place in the global
/// bound for as long as the socket is open — after a WebSocket upgrade too, since hyper hands this very
/// object to the WebSocket session.
pub(super) struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    _place: OwnedSemaphorePermit,
}

impl Tracked {
    /// `stream`, counted by `place`.
    pub(super) fn new(stream: TcpStream, activity: Arc<Activity>, place: OwnedSemaphorePermit) -> Tracked {
        Tracked {
            stream,
            activity,
            _place: place,
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::ListenerLimits;

    fn limits() -> ListenerLimits {
        ListenerLimits {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(60),
            ..ListenerLimits::default()
        }
    }

    #[test]
    fn the_first_head_runs_on_the_accepts_clock() {
        let a = Arc::new(Activity::new());
        let (at, what) = a.next(&limits()).unwrap();
        assert_eq!(what, Expiry::Header);
        assert_eq!(at, a.accepted + Duration::from_secs(10));
        // Bytes before the first head do not restart that clock.
        a.read();
        assert_eq!(a.next(&limits()).unwrap().0, at);
    }

    #[test]
    fn requests_in_flight_have_no_deadline_then_the_idle_clock_starts() {
        let a = Arc::new(Activity::new());
        let r1 = a.request(Version::HTTP_11);
        a.read(); // its body
        assert_eq!(a.next(&limits()), None);
        drop(r1);
        let (_, what) = a.next(&limits()).unwrap();
        assert_eq!(what, Expiry::Idle);
        // The next request's first byte puts its head on the (shorter) header clock.
        a.read();
        let (at, what) = a.next(&limits()).unwrap();
        assert_eq!(what, Expiry::Header);
        assert!(at <= Instant::now() + Duration::from_secs(10));
        let r2 = a.request(Version::HTTP_11);
        assert_eq!(a.next(&limits()), None);
        drop(r2);
        assert_eq!(a.next(&limits()).unwrap().1, Expiry::Idle);
    }

    #[test]
    fn http2_connections_only_have_the_idle_clock_after_their_first_request() {
        let a = Arc::new(Activity::new());
        let s1 = a.request(Version::HTTP_2);
        let s2 = a.request(Version::HTTP_2);
        drop(s1);
        assert_eq!(a.next(&limits()), None, "one stream is still open");
        drop(s2);
        // Pings and window updates are bytes too; they are not a request head.
        a.read();
        assert_eq!(a.next(&limits()).unwrap().1, Expiry::Idle);
    }
}
