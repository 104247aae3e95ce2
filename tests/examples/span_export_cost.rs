//! What exporting a span costs: Nimbus's own span pipeline (each span encoded to OTLP protobuf when it
//! ends, one export thread, `otlp_http`) against the OpenTelemetry SDK's (`BatchSpanProcessor` and
//! opentelemetry-otlp's `SpanExporter`, http-proto on the blocking reqwest client), in one process, with an
//! A/A control: a second, separate instance of Nimbus's pipeline.
//!
//! Every pipeline gets the same spans from the same loop: per invocation, the invocation span (SERVER,
//! remote parent, the attributes the host sets on an HTTP invocation) and one client span (an outgoing
//! GET), the shapes `Host::invoke` and the outbound capability record. Nimbus's spans go through the host's
//! own `InvocationRecord` and `OutboundRecord`; the SDK's are built as `SpanData` the way the host built
//! them when it exported through the SDK (its own ids, the exporter thread lowered to nice +10 like
//! Nimbus's), so only the pipelines differ. Each posts to its own path of one loopback sink that reads,
//! counts and discards (`nimbus_tests::otlp_sink`, on a thread of its own).
//!
//! Rounds of 1,000 invocations (2,000 spans) rotate the three pipelines. A round is measured from its
//! first span to the end of its flush (every span acknowledged by the sink): the CPU time of the whole
//! process (`getrusage`: the emitting thread, the export and HTTP client threads, the sink) per span, and
//! the wall time of the emitting loop per span. The figures are medians of per-round values.
//!
//! Pin it to one core and to two (BENCHMARKS.md, "Span export per invocation"):
//! `cargo build --release -p nimbus-tests --example span_export_cost`, then
//! `taskset -c 0 target/release/examples/span_export_cost` and `taskset -c 0,1 …`.

use nimbus_core::telemetry::opentelemetry_semantic_conventions::attribute as semconv;
use nimbus_core::telemetry::settings::{DEFAULT_MAX_QUEUE, TelemetrySettings};
use nimbus_core::telemetry::{
    InvocationRecord, OutboundRecord, Platform, Telemetry, TelemetryConfig, Trigger, new_span_id, yield_to_invocations,
};
use nimbus_core::{Invocation, TraceContext};
use nimbus_tests::otlp_sink::OtlpSink;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Short alternating rounds, so load that drifts (other builds) weighs on every pipeline alike.
const ROUNDS: usize = 30;
/// Invocations per round; each records two spans.
const INVOCATIONS: usize = 1_000;
const SPANS: u64 = 2 * INVOCATIONS as u64;
/// How long a flush may take before the round is reported as incomplete.
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// What the loop emits into.
enum Pipeline {
    /// Nimbus's own: `nimbus_core::telemetry::Telemetry`.
    Nimbus(Telemetry),
    /// The SDK's batch processor over opentelemetry-otlp's exporter.
    Sdk(Box<Sdk>),
}

/// The SDK's pipeline, as the host used it.
struct Sdk {
    processor: BatchSpanProcessor,
    /// The scope the host set on each span.
    scope: InstrumentationScope,
}

/// Starts a pipeline exporting to the given traces URL.
type Start = fn(String) -> Pipeline;

/// One pipeline under test and what its rounds measured.
struct Variant {
    name: &'static str,
    /// Its path at the sink.
    at: &'static str,
    pipeline: Pipeline,
    /// Per round: CPU ns per span (whole process), wall ns per span (the emitting loop).
    cpu: Vec<f64>,
    wall: Vec<f64>,
    /// Rounds whose flush did not end with every span at the sink.
    short: usize,
}

/// The inputs every pipeline records, built once.
struct Inputs {
    invocations: Vec<Arc<Invocation>>,
    /// The invocation's HTTP request.
    inbound: http::Request<()>,
    /// The guest's outgoing request.
    outbound: http::Request<()>,
}

/// Lowers the SDK's export thread as the host's wrapper did (and as Nimbus's export thread lowers itself).
#[derive(Debug)]
struct Niced<E>(E);

impl<E: SpanExporter> SpanExporter for Niced<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        yield_to_invocations();
        self.0.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// The resource of a Lambda host (what `bootstrap` exports with, less the `AWS_*` variables absent here).
fn resource() -> Vec<KeyValue> {
    let platform = Platform::Lambda {
        function: "orders".into(),
        app: "shop".into(),
    };
    nimbus_core::telemetry::resource(&TelemetrySettings::default(), &platform)
}

fn nimbus(endpoint: String) -> Pipeline {
    let telemetry = Telemetry::new(TelemetryConfig {
        traces_endpoint: endpoint,
        resource: resource(),
        flush_timeout: FLUSH_WAIT,
        gzip: false,
    })
    .expect("Nimbus's span export");
    Pipeline::Nimbus(telemetry)
}

fn sdk(endpoint: String) -> Pipeline {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .expect("opentelemetry-otlp's span exporter");
    // The queue the host uses (the SDK's default of 2,048 drops bursts); batch size and delay are the SDK's
    // defaults, which are also the host's.
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(DEFAULT_MAX_QUEUE)
        .build();
    let mut processor = BatchSpanProcessor::builder(Niced(exporter))
        .with_batch_config(config)
        .build();
    processor.set_resource(&Resource::builder_empty().with_attributes(resource()).build());
    let scope = InstrumentationScope::builder("nimbus")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    Pipeline::Sdk(Box::new(Sdk { processor, scope }))
}

impl Pipeline {
    /// Records one invocation's two spans, as the host does when it ends.
    fn emit(&self, inv: &Arc<Invocation>, inputs: &Inputs) {
        match self {
            Pipeline::Nimbus(t) => {
                let mut record = InvocationRecord::start(t, inv, Trigger::Http, false);
                record.http_request(&inputs.inbound);
                OutboundRecord::start(t, inv, (new_span_id(), inv.span.span_id), &inputs.outbound).end(Ok(200));
                record.http_status(200);
                // Dropped: the invocation span is exported.
            }
            Pipeline::Sdk(sdk) => sdk_spans(&sdk.processor, &sdk.scope, inv, inputs),
        }
    }

    /// Exports everything emitted so far, waiting for the sink's answers.
    fn flush(&self, rt: &tokio::runtime::Runtime) -> Result<(), String> {
        match self {
            Pipeline::Nimbus(t) => {
                rt.block_on(t.flush());
                Ok(())
            }
            Pipeline::Sdk(sdk) => sdk.processor.force_flush().map_err(|e| e.to_string()),
        }
    }
}

/// The same two spans as `SpanData`, built as the host's SDK-based recorders built them (the commit before
/// `318bc71`): the invocation span's attributes sharing the request id and function name, the standard
/// method as a static string, the function name copied into the span name.
fn sdk_spans(processor: &BatchSpanProcessor, scope: &InstrumentationScope, inv: &Arc<Invocation>, inputs: &Inputs) {
    let ids = &inv.span;
    let mut attributes = Vec::with_capacity(10);
    attributes.extend([
        KeyValue::new(
            semconv::FAAS_INVOCATION_ID,
            Value::String(inv.request_id.clone().into()),
        ),
        KeyValue::new(semconv::FAAS_COLDSTART, false),
        KeyValue::new(semconv::FAAS_TRIGGER, "http"),
        KeyValue::new(semconv::FAAS_NAME, Value::String(inv.function.clone().into())),
        KeyValue::new(semconv::HTTP_REQUEST_METHOD, "GET"),
        KeyValue::new(semconv::URL_PATH, inputs.inbound.uri().path().to_owned()),
    ]);

    let client_id = new_span_id();
    let started = SystemTime::now();
    let uri = inputs.outbound.uri();
    let mut client_attributes = vec![
        KeyValue::new(semconv::HTTP_REQUEST_METHOD, "GET"),
        KeyValue::new(semconv::URL_FULL, uri.to_string()),
    ];
    if let Some(host) = uri.host() {
        client_attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_owned()));
    }
    if let Some(port) = uri.port_u16() {
        client_attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
    }
    client_attributes.push(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64));
    let context = |span_id: u64| {
        SpanContext::new(
            TraceId::from_bytes(ids.trace_id.to_be_bytes()),
            SpanId::from_bytes(span_id.to_be_bytes()),
            TraceFlags::new(ids.flags),
            false,
            TraceState::default(),
        )
    };
    let span = |cx, parent: u64, kind, name: String, start, attributes| SpanData {
        span_context: cx,
        parent_span_id: SpanId::from_bytes(parent.to_be_bytes()),
        parent_span_is_remote: false,
        span_kind: kind,
        name: name.into(),
        start_time: start,
        end_time: SystemTime::now(),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    };
    processor.on_end(span(
        context(client_id),
        ids.span_id,
        SpanKind::Client,
        "GET".to_owned(),
        started,
        client_attributes,
    ));

    attributes.push(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, 200_i64));
    processor.on_end(SpanData {
        parent_span_is_remote: ids.parent_id != 0,
        ..span(
            context(ids.span_id),
            ids.parent_id,
            SpanKind::Server,
            inv.function.to_string(),
            ids.started,
            attributes,
        )
    });
}

/// CPU time of the whole process (every thread) so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Runs one round of `v` and records what it cost; `received` is the spans its sink path should hold after.
fn round(v: &mut Variant, inputs: &Inputs, sink: &OtlpSink, rt: &tokio::runtime::Runtime, received: u64) {
    let cpu = process_cpu();
    let started = Instant::now();
    for inv in &inputs.invocations {
        v.pipeline.emit(inv, inputs);
    }
    let wall = started.elapsed();
    if let Err(e) = v.pipeline.flush(rt) {
        eprintln!("{}: flush failed: {e}", v.name);
    }
    let cpu = process_cpu() - cpu;
    // A flush ends when the sink has answered every batch, and the sink counts before it answers.
    if sink.spans(v.at) != received {
        v.short += 1;
    }
    v.cpu.push(cpu.as_nanos() as f64 / SPANS as f64);
    v.wall.push(wall.as_nanos() as f64 / SPANS as f64);
}

/// The value at quantile `q` (0..=1) of `xs`.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// `median (q1–q3)`.
fn summary(xs: &[f64]) -> String {
    format!(
        "{:6.0} ({:.0}–{:.0})",
        quantile(xs, 0.5),
        quantile(xs, 0.25),
        quantile(xs, 0.75)
    )
}

/// Per-round differences `a - b`.
fn differences(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a - b).collect()
}

/// The comparison of one measure: the SDK's and the control's per-round differences to Nimbus's, and
/// whether the gain is clearly outside the A/A noise (their interquartile ranges do not overlap).
fn verdict(measure: &str, nimbus: &[f64], sdk: &[f64], control: &[f64]) {
    let gain = differences(sdk, nimbus);
    let noise = differences(control, nimbus);
    let (g1, g3) = (quantile(&gain, 0.25), quantile(&gain, 0.75));
    let (n1, n3) = (quantile(&noise, 0.25), quantile(&noise, 0.75));
    let outside = g1 > n3 || g3 < n1;
    println!(
        "  {measure}: SDK − Nimbus per round {:+.0} ns/span ({g1:+.0}..{g3:+.0}); A/A control − Nimbus {:+.0} \
         ({n1:+.0}..{n3:+.0}): the difference is {} the A/A noise",
        quantile(&gain, 0.5),
        quantile(&noise, 0.5),
        if outside { "outside" } else { "within" }
    );
}

fn main() {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for Nimbus's flush");
    let sink = OtlpSink::start();
    let pipelines: [(&'static str, &'static str, Start); 3] = [
        ("Nimbus's pipeline", "nimbus", nimbus),
        ("SDK + opentelemetry-otlp", "sdk", sdk),
        ("Nimbus's again (A/A)", "control", nimbus),
    ];
    let mut variants = pipelines.map(|(name, at, start)| Variant {
        name,
        at,
        pipeline: start(sink.traces_endpoint(at)),
        cpu: Vec::with_capacity(ROUNDS),
        wall: Vec::with_capacity(ROUNDS),
        short: 0,
    });
    let trace = || TraceContext::from_w3c(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
    let inputs = Inputs {
        invocations: (0..INVOCATIONS)
            .map(|_| {
                Arc::new(Invocation::new(
                    "shop".into(),
                    "orders".into(),
                    Duration::from_secs(30),
                    None,
                    trace(),
                ))
            })
            .collect(),
        inbound: http::Request::get("http://localhost/orders/42")
            .body(())
            .expect("a request"),
        outbound: http::Request::get("http://127.0.0.1:8080/stock?item=42")
            .body(())
            .expect("a request"),
    };

    // A warm-up round each (connections, allocator, caches), not counted.
    for v in &mut variants {
        round(v, &inputs, &sink, &rt, SPANS);
        v.cpu.clear();
        v.wall.clear();
    }
    let n = variants.len();
    for r in 0..ROUNDS {
        // Rotate who goes first.
        for k in 0..n {
            let v = &mut variants[(r + k) % n];
            round(v, &inputs, &sink, &rt, SPANS * (r as u64 + 2));
        }
    }

    println!(
        "span_export_cost: {ROUNDS} rotating rounds of {INVOCATIONS} invocations ({SPANS} spans) per pipeline; \
         {cores} core(s); load average before: {}",
        loadavg.trim()
    );
    println!(
        "  pipeline                    CPU ns/span, whole process   wall ns/span, emitting loop   spans at the sink"
    );
    for v in &variants {
        println!(
            "  {:26}  {:>27}  {:>28}  {} of {}{}",
            v.name,
            summary(&v.cpu),
            summary(&v.wall),
            sink.spans(v.at),
            SPANS * (ROUNDS as u64 + 1),
            if v.short > 0 {
                format!(" ({} rounds short after their flush)", v.short)
            } else {
                String::new()
            }
        );
    }
    let [own, theirs, control] = &variants;
    verdict("CPU", &own.cpu, &theirs.cpu, &control.cpu);
    verdict("wall", &own.wall, &theirs.wall, &control.wall);
}
