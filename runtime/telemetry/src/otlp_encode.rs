//! OTLP protobuf encoding of [`FinishedSpan`]s: one `ExportTraceServiceRequest`
//! per batch, written field by field with `prost`'s wire helpers instead of
//! building `opentelemetry-proto` messages first.
//!
//! Each span is encoded on its own, as the field it will be in its batch
//! ([`span_field`]). A batch is one `ResourceSpans` holding one
//! `ScopeSpans`: every span Nimbus exports has the host's resource and the
//! `nimbus` scope, which are encoded once, at startup, and copied into each
//! request around the spans ([`Envelope`]).

use super::spans::FinishedSpan;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// OTLP `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: the flags say whether the parent is remote.
const HAS_IS_REMOTE: u32 = 0x100;
/// OTLP `SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent is remote.
const IS_REMOTE: u32 = 0x200;
/// OTLP `Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;

/// The part of every request that is the same: the host's resource and
/// the `nimbus` scope, encoded once.
#[derive(Debug)]
pub(super) struct Envelope {
    /// `ResourceSpans.resource`, encoded as a field.
    resource: Vec<u8>,
    /// `ScopeSpans.scope`, encoded as a field.
    scope: Vec<u8>,
}

impl Envelope {
    /// The envelope of spans of `resource` (a later attribute of the same
    /// key wins, as in the SDK's `Resource`) in the scope `name` `version`.
    pub(super) fn new(resource: &[KeyValue], name: &str, version: &str) -> Envelope {
        let mut attributes: Vec<&KeyValue> = Vec::with_capacity(resource.len());
        for kv in resource {
            match attributes.iter_mut().find(|a| a.key == kv.key) {
                Some(a) => *a = kv,
                None => attributes.push(kv),
            }
        }
        let mut encoded_resource = Vec::new();
        // ResourceSpans.resource = 1 { Resource.attributes = 1 }
        message(&mut encoded_resource, 1, |b| {
            for kv in attributes {
                message(b, 1, |b| key_value(b, kv));
            }
        });
        let mut scope = Vec::new();
        // ScopeSpans.scope = 1 { InstrumentationScope.name = 1, version = 2 }
        message(&mut scope, 1, |b| {
            string(b, 1, name);
            string(b, 2, version);
        });
        Envelope {
            resource: encoded_resource,
            scope,
        }
    }

    /// The `ExportTraceServiceRequest` carrying `spans`, a run of [`span_field`]s.
    pub(super) fn request(&self, spans: &[u8]) -> Vec<u8> {
        let scope_spans = self.scope.len() + spans.len();
        let resource_spans = self.resource.len() + key_len(2) + encoded_len_varint(scope_spans as u64) + scope_spans;
        let mut out = Vec::with_capacity(key_len(1) + encoded_len_varint(resource_spans as u64) + resource_spans);
        // ExportTraceServiceRequest.resource_spans = 1
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(resource_spans as u64, &mut out);
        out.extend_from_slice(&self.resource);
        // ResourceSpans.scope_spans = 2
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(scope_spans as u64, &mut out);
        out.extend_from_slice(&self.scope);
        out.extend_from_slice(spans);
        out
    }
}

/// Appends `s` to `b` as a `ScopeSpans.spans` field (what [`Envelope::request`] takes).
pub(super) fn span_field(b: &mut Vec<u8>, s: &FinishedSpan<'_>) {
    message(b, 2, |b| span(b, s));
}

/// The fields of an OTLP `Span`. Like `prost`, it leaves out fields that
/// hold their default, except the status, which the SDK always sends.
fn span(b: &mut Vec<u8>, s: &FinishedSpan<'_>) {
    bytes(b, 1, &s.trace_id.to_be_bytes());
    bytes(b, 2, &s.span_id.to_be_bytes());
    if let Some(state) = s.tracestate {
        string(b, 3, state);
    }
    if s.parent_id != 0 {
        bytes(b, 4, &s.parent_id.to_be_bytes());
    }
    string(b, 5, s.name);
    varint(b, 6, s.kind as u64);
    fixed64(b, 7, s.start_ns);
    fixed64(b, 8, s.end_ns);
    for kv in s.attributes {
        message(b, 9, |b| key_value(b, kv));
    }
    // Span.events = 11 { time_unix_nano = 1 (fixed64), name = 2, attributes = 3 }
    for e in s.events {
        message(b, 11, |b| {
            fixed64(b, 1, e.time_ns());
            string(b, 2, &e.name);
            for kv in &e.attributes {
                message(b, 3, |b| key_value(b, kv));
            }
        });
    }
    message(b, 15, |b| {
        if let Some(description) = &s.error {
            string(b, 2, description);
            varint(b, 3, STATUS_ERROR);
        }
    });
    let remote = if s.parent_is_remote { IS_REMOTE } else { 0 };
    fixed32(b, 16, u32::from(s.flags) | HAS_IS_REMOTE | remote);
}

/// The fields of an OTLP `KeyValue`.
fn key_value(b: &mut Vec<u8>, kv: &KeyValue) {
    string(b, 1, kv.key.as_str());
    message(b, 2, |b| any_value(b, &kv.value));
}

/// The fields of an OTLP `AnyValue` holding `v`.
fn any_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => string_value(b, s),
        Value::Bool(x) => bool_value(b, *x),
        Value::I64(x) => int_value(b, *x),
        Value::F64(x) => double_value(b, *x),
        Value::Array(a) => {
            // AnyValue.array_value = 5 { ArrayValue.values = 1 }
            message(b, 5, |b| match a {
                Array::Bool(xs) => elements(b, xs, |b, x| bool_value(b, *x)),
                Array::I64(xs) => elements(b, xs, |b, x| int_value(b, *x)),
                Array::F64(xs) => elements(b, xs, |b, x| double_value(b, *x)),
                Array::String(xs) => elements(b, xs, string_value),
                other => elements(b, &[other.to_string()], |b, s| always_string(b, 1, s)),
            })
        }
        // A kind of value newer than this encoder: sent as its text.
        other => always_string(b, 1, &other.as_str()),
    }
}

/// `ArrayValue.values`: one `AnyValue` per element.
fn elements<T>(b: &mut Vec<u8>, xs: &[T], one: impl Fn(&mut Vec<u8>, &T)) {
    for x in xs {
        message(b, 1, |b| one(b, x));
    }
}

// `AnyValue`'s `value` is a oneof: its field is sent even when it holds the default.

fn string_value(b: &mut Vec<u8>, s: &StringValue) {
    always_string(b, 1, s.as_str());
}

fn bool_value(b: &mut Vec<u8>, x: bool) {
    encode_key(2, WireType::Varint, b);
    encode_varint(u64::from(x), b);
}

fn int_value(b: &mut Vec<u8>, x: i64) {
    encode_key(3, WireType::Varint, b);
    // int64 is sent as its two's complement.
    encode_varint(x as u64, b);
}

fn double_value(b: &mut Vec<u8>, x: f64) {
    encode_key(4, WireType::SixtyFourBit, b);
    b.extend_from_slice(&x.to_bits().to_le_bytes());
}

/// A length-delimited field `tag` whose contents `body` writes: one byte is
/// kept for the length, and the contents moved up in the rare case they
/// need a longer one (128 bytes or more).
fn message(b: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    encode_key(tag, WireType::LengthDelimited, b);
    let at = b.len();
    b.push(0);
    body(b);
    let end = b.len();
    let len = end - at - 1;
    let width = encoded_len_varint(len as u64);
    if width > 1 {
        b.resize(end + width - 1, 0);
        b.copy_within(at + 1..end, at + width);
    }
    encode_varint(len as u64, &mut &mut b[at..at + width]);
}

fn bytes(b: &mut Vec<u8>, tag: u32, value: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, b);
    encode_varint(value.len() as u64, b);
    b.extend_from_slice(value);
}

/// A string field, left out when empty.
fn string(b: &mut Vec<u8>, tag: u32, value: &str) {
    if !value.is_empty() {
        always_string(b, tag, value);
    }
}

fn always_string(b: &mut Vec<u8>, tag: u32, value: &str) {
    bytes(b, tag, value.as_bytes());
}

/// A varint field, left out when 0.
fn varint(b: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::Varint, b);
        encode_varint(value, b);
    }
}

/// A fixed64 field, left out when 0.
fn fixed64(b: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, b);
        b.extend_from_slice(&value.to_le_bytes());
    }
}

/// A fixed32 field, left out when 0.
fn fixed32(b: &mut Vec<u8>, tag: u32, value: u32) {
    if value != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, b);
        b.extend_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::Kind;
    use crate::spans::SpanEvent;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{self as common, AnyValue, ArrayValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status, span};
    use prost::Message;
    use std::sync::Arc;

    fn text(s: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s.to_owned())),
        })
    }

    fn kv(key: &str, value: Option<AnyValue>) -> common::KeyValue {
        common::KeyValue {
            key: key.to_owned(),
            value,
            ..Default::default()
        }
    }

    fn scalar(v: any_value::Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(v) })
    }

    /// Attributes of every kind, one long enough to need a two-byte length.
    fn server_attributes() -> Vec<KeyValue> {
        vec![
            KeyValue::new("faas.invocation_id", Value::String(Arc::<str>::from("2f7b-…").into())),
            KeyValue::new("faas.coldstart", false),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("negative", -7),
            KeyValue::new("weight", 1.5),
            KeyValue::new("long", "x".repeat(300)),
            KeyValue::new("", ""),
            KeyValue::new("tags", Value::Array(Array::String(vec!["a".into(), "b".into()]))),
            KeyValue::new("flags", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("sizes", Value::Array(Array::I64(vec![0, i64::MIN]))),
            KeyValue::new("ratios", Value::Array(Array::F64(vec![0.0, -2.25]))),
        ]
    }

    /// One event with an attribute.
    fn fault_event() -> SpanEvent {
        SpanEvent {
            time: std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_764_115_200_000_000_500),
            name: "nimbus.fault".into(),
            attributes: vec![KeyValue::new("nimbus.fault.rule", "payments-down")],
        }
    }

    /// A server span with a remote parent, tracestate, `attributes` and `events`.
    fn server_span<'a>(attributes: &'a [KeyValue], events: &'a [SpanEvent]) -> FinishedSpan<'a> {
        FinishedSpan {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x00f067aa0ba902b7,
            parent_id: 0x53995c3f42cd8ad8,
            flags: 1,
            parent_is_remote: true,
            kind: Kind::Server,
            name: "orders",
            start_ns: 1_764_115_200_000_000_001,
            end_ns: 1_764_115_200_123_456_789,
            attributes,
            error: None,
            tracestate: Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            events,
        }
    }

    /// A root span that failed, with no attributes or tracestate.
    fn root_error_span() -> FinishedSpan<'static> {
        FinishedSpan {
            trace_id: 1,
            span_id: u64::MAX,
            parent_id: 0,
            flags: 1,
            parent_is_remote: false,
            kind: Kind::Internal,
            name: "nimbus.config.fetch",
            start_ns: 5,
            end_ns: 6,
            attributes: &[],
            error: Some("the parameter /a is missing".into()),
            tracestate: None,
            events: &[],
        }
    }

    fn decode(spans: &[FinishedSpan<'_>]) -> ExportTraceServiceRequest {
        let resource = [
            KeyValue::new("service.name", "first"),
            KeyValue::new("cloud.provider", "aws"),
            KeyValue::new("service.name", "shop"),
        ];
        let envelope = Envelope::new(&resource, "nimbus", "0.1.0");
        let mut encoded = Vec::new();
        for s in spans {
            span_field(&mut encoded, s);
        }
        ExportTraceServiceRequest::decode(&envelope.request(&encoded)[..]).expect("valid OTLP")
    }

    #[test]
    fn every_field_decodes_as_otlp() {
        let attributes = server_attributes();
        let events = [fault_event()];
        let request = decode(&[server_span(&attributes, &events), root_error_span()]);
        assert_eq!(request.resource_spans.len(), 1);
        let rs = &request.resource_spans[0];
        let resource = rs.resource.as_ref().expect("resource");
        assert_eq!(
            resource.attributes,
            vec![kv("service.name", text("shop")), kv("cloud.provider", text("aws"))],
            "one value per key, the last one winning"
        );
        assert_eq!(rs.schema_url, "");
        assert_eq!(rs.scope_spans.len(), 1);
        let ss = &rs.scope_spans[0];
        let scope = ss.scope.as_ref().expect("scope");
        assert_eq!((scope.name.as_str(), scope.version.as_str()), ("nimbus", "0.1.0"));
        assert!(scope.attributes.is_empty());
        assert_eq!(ss.spans.len(), 2);

        let array = |values: Vec<Option<AnyValue>>| {
            scalar(any_value::Value::ArrayValue(ArrayValue {
                values: values.into_iter().map(Option::unwrap).collect(),
            }))
        };
        let server = Span {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes().to_vec(),
            span_id: 0x00f067aa0ba902b7u64.to_be_bytes().to_vec(),
            trace_state: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into(),
            parent_span_id: 0x53995c3f42cd8ad8u64.to_be_bytes().to_vec(),
            flags: 0x301,
            name: "orders".into(),
            kind: 2,
            start_time_unix_nano: 1_764_115_200_000_000_001,
            end_time_unix_nano: 1_764_115_200_123_456_789,
            attributes: vec![
                kv("faas.invocation_id", text("2f7b-…")),
                kv("faas.coldstart", scalar(any_value::Value::BoolValue(false))),
                kv("http.response.status_code", scalar(any_value::Value::IntValue(200))),
                kv("negative", scalar(any_value::Value::IntValue(-7))),
                kv("weight", scalar(any_value::Value::DoubleValue(1.5))),
                kv("long", text(&"x".repeat(300))),
                kv("", text("")),
                kv("tags", array(vec![text("a"), text("b")])),
                kv(
                    "flags",
                    array(vec![
                        scalar(any_value::Value::BoolValue(true)),
                        scalar(any_value::Value::BoolValue(false)),
                    ]),
                ),
                kv(
                    "sizes",
                    array(vec![
                        scalar(any_value::Value::IntValue(0)),
                        scalar(any_value::Value::IntValue(i64::MIN)),
                    ]),
                ),
                kv(
                    "ratios",
                    array(vec![
                        scalar(any_value::Value::DoubleValue(0.0)),
                        scalar(any_value::Value::DoubleValue(-2.25)),
                    ]),
                ),
            ],
            events: vec![span::Event {
                time_unix_nano: 1_764_115_200_000_000_500,
                name: "nimbus.fault".into(),
                attributes: vec![kv("nimbus.fault.rule", text("payments-down"))],
                dropped_attributes_count: 0,
            }],
            status: Some(Status::default()),
            ..Default::default()
        };
        assert_eq!(ss.spans[0], server);
        let root = Span {
            trace_id: 1u128.to_be_bytes().to_vec(),
            span_id: vec![0xff; 8],
            trace_state: String::new(),
            parent_span_id: Vec::new(),
            flags: 0x101,
            name: "nimbus.config.fetch".into(),
            kind: 1,
            start_time_unix_nano: 5,
            end_time_unix_nano: 6,
            status: Some(Status {
                message: "the parameter /a is missing".into(),
                code: 2,
            }),
            ..Default::default()
        };
        assert_eq!(ss.spans[1], root);
    }

    #[test]
    fn large_spans_and_batches_keep_their_lengths() {
        let attributes: Vec<_> = (0..200)
            .map(|i| KeyValue::new(format!("k{i}"), "v".repeat(i * 7)))
            .collect();
        let big = server_span(&attributes, &[]);
        let spans = vec![big.clone(); 64];
        let request = decode(&spans);
        let got = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(got.len(), 64);
        for s in got {
            assert_eq!(s.attributes.len(), 200);
            assert_eq!(s.attributes[199], kv("k199", text(&"v".repeat(199 * 7))));
            assert_eq!(s.end_time_unix_nano, big.end_ns);
        }
        // An empty batch is still a valid request.
        let empty = decode(&[]);
        assert!(empty.resource_spans[0].scope_spans[0].spans.is_empty());
    }

    #[test]
    fn every_span_kind_has_its_otlp_number() {
        for (kind, n) in [
            (Kind::Internal, 1),
            (Kind::Server, 2),
            (Kind::Client, 3),
            (Kind::Consumer, 5),
        ] {
            let s = FinishedSpan {
                kind,
                ..root_error_span()
            };
            assert_eq!(decode(&[s]).resource_spans[0].scope_spans[0].spans[0].kind, n);
        }
    }
}
