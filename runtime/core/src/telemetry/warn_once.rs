//! An exporter wrapper that logs the first export failure and no other, so
//! an unreachable collector is one warning, not one per batch.

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Wraps the OTLP exporter; shares its "already warned" flag with [`super::Telemetry`].
#[derive(Debug)]
pub(super) struct WarnOnce<E> {
    inner: E,
    endpoint: String,
    warned: Arc<AtomicBool>,
}

impl<E> WarnOnce<E> {
    pub(super) fn new(inner: E, endpoint: String, warned: Arc<AtomicBool>) -> Self {
        WarnOnce {
            inner,
            endpoint,
            warned,
        }
    }
}

impl<E: SpanExporter> SpanExporter for WarnOnce<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(e) = &result
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                endpoint = %self.endpoint,
                "OpenTelemetry export failed: {e}; spans are dropped while the collector is unreachable \
                 (further export problems are not logged)"
            );
        }
        result
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
