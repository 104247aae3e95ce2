//! Nimbus observability: the host's span ids ([`SpanIds`]) and OpenTelemetry export over OTLP/HTTP
//! (protobuf) — spans (the init span, one span per invocation, one client span per guest outgoing request,
//! and the guest's and the host's internal spans) and, with `NIMBUS_METRICS=otlp`, the FaaS metrics
//! ([`OtlpMetrics`]).
//!
//! This crate knows nothing of the host: nimbus-core depends on it, not the other way round, and re-exports
//! it as `nimbus_core::telemetry`. What it needs of an invocation it reads through [`SpanSource`], and its
//! settings ([`settings`]) are filled by nimbus-core's one settings parser (`nimbus_core::settings`), the
//! only reader of the environment. Keeping it apart keeps the OpenTelemetry, protobuf and HTTP client
//! dependencies out of the host's own list, and lets export be measured on its own (`span_export_cost`).
//!
//! Spans are off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set ([`Telemetry::from_settings`]);
//! then the per-invocation cost is one `Option` branch. Endpoints are
//! plain `http://` (no TLS client is built in; others are refused up front). Span ids are the
//! host's own ([`SpanIds`]), made whether or not
//! anything is exported, so propagation never depends on export. Only a
//! trace whose flags say sampled is exported.
//!
//! Spans do not go through the OpenTelemetry SDK: its batch processor and
//! OTLP exporter cost about 4–5 µs of CPU per span (converting `SpanData`
//! to protobuf messages, grouping them by resource and scope, encoding),
//! which slowed an empty handler by about 5% on a quiet 2-core machine and
//! by 10–20% on a busy one (BENCHMARKS.md, "Span export per invocation").
//! Re-measured against opentelemetry-otlp 0.33.1 with an A/A control
//! (`span_export_cost`, 2026-12-03), the SDK's pipeline took 2.4–4.4 µs of
//! the process's CPU per span against this one's 0.9–1.7 µs, pinned to one
//! core and on two.
//! Instead a
//! finished span is a compact record (integer ids, Unix-nanosecond times;
//! `spans.rs`) encoded on the spot, in about a quarter of a microsecond,
//! to the OTLP protobuf field it will be in its batch (`otlp_encode.rs`)
//! and appended to a bounded queue of batches; one export thread
//! (`export.rs`, batching as the SDK's `OTEL_BSP_*` variables say) wraps each
//! batch in an `ExportTraceServiceRequest` (resource and scope encoded
//! once) and POSTs it with a blocking HTTP client on a kept-alive
//! connection (`otlp_http.rs`, with opentelemetry-otlp's headers, timeout
//! and retries). No tokio runtime is needed there, and nothing on the
//! invocation path waits for the collector. Metrics stay on the SDK.
//!
//! Flushing: `nimbus serve` exports in the background and flushes on
//! shutdown; on Lambda the adapter calls nimbus-core's `Host::flush_telemetry`
//! after each invocation, which flushes spans and metrics at once, each
//! bounded by `NIMBUS_OTEL_FLUSH_TIMEOUT_MS` (default 200 ms). An
//! unreachable collector logs one warning per signal, never fails an invocation.
#![deny(missing_docs)]

mod export;
mod ids;
mod metrics;
mod otlp_encode;
mod otlp_http;
mod priority;
mod resource;
pub mod settings;
mod spans;
mod warn_once;

pub use ids::{SpanIds, new_span_id};
pub use metrics::{FunctionMetrics, Measurement, Measuring, MetricsConfig, OtlpMetrics};
/// The OpenTelemetry API this crate exports with (attribute keys and values for [`SpanRecord`],
/// [`TelemetryConfig::resource`]), so users build them with the very version it links.
pub use opentelemetry;
/// The OpenTelemetry semantic conventions (attribute names) of the version this crate exports with.
pub use opentelemetry_semantic_conventions;
pub use priority::yield_to_invocations;
pub use resource::{Cloud, Platform};
pub use settings::{DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_QUEUE};
pub use spans::{InvocationRecord, OutboundRecord, SpanEvent, SpanRecord, SpanSource, Trigger};

use export::SpanExport;
use opentelemetry::InstrumentationScope;
use otlp_encode::Envelope;
use settings::{BatchSettings, Endpoint, OtlpHttpSettings, TelemetrySettings};
use spans::FinishedSpan;
use std::sync::Arc;
use std::time::Duration;
use warn_once::Guard;

/// The least a span flush waits for the export thread's answer before it
/// gives up (the SDK's batch processor waited as long); the caller itself
/// waits no longer than the flush timeout.
const MIN_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The instrumentation scope's name and version, of everything Nimbus exports.
const SCOPE: (&str, &str) = ("nimbus", env!("CARGO_PKG_VERSION"));

/// Why an exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (or its endpoint is not a URL).
    #[error("cannot build the OTLP exporter for {endpoint}: {message}")]
    Exporter {
        /// The signal's endpoint.
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
    /// Whether span batches are gzip-compressed (`OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, else
    /// `OTEL_EXPORTER_OTLP_COMPRESSION`, is `gzip`).
    pub gzip: bool,
}

/// The resource attributes of everything exported from a host on `platform`: `service.name`
/// (`OTEL_SERVICE_NAME`, else the platform's) and, on Lambda, the `cloud.*` and `faas.*` attributes from
/// Lambda's own (`AWS_*`) variables. Spans and metrics ([`MetricsConfig::resource`]) both carry it.
pub fn resource(settings: &TelemetrySettings, platform: &Platform) -> Vec<opentelemetry::KeyValue> {
    let lambda_env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    platform.resource(settings.service_name.as_deref(), &lambda_env)
}

/// An exporter build error, for `endpoint`.
fn exporter_error<E: std::fmt::Display>(endpoint: &str) -> impl FnOnce(E) -> TelemetryError {
    move |e| TelemetryError::Exporter {
        endpoint: endpoint.to_owned(),
        message: e.to_string(),
    }
}

/// The exporting side of tracing; cheap to clone, shared by every function of a host.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    export: SpanExport,
    guard: Guard,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("flush_timeout", &self.inner.guard.timeout)
            .field("dropped", &self.inner.export.dropped())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Span export as `settings` configure it for `platform`; `None` when off. An endpoint the exporter
    /// cannot use, or an exporter that cannot start, is logged and leaves export off: tracing must never
    /// take the host down.
    pub fn from_settings(settings: &TelemetrySettings, platform: &Platform) -> Option<Telemetry> {
        let started = match &settings.traces {
            Endpoint::Unset => return None,
            Endpoint::Refused(refused) => Err(TelemetryError::Exporter {
                endpoint: refused.url.clone(),
                message: refused.reason(),
            }),
            Endpoint::Http { url, .. } => Telemetry::start(
                TelemetryConfig {
                    traces_endpoint: url.clone(),
                    resource: resource(settings, platform),
                    flush_timeout: settings.flush_timeout,
                    gzip: settings.http.gzip,
                },
                &settings.http,
                settings.batch,
            ),
        };
        started.inspect_err(|e| tracing::warn!("span export is off: {e}")).ok()
    }

    /// Starts the export thread and its HTTP client, with the OpenTelemetry SDK's request and batching
    /// defaults ([`OtlpHttpSettings`], [`BatchSettings`]; the queue holds [`DEFAULT_MAX_QUEUE`] spans).
    pub fn new(config: TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        Telemetry::start(config, &OtlpHttpSettings::default(), BatchSettings::default())
    }

    /// Starts the export thread: requests as `http` says (compression as `config` does), batches as
    /// `batch` says.
    fn start(
        config: TelemetryConfig,
        http: &OtlpHttpSettings,
        batch: BatchSettings,
    ) -> Result<Telemetry, TelemetryError> {
        let endpoint = &config.traces_endpoint;
        let url = reqwest::Url::parse(endpoint).map_err(exporter_error(endpoint))?;
        let guard = Guard::new("spans", config.flush_timeout);
        let export = SpanExport::start(
            url,
            OtlpHttpSettings {
                gzip: config.gzip,
                ..http.clone()
            },
            batch,
            Envelope::new(&config.resource, SCOPE.0, SCOPE.1),
            guard.warnings(),
        )
        .map_err(exporter_error(endpoint))?;
        Ok(Telemetry {
            inner: Arc::new(Inner { export, guard }),
        })
    }

    /// Queues a finished span for export (only if its trace is sampled).
    fn emit(&self, span: &FinishedSpan<'_>) {
        if span.sampled() {
            self.inner.export.send(span);
        }
    }

    /// Exports every span recorded before the call, waiting at most the
    /// flush timeout (the export goes on in the background past it). Never
    /// fails: a collector that cannot be reached logs one warning.
    pub async fn flush(&self) {
        let inner = self.inner.clone();
        let wait = self.inner.guard.timeout.max(MIN_FLUSH_WAIT);
        self.inner
            .guard
            .flush(std::future::ready(()), move || inner.export.flush(wait))
            .await;
    }

    /// Exports what is queued and stops the export thread (at shutdown), within `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        let inner = self.inner.clone();
        self.inner
            .guard
            .shutdown(timeout, move || inner.export.shutdown(timeout))
            .await;
        let dropped = self.inner.export.dropped();
        if dropped > 0 {
            tracing::info!("OpenTelemetry spans: {dropped} dropped on a full export queue");
        }
    }
}

/// The instrumentation scope of everything Nimbus exports (the metrics'; spans encode [`SCOPE`] directly).
fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE.0).with_version(SCOPE.1).build()
}
