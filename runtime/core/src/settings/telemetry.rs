//! Span and metric export: the OpenTelemetry variables (`OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`,
//! `OTEL_SERVICE_NAME`), `NIMBUS_METRICS`, `NIMBUS_METRICS_NAMESPACE` and `NIMBUS_OTEL_FLUSH_TIMEOUT_MS`.
//!
//! The variables the OpenTelemetry SDK defines keep its documented leniency: a timeout, size or compression
//! it could not honour is ignored (and warned about), never fatal. Nimbus's own are strict. An endpoint that
//! is not plain `http://` turns span export off with a warning, and fails boot when `NIMBUS_METRICS=otlp`
//! needs it. The metrics pipeline is the SDK's, which reads its own variables
//! (`OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, and the metrics
//! headers, timeout and compression) itself.

use super::SettingsError;
use super::vars::Vars;
use std::borrow::Cow;
use std::time::Duration;

/// The collector's base URL, to which a signal's path is appended.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The variable bounding the per-invocation flush on Lambda.
pub const FLUSH_TIMEOUT_ENV: &str = "NIMBUS_OTEL_FLUSH_TIMEOUT_MS";

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

/// What an export endpoint must be, and why.
const PLAIN_HTTP: &str = "an http:// URL: OTLP is exported over plain HTTP (for a collector behind TLS, send to a \
                          local one, e.g. the ADOT Lambda layer at http://localhost:4318)";

/// The OTLP signals Nimbus exports, each to a URL of its own.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    /// The variable giving this signal's full URL, used as is.
    fn endpoint_env(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        }
    }

    /// The path appended to the base endpoint.
    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

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
/// metrics fail boot ([`RefusedEndpoint::error`]).
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

    /// The refusal as a setting error, for a signal that cannot do without its endpoint.
    pub fn error(&self) -> SettingsError {
        SettingsError::Invalid {
            name: self.variable,
            value: self.value.clone(),
            expected: self.expected.clone(),
        }
    }
}

impl Endpoint {
    /// The endpoint of `signal`: its own variable (a full URL, used as is), else the base endpoint with the
    /// signal's path.
    fn read(signal: Signal, vars: &Vars) -> Result<Endpoint, SettingsError> {
        const EXPECTED: &str = "an http:// URL";
        let full = vars.non_empty(signal.endpoint_env(), EXPECTED)?;
        let base = vars.non_empty(ENDPOINT_ENV, EXPECTED)?;
        let (variable, value, url) = match (full, base) {
            (Some(full), _) => (signal.endpoint_env(), full.clone(), full),
            (None, Some(base)) => {
                let url = format!("{}{}", base.trim_end_matches('/'), signal.path());
                (ENDPOINT_ENV, base, url)
            }
            (None, None) => return Ok(Endpoint::Unset),
        };
        // Export is plain HTTP (no TLS stack is built in): say so up front rather than fail every export.
        let expected = if !url.trim_start().to_ascii_lowercase().starts_with("http://") {
            Cow::Borrowed(PLAIN_HTTP)
        } else {
            match reqwest::Url::parse(url.trim()) {
                Ok(_) => return Ok(Endpoint::Http { url, variable }),
                Err(e) => Cow::Owned(format!("a URL ({e})")),
            }
        };
        Ok(Endpoint::Refused(RefusedEndpoint {
            variable,
            value,
            url,
            expected,
        }))
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

impl MetricsSetting {
    fn read(vars: &Vars) -> Result<MetricsSetting, SettingsError> {
        const NAME: &str = "NIMBUS_METRICS";
        const EXPECTED: &str = "`off`, `emf` or `otlp`";
        let namespace = vars.parse_with("NIMBUS_METRICS_NAMESPACE", "a CloudWatch namespace, e.g. Nimbus", |v| {
            if v.trim().is_empty() {
                Err(Cow::Borrowed("a CloudWatch namespace, e.g. Nimbus"))
            } else {
                Ok(v.to_owned())
            }
        })?;
        let endpoint = Endpoint::read(Signal::Metrics, vars)?;
        let Some(value) = vars.text(NAME, EXPECTED)? else {
            return Ok(MetricsSetting::Off);
        };
        match value.trim() {
            "" | "off" => Ok(MetricsSetting::Off),
            "emf" => Ok(MetricsSetting::Emf {
                namespace: namespace.unwrap_or_else(|| "Nimbus".into()),
            }),
            "otlp" => match endpoint {
                Endpoint::Http { url, variable } => Ok(MetricsSetting::Otlp { url, variable }),
                Endpoint::Refused(refused) => Err(refused.error()),
                Endpoint::Unset => Err(SettingsError::Invalid {
                    name: NAME,
                    value,
                    expected: Cow::Owned(format!(
                        "a collector for `otlp`: set {} or {ENDPOINT_ENV}",
                        Signal::Metrics.endpoint_env()
                    )),
                }),
            },
            _ => Err(SettingsError::Invalid {
                name: NAME,
                value,
                expected: Cow::Borrowed(EXPECTED),
            }),
        }
    }
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

impl OtlpHttpSettings {
    /// As opentelemetry-otlp reads them: a timeout that is no number, or a header entry without a key or a
    /// value, is ignored; so is a compression other than `gzip` and `none` (`zstd` here, or a typo), which
    /// falls back to the general variable, then to none.
    fn read(vars: &Vars) -> Result<OtlpHttpSettings, SettingsError> {
        let traces_timeout = vars.lenient_number("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")?;
        let timeout = traces_timeout
            .or(vars.lenient_number("OTEL_EXPORTER_OTLP_TIMEOUT")?)
            .map_or(DEFAULT_EXPORT_TIMEOUT, Duration::from_millis);
        const HEADERS: &str = "key1=value1,key2=value2";
        let traces_headers = vars.text("OTEL_EXPORTER_OTLP_TRACES_HEADERS", HEADERS)?;
        let (variable, list) = match traces_headers {
            Some(list) => ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", Some(list)),
            None => (
                "OTEL_EXPORTER_OTLP_HEADERS",
                vars.text("OTEL_EXPORTER_OTLP_HEADERS", HEADERS)?,
            ),
        };
        let headers = list.map_or_else(Vec::new, |list| {
            let (headers, dropped) = parse_headers(&list);
            for entry in dropped {
                vars.ignore(format!(
                    "{variable}: the entry {entry:?} is ignored: it has no key or no value"
                ));
            }
            headers
        });
        let mut gzip = false;
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ] {
            let Some(value) = vars.non_empty(name, "`gzip` or `none`")? else {
                continue;
            };
            match value.trim().to_ascii_lowercase().as_str() {
                "gzip" => gzip = true,
                "none" => {}
                _ => {
                    vars.ignore(format!(
                        "{name}={value:?} is ignored: span export supports \"gzip\" and \"none\""
                    ));
                    continue;
                }
            }
            break;
        }
        Ok(OtlpHttpSettings { timeout, headers, gzip })
    }
}

/// `key1=value1,key2=value2`, values percent-decoded (kept as written if that fails); entries without a key
/// or a value are left out (the second list).
fn parse_headers(list: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut dropped = Vec::new();
    let headers = list
        .split_terminator(',')
        .filter_map(|entry| {
            let header = entry.trim().split_once('=').and_then(|(key, value)| {
                let (key, value) = (key.trim(), value.trim());
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map_or_else(|_| value.to_owned(), |v| v.into_owned());
                (!key.is_empty() && !value.is_empty()).then(|| (key.to_owned(), value))
            });
            if header.is_none() && !entry.trim().is_empty() {
                dropped.push(entry.trim().to_owned());
            }
            header
        })
        .collect();
    (headers, dropped)
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
    fn new(max_queue: Option<u64>, max_batch: Option<u64>, delay_ms: Option<u64>) -> BatchSettings {
        let max_queue = max_queue.map_or(DEFAULT_MAX_QUEUE, |n| n as usize).max(1);
        BatchSettings {
            max_queue,
            max_batch: max_batch.map_or(DEFAULT_MAX_BATCH, |n| n as usize).clamp(1, max_queue),
            delay: delay_ms
                .map_or(DEFAULT_DELAY, Duration::from_millis)
                .max(Duration::from_millis(1)),
        }
    }

    /// As in the SDK, a value that is no number is ignored.
    fn read(vars: &Vars) -> Result<BatchSettings, SettingsError> {
        Ok(BatchSettings::new(
            vars.lenient_number("OTEL_BSP_MAX_QUEUE_SIZE")?,
            vars.lenient_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")?,
            vars.lenient_number("OTEL_BSP_SCHEDULE_DELAY")?,
        ))
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
    /// [`crate::telemetry::Platform`]).
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

impl TelemetrySettings {
    pub(super) fn read(vars: &Vars) -> Result<TelemetrySettings, SettingsError> {
        Ok(TelemetrySettings {
            traces: Endpoint::read(Signal::Traces, vars)?,
            metrics: MetricsSetting::read(vars)?,
            flush_timeout: vars
                .parse_with(FLUSH_TIMEOUT_ENV, "milliseconds, e.g. 200", |v| {
                    if v.trim().is_empty() {
                        // Empty counts as unset, as for the OpenTelemetry variables it goes with.
                        return Ok(DEFAULT_FLUSH_TIMEOUT);
                    }
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| Cow::Borrowed("milliseconds, e.g. 200"))
                })?
                .unwrap_or(DEFAULT_FLUSH_TIMEOUT),
            service_name: vars.non_empty("OTEL_SERVICE_NAME", "a service name")?,
            http: OtlpHttpSettings::read(vars)?,
            batch: BatchSettings::read(vars)?,
        })
    }
}
