//! The HTTP listener every adapter that accepts connections shares (`nimbus serve`'s gateway today; the
//! Function Compute, Knative and Azure adapters are to use it too): it accepts connections and serves
//! HTTP/1.1 and HTTP/2 on them with hyper, under [`ListenerLimits`], so that no client can hold the
//! server by opening connections and sending little or nothing.
//!
//! - **Bounds.** At most `max_connections` sockets are open (WebSockets included) and at most
//!   `max_connections_per_ip` HTTP connections per client address. A connection beyond either is
//!   answered at once, before anything is read ([`refusal`]: `503` or `429`, `Retry-After: 1`) and
//!   closed. The global bound is kept under the open-file limit, which is raised to its hard limit at
//!   start ([`nofile`]), so `accept` does not fail with `EMFILE`; if it fails anyway, the loop backs
//!   off briefly and goes on.
//! - **Time.** A request head must arrive within `header_read_timeout` (from the accept for the first
//!   request, from its first byte for later ones), or the connection is dropped; a connection with no
//!   request in flight for `keep_alive_idle` is closed (HTTP/2: `GOAWAY`). While a request is in flight
//!   its invocation's own deadline applies instead. hyper's `header_read_timeout` is not used: its clock
//!   starts when the previous response ends, so it would also cut idle keep-alive connections at the
//!   header timeout, and it does not cover the protocol sniffing of hyper-util's `auto` builder, which
//!   reads up to 24 bytes before hyper's parser sees any (a client that sends `PRI` and stops was held
//!   forever).
//! - **Size.** Request heads are limited to [`MAX_REQUEST_HEAD`] (`431` beyond), HTTP/2 connections to
//!   [`HTTP2_MAX_CONCURRENT_STREAMS`] streams.
//! - **WebSockets.** An upgraded connection leaves the HTTP limits behind (the WebSocket session has its
//!   own idle timeout, lifetime and per-address bound) and its per-address HTTP slot is released; it
//!   stays counted in `max_connections`, which bounds descriptors.
//!
//! - **Memory.** A connection's state (about 40 KiB while a head is read) is owned by its task and freed
//!   when it ends; after a burst of closed connections the heap is trimmed so the process's size comes
//!   back down ([`trim`]).

mod activity;
pub mod authority;
mod connection;
mod limits;
mod nofile;
mod per_ip;
mod refusal;
mod trim;

pub use limits::{
    HTTP2_MAX_CONCURRENT_STREAMS, ListenerLimits, ListenerSettings, MAX_REQUEST_HEAD, parse_max_connections,
    parse_max_connections_per_ip, parse_timeout, per_ip_bound,
};
pub use nofile::raise_open_file_limit;
pub(crate) use per_ip::{IpSlot, PerIp};

use connection::Connection;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use nimbus_core::Body;
use refusal::Refusals;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// The two ends of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the client connected to (the listener's, with a concrete IP when it listens on all).
    pub local: SocketAddr,
}

/// What answers the requests: an adapter's request handler.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request that arrived from `peer`. The answer does not borrow the handler: hyper keeps
    /// it beyond the call.
    fn call(&self, req: Request<Incoming>, peer: Peer) -> impl Future<Output = Response<Body>> + Send + use<Self>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request<Incoming>, Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    fn call(&self, req: Request<Incoming>, peer: Peer) -> impl Future<Output = Response<Body>> + Send + use<F, Fut> {
        self(req, peer)
    }
}

/// One open connection, counted until dropped.
struct Open(watch::Sender<usize>);

impl Open {
    fn new(count: &watch::Sender<usize>, peak: &trim::Peak) -> Open {
        count.send_modify(|n| {
            *n += 1;
            peak.saw(*n);
        });
        Open(count.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The hyper builder with the listener's protocol limits; `date`: whether hyper adds a `Date` header to
/// responses that have none.
fn builder(date: bool) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .auto_date_header(date)
        // The listener's own header timeout applies (see the module docs); no timer is set, so hyper
        // would not apply its default anyway: say so.
        .header_read_timeout(None)
        // hyper reads a head into a buffer of at most this size, and answers 431 beyond it.
        .max_buf_size(MAX_REQUEST_HEAD);
    b.http2()
        .auto_date_header(date)
        .max_header_list_size(MAX_REQUEST_HEAD as u32)
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS);
    b
}

/// Logs a recurring warning at most once per interval, with how many were held back.
struct Throttled {
    last: Option<Instant>,
    held: u64,
}

impl Throttled {
    const EVERY: Duration = Duration::from_secs(10);

    fn new() -> Throttled {
        Throttled { last: None, held: 0 }
    }

    fn warn(&mut self, message: impl FnOnce() -> String) {
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.held += 1;
            return;
        }
        let held = std::mem::take(&mut self.held);
        if held > 0 {
            tracing::warn!(
                "{} ({held} more like it in the last {}s)",
                message(),
                Self::EVERY.as_secs()
            );
        } else {
            tracing::warn!("{}", message());
        }
        self.last = Some(Instant::now());
    }
}

/// A bound listening socket with its limits, as they apply (the connection bound fitted under the
/// open-file limit).
pub struct Listener {
    tcp: TcpListener,
    limits: ListenerLimits,
    /// Whether responses get hyper's `Date` header.
    date: bool,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port). Raises the process's soft open-file limit to its hard
    /// limit (once per process) and lowers `max_connections` to fit under it, with a warning.
    pub async fn bind(addr: SocketAddr, limits: ListenerLimits) -> std::io::Result<Listener> {
        let tcp = TcpListener::bind(addr).await?;
        let mut limits = limits;
        let wanted = limits.max_connections;
        let open_files = raise_open_file_limit();
        limits.max_connections = nofile::fit(wanted, open_files);
        if limits.max_connections < wanted {
            tracing::warn!(
                "max_connections = {wanted} does not fit under the open-file limit ({} descriptors, a quarter \
                 kept for the rest of the process): serving at most {} connections",
                open_files.unwrap_or_default(),
                limits.max_connections
            );
        }
        Ok(Listener {
            tcp,
            limits,
            date: true,
        })
    }

    /// Responses without a `Date` header get none (hyper adds one by default): for a platform that forbids
    /// it, such as Function Compute.
    pub fn without_date_header(self) -> Listener {
        Listener { date: false, ..self }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The limits it applies.
    pub fn limits(&self) -> &ListenerLimits {
        &self.limits
    }

    /// Accepts connections and serves them with `handler` until `stop` turns true (or its sender is
    /// dropped); then stops accepting, asks every connection to close once its requests are answered, and
    /// waits at most `drain` for them. Returns whether they all closed in time.
    pub async fn serve<H: Handler>(self, handler: H, mut stop: watch::Receiver<bool>, drain: Duration) -> bool {
        let Listener { tcp, limits, date } = self;
        let local = tcp.local_addr().ok();
        let places = Arc::new(Semaphore::new(limits.max_connections as usize));
        let per_ip = limits.max_connections_per_ip.map(PerIp::new);
        let refusals = Refusals::new(limits.max_connections, limits.max_connections_per_ip);
        let limits = Arc::new(limits);
        let builder = Arc::new(builder(date));
        let handler = Arc::new(handler);
        let open = watch::Sender::new(0usize);
        let peak = Arc::new(trim::Peak::default());
        tokio::spawn(trim::after_bursts(open.subscribe(), peak.clone()));
        let mut accept_failed = Throttled::new();
        let mut refused = Throttled::new();
        loop {
            let (stream, remote) = tokio::select! {
                r = tcp.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: the pending connection stays in the backlog; back off
                        // instead of spinning, and keep serving the connections already open.
                        accept_failed.warn(|| format!("accept failed: {e}; retrying in 50ms"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let Ok(place) = places.clone().try_acquire_owned() else {
                refusal::refuse(stream, &refusals.busy);
                refused.warn(|| {
                    format!(
                        "refusing connections: max_connections = {} reached",
                        limits.max_connections
                    )
                });
                continue;
            };
            let ip_slot = match (&per_ip, &refusals.per_ip) {
                (Some(per_ip), Some(answer)) => match per_ip.acquire(remote.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        refusal::refuse(stream, answer);
                        refused.warn(|| {
                            format!(
                                "refusing connections from {}: max_connections_per_ip = {} reached",
                                remote.ip(),
                                per_ip.max()
                            )
                        });
                        continue;
                    }
                },
                _ => None,
            };
            let _ = stream.set_nodelay(true);
            let peer = Peer {
                remote,
                local: stream.local_addr().ok().or(local).unwrap_or(remote),
            };
            let conn = Connection {
                stream,
                peer,
                place,
                ip_slot,
                builder: builder.clone(),
                handler: handler.clone(),
                limits: limits.clone(),
                stop: stop.clone(),
                open: Open::new(&open, &peak),
            };
            tokio::spawn(conn.serve());
        }
        drop(tcp);
        let mut count = open.subscribe();
        tokio::time::timeout(drain, count.wait_for(|n| *n == 0)).await.is_ok()
    }
}
