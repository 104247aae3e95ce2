//! What every exported signal (spans, metrics) does alike: log the first
//! export problem and no other, so an unreachable collector is one warning,
//! not one per batch; and bound a flush, so it never holds up its caller
//! longer than the flush timeout.

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One signal's "warn once" flag, shared by its [`Guard`] and its exporter.
#[derive(Debug, Clone)]
pub(super) struct Warnings {
    /// `spans` or `metrics`, for the warning.
    signal: &'static str,
    /// Set once a warning was logged.
    warned: Arc<AtomicBool>,
}

impl Warnings {
    /// Logs `problem` if it is the signal's first; costs one atomic load after that.
    pub(super) fn warn(&self, problem: impl Display) {
        if self.warned.load(Ordering::Relaxed) || self.warned.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            "OpenTelemetry {} export: {problem} (further export problems are not logged)",
            self.signal
        );
    }

    /// Logs a failed export to `endpoint` (its data is lost).
    pub(super) fn export_failed(&self, endpoint: &str, error: impl Display) {
        self.warn(format_args!(
            "export to {endpoint} failed: {error}; {} are dropped while the collector is unreachable",
            self.signal
        ));
    }
}

/// One signal's export state, shared by its handle and its exporter.
#[derive(Debug)]
pub(super) struct Guard {
    warnings: Warnings,
    /// Longest [`Guard::flush`] holds up its caller.
    pub(super) timeout: Duration,
    /// A flush still running on a blocking thread (a second one would only queue).
    flushing: Arc<AtomicBool>,
}

impl Guard {
    pub(super) fn new(signal: &'static str, timeout: Duration) -> Guard {
        Guard {
            warnings: Warnings {
                signal,
                warned: Arc::new(AtomicBool::new(false)),
            },
            timeout,
            flushing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The signal's warn-once flag, for an exporter of its own.
    pub(super) fn warnings(&self) -> Warnings {
        self.warnings.clone()
    }

    /// Wraps an SDK exporter so its failures share this guard's one warning.
    pub(super) fn wrap<E>(&self, inner: E, endpoint: String) -> WarnOnce<E> {
        WarnOnce {
            inner,
            endpoint,
            warnings: self.warnings(),
        }
    }

    /// Waits for `ready` (what must be recorded before the flush), then runs
    /// the exporter's blocking `flush` on the blocking pool; both within the
    /// flush timeout (the export goes on in the background past it).
    /// Never fails: a problem is logged once.
    pub(super) async fn flush<E: Display + Send + 'static>(
        &self,
        ready: impl Future<Output = ()>,
        flush: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        // Past the deadline, what was recorded so far is flushed anyway.
        let _ = tokio::time::timeout_at(deadline, ready).await;
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let flushing = self.flushing.clone();
        let task = tokio::task::spawn_blocking(move || {
            let r = flush();
            flushing.store(false, Ordering::Release);
            r
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => self.warnings.warn(format_args!("flush failed: {e}")),
            Ok(Err(e)) => self.warnings.warn(format_args!("flush task failed: {e}")),
            Err(_) => self
                .warnings
                .warn(format_args!("flush took longer than {} ms", self.timeout.as_millis())),
        }
    }

    /// Runs the exporter's blocking `shutdown` (a last export), waiting a little longer than `timeout`.
    pub(super) async fn shutdown<E: Display + Send + 'static>(
        &self,
        timeout: Duration,
        shutdown: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) {
        let task = tokio::task::spawn_blocking(shutdown);
        match tokio::time::timeout(timeout + Duration::from_millis(100), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => self.warnings.warn(format_args!("shutdown: {e}")),
            Ok(Err(e)) => self.warnings.warn(format_args!("shutdown task failed: {e}")),
            Err(_) => self.warnings.warn("shutdown timed out"),
        }
    }
}

/// Wraps an SDK exporter (metrics); shares its "already warned" flag with its [`Guard`].
#[derive(Debug)]
pub(super) struct WarnOnce<E> {
    inner: E,
    endpoint: String,
    warnings: Warnings,
}

impl<E> WarnOnce<E> {
    fn check(&self, result: OTelSdkResult) -> OTelSdkResult {
        if let Err(e) = &result {
            self.warnings.export_failed(&self.endpoint, e);
        }
        result
    }
}

impl<E: PushMetricExporter> PushMetricExporter for WarnOnce<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        super::priority::yield_to_invocations();
        let result = self.inner.export(metrics).await;
        self.check(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
