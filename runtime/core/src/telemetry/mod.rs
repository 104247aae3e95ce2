//! OpenTelemetry span export: the init span, one span per invocation and one
//! client span per guest outgoing request, sent over OTLP/HTTP (protobuf).
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set ([`Telemetry::from_env`]);
//! then the per-invocation cost is one `Option` branch. Span ids are the
//! host's own ([`crate::caps::propagate::SpanIds`]), made whether or not
//! anything is exported, so propagation never depends on export. Spans are
//! built as finished `SpanData` and handed to the SDK's batch processor,
//! which exports on its own thread with a blocking HTTP client: no tokio
//! runtime is needed there, and nothing on the invocation path waits for
//! the collector. Only a trace whose flags say sampled is exported.
//!
//! Flushing: `nimbus serve` exports in the background and flushes on
//! shutdown; on Lambda the adapter calls [`Telemetry::flush`] after each
//! invocation, bounded by `NIMBUS_OTEL_FLUSH_TIMEOUT_MS` (default 200 ms).
//! An unreachable collector logs one warning, never fails an invocation.

mod resource;
mod spans;
mod warn_once;

pub use resource::Platform;
pub use spans::{InvocationRecord, OutboundRecord, SpanRecord, Trigger};

use crate::caps::propagate::SpanIds;
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use warn_once::WarnOnce;

/// The environment variable bounding the per-invocation flush on Lambda.
pub const FLUSH_TIMEOUT_ENV: &str = "NIMBUS_OTEL_FLUSH_TIMEOUT_MS";

/// Default bound of the per-invocation flush.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(200);

/// Why telemetry could not be set up (reported at boot, as a setting error).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An `OTEL_*`/`NIMBUS_OTEL_*` variable has a bad value.
    #[error("bad value {value:?} for {name}: {expected}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter for {endpoint}: {message}")]
    Exporter {
        /// The traces endpoint.
        endpoint: String,
        /// The exporter's error.
        message: String,
    },
}

/// How to export: where, as whom, and how long a flush may take.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The full OTLP/HTTP traces URL (e.g. `http://127.0.0.1:4318/v1/traces`).
    pub traces_endpoint: String,
    /// Resource attributes (`service.name`, `cloud.*`, `faas.*`).
    pub resource: Vec<opentelemetry::KeyValue>,
    /// Longest [`Telemetry::flush`] holds up its caller.
    pub flush_timeout: Duration,
}

impl TelemetryConfig {
    /// The configuration `OTEL_*` variables describe for `platform`, or
    /// `None` when no OTLP endpoint is set (telemetry off).
    pub fn from_env(platform: &Platform) -> Result<Option<TelemetryConfig>, TelemetryError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let traces_endpoint = match (
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(full), _) => full,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        let flush_timeout = match env(FLUSH_TIMEOUT_ENV) {
            None => DEFAULT_FLUSH_TIMEOUT,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| TelemetryError::Setting {
                    name: FLUSH_TIMEOUT_ENV,
                    value: v,
                    expected: "milliseconds, e.g. 200",
                })?,
        };
        Ok(Some(TelemetryConfig {
            traces_endpoint,
            resource: platform.resource(&env),
            flush_timeout,
        }))
    }
}

/// The exporting side of tracing; cheap to clone, shared by every function of a host.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
    flush_timeout: Duration,
    /// Set once a warning about the collector was logged.
    warned: Arc<AtomicBool>,
    /// A flush still waiting on the export thread (a second one would only queue).
    flushing: AtomicBool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("flush_timeout", &self.inner.flush_timeout)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Telemetry as the environment configures it for `platform`; `None` when off.
    pub fn from_env(platform: &Platform) -> Result<Option<Telemetry>, TelemetryError> {
        TelemetryConfig::from_env(platform)?.map(Telemetry::new).transpose()
    }

    /// Starts the exporter and its batch thread.
    pub fn new(config: TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(config.traces_endpoint.clone())
            .build()
            .map_err(|e| TelemetryError::Exporter {
                endpoint: config.traces_endpoint.clone(),
                message: e.to_string(),
            })?;
        let warned = Arc::new(AtomicBool::new(false));
        let exporter = WarnOnce::new(exporter, config.traces_endpoint.clone(), warned.clone());
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(&Resource::builder_empty().with_attributes(config.resource).build());
        let scope = InstrumentationScope::builder("nimbus")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Ok(Telemetry {
            inner: Arc::new(Inner {
                processor,
                scope,
                flush_timeout: config.flush_timeout,
                warned,
                flushing: AtomicBool::new(false),
            }),
        })
    }

    /// Queues a finished span for export (only if its trace is sampled).
    fn emit(&self, mut span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        span.instrumentation_scope = self.inner.scope.clone();
        self.inner.processor.on_end(span);
    }

    /// Records the host's boot as `nimbus.init`, the root span of the boot's
    /// trace `ids` (boot-time config fetches are its children).
    pub fn record_init(&self, ids: &SpanIds, started: SystemTime, functions: usize) {
        self.emit(spans::init_span(ids, started, functions));
    }

    /// Exports everything queued so far, waiting at most the flush timeout
    /// (the export goes on in the background past it). Never fails: a
    /// collector that cannot be reached logs one warning.
    pub async fn flush(&self) {
        if self.inner.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let task = tokio::task::spawn_blocking(move || {
            let r = inner.processor.force_flush();
            inner.flushing.store(false, Ordering::Release);
            r
        });
        let problem = match tokio::time::timeout(self.inner.flush_timeout, task).await {
            Ok(Ok(Ok(()))) => return,
            Ok(Ok(Err(e))) => format!("flush failed: {e}"),
            Ok(Err(e)) => format!("flush task failed: {e}"),
            Err(_) => format!("flush took longer than {} ms", self.inner.flush_timeout.as_millis()),
        };
        self.warn_once(&problem);
    }

    /// Flushes and stops the exporter (at shutdown), within `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        let inner = self.inner.clone();
        let task = tokio::task::spawn_blocking(move || inner.processor.shutdown_with_timeout(timeout));
        match tokio::time::timeout(timeout + Duration::from_millis(100), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => self.warn_once(&format!("shutdown: {e}")),
            Ok(Err(e)) => self.warn_once(&format!("shutdown task failed: {e}")),
            Err(_) => self.warn_once("shutdown timed out"),
        }
    }

    fn warn_once(&self, problem: &str) {
        if !self.inner.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("OpenTelemetry export: {problem} (further export problems are not logged)");
        }
    }
}
