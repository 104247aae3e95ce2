//! Serving the one function `bootstrap` booted over HTTP, for the platforms that call in rather than being
//! polled (Function Compute, Cloud Run / Knative, Azure custom handlers): the hardened [`crate::listener`],
//! a `listening` log line once the port is bound (the platform's readiness), and a bounded shutdown on
//! SIGTERM or SIGINT: stop accepting, let in-flight requests finish within [`Serving::drain`], then export
//! the last spans and metrics within [`TELEMETRY_FLUSH`]. Both bounds together stay under the 10 s grace
//! period Cloud Run and Knative give between SIGTERM and SIGKILL.
//!
//! Each adapter only supplies its [`Handler`]; it may begin the drain itself ([`Stop`], e.g. Function
//! Compute's `/pre-stop`) and count its requests ([`InFlight`]) to wait for them.

use crate::listener::{Handler, Listener, ListenerLimits};
use nimbus_core::Host;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long in-flight requests may take to finish after SIGTERM, by default.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(8);
/// How long the last spans and metrics may take to export after the drain.
pub const TELEMETRY_FLUSH: Duration = Duration::from_secs(1);

/// Why an adapter could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (in use, or not this machine's).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A setting the adapter cannot serve without is unset (the platform sets it; run by hand, set it too).
    #[error("{name} is not set: expected {expected}")]
    Unset {
        /// The variable.
        name: &'static str,
        /// What it should be.
        expected: &'static str,
    },
}

/// Where and how to serve, and the handle that stops it.
pub struct Serving {
    /// The address to bind (port 0: a free one).
    pub addr: SocketAddr,
    /// The connection limits.
    pub limits: ListenerLimits,
    /// How long in-flight requests may take to finish once stopping.
    pub drain: Duration,
    /// Whether responses get hyper's `Date` header (Function Compute forbids it).
    pub date_header: bool,
    stop: watch::Sender<bool>,
}

impl Serving {
    /// Serving on `addr` with `limits` and the [`DEFAULT_DRAIN`].
    pub fn new(addr: SocketAddr, limits: ListenerLimits) -> Serving {
        Serving {
            addr,
            limits,
            drain: DEFAULT_DRAIN,
            date_header: true,
            stop: watch::Sender::new(false),
        }
    }

    /// A handle that begins the shutdown, as SIGTERM would, for a handler that is told to stop by a
    /// request.
    pub fn stop_handle(&self) -> Stop {
        Stop(self.stop.clone())
    }
}

/// Begins a [`serve`]'s shutdown. Cheap to clone.
#[derive(Clone)]
pub struct Stop(watch::Sender<bool>);

impl Stop {
    /// Stop accepting and drain, as on SIGTERM.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// Requests being answered, for a handler that must wait until the others are done (a platform's
/// lifecycle hook). Cheap to clone.
#[derive(Clone, Default)]
pub struct InFlight(Arc<watch::Sender<usize>>);

/// One request counted in [`InFlight`] until dropped.
pub struct Counted(Arc<watch::Sender<usize>>);

impl InFlight {
    /// Counts a request until the guard is dropped.
    pub fn enter(&self) -> Counted {
        self.0.send_modify(|n| *n += 1);
        Counted(self.0.clone())
    }

    /// Requests now in flight.
    pub fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// Waits until at most `others` requests are in flight (the caller's own, if it is counted), or
    /// `timeout` passes; whether they finished.
    pub async fn settled(&self, others: usize, timeout: Duration) -> bool {
        let mut rx = self.0.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n <= others))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Serves `handler` on `serving.addr` until SIGTERM, SIGINT or [`Stop::stop`]; then drains and flushes
/// `host`'s telemetry. One `listening` line (with the bound address) says the adapter is ready.
pub async fn serve(host: &Arc<Host>, serving: Serving, handler: impl Handler) -> Result<(), ServeError> {
    let Serving {
        addr,
        limits,
        drain,
        date_header,
        stop,
    } = serving;
    let mut listener = Listener::bind(addr, limits)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    if !date_header {
        listener = listener.without_date_header();
    }
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(address = %bound, "listening");
    let signalled = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: draining in-flight requests");
            let _ = stop.send(true);
        })
    };
    let drained = listener.serve(handler, stop.subscribe(), drain).await;
    signalled.abort();
    if !drained {
        tracing::warn!(
            "stopping: requests still in flight after {} ms; closing them",
            drain.as_millis()
        );
    }
    host.shutdown_telemetry(TELEMETRY_FLUSH).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C where there are no Unix signals).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_flight_settles_when_the_others_are_done() {
        let counter = InFlight::default();
        let mine = counter.enter();
        let other = counter.enter();
        assert_eq!(counter.count(), 2);
        assert!(
            !counter.settled(1, Duration::from_millis(20)).await,
            "another request is still in flight"
        );
        let waiter = tokio::spawn({
            let counter = counter.clone();
            async move { counter.settled(1, Duration::from_secs(30)).await }
        });
        drop(other);
        assert!(
            waiter.await.unwrap(),
            "settles once only the caller's own request is left"
        );
        drop(mine);
        assert_eq!(counter.count(), 0);
    }
}
