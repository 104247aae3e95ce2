//! What every exported signal (spans, metrics) does alike: log the first
//! export failure and no other, so an unreachable collector is one warning,
//! not one per batch; and bound a flush, so it never holds up its caller
//! longer than the flush timeout.

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One signal's export state, shared by its handle and its exporter.
#[derive(Debug)]
pub(super) struct Guard {
    /// `spans` or `metrics`, for the warning.
    signal: &'static str,
    /// Longest [`Guard::flush`] holds up its caller.
    pub(super) timeout: Duration,
    /// Set once a warning was logged.
    warned: Arc<AtomicBool>,
    /// A flush still running on a blocking thread (a second one would only queue).
    flushing: Arc<AtomicBool>,
}

impl Guard {
    pub(super) fn new(signal: &'static str, timeout: Duration) -> Guard {
        Guard {
            signal,
            timeout,
            warned: Arc::new(AtomicBool::new(false)),
            flushing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Wraps the exporter so its failures share this guard's one warning.
    pub(super) fn wrap<E>(&self, inner: E, endpoint: String) -> WarnOnce<E> {
        WarnOnce {
            inner,
            endpoint,
            signal: self.signal,
            warned: self.warned.clone(),
        }
    }

    /// Waits for `ready` (what must be recorded before the flush), then runs
    /// the SDK's blocking `flush` on the blocking pool; both within the
    /// flush timeout (the export goes on in the background past it).
    /// Never fails: a problem is logged once.
    pub(super) async fn flush(
        &self,
        ready: impl Future<Output = ()>,
        flush: impl FnOnce() -> OTelSdkResult + Send + 'static,
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
        let problem = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => return,
            Ok(Ok(Err(e))) => format!("flush failed: {e}"),
            Ok(Err(e)) => format!("flush task failed: {e}"),
            Err(_) => format!("flush took longer than {} ms", self.timeout.as_millis()),
        };
        self.warn_once(&problem);
    }

    /// Runs the SDK's blocking `shutdown` (a last export), waiting a little longer than `timeout`.
    pub(super) async fn shutdown(&self, timeout: Duration, shutdown: impl FnOnce() -> OTelSdkResult + Send + 'static) {
        let task = tokio::task::spawn_blocking(shutdown);
        match tokio::time::timeout(timeout + Duration::from_millis(100), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => self.warn_once(&format!("shutdown: {e}")),
            Ok(Err(e)) => self.warn_once(&format!("shutdown task failed: {e}")),
            Err(_) => self.warn_once("shutdown timed out"),
        }
    }

    fn warn_once(&self, problem: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "OpenTelemetry {} export: {problem} (further export problems are not logged)",
                self.signal
            );
        }
    }
}

/// Wraps an OTLP exporter; shares its "already warned" flag with its [`Guard`].
#[derive(Debug)]
pub(super) struct WarnOnce<E> {
    inner: E,
    endpoint: String,
    signal: &'static str,
    warned: Arc<AtomicBool>,
}

impl<E> WarnOnce<E> {
    fn check(&self, result: OTelSdkResult) -> OTelSdkResult {
        if let Err(e) = &result
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                endpoint = %self.endpoint,
                "OpenTelemetry export failed: {e}; {} are dropped while the collector is unreachable \
                 (further export problems are not logged)",
                self.signal
            );
        }
        result
    }
}

impl<E: SpanExporter> SpanExporter for WarnOnce<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        super::priority::yield_to_invocations();
        let result = self.inner.export(batch).await;
        self.check(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
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
