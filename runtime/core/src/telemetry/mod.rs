//! OpenTelemetry export over OTLP/HTTP (protobuf): spans — the init span,
//! one span per invocation and one client span per guest outgoing request —
//! and, with `NIMBUS_METRICS=otlp`, the FaaS metrics ([`OtlpMetrics`]).
//!
//! Spans are off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set ([`Telemetry::from_env`]);
//! then the per-invocation cost is one `Option` branch. Endpoints are
//! plain `http://` (no TLS client is built in; others are refused up front). Span ids are the
//! host's own ([`crate::caps::propagate::SpanIds`]), made whether or not
//! anything is exported, so propagation never depends on export. Only a
//! trace whose flags say sampled is exported.
//!
//! Spans do not go through the OpenTelemetry SDK: its batch processor and
//! OTLP exporter cost about 4–5 µs of CPU per span (converting `SpanData`
//! to protobuf messages, grouping them by resource and scope, encoding),
//! which slowed an empty handler by about 5% on a quiet 2-core machine and
//! by 10–20% on a busy one (BENCHMARKS.md, "Span export per invocation").
//! Instead a
//! finished span is a compact record (integer ids, Unix-nanosecond times;
//! `spans.rs`) encoded on the spot, in about a quarter of a microsecond,
//! to the OTLP protobuf field it will be in its batch (`otlp_encode.rs`)
//! and appended to a bounded queue of batches; one export thread
//! (`export.rs`, honouring the SDK's `OTEL_BSP_*` variables) wraps each
//! batch in an `ExportTraceServiceRequest` (resource and scope encoded
//! once) and POSTs it with a blocking HTTP client on a kept-alive
//! connection (`otlp_http.rs`, with opentelemetry-otlp's headers, timeout
//! and retries). No tokio runtime is needed there, and nothing on the
//! invocation path waits for the collector. Metrics stay on the SDK.
//!
//! Flushing: `nimbus serve` exports in the background and flushes on
//! shutdown; on Lambda the adapter calls [`crate::Host::flush_telemetry`]
//! after each invocation, which flushes spans and metrics at once, each
//! bounded by `NIMBUS_OTEL_FLUSH_TIMEOUT_MS` (default 200 ms). An
//! unreachable collector logs one warning per signal, never fails an invocation.

mod export;
mod metrics;
mod otlp_encode;
mod otlp_http;
mod priority;
mod resource;
mod spans;
mod warn_once;

pub use metrics::{FunctionMetrics, Measuring, MetricsConfig, OtlpMetrics};
pub use resource::Platform;
pub use spans::{InvocationRecord, OutboundRecord, SpanRecord, Trigger};

use export::{BatchSettings, SpanExport};
use opentelemetry::InstrumentationScope;
use otlp_encode::Envelope;
use otlp_http::HttpSettings;
use spans::FinishedSpan;
use std::sync::Arc;
use std::time::Duration;
use warn_once::Guard;

/// The environment variable bounding the per-invocation flush on Lambda.
pub const FLUSH_TIMEOUT_ENV: &str = "NIMBUS_OTEL_FLUSH_TIMEOUT_MS";

/// Spans the export queue holds before it drops (`OTEL_BSP_MAX_QUEUE_SIZE`
/// overrides it). The SDK's 2048 drops spans when a few invocations each
/// record a couple of hundred guest spans faster than one export thread
/// sends them; at a few hundred bytes a span, a full queue is a few MiB.
pub const DEFAULT_MAX_QUEUE: usize = 16_384;

/// Default bound of the per-invocation flush.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(200);

/// The least a span flush waits for the export thread's answer before it
/// gives up (the SDK's batch processor waited as long); the caller itself
/// waits no longer than the flush timeout.
const MIN_FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The instrumentation scope's name and version, of everything Nimbus exports.
const SCOPE: (&str, &str) = ("nimbus", env!("CARGO_PKG_VERSION"));

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

/// The OTLP signals Nimbus exports, each to a URL of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

/// The collector's base URL, to which a signal's path is appended.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

impl Signal {
    /// The variable giving this signal's full URL, used as is.
    pub(crate) fn endpoint_env(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// Where and how one signal is exported, as the `OTEL_*` variables say.
pub(crate) struct ExportEnv {
    pub(crate) endpoint: String,
    pub(crate) resource: Vec<opentelemetry::KeyValue>,
    pub(crate) flush_timeout: Duration,
}

impl ExportEnv {
    /// `None` when neither the signal's URL nor the base endpoint is set;
    /// `env` reads a variable (empty counts as unset).
    pub(crate) fn read(
        signal: Signal,
        platform: &Platform,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<ExportEnv>, TelemetryError> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let (name, endpoint) = match (env(signal.endpoint_env()), env(ENDPOINT_ENV)) {
            (Some(full), _) => (signal.endpoint_env(), full),
            (None, Some(base)) => (ENDPOINT_ENV, format!("{}{}", base.trim_end_matches('/'), signal.path())),
            (None, None) => return Ok(None),
        };
        // Export is plain HTTP (no TLS stack is built in): say so up front
        // rather than fail every export.
        if !endpoint.trim_start().to_ascii_lowercase().starts_with("http://") {
            return Err(TelemetryError::Exporter {
                endpoint,
                message: format!(
                    "{name} must be an http:// URL: OTLP is exported over plain HTTP (for a collector \
                     behind TLS, send to a local one, e.g. the ADOT Lambda layer at http://localhost:4318)"
                ),
            });
        }
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
        Ok(Some(ExportEnv {
            endpoint,
            resource: platform.resource(&env),
            flush_timeout,
        }))
    }
}

/// An exporter build error, for `endpoint`.
fn exporter_error<E: std::fmt::Display>(endpoint: &str) -> impl FnOnce(E) -> TelemetryError {
    move |e| TelemetryError::Exporter {
        endpoint: endpoint.to_owned(),
        message: e.to_string(),
    }
}

impl TelemetryConfig {
    /// The configuration `OTEL_*` variables describe for `platform`, or
    /// `None` when no OTLP endpoint is set (telemetry off).
    pub fn from_env(platform: &Platform) -> Result<Option<TelemetryConfig>, TelemetryError> {
        let vars = |k: &str| std::env::var(k).ok();
        let env = ExportEnv::read(Signal::Traces, platform, &vars)?;
        Ok(env.map(|e| TelemetryConfig {
            traces_endpoint: e.endpoint,
            resource: e.resource,
            flush_timeout: e.flush_timeout,
            gzip: otlp_http::gzip_asked(&vars),
        }))
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
    /// Telemetry as the environment configures it for `platform`; `None` when off.
    pub fn from_env(platform: &Platform) -> Result<Option<Telemetry>, TelemetryError> {
        TelemetryConfig::from_env(platform)?.map(Telemetry::new).transpose()
    }

    /// Starts the export thread and its HTTP client. Queueing and batching
    /// follow `OTEL_BSP_MAX_QUEUE_SIZE` (default [`DEFAULT_MAX_QUEUE`]),
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and `OTEL_BSP_SCHEDULE_DELAY`; the
    /// requests `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` and `…_TIMEOUT`; compression, the config.
    pub fn new(config: TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let endpoint = &config.traces_endpoint;
        let url = reqwest::Url::parse(endpoint).map_err(exporter_error(endpoint))?;
        let env = |k: &str| std::env::var(k).ok();
        let guard = Guard::new("spans", config.flush_timeout);
        let export = SpanExport::start(
            url,
            HttpSettings {
                gzip: config.gzip,
                ..HttpSettings::read(&env)
            },
            BatchSettings::read(DEFAULT_MAX_QUEUE, &env),
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
