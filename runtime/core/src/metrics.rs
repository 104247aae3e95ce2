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
use crate::settings::{MetricsSetting, SettingsError, TelemetrySettings};
use crate::telemetry::{MetricsConfig, OtlpMetrics, Platform};
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
    /// The metrics `NIMBUS_METRICS` asks for ([`crate::settings::MetricsSetting`]); for OTLP, the exporter
    /// and its resource as for `platform`, built now.
    pub fn from_settings(settings: &TelemetrySettings, platform: &Platform) -> Result<MetricsFormat, BootError> {
        match &settings.metrics {
            MetricsSetting::Off => Ok(MetricsFormat::Off),
            MetricsSetting::Emf { namespace } => Ok(MetricsFormat::Emf {
                namespace: namespace.clone(),
            }),
            MetricsSetting::Otlp { url, variable } => OtlpMetrics::new(MetricsConfig {
                endpoint: url.clone(),
                resource: crate::telemetry::resource(settings, platform),
                flush_timeout: settings.flush_timeout,
            })
            .map(MetricsFormat::Otlp)
            .map_err(|e| {
                BootError::Setting(SettingsError::Invalid {
                    name: variable,
                    value: url.clone(),
                    expected: format!("an endpoint the OTLP metrics exporter accepts ({e})").into(),
                })
            }),
        }
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
    /// Faults a fault plan injected into it (`FaultsInjected`, only when over 0).
    pub faults_injected: u64,
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

/// The resilience metrics: per-dependency calls (OTLP), a breaker's state and a function's degradation level
/// (OTLP gauges, or one EMF line per change).
impl MetricsFormat {
    /// Records one outbound call of `function` to `host` (OTLP only: EMF would need a line per call).
    pub fn dependency_call(&self, function: &str, host: &str, took: Duration, failed: bool) {
        if let MetricsFormat::Otlp(m) = self {
            m.dependency_call(function, host, took, failed);
        }
    }

    /// Records a breaker's new state (0 closed, 1 half-open, 2 open).
    pub fn breaker_state(&self, sink: &LogSink, function: &str, host: &str, state: u8) {
        match self {
            MetricsFormat::Otlp(m) => m.breaker_state(function, host, state),
            MetricsFormat::Emf { namespace } => sink.write_line(&emf_gauge(
                namespace,
                "BreakerState",
                u64::from(state),
                &[("function", function), ("host", host)],
                crate::invocation::unix_ms_now(),
            )),
            MetricsFormat::Off => {}
        }
    }

    /// Records a function's new degradation level.
    pub fn degradation_level(&self, sink: &LogSink, function: &str, level: u8) {
        match self {
            MetricsFormat::Otlp(m) => m.degradation_level(function, level),
            MetricsFormat::Emf { namespace } => sink.write_line(&emf_gauge(
                namespace,
                "DegradationLevel",
                u64::from(level),
                &[("function", function)],
                crate::invocation::unix_ms_now(),
            )),
            MetricsFormat::Off => {}
        }
    }
}

/// One EMF record of a single gauge value with its dimensions.
fn emf_gauge(namespace: &str, name: &str, value: u64, dims: &[(&str, &str)], now_ms: u64) -> String {
    let mut record = serde_json::Map::new();
    for (k, v) in dims {
        record.insert((*k).into(), json!(v));
    }
    record.insert(name.into(), json!(value));
    record.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dims.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": [{"Name": name, "Unit": "None"}],
            }],
        }),
    );
    serde_json::Value::Object(record).to_string()
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
    if r.faults_injected > 0 {
        metrics.push(json!({"Name": "FaultsInjected", "Unit": "Count"}));
        record["FaultsInjected"] = json!(r.faults_injected);
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

    #[test]
    fn breaker_states_and_levels_are_emf_gauges_with_their_dimensions() {
        let v: serde_json::Value = serde_json::from_str(&emf_gauge(
            "Shop",
            "BreakerState",
            2,
            &[("function", "f"), ("host", "h:443")],
            7,
        ))
        .unwrap();
        assert_eq!(v["BreakerState"], 2);
        assert_eq!((v["function"].as_str(), v["host"].as_str()), (Some("f"), Some("h:443")));
        let meta = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Dimensions"], json!([["function", "host"]]));
        assert_eq!(meta["Metrics"][0]["Name"], "BreakerState");
        assert_eq!(v["_aws"]["Timestamp"], 7);
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
            faults_injected: 2,
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
        assert_eq!(v["FaultsInjected"], 2);
        // A warm, successful invocation has no InitDuration.
        let warm = InvocationReport {
            cold_start_init: None,
            error_type: None,
            faults_injected: 0,
            ..report
        };
        let v: serde_json::Value = serde_json::from_str(&emf_line("Shop", &warm, 42)).unwrap();
        assert!(v.get("InitDuration").is_none());
        assert!(v.get("FaultsInjected").is_none());
        assert_eq!(v["Errors"], 0);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(),
            3
        );
    }
}
