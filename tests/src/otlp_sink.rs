//! An OTLP/HTTP traces endpoint for benchmarks: it reads each export, counts its spans without decoding
//! them into messages, discards it and answers 200 with an empty (valid) export response, so what a
//! benchmark measures is the exporter's cost, not the collector's (the test receiver,
//! [`crate::otlp_receiver`], decodes every span into strings and JSON maps).
//!
//! It serves on a thread and tokio runtime of its own, like a sidecar collector sharing the machine, and
//! counts per URL path, so several exporters can share it and each be checked for drops.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::encoding::{WireType, decode_key, decode_varint};
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A running sink (its thread lives as long as the process).
pub struct OtlpSink {
    addr: SocketAddr,
    /// Spans received per URL path.
    spans: Arc<Mutex<HashMap<String, u64>>>,
}

impl OtlpSink {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    pub fn start() -> OtlpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the OTLP sink");
        let addr = listener.local_addr().expect("sink address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let spans = Arc::new(Mutex::new(HashMap::new()));
        let counts = spans.clone();
        std::thread::Builder::new()
            .name("otlp-sink".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the sink's runtime");
                rt.block_on(serve(listener, counts));
            })
            .expect("the sink's thread");
        OtlpSink { addr, spans }
    }

    /// The traces URL of the exporter named `name` (each name is counted apart), as
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` takes it.
    pub fn traces_endpoint(&self, name: &str) -> String {
        format!("http://{}/{name}/v1/traces", self.addr)
    }

    /// Spans received so far at `name`'s endpoint.
    pub fn spans(&self, name: &str) -> u64 {
        let path = format!("/{name}/v1/traces");
        self.spans
            .lock()
            .map(|s| s.get(&path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

async fn serve(listener: std::net::TcpListener, spans: Arc<Mutex<HashMap<String, u64>>>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        let spans = spans.clone();
        let svc = hyper::service::service_fn(move |req| {
            let spans = spans.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&spans, req).await) }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
        );
    }
}

async fn handle(
    spans: &Mutex<HashMap<String, u64>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let reply = |status: u16| {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    };
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return reply(400);
    };
    let body = if gzip {
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).is_err() {
            return reply(400);
        }
        Bytes::from(plain)
    } else {
        body
    };
    let Some(n) = count_spans(&body) else {
        return reply(400);
    };
    if let Ok(mut spans) = spans.lock() {
        *spans.entry(path).or_default() += n;
    }
    reply(200)
}

/// The spans in an encoded `ExportTraceServiceRequest`, counted by walking its fields; `None` if it is not
/// one.
pub fn count_spans(request: &[u8]) -> Option<u64> {
    // ExportTraceServiceRequest.resource_spans = 1, ResourceSpans.scope_spans = 2, ScopeSpans.spans = 2.
    let mut n = 0;
    for resource_spans in fields(request, 1)? {
        for scope_spans in fields(resource_spans, 2)? {
            n += fields(scope_spans, 2)?.len() as u64;
        }
    }
    Some(n)
}

/// The length-delimited fields numbered `tag` of the protobuf message `msg`; `None` if it does not parse.
fn fields(mut msg: &[u8], tag: u32) -> Option<Vec<&[u8]>> {
    let mut found = Vec::new();
    while !msg.is_empty() {
        let (field, wire) = decode_key(&mut msg).ok()?;
        let len = match wire {
            WireType::Varint => {
                decode_varint(&mut msg).ok()?;
                continue;
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => usize::try_from(decode_varint(&mut msg).ok()?).ok()?,
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        let (value, rest) = msg.split_at_checked(len)?;
        if field == tag && wire == WireType::LengthDelimited {
            found.push(value);
        }
        msg = rest;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    /// `n` spans with every kind of field (varints, fixed64s, nested messages) around the ones counted.
    fn scope_spans(n: usize) -> ScopeSpans {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET".into(),
            kind: 3,
            start_time_unix_nano: 5,
            end_time_unix_nano: 6,
            attributes: vec![KeyValue {
                key: "http.response.status_code".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(200)),
                }),
                ..Default::default()
            }],
            status: Some(Status::default()),
            flags: 0x101,
            ..Default::default()
        };
        ScopeSpans {
            spans: vec![span; n],
            schema_url: "https://opentelemetry.io/schemas/1.0.0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_the_spans_of_every_resource_and_scope() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource::default()),
                    scope_spans: vec![scope_spans(3), scope_spans(0), scope_spans(200)],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![scope_spans(1)],
                    ..Default::default()
                },
            ],
        };
        let body = request.encode_to_vec();
        assert_eq!(count_spans(&body), Some(204));
        assert_eq!(count_spans(&[]), Some(0), "an empty request is a valid one");
        assert_eq!(count_spans(&body[..body.len() - 1]), None, "truncated");
        assert_eq!(count_spans(b"not protobuf at all"), None);
    }
}
