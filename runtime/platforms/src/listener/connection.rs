//! Serving one accepted connection under the listener's time limits.

use super::activity::{Activity, Expiry, InFlightBody, Tracked};
use super::{Handler, ListenerLimits, Peer};
use crate::listener::IpSlot;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

/// How long a connection asked to close gracefully (idle, or the server stopping) may take to finish what
/// it is writing before it is dropped. Shutdown has its own, longer drain timeout on top.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A deadline that never comes, for "no deadline now" (a year on; re-armed long before).
fn far() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

/// Everything one connection needs, moved into its task.
pub(super) struct Connection<H> {
    pub(super) stream: TcpStream,
    pub(super) peer: Peer,
    /// Its place in the global bound (held by the socket, so it outlives a WebSocket upgrade).
    pub(super) place: OwnedSemaphorePermit,
    /// Its place in its address's bound (released when HTTP on it ends, at an upgrade too).
    pub(super) ip_slot: Option<IpSlot>,
    pub(super) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(super) handler: Arc<H>,
    pub(super) limits: Arc<ListenerLimits>,
    pub(super) stop: watch::Receiver<bool>,
    /// Counted among the open connections until this is dropped (shutdown waits for none).
    pub(super) open: super::Open,
}

impl<H: Handler> Connection<H> {
    /// Serves HTTP on the connection until it ends, is upgraded, or runs past a limit.
    pub(super) async fn serve(self) {
        let Connection {
            stream,
            peer,
            place,
            ip_slot,
            builder,
            handler,
            limits,
            mut stop,
            open,
        } = self;
        let _ip_slot = ip_slot;
        let _open = open;
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked::new(stream, activity.clone(), place));
        let seen = activity.clone();
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let request = seen.request(req.version());
            let answer = handler.call(req, peer);
            async move {
                let resp = answer.await;
                Ok::<_, Infallible>(resp.map(|body| InFlightBody::new(body, request)))
            }
        });
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);

        // The armed deadline only moves earlier when the state changes; a later one is picked up when
        // the armed one passes, so a busy connection re-arms its timer rarely.
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed = far();
        // Once a graceful close has begun: the instant it gives up and drops the connection.
        let mut closing: Option<Instant> = None;
        loop {
            let next = activity.next(&limits).map(|(at, what)| (Instant::from_std(at), what));
            let due = match (next, closing) {
                (Some((at, _)), Some(hard)) => at.min(hard),
                (Some((at, _)), None) => at,
                (None, Some(hard)) => hard,
                (None, None) => far(),
            };
            if due < armed || sleep.is_elapsed() {
                sleep.as_mut().reset(due);
                armed = due;
            }
            tokio::select! {
                _ = conn.as_mut() => return,
                () = &mut sleep => {
                    armed = far();
                    let now = Instant::now();
                    if closing.is_some_and(|hard| hard <= now) {
                        return;
                    }
                    match activity.next(&limits) {
                        Some((at, what)) if Instant::from_std(at) <= now => match what {
                            // Half a request is all it sent: nothing to finish, drop it.
                            Expiry::Header => return,
                            Expiry::Idle if closing.is_some() => return,
                            Expiry::Idle => {
                                conn.as_mut().graceful_shutdown();
                                closing = Some(now + CLOSE_GRACE);
                            }
                        },
                        _ => {}
                    }
                }
                () = activity.changed.notified() => {}
                changed = stop.changed(), if closing.is_none() => {
                    if changed.is_err() || *stop.borrow() {
                        // In-flight requests finish; the shutdown's drain timeout bounds them.
                        conn.as_mut().graceful_shutdown();
                        closing = Some(far());
                    }
                }
            }
        }
    }
}
