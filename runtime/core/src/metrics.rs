//! Per-invocation metrics: duration, init duration on a cold start, and the
//! guest's peak linear memory.
//!
//! With `NIMBUS_METRICS=emf` each finished invocation writes one line in
//! CloudWatch's Embedded Metric Format to the log sink (stdout): on Lambda,
//! CloudWatch Logs turns those lines into metrics with no API call and no
//! added latency. With `NIMBUS_METRICS=otlp` they are recorded into the
//! OpenTelemetry FaaS instruments and exported over OTLP
//! ([`crate::telemetry::OtlpMetrics`]). Off by default; off costs one branch
//! per invocation.

use crate::error::BootError;
use crate::invocation::Invocation;
use crate::logs::LogSink;
use crate::telemetry::{MetricsConfig, OtlpMetrics, Platform, TelemetryError};
use serde_json::json;
use std::time::Duration;

/// How invocation metrics are published.
#[derive(Debug, Clone, Default)]
pub enum MetricsFormat {
    /// Not at all (the default).
    #[default]
    Off,
    /// CloudWatch Embedded Metric Format lines, under this namespace.
    Emf {
        /// The CloudWatch namespace (`NIMBUS_METRICS_NAMESPACE`, default `Nimbus`).
        namespace: String,
    },
    /// OpenTelemetry metrics over OTLP/HTTP; each function records through
    /// its own [`crate::telemetry::FunctionMetrics`].
    Otlp(OtlpMetrics),
}

impl MetricsFormat {
    /// Reads `NIMBUS_METRICS` (`off`, `emf` or `otlp`), `NIMBUS_METRICS_NAMESPACE`
    /// for EMF, and for OTLP the `OTEL_*` variables, resource as for `platform`.
    pub fn from_env(platform: &Platform) -> Result<MetricsFormat, BootError> {
        MetricsFormat::from_vars(platform, &|k| std::env::var(k).ok())
    }

    fn from_vars(platform: &Platform, env: &dyn Fn(&str) -> Option<String>) -> Result<MetricsFormat, BootError> {
        match env("NIMBUS_METRICS").as_deref().map(str::trim) {
            None | Some("") | Some("off") => Ok(MetricsFormat::Off),
            Some("emf") => Ok(MetricsFormat::Emf {
                namespace: env("NIMBUS_METRICS_NAMESPACE").unwrap_or_else(|| "Nimbus".into()),
            }),
            Some("otlp") => {
                let config = MetricsConfig::from_vars(platform, env)
                    .map_err(setting)?
                    .ok_or_else(|| BootError::Setting {
                        name: format!(
                            "NIMBUS_METRICS (`otlp` needs a collector: set {})",
                            MetricsConfig::endpoint_variables().join(" or ")
                        ),
                        value: "otlp".into(),
                    })?;
                OtlpMetrics::new(config).map(MetricsFormat::Otlp).map_err(setting)
            }
            Some(other) => Err(BootError::Setting {
                name: "NIMBUS_METRICS (expected `off`, `emf` or `otlp`)".into(),
                value: other.into(),
            }),
        }
    }
}

/// A telemetry setting error as a boot error.
fn setting(e: TelemetryError) -> BootError {
    match e {
        TelemetryError::Setting { name, value, expected } => BootError::Setting {
            name: format!("{name} ({expected})"),
            value,
        },
        TelemetryError::Exporter { endpoint, message } => BootError::Setting {
            name: format!("the OTLP metrics endpoint ({message})"),
            value: endpoint,
        },
    }
}

/// What one finished invocation measured.
pub struct InvocationReport<'a> {
    /// The invocation.
    pub inv: &'a Invocation,
    /// Wall time from `Host::invoke` to the guest's return.
    pub duration: Duration,
    /// The guest's peak linear memory, in bytes.
    pub peak_memory: u64,
    /// The host's boot time, on the process's first invocation only.
    pub cold_start_init: Option<Duration>,
    /// `None` on success, else the error's `errorType`.
    pub error_type: Option<&'static str>,
}

impl MetricsFormat {
    /// Publishes one report as an EMF line (OTLP metrics are recorded
    /// through the function's [`crate::telemetry::FunctionMetrics`] instead).
    pub fn publish(&self, sink: &LogSink, report: &InvocationReport<'_>) {
        let MetricsFormat::Emf { namespace } = self else {
            return;
        };
        sink.write_line(&emf_line(namespace, report, crate::invocation::unix_ms_now()));
    }
}

/// One EMF record: the `_aws` metadata names the metrics and the
/// `function` dimension; ids ride along as searchable properties.
fn emf_line(namespace: &str, r: &InvocationReport<'_>, now_ms: u64) -> String {
    let mut metrics = vec![
        json!({"Name": "Duration", "Unit": "Milliseconds"}),
        json!({"Name": "PeakMemory", "Unit": "Bytes"}),
        json!({"Name": "Errors", "Unit": "Count"}),
    ];
    let mut record = json!({
        "app": &*r.inv.app,
        "function": &*r.inv.function,
        "request_id": &*r.inv.request_id,
        "trace_id": r.inv.trace.trace_id(),
        "Duration": r.duration.as_secs_f64() * 1e3,
        "PeakMemory": r.peak_memory,
        "Errors": u8::from(r.error_type.is_some()),
        "ColdStart": r.cold_start_init.is_some(),
    });
    if let Some(init) = r.cold_start_init {
        metrics.push(json!({"Name": "InitDuration", "Unit": "Milliseconds"}));
        record["InitDuration"] = json!(init.as_secs_f64() * 1e3);
    }
    if let Some(e) = r.error_type {
        record["error_type"] = json!(e);
    }
    record["_aws"] = json!({
        "Timestamp": now_ms,
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": [["function"]],
            "Metrics": metrics,
        }],
    });
    record.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::TraceContext;

    fn format(vars: &[(&str, &str)]) -> Result<MetricsFormat, BootError> {
        let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let platform = Platform::Local {
            service: "shop".into(),
            app: "shop".into(),
        };
        MetricsFormat::from_vars(&platform, &env)
    }

    #[test]
    fn nimbus_metrics_selects_the_format() {
        assert!(matches!(format(&[]), Ok(MetricsFormat::Off)));
        assert!(matches!(format(&[("NIMBUS_METRICS", " off ")]), Ok(MetricsFormat::Off)));
        let Ok(MetricsFormat::Emf { namespace }) = format(&[("NIMBUS_METRICS", "emf")]) else {
            panic!("emf")
        };
        assert_eq!(namespace, "Nimbus");
        let bad = format(&[("NIMBUS_METRICS", "prometheus")]).unwrap_err().to_string();
        assert!(bad.contains("`off`, `emf` or `otlp`"), "{bad}");
        // OTLP needs a collector, and says which variables name one.
        let none = format(&[
            ("NIMBUS_METRICS", "otlp"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            none.contains("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") && none.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "{none}"
        );
        let bad_timeout = format(&[
            ("NIMBUS_METRICS", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("NIMBUS_OTEL_FLUSH_TIMEOUT_MS", "soon"),
        ])
        .unwrap_err()
        .to_string();
        assert!(bad_timeout.contains("NIMBUS_OTEL_FLUSH_TIMEOUT_MS"), "{bad_timeout}");
    }

    #[test]
    fn emf_lines_name_every_metric_they_carry() {
        let inv = Invocation::new(
            "shop".into(),
            "hello".into(),
            Duration::from_secs(1),
            Some("r-1".into()),
            TraceContext::new_root(),
        );
        let report = InvocationReport {
            inv: &inv,
            duration: Duration::from_micros(1500),
            peak_memory: 1 << 20,
            cold_start_init: Some(Duration::from_millis(4)),
            error_type: Some("Nimbus.Trap"),
        };
        let v: serde_json::Value = serde_json::from_str(&emf_line("Shop", &report, 42)).unwrap();
        let meta = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 42);
        assert_eq!(meta["Namespace"], "Shop");
        assert_eq!(meta["Dimensions"], json!([["function"]]));
        for m in meta["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(v[name].is_number(), "{name} is declared but missing");
        }
        assert_eq!(v["Duration"], 1.5);
        assert_eq!(v["InitDuration"], 4.0);
        assert_eq!(v["PeakMemory"], 1 << 20);
        assert_eq!(v["Errors"], 1);
        assert_eq!(v["function"], "hello");
        assert_eq!(v["app"], "shop", "the app rides along, not as a dimension");
        assert_eq!(v["request_id"], "r-1");
        // A warm, successful invocation has no InitDuration.
        let warm = InvocationReport {
            cold_start_init: None,
            error_type: None,
            ..report
        };
        let v: serde_json::Value = serde_json::from_str(&emf_line("Shop", &warm, 42)).unwrap();
        assert!(v.get("InitDuration").is_none());
        assert_eq!(v["Errors"], 0);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(),
            3
        );
    }
}
