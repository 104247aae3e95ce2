//! The spans Nimbus exports, built as [`FinishedSpan`]s with the host's own ids.

use super::Telemetry;
use crate::SpanIds;
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

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
    fn kind(self) -> Kind {
        match self {
            Trigger::Http | Trigger::Other => Kind::Server,
            Trigger::PubSub | Trigger::Datasource | Trigger::Timer => Kind::Consumer,
        }
    }
}

/// An attribute value sharing `s` instead of copying it.
fn shared(s: &Arc<str>) -> Value {
    Value::String(s.clone().into())
}

/// `http.request.method` (and a client span's name): the standard methods
/// without an allocation.
fn method(m: &http::Method) -> StringValue {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|s| **s == m.as_str()) {
        Some(s) => StringValue::from(*s),
        None => StringValue::from(m.as_str().to_owned()),
    }
}

/// What a span is to its trace (OTLP `Span.SpanKind`; the discriminants are OTLP's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Work inside the host or a guest.
    Internal = 1,
    /// An invocation answering a request/response caller.
    Server = 2,
    /// A guest's outgoing request.
    Client = 3,
    /// An invocation handling a delivered event.
    Consumer = 5,
}

/// A finished span as [`super::otlp_encode`] encodes it, borrowed from
/// what recorded it (it is encoded before the recorder is gone): integer
/// ids, Unix-nanosecond times, the caller's `tracestate` as received (no
/// parsing).
#[derive(Debug, Clone)]
pub(super) struct FinishedSpan<'a> {
    /// The trace (never zero).
    pub(super) trace_id: u128,
    /// This span (never zero).
    pub(super) span_id: u64,
    /// Its parent; 0 for a root span.
    pub(super) parent_id: u64,
    /// W3C trace flags (bit 0: sampled).
    pub(super) flags: u8,
    /// Whether the parent is the caller's span, from another process.
    pub(super) parent_is_remote: bool,
    /// Its kind.
    pub(super) kind: Kind,
    /// Its name.
    pub(super) name: &'a str,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub(super) start_ns: u64,
    /// See `start_ns`.
    pub(super) end_ns: u64,
    /// Its attributes.
    pub(super) attributes: &'a [KeyValue],
    /// The error status's description; `None`: status unset.
    pub(super) error: Option<Cow<'a, str>>,
    /// The caller's W3C `tracestate` (validated when it came in).
    pub(super) tracestate: Option<&'a str>,
    /// Its events, in time order.
    pub(super) events: &'a [SpanEvent],
}

/// A timestamped event on a span (an injected fault, a breaker transition): OTLP's `Span.Event`.
#[derive(Debug, Clone)]
pub struct SpanEvent {
    /// When it happened.
    pub time: SystemTime,
    /// Its name.
    pub name: Cow<'static, str>,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
}

impl SpanEvent {
    /// The event's time in nanoseconds since the Unix epoch.
    pub(super) fn time_ns(&self) -> u64 {
        unix_nanos(self.time)
    }
}

impl<'a> FinishedSpan<'a> {
    /// A span `ids` (its own id and its parent's) in `trace`, started at
    /// `started` and ending now, with no attributes, status or tracestate.
    pub(super) fn new(
        trace: &SpanIds,
        (span_id, parent_id): (u64, u64),
        kind: Kind,
        name: &'a str,
        started: SystemTime,
    ) -> Self {
        FinishedSpan {
            trace_id: trace.trace_id,
            span_id,
            parent_id,
            flags: trace.flags,
            parent_is_remote: false,
            kind,
            name,
            start_ns: unix_nanos(started),
            end_ns: unix_nanos(SystemTime::now()),
            attributes: &[],
            error: None,
            tracestate: None,
            events: &[],
        }
    }

    /// Whether its trace is sampled (only those are exported).
    pub(super) fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// `t` in nanoseconds since the Unix epoch (0 before it, as the SDK does).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What the spans of one invocation read from it: its ids, names and the caller's `tracestate`.
///
/// nimbus-core's `Invocation` implements it. A record keeps the invocation it was started for (one `Arc`
/// clone) and reads these when it ends, instead of copying its strings into a struct of this crate's on
/// every invocation.
pub trait SpanSource: Send + Sync + 'static {
    /// The invocation span's ids and its caller's span.
    fn span_ids(&self) -> &SpanIds;
    /// The caller's W3C `tracestate`, validated when it came in.
    fn tracestate(&self) -> Option<&str>;
    /// The platform's request id (`faas.invocation_id`).
    fn request_id(&self) -> &Arc<str>;
    /// The function's name (`faas.name`, and the invocation span's name).
    fn function(&self) -> &Arc<str>;
}

/// An invocation span in progress; exported when dropped (so it covers a
/// streamed HTTP response body too, whichever way the invocation ends).
pub struct InvocationRecord {
    telemetry: Telemetry,
    inv: Arc<dyn SpanSource>,
    trigger: Trigger,
    attributes: Vec<KeyValue>,
    status: Option<u16>,
    error: Option<&'static str>,
    events: Vec<SpanEvent>,
}

impl InvocationRecord {
    /// Starts recording `inv` (its start time is the invocation's);
    /// `coldstart` is the host's: true for the process's first invocation.
    pub fn start<I: SpanSource>(
        telemetry: &Telemetry,
        inv: &Arc<I>,
        trigger: Trigger,
        coldstart: bool,
    ) -> InvocationRecord {
        // Sized for everything the span can get, and the ids shared, not
        // copied: the span costs as few allocations as it can.
        let mut attributes = Vec::with_capacity(10);
        attributes.extend([
            KeyValue::new(semconv::FAAS_INVOCATION_ID, shared(inv.request_id())),
            KeyValue::new(semconv::FAAS_COLDSTART, coldstart),
            KeyValue::new(semconv::FAAS_TRIGGER, trigger.as_str()),
            KeyValue::new(semconv::FAAS_NAME, shared(inv.function())),
        ]);
        InvocationRecord {
            telemetry: telemetry.clone(),
            inv: inv.clone(),
            trigger,
            attributes,
            status: None,
            error: None,
            events: Vec::new(),
        }
    }

    /// Adds the HTTP request's method and path.
    pub fn http_request<B>(&mut self, req: &http::Request<B>) {
        self.attributes.push(KeyValue::new(
            semconv::HTTP_REQUEST_METHOD,
            Value::String(method(req.method())),
        ));
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

    /// Adds an attribute.
    pub fn attribute(&mut self, kv: KeyValue) {
        self.attributes.push(kv);
    }

    /// Adds an event.
    pub fn event(&mut self, event: SpanEvent) {
        self.events.push(event);
    }
}

impl Drop for InvocationRecord {
    fn drop(&mut self) {
        if !self.inv.span_ids().sampled() {
            return;
        }
        let mut error = None;
        if let Some(code) = self.status {
            self.attributes
                .push(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code)));
            if code >= 500 {
                error = Some(Cow::Owned(format!("HTTP {code}")));
                self.attributes
                    .push(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
            }
        }
        if let Some(e) = self.error {
            error = Some(Cow::Borrowed(e));
            self.attributes.push(KeyValue::new(semconv::ERROR_TYPE, e));
        }
        let ids = self.inv.span_ids();
        self.telemetry.emit(&FinishedSpan {
            parent_is_remote: ids.parent_id != 0,
            attributes: &self.attributes,
            error,
            tracestate: self.inv.tracestate(),
            events: &self.events,
            ..FinishedSpan::new(
                ids,
                (ids.span_id, ids.parent_id),
                self.trigger.kind(),
                self.inv.function(),
                ids.started,
            )
        });
    }
}

/// A guest's outgoing request in flight: a CLIENT span, child of the
/// invocation span or of the guest span open when the request was sent.
pub struct OutboundRecord {
    telemetry: Telemetry,
    inv: Arc<dyn SpanSource>,
    span_id: u64,
    parent_id: u64,
    started: SystemTime,
    method: StringValue,
    attributes: Vec<KeyValue>,
    events: Vec<SpanEvent>,
}

impl OutboundRecord {
    /// Starts recording the request `span_id` names (its headers carry that
    /// id), made under the span `parent_id`.
    pub fn start<I: SpanSource, B>(
        telemetry: &Telemetry,
        inv: &Arc<I>,
        (span_id, parent_id): (u64, u64),
        req: &http::Request<B>,
    ) -> Self {
        let uri = req.uri();
        let method = method(req.method());
        let mut attributes = vec![
            KeyValue::new(semconv::HTTP_REQUEST_METHOD, Value::String(method.clone())),
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
            method,
            attributes,
            events: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub fn attribute(&mut self, kv: KeyValue) {
        self.attributes.push(kv);
    }

    /// Adds an event.
    pub fn event(&mut self, event: SpanEvent) {
        self.events.push(event);
    }

    /// Ends the span with the response status, or the error that stopped the request.
    pub fn end(mut self, outcome: Result<u16, String>) {
        let ids = self.inv.span_ids();
        if !ids.sampled() {
            return;
        }
        let mut error = None;
        match outcome {
            Ok(code) => {
                self.attributes
                    .push(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code)));
                if code >= 400 {
                    error = Some(Cow::Owned(format!("HTTP {code}")));
                    self.attributes
                        .push(KeyValue::new(semconv::ERROR_TYPE, code.to_string()));
                }
            }
            Err(e) => {
                self.attributes
                    .push(KeyValue::new(semconv::ERROR_TYPE, Value::from(e.clone())));
                error = Some(Cow::Owned(e));
            }
        }
        self.telemetry.emit(&FinishedSpan {
            attributes: &self.attributes,
            error,
            tracestate: self.inv.tracestate(),
            events: &self.events,
            ..FinishedSpan::new(
                ids,
                (self.span_id, self.parent_id),
                Kind::Client,
                self.method.as_str(),
                self.started,
            )
        });
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
    /// Records the host's boot as `nimbus.init`, the root span of the boot's
    /// trace `ids` (boot-time config fetches are its children).
    pub fn record_init(&self, ids: &SpanIds, started: SystemTime, functions: usize) {
        let attributes = [
            KeyValue::new(semconv::FAAS_COLDSTART, true),
            KeyValue::new("nimbus.functions", functions as i64),
        ];
        self.emit(&FinishedSpan {
            attributes: &attributes,
            ..FinishedSpan::new(ids, (ids.span_id, 0), Kind::Internal, "nimbus.init", started)
        });
    }

    /// Exports `span`, ending now, in `trace` (with the caller's `tracestate`).
    pub fn record_internal(&self, trace: &SpanIds, tracestate: Option<&str>, span: SpanRecord) {
        if !trace.sampled() {
            return;
        }
        let mut attributes = span.attributes;
        let error = span.error.map(|(kind, message)| {
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, kind));
            Cow::Owned(message)
        });
        self.emit(&FinishedSpan {
            attributes: &attributes,
            error,
            tracestate,
            ..FinishedSpan::new(
                trace,
                (span.span_id, span.parent_id),
                Kind::Internal,
                &span.name,
                span.started,
            )
        });
    }
}
