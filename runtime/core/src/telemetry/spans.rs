//! The spans Nimbus exports, built as finished `SpanData` with the host's own ids.

use super::Telemetry;
use crate::caps::propagate::SpanIds;
use crate::invocation::{EventSource, Invocation};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

/// `faas.trigger`: what kind of event started an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// An HTTP request.
    Http,
    /// A message (SQS, SNS, EventBridge, Kinesis).
    PubSub,
    /// A data source change (S3, DynamoDB streams).
    Datasource,
    /// A schedule.
    Timer,
    /// A direct invocation or anything else.
    Other,
}

impl Trigger {
    /// The trigger of an event from `source`.
    pub fn of(source: EventSource) -> Trigger {
        match source {
            EventSource::Sqs | EventSource::Sns | EventSource::EventBridge | EventSource::Kinesis => Trigger::PubSub,
            EventSource::S3 | EventSource::DynamoDb => Trigger::Datasource,
            EventSource::Schedule => Trigger::Timer,
            EventSource::Direct | EventSource::Other => Trigger::Other,
        }
    }

    /// Every trigger, in [`Trigger::index`] order.
    pub(super) const ALL: [Trigger; 5] = [
        Trigger::Http,
        Trigger::PubSub,
        Trigger::Datasource,
        Trigger::Timer,
        Trigger::Other,
    ];

    /// Its position in [`Trigger::ALL`].
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The `faas.trigger` value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::PubSub => "pubsub",
            Trigger::Datasource => "datasource",
            Trigger::Timer => "timer",
            Trigger::Other => "other",
        }
    }

    /// SERVER for a request/response caller, CONSUMER for a delivered event.
    fn kind(self) -> SpanKind {
        match self {
            Trigger::Http | Trigger::Other => SpanKind::Server,
            Trigger::PubSub | Trigger::Datasource | Trigger::Timer => SpanKind::Consumer,
        }
    }
}

/// An attribute value sharing `s` instead of copying it.
fn shared(s: &Arc<str>) -> Value {
    Value::String(s.clone().into())
}

/// `http.request.method`: the standard methods without an allocation.
fn method(m: &http::Method) -> Value {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|s| **s == m.as_str()) {
        Some(s) => Value::from(*s),
        None => Value::from(m.as_str().to_owned()),
    }
}

fn context(ids: &SpanIds, span_id: u64, tracestate: Option<&str>) -> SpanContext {
    let state = tracestate
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    SpanContext::new(
        TraceId::from_bytes(ids.trace_id.to_be_bytes()),
        SpanId::from_bytes(span_id.to_be_bytes()),
        TraceFlags::new(ids.flags),
        false,
        state,
    )
}

fn span_data(
    cx: SpanContext,
    parent: u64,
    kind: SpanKind,
    name: impl Into<Cow<'static, str>>,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    status: Status,
) -> SpanData {
    SpanData {
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
        status,
        instrumentation_scope: Default::default(),
    }
}

/// `nimbus.init`: the boot, a root span in a trace of its own (`ids`).
pub(super) fn init_span(ids: &SpanIds, started: SystemTime, functions: usize) -> SpanData {
    span_data(
        context(ids, ids.span_id, None),
        0,
        SpanKind::Internal,
        "nimbus.init",
        started,
        vec![
            KeyValue::new(semconv::FAAS_COLDSTART, true),
            KeyValue::new("nimbus.functions", functions as i64),
        ],
        Status::Unset,
    )
}

/// An invocation span in progress; exported when dropped (so it covers a
/// streamed HTTP response body too, whichever way the invocation ends).
pub struct InvocationRecord {
    telemetry: Telemetry,
    inv: Arc<Invocation>,
    trigger: Trigger,
    attributes: Vec<KeyValue>,
    status: Option<u16>,
    error: Option<&'static str>,
}

impl InvocationRecord {
    /// Starts recording `inv` (its start time is the invocation's);
    /// `coldstart` is the host's: true for the process's first invocation.
    pub fn start(telemetry: &Telemetry, inv: &Arc<Invocation>, trigger: Trigger, coldstart: bool) -> InvocationRecord {
        // Sized for everything the span can get, and the ids shared, not
        // copied: the span costs as few allocations as it can.
        let mut attributes = Vec::with_capacity(10);
        attributes.extend([
            KeyValue::new(semconv::FAAS_INVOCATION_ID, shared(&inv.request_id)),
            KeyValue::new(semconv::FAAS_COLDSTART, coldstart),
            KeyValue::new(semconv::FAAS_TRIGGER, trigger.as_str()),
            KeyValue::new(semconv::FAAS_NAME, shared(&inv.function)),
        ]);
        InvocationRecord {
            telemetry: telemetry.clone(),
            inv: inv.clone(),
            trigger,
            attributes,
            status: None,
            error: None,
        }
    }

    /// Adds the HTTP request's method and path.
    pub fn http_request<B>(&mut self, req: &http::Request<B>) {
        self.attributes
            .push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method(req.method())));
        self.attributes
            .push(KeyValue::new(semconv::URL_PATH, req.uri().path().to_owned()));
    }

    /// Records the HTTP response status (5xx marks the span as an error).
    pub fn http_status(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Records a failure (`error.type`, error status).
    pub fn failed(&mut self, error_type: &'static str) {
        self.error = Some(error_type);
    }
}

impl Drop for InvocationRecord {
    fn drop(&mut self) {
        let mut attributes = std::mem::take(&mut self.attributes);
        let mut status = Status::Unset;
        if let Some(code) = self.status {
            attributes.push(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code)));
            if code >= 500 {
                status = Status::error(format!("HTTP {code}"));
                attributes.push(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
            }
        }
        if let Some(e) = self.error {
            status = Status::error(e);
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, e));
        }
        let ids = &self.inv.span;
        let span = span_data(
            context(ids, ids.span_id, self.inv.trace.tracestate.as_deref()),
            ids.parent_id,
            self.trigger.kind(),
            self.inv.function.to_string(),
            ids.started,
            attributes,
            status,
        );
        self.telemetry.emit(SpanData {
            parent_span_is_remote: ids.parent_id != 0,
            ..span
        });
    }
}

/// A guest's outgoing request in flight: a CLIENT span, child of the
/// invocation span or of the guest span open when the request was sent.
pub struct OutboundRecord {
    telemetry: Telemetry,
    inv: Arc<Invocation>,
    span_id: u64,
    parent_id: u64,
    started: SystemTime,
    method: String,
    attributes: Vec<KeyValue>,
}

impl OutboundRecord {
    /// Starts recording the request `span_id` names (its headers carry that
    /// id), made under the span `parent_id`.
    pub fn start<B>(
        telemetry: &Telemetry,
        inv: &Arc<Invocation>,
        (span_id, parent_id): (u64, u64),
        req: &http::Request<B>,
    ) -> Self {
        let uri = req.uri();
        let mut attributes = vec![
            KeyValue::new(semconv::HTTP_REQUEST_METHOD, method(req.method())),
            KeyValue::new(semconv::URL_FULL, uri.to_string()),
        ];
        if let Some(host) = uri.host() {
            attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_owned()));
        }
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        if let Some(p) = port {
            attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(p)));
        }
        OutboundRecord {
            telemetry: telemetry.clone(),
            inv: inv.clone(),
            span_id,
            parent_id,
            started: SystemTime::now(),
            method: req.method().as_str().to_owned(),
            attributes,
        }
    }

    /// Ends the span with the response status, or the error that stopped the request.
    pub fn end(mut self, outcome: Result<u16, String>) {
        let mut status = Status::Unset;
        match outcome {
            Ok(code) => {
                self.attributes
                    .push(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code)));
                if code >= 400 {
                    status = Status::error(format!("HTTP {code}"));
                    self.attributes
                        .push(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
                }
            }
            Err(e) => {
                self.attributes
                    .push(KeyValue::new(semconv::ERROR_TYPE, Value::from(e.clone())));
                status = Status::error(e);
            }
        }
        let ids = &self.inv.span;
        let span = span_data(
            context(ids, self.span_id, self.inv.trace.tracestate.as_deref()),
            self.parent_id,
            SpanKind::Client,
            std::mem::take(&mut self.method),
            self.started,
            std::mem::take(&mut self.attributes),
            status,
        );
        self.telemetry.emit(span);
    }
}

/// An INTERNAL span of the host's or a guest's, ended: a guest span
/// (`nimbus:function/tracing`) or a config fetch.
pub struct SpanRecord {
    /// Its id (a guest's `traceparent` for it names this id).
    pub span_id: u64,
    /// Its parent in the same trace (0: a root span).
    pub parent_id: u64,
    /// Its name.
    pub name: Cow<'static, str>,
    /// When it started.
    pub started: SystemTime,
    /// Its attributes, already bounded by the caller.
    pub attributes: Vec<KeyValue>,
    /// Set when it failed: its `error.type` and a description.
    pub error: Option<(&'static str, String)>,
}

impl Telemetry {
    /// Exports `span`, ending now, in `trace` (with the caller's `tracestate`).
    pub fn record_internal(&self, trace: &SpanIds, tracestate: Option<&str>, span: SpanRecord) {
        let mut attributes = span.attributes;
        let status = match span.error {
            Some((kind, message)) => {
                attributes.push(KeyValue::new(semconv::ERROR_TYPE, kind));
                Status::error(message)
            }
            None => Status::Unset,
        };
        self.emit(span_data(
            context(trace, span.span_id, tracestate),
            span.parent_id,
            SpanKind::Internal,
            span.name,
            span.started,
            attributes,
            status,
        ));
    }
}
