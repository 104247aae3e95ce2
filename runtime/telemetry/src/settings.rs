//! What span and metric export is configured with: the typed values of the OpenTelemetry variables
//! (`OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`, `OTEL_SERVICE_NAME`), `NIMBUS_METRICS` and
//! `NIMBUS_OTEL_FLUSH_TIMEOUT_MS`, and their defaults.
//!
//! This crate reads no variable itself: nimbus-core's one settings parser (`nimbus_core::settings`, its
//! `telemetry` module) reads them all, once, and fills these structs, so a variable means the same thing
//! wherever the host runs. The structs live here, beside the exporters that act on them, so this crate does
//! not depend on the host.

use std::borrow::Cow;
use std::time::Duration;

/// Default bound of the per-invocation flush.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(200);

/// Spans the export queue holds before it drops (`OTEL_BSP_MAX_QUEUE_SIZE` overrides it). The SDK's 2048
/// drops spans when a few invocations each record a couple of hundred guest spans faster than one export
/// thread sends them; at a few hundred bytes a span, a full queue is a few MiB.
pub const DEFAULT_MAX_QUEUE: usize = 16_384;

/// Spans a batch holds at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` overrides it).
pub const DEFAULT_MAX_BATCH: usize = 512;

/// How long a span waits for a batch to fill (`OTEL_BSP_SCHEDULE_DELAY`, in ms, overrides it).
pub const DEFAULT_DELAY: Duration = Duration::from_secs(5);

/// The longest one span export may take, retries included (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or
/// `OTEL_EXPORTER_OTLP_TIMEOUT` overrides it).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one signal is exported, as the variables say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Neither the signal's URL nor the base endpoint is set (or they are empty): nothing is exported.
    Unset,
    /// The full URL to POST to, and the variable that gave it.
    Http {
        /// The URL (e.g. `http://127.0.0.1:4318/v1/traces`).
        url: String,
        /// `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`.
        variable: &'static str,
    },
    /// A URL the exporter cannot use.
    Refused(RefusedEndpoint),
}

/// An endpoint variable whose URL the exporter cannot use: span export stays off (with a warning); OTLP
/// metrics fail boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEndpoint {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// The URL it led to (the base endpoint with the signal's path).
    pub url: String,
    /// What it must be.
    pub expected: Cow<'static, str>,
}

impl RefusedEndpoint {
    /// Why the exporter refuses it: "`VARIABLE` must be …".
    pub fn reason(&self) -> String {
        format!("{} must be {}", self.variable, self.expected)
    }
}

/// How invocation metrics are published (`NIMBUS_METRICS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MetricsSetting {
    /// `off`, empty or unset: not at all.
    #[default]
    Off,
    /// `emf`: CloudWatch Embedded Metric Format lines.
    Emf {
        /// `NIMBUS_METRICS_NAMESPACE` (default `Nimbus`).
        namespace: String,
    },
    /// `otlp`: OpenTelemetry metrics over OTLP/HTTP.
    Otlp {
        /// The metrics URL: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` +
        /// `/v1/metrics`.
        url: String,
        /// The variable that gave it.
        variable: &'static str,
    },
}

/// The span exporter's HTTP requests, as the `OTEL_EXPORTER_OTLP_[TRACES_]*` variables give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpHttpSettings {
    /// See [`DEFAULT_EXPORT_TIMEOUT`].
    pub timeout: Duration,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// Whether bodies are gzip-compressed (`OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, else
    /// `OTEL_EXPORTER_OTLP_COMPRESSION`, is `gzip`).
    pub gzip: bool,
}

impl Default for OtlpHttpSettings {
    fn default() -> Self {
        OtlpHttpSettings {
            timeout: DEFAULT_EXPORT_TIMEOUT,
            headers: Vec::new(),
            gzip: false,
        }
    }
}

/// Queue and batch sizes and the schedule of span export, as the `OTEL_BSP_*` variables give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Spans queued before new ones are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`, default [`DEFAULT_MAX_QUEUE`]).
    pub max_queue: usize,
    /// See [`DEFAULT_MAX_BATCH`]; never more than `max_queue`.
    pub max_batch: usize,
    /// See [`DEFAULT_DELAY`].
    pub delay: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings::new(None, None, None)
    }
}

impl BatchSettings {
    /// The settings for the numbers given, the defaults for the rest. As in the SDK, zeros, which would
    /// never export or spin, are raised to the least that works.
    pub fn new(max_queue: Option<u64>, max_batch: Option<u64>, delay_ms: Option<u64>) -> BatchSettings {
        let max_queue = max_queue.map_or(DEFAULT_MAX_QUEUE, |n| n as usize).max(1);
        BatchSettings {
            max_queue,
            max_batch: max_batch.map_or(DEFAULT_MAX_BATCH, |n| n as usize).clamp(1, max_queue),
            delay: delay_ms
                .map_or(DEFAULT_DELAY, Duration::from_millis)
                .max(Duration::from_millis(1)),
        }
    }
}

/// Everything about exporting spans and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// Where spans go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` +
    /// `/v1/traces`.
    pub traces: Endpoint,
    /// `NIMBUS_METRICS`.
    pub metrics: MetricsSetting,
    /// `NIMBUS_OTEL_FLUSH_TIMEOUT_MS`: the longest a flush of spans or metrics holds up its caller (default
    /// [`DEFAULT_FLUSH_TIMEOUT`]).
    pub flush_timeout: Duration,
    /// `OTEL_SERVICE_NAME`: the resource's `service.name` (default: the platform's, see
    /// [`crate::Platform`]).
    pub service_name: Option<String>,
    /// The span exporter's requests.
    pub http: OtlpHttpSettings,
    /// The span exporter's batching.
    pub batch: BatchSettings,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            traces: Endpoint::Unset,
            metrics: MetricsSetting::Off,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            service_name: None,
            http: OtlpHttpSettings::default(),
            batch: BatchSettings::default(),
        }
    }
}
