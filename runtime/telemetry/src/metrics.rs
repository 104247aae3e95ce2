//! `NIMBUS_METRICS=otlp`: the OpenTelemetry FaaS metrics, exported over
//! OTLP/HTTP (protobuf) to `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`.
//!
//! | instrument | kind | unit | recorded |
//! |---|---|---|---|
//! | `faas.invoke_duration` | histogram | `s` | every invocation, until the guest returns |
//! | `faas.mem_usage` | histogram | `By` | every invocation: the guest's peak linear memory |
//! | `faas.init_duration` | histogram | `s` | the cold start: the host's boot |
//! | `faas.coldstarts` | counter | `{coldstart}` | the cold start |
//! | `faas.invocations` | counter | `{invocation}` | every successful invocation |
//! | `faas.errors` | counter | `{error}` | every failed one, with `error.type` |
//! | `faas.timeouts` | counter | `{timeout}` | every one stopped at its deadline |
//!
//! Every point has `faas.name` (the function) and `faas.trigger`; the
//! resource is the spans' ([`super::Platform`]). Instruments are built once;
//! the attribute arrays once per function and trigger ([`FunctionMetrics`]),
//! so recording an invocation allocates nothing once its series exists.
//! The SDK's periodic reader exports on its own thread (every
//! `OTEL_METRIC_EXPORT_INTERVAL` ms, default 60 s) with a blocking client;
//! on Lambda, [`OtlpMetrics::flush`] exports after each invocation. An HTTP
//! invocation is recorded when its guest returns, which may be just after
//! its response was sent, so a flush first waits (within its bound) for the
//! invocations still being measured ([`Measuring`]).
//! Temporality is cumulative unless
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` says otherwise.

use super::warn_once::Guard;
use super::{TelemetryError, Trigger, exporter_error, scope};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider};
use opentelemetry::{StringValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_semantic_conventions::{attribute as semconv, metric as names};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Bucket bounds of the duration histograms, in seconds: Nimbus invocations
/// take from well under a millisecond to the 15-minute Lambda maximum.
const DURATION_BOUNDS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Bucket bounds of `faas.mem_usage`: 1 MiB to 4 GiB (wasm32's limit), doubling.
fn memory_bounds() -> Vec<f64> {
    (20..=32).map(|p| (1u64 << p) as f64).collect()
}

/// Where to export metrics, as whom, and how long a flush may take.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// The full OTLP/HTTP metrics URL (e.g. `http://127.0.0.1:4318/v1/metrics`).
    pub endpoint: String,
    /// Resource attributes (`service.name`, `cloud.*`, `faas.*`), as for spans.
    pub resource: Vec<KeyValue>,
    /// Longest [`OtlpMetrics::flush`] holds up its caller.
    pub flush_timeout: Duration,
}

/// The FaaS instruments and their exporter; cheap to clone, shared by every function of a host.
#[derive(Clone)]
pub struct OtlpMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    provider: SdkMeterProvider,
    instruments: Arc<Instruments>,
    guard: Guard,
    /// Invocations being measured (a flush waits for them).
    in_flight: Arc<InFlight>,
}

/// A count of the invocations being measured, and a wake-up when it drops to zero.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn enter(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn exit(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Returns once no invocation is being measured.
    async fn idle(&self) {
        loop {
            let mut notified = std::pin::pin!(self.idle.notified());
            // Registered before the check, so an exit right after it wakes us.
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The pre-built instruments.
struct Instruments {
    invoke_duration: Histogram<f64>,
    init_duration: Histogram<f64>,
    mem_usage: Histogram<u64>,
    coldstarts: Counter<u64>,
    invocations: Counter<u64>,
    errors: Counter<u64>,
    timeouts: Counter<u64>,
    faults: Counter<u64>,
    dependency_duration: Histogram<f64>,
    dependency_errors: Counter<u64>,
    breaker_state: opentelemetry::metrics::Gauge<u64>,
    degradation_level: opentelemetry::metrics::Gauge<u64>,
}

impl std::fmt::Debug for OtlpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpMetrics")
            .field("flush_timeout", &self.inner.guard.timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpMetrics {
    /// Builds the exporter, the periodic reader (and its thread) and the instruments.
    pub fn new(config: MetricsConfig) -> Result<OtlpMetrics, TelemetryError> {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .build()
            .map_err(exporter_error(&config.endpoint))?;
        let guard = Guard::new("metrics", config.flush_timeout);
        let reader = PeriodicReader::builder(guard.wrap(exporter, config.endpoint)).build();
        let provider = SdkMeterProvider::builder()
            .with_resource(Resource::builder_empty().with_attributes(config.resource).build())
            .with_reader(reader)
            .build();
        let meter = provider.meter_with_scope(scope());
        let instruments = Instruments {
            invoke_duration: meter
                .f64_histogram(names::FAAS_INVOKE_DURATION)
                .with_unit("s")
                .with_description("Duration of the function's execution, until the guest returns")
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            init_duration: meter
                .f64_histogram(names::FAAS_INIT_DURATION)
                .with_unit("s")
                .with_description("Duration of the host's initialization, on a cold start")
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            mem_usage: meter
                .u64_histogram(names::FAAS_MEM_USAGE)
                .with_unit("By")
                .with_description("Peak guest linear memory per invocation")
                .with_boundaries(memory_bounds())
                .build(),
            coldstarts: meter
                .u64_counter(names::FAAS_COLDSTARTS)
                .with_unit("{coldstart}")
                .with_description("Number of invocation cold starts")
                .build(),
            invocations: meter
                .u64_counter(names::FAAS_INVOCATIONS)
                .with_unit("{invocation}")
                .with_description("Number of successful invocations")
                .build(),
            errors: meter
                .u64_counter(names::FAAS_ERRORS)
                .with_unit("{error}")
                .with_description("Number of invocation errors")
                .build(),
            timeouts: meter
                .u64_counter(names::FAAS_TIMEOUTS)
                .with_unit("{timeout}")
                .with_description("Number of invocation timeouts")
                .build(),
            faults: meter
                .u64_counter("nimbus.faults.injected")
                .with_unit("{fault}")
                .with_description("Number of faults a fault plan injected into invocations")
                .build(),
            dependency_duration: meter
                .f64_histogram("nimbus.dependency.duration")
                .with_unit("s")
                .with_description("Duration of a guest's outbound call, to its response head, per function and host")
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            dependency_errors: meter
                .u64_counter("nimbus.dependency.errors")
                .with_unit("{error}")
                .with_description("Outbound calls that got no response or a 5xx, per function and host")
                .build(),
            breaker_state: meter
                .u64_gauge("nimbus.breaker.state")
                .with_unit("{state}")
                .with_description("A circuit breaker's state: 0 closed, 1 half-open, 2 open")
                .build(),
            degradation_level: meter
                .u64_gauge("nimbus.degradation.level")
                .with_unit("{level}")
                .with_description("A function's degradation level, 0 (normal) to 5")
                .build(),
        };
        Ok(OtlpMetrics {
            inner: Arc::new(Inner {
                provider,
                instruments: Arc::new(instruments),
                guard,
                in_flight: Arc::default(),
            }),
        })
    }

    /// The recorder for one function: its attribute arrays, built once.
    pub fn function(&self, name: &Arc<str>) -> FunctionMetrics {
        let faas_name = KeyValue::new(semconv::FAAS_NAME, Value::String(StringValue::from(name.clone())));
        FunctionMetrics {
            instruments: self.inner.instruments.clone(),
            in_flight: self.inner.in_flight.clone(),
            attributes: Trigger::ALL.map(|t| [faas_name.clone(), KeyValue::new(semconv::FAAS_TRIGGER, t.as_str())]),
        }
    }

    /// Records one outbound call of `function` to `host` (`host:port`): its duration to the response head, and
    /// whether it failed (no response, or a 5xx). Its throughput is the histogram's count.
    pub fn dependency_call(&self, function: &str, host: &str, took: Duration, failed: bool) {
        let attrs = [
            KeyValue::new(semconv::FAAS_NAME, function.to_owned()),
            KeyValue::new("server.address", host.to_owned()),
        ];
        let i = &self.inner.instruments;
        i.dependency_duration.record(took.as_secs_f64(), &attrs);
        if failed {
            i.dependency_errors.add(1, &attrs);
        }
    }

    /// Records a circuit breaker's state (0 closed, 1 half-open, 2 open).
    pub fn breaker_state(&self, function: &str, host: &str, state: u8) {
        self.inner.instruments.breaker_state.record(
            u64::from(state),
            &[
                KeyValue::new(semconv::FAAS_NAME, function.to_owned()),
                KeyValue::new("server.address", host.to_owned()),
            ],
        );
    }

    /// Records a function's degradation level.
    pub fn degradation_level(&self, function: &str, level: u8) {
        self.inner.instruments.degradation_level.record(
            u64::from(level),
            &[KeyValue::new(semconv::FAAS_NAME, function.to_owned())],
        );
    }

    /// Waits for the invocations still being measured, then exports,
    /// within the flush timeout (the export goes on in the background past
    /// it). Never fails: a collector that cannot be reached logs one warning.
    pub async fn flush(&self) {
        let inner = self.inner.clone();
        self.inner
            .guard
            .flush(self.inner.in_flight.idle(), move || inner.provider.force_flush())
            .await;
    }

    /// Exports one last time and stops the reader (at shutdown), within `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        let inner = self.inner.clone();
        self.inner
            .guard
            .shutdown(timeout, move || inner.provider.shutdown_with_timeout(timeout))
            .await;
    }
}

/// Records one function's invocations into the shared instruments.
pub struct FunctionMetrics {
    instruments: Arc<Instruments>,
    in_flight: Arc<InFlight>,
    /// `faas.name` and `faas.trigger`, by [`Trigger::index`].
    attributes: [[KeyValue; 2]; 5],
}

impl FunctionMetrics {
    /// Starts measuring an invocation started by `trigger`.
    pub fn start(self: &Arc<Self>, trigger: Trigger) -> Measuring {
        self.in_flight.enter();
        Measuring {
            metrics: self.clone(),
            trigger,
        }
    }
}

/// What one finished invocation measured, as the FaaS instruments record it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Wall time from the invocation's start to the guest's return (`faas.invoke_duration`).
    pub duration: Duration,
    /// The guest's peak linear memory, in bytes (`faas.mem_usage`).
    pub peak_memory: u64,
    /// The host's boot time, on the process's first invocation only (`faas.init_duration`, `faas.coldstarts`).
    pub cold_start_init: Option<Duration>,
    /// `None` on success, else the error's type (`faas.errors`' `error.type`).
    pub error_type: Option<&'static str>,
    /// Whether it was stopped at its deadline (`faas.timeouts`).
    pub timed_out: bool,
    /// Faults a fault plan injected into it (`nimbus.faults.injected`).
    pub faults_injected: u64,
}

/// An invocation being measured: [`OtlpMetrics::flush`] waits until it is
/// recorded or dropped (an invocation refused before it ran records nothing).
pub struct Measuring {
    metrics: Arc<FunctionMetrics>,
    trigger: Trigger,
}

impl Drop for Measuring {
    fn drop(&mut self) {
        self.metrics.in_flight.exit();
    }
}

impl Measuring {
    /// Records the finished invocation (no allocation once its series exist).
    pub fn record(self, r: &Measurement) {
        let i = &self.metrics.instruments;
        let attrs = &self.metrics.attributes[self.trigger.index()];
        i.invoke_duration.record(r.duration.as_secs_f64(), attrs);
        i.mem_usage.record(r.peak_memory, attrs);
        if let Some(init) = r.cold_start_init {
            i.init_duration.record(init.as_secs_f64(), attrs);
            i.coldstarts.add(1, attrs);
        }
        if r.faults_injected > 0 {
            i.faults.add(r.faults_injected, attrs);
        }
        match r.error_type {
            None => i.invocations.add(1, attrs),
            Some(error_type) => {
                let [name, trigger] = attrs.clone();
                i.errors
                    .add(1, &[name, trigger, KeyValue::new(semconv::ERROR_TYPE, error_type)]);
                if r.timed_out {
                    i.timeouts.add(1, attrs);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flush_waits_for_the_invocations_being_measured() {
        let f = Arc::new(InFlight::default());
        f.idle().await;
        f.enter();
        f.enter();
        let wait = tokio::spawn({
            let f = f.clone();
            async move { f.idle().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!wait.is_finished());
        f.exit();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!wait.is_finished(), "one is still running");
        f.exit();
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn bounds() {
        let mem = memory_bounds();
        assert_eq!(mem.first().copied(), Some((1u64 << 20) as f64));
        assert_eq!(mem.last().copied(), Some((1u64 << 32) as f64));
        assert!(mem.windows(2).all(|w| w[1] == 2.0 * w[0]));
        assert!(DURATION_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        for t in Trigger::ALL {
            assert_eq!(Trigger::ALL[t.index()], t);
        }
    }
}
