//! A real OTLP/HTTP receiver on loopback, for tests that check exported
//! spans and metrics.
//!
//! Accepts `POST /v1/traces` and `/v1/metrics` (decoded with
//! `opentelemetry-proto`), and `/v1/logs` (kept raw), with
//! `application/x-protobuf` bodies, gzip-compressed or not, and answers as a
//! collector does (200 with an empty export response). Tests wait for spans
//! with [`OtlpReceiver::wait_for`] and read metric data points with
//! [`OtlpReceiver::points`].

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One exported span, flattened for assertions (ids as lowercase hex).
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// OTLP `SpanKind` (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// Span attributes as JSON values (strings, integers, booleans, doubles).
    pub attributes: BTreeMap<String, Value>,
    /// The resource attributes of the batch it came in.
    pub resource: BTreeMap<String, Value>,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub start_end_ns: (u64, u64),
    /// Its events: name and attributes.
    pub events: Vec<(String, BTreeMap<String, Value>)>,
}

impl ReceivedSpan {
    /// A span attribute (JSON `null` if absent).
    pub fn attr(&self, key: &str) -> Value {
        self.attributes.get(key).cloned().unwrap_or(Value::Null)
    }
}

/// One exported metric data point, flattened for assertions: a counter's
/// (sum's) value or a histogram's count, sum, min and max.
#[derive(Debug, Clone)]
pub struct ReceivedPoint {
    /// The metric's name (`faas.invocations`, …).
    pub metric: String,
    /// Its unit (`s`, `By`, `{invocation}`, …).
    pub unit: String,
    /// `sum` (counters), `histogram`, `gauge` or another data kind.
    pub kind: &'static str,
    /// OTLP aggregation temporality (1 delta, 2 cumulative; 0 for a gauge).
    pub temporality: i32,
    /// A sum's or gauge's value; a histogram's sum.
    pub value: f64,
    /// A histogram's count (0 for other kinds).
    pub count: u64,
    /// A histogram's min and max, if sent.
    pub min_max: (Option<f64>, Option<f64>),
    /// Point attributes as JSON values.
    pub attributes: BTreeMap<String, Value>,
    /// The resource attributes of the request it came in.
    pub resource: BTreeMap<String, Value>,
    /// The point's time, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
}

impl ReceivedPoint {
    /// A point attribute (JSON `null` if absent).
    pub fn attr(&self, key: &str) -> Value {
        self.attributes.get(key).cloned().unwrap_or(Value::Null)
    }
}

/// What the receiver has collected.
#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Metric data points, in arrival order.
    points: Vec<ReceivedPoint>,
    /// Raw bodies by path (`/v1/logs`, and undecodable traces and metrics).
    raw: Vec<(String, Bytes)>,
    requests: u64,
    /// Paths of the requests that came gzip-compressed, in arrival order.
    gzipped: Vec<String>,
}

/// A running receiver; stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    /// Binds 127.0.0.1 on a free port and starts accepting.
    pub async fn start() -> OtlpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("receiver address");
        let received = Arc::new(Mutex::new(Received::default()));
        let state = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
                );
            }
        });
        OtlpReceiver { addr, received, task }
    }

    /// The base endpoint, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full traces URL, as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` takes it.
    pub fn traces_endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// The full metrics URL, as `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` takes it.
    pub fn metrics_endpoint(&self) -> String {
        format!("http://{}/v1/metrics", self.addr)
    }

    /// Every metric data point received so far, in arrival order (with
    /// cumulative temporality, a series' last point holds its totals).
    pub fn points(&self) -> Vec<ReceivedPoint> {
        self.received.lock().map(|r| r.points.clone()).unwrap_or_default()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().map(|r| r.spans.clone()).unwrap_or_default()
    }

    /// Raw bodies received on `path` (logs; traces or metrics that did not decode).
    pub fn raw(&self, path: &str) -> Vec<Bytes> {
        self.received
            .lock()
            .map(|r| {
                r.raw
                    .iter()
                    .filter(|(p, _)| p == path)
                    .map(|(_, b)| b.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many export requests arrived.
    pub fn requests(&self) -> u64 {
        self.received.lock().map(|r| r.requests).unwrap_or(0)
    }

    /// How many export requests to `path` arrived gzip-compressed (and decompressed cleanly).
    pub fn gzipped(&self, path: &str) -> usize {
        self.received
            .lock()
            .map(|r| r.gzipped.iter().filter(|p| *p == path).count())
            .unwrap_or(0)
    }

    /// Polls until `done` holds for the spans received, then returns them;
    /// panics with what arrived after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let until = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() >= until {
                panic!("spans not received within {timeout:?}; got: {spans:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn handle(state: &Mutex<Received>, req: http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let reply = |status: u16, body: Vec<u8>| {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.method() != http::Method::POST || !matches!(path.as_str(), "/v1/traces" | "/v1/metrics" | "/v1/logs") {
        return reply(404, Vec::new());
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(400, Vec::new()),
    };
    let body = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).is_err() {
            return reply(400, Vec::new());
        }
        Bytes::from(out)
    } else {
        body
    };
    let Ok(mut received) = state.lock() else {
        return reply(500, Vec::new());
    };
    received.requests += 1;
    if gzip {
        received.gzipped.push(path.clone());
    }
    if path == "/v1/metrics" {
        let Ok(export) = ExportMetricsServiceRequest::decode(&body[..]) else {
            received.raw.push((path, body));
            return reply(400, Vec::new());
        };
        received.points.extend(metric_points(export));
        return reply(200, ExportMetricsServiceResponse::default().encode_to_vec());
    }
    if path != "/v1/traces" {
        received.raw.push((path, body));
        return reply(200, Vec::new());
    }
    let Ok(export) = ExportTraceServiceRequest::decode(&body[..]) else {
        received.raw.push((path, body));
        return reply(400, Vec::new());
    };
    for rs in export.resource_spans {
        let resource = rs.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                received.spans.push(ReceivedSpan {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    status_code: s.status.map_or(0, |st| st.code),
                    attributes: attributes(&s.attributes),
                    resource: resource.clone(),
                    start_end_ns: (s.start_time_unix_nano, s.end_time_unix_nano),
                    events: s
                        .events
                        .iter()
                        .map(|e| (e.name.clone(), attributes(&e.attributes)))
                        .collect(),
                });
            }
        }
    }
    reply(200, ExportTraceServiceResponse::default().encode_to_vec())
}

/// Flattens an export request into its data points.
fn metric_points(export: ExportMetricsServiceRequest) -> Vec<ReceivedPoint> {
    let mut out = Vec::new();
    for rm in export.resource_metrics {
        let resource = rm.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let point = |kind, temporality, attrs: &[KeyValue], value, count, min_max, time_ns| ReceivedPoint {
                    metric: m.name.clone(),
                    unit: m.unit.clone(),
                    kind,
                    temporality,
                    value,
                    count,
                    min_max,
                    attributes: attributes(attrs),
                    resource: resource.clone(),
                    time_ns,
                };
                let number = |v: Option<number_data_point::Value>| match v {
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    None => f64::NAN,
                };
                match &m.data {
                    Some(metric::Data::Sum(sum)) => {
                        for p in &sum.data_points {
                            out.push(point(
                                "sum",
                                sum.aggregation_temporality,
                                &p.attributes,
                                number(p.value),
                                0,
                                (None, None),
                                p.time_unix_nano,
                            ));
                        }
                    }
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            out.push(point(
                                "gauge",
                                0,
                                &p.attributes,
                                number(p.value),
                                0,
                                (None, None),
                                p.time_unix_nano,
                            ));
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            out.push(point(
                                "histogram",
                                h.aggregation_temporality,
                                &p.attributes,
                                p.sum.unwrap_or(f64::NAN),
                                p.count,
                                (p.min, p.max),
                                p.time_unix_nano,
                            ));
                        }
                    }
                    Some(_) | None => out.push(point("other", 0, &[], f64::NAN, 0, (None, None), 0)),
                }
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, json)))
        .collect()
}

fn json(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::from(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::BoolValue(b)) => Value::from(*b),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(other) => Value::from(format!("{other:?}")),
        None => Value::Null,
    }
}
