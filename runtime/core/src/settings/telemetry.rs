//! Span and metric export: the OpenTelemetry variables (`OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`,
//! `OTEL_SERVICE_NAME`), `NIMBUS_METRICS`, `NIMBUS_METRICS_NAMESPACE` and `NIMBUS_OTEL_FLUSH_TIMEOUT_MS`.
//!
//! The variables the OpenTelemetry SDK defines keep its documented leniency: a timeout, size or compression
//! it could not honour is ignored (and warned about), never fatal. Nimbus's own are strict. An endpoint that
//! is not plain `http://` turns span export off with a warning, and fails boot when `NIMBUS_METRICS=otlp`
//! needs it. The metrics pipeline is the SDK's, which reads its own variables
//! (`OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, and the metrics
//! headers, timeout and compression) itself.
//!
//! The typed settings are nimbus-telemetry's (`nimbus_telemetry::settings`, re-exported here), beside the
//! exporters that act on them; this module is what reads the environment into them.

pub use nimbus_telemetry::settings::{
    BatchSettings, DEFAULT_DELAY, DEFAULT_EXPORT_TIMEOUT, DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE,
    Endpoint, MetricsSetting, OtlpHttpSettings, RefusedEndpoint, TelemetrySettings,
};

use super::SettingsError;
use super::vars::Vars;
use std::borrow::Cow;
use std::time::Duration;

/// The collector's base URL, to which a signal's path is appended.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The variable bounding the per-invocation flush on Lambda.
pub const FLUSH_TIMEOUT_ENV: &str = "NIMBUS_OTEL_FLUSH_TIMEOUT_MS";

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

/// The endpoint of `signal`: its own variable (a full URL, used as is), else the base endpoint with the
/// signal's path.
fn signal_endpoint(signal: Signal, vars: &Vars) -> Result<Endpoint, SettingsError> {
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
        match url::Url::parse(url.trim()) {
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

/// The refusal as a setting error, for a signal that cannot do without its endpoint (OTLP metrics).
fn refused(endpoint: RefusedEndpoint) -> SettingsError {
    SettingsError::Invalid {
        name: endpoint.variable,
        value: endpoint.value,
        expected: endpoint.expected,
    }
}

/// `NIMBUS_METRICS` (and the metrics endpoint it needs, and `NIMBUS_METRICS_NAMESPACE`).
fn metrics(vars: &Vars) -> Result<MetricsSetting, SettingsError> {
    const NAME: &str = "NIMBUS_METRICS";
    const EXPECTED: &str = "`off`, `emf` or `otlp`";
    let namespace = vars.parse_with("NIMBUS_METRICS_NAMESPACE", "a CloudWatch namespace, e.g. Nimbus", |v| {
        if v.trim().is_empty() {
            Err(Cow::Borrowed("a CloudWatch namespace, e.g. Nimbus"))
        } else {
            Ok(v.to_owned())
        }
    })?;
    let endpoint = signal_endpoint(Signal::Metrics, vars)?;
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
            Endpoint::Refused(endpoint) => Err(refused(endpoint)),
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

/// The span exporter's requests, as opentelemetry-otlp reads them: a timeout that is no number, or a header
/// entry without a key or a value, is ignored; so is a compression other than `gzip` and `none` (`zstd` here,
/// or a typo), which falls back to the general variable, then to none.
fn otlp_http(vars: &Vars) -> Result<OtlpHttpSettings, SettingsError> {
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

/// Span batching (`OTEL_BSP_*`); as in the SDK, a value that is no number is ignored.
fn batch(vars: &Vars) -> Result<BatchSettings, SettingsError> {
    Ok(BatchSettings::new(
        vars.lenient_number("OTEL_BSP_MAX_QUEUE_SIZE")?,
        vars.lenient_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")?,
        vars.lenient_number("OTEL_BSP_SCHEDULE_DELAY")?,
    ))
}

/// Everything about exporting spans and metrics, from `vars`.
pub(super) fn read(vars: &Vars) -> Result<TelemetrySettings, SettingsError> {
    Ok(TelemetrySettings {
        traces: signal_endpoint(Signal::Traces, vars)?,
        metrics: metrics(vars)?,
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
        http: otlp_http(vars)?,
        batch: batch(vars)?,
    })
}
