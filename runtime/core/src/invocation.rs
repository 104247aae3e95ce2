//! What one invocation is: its identity, deadline and trace context, the
//! payload going in and the outcome coming out. Adapters build these at the
//! platform edge; capabilities read them, never a process-wide variable.

use crate::Body;
use crate::caps::trace::SpanIds;
pub use crate::caps::trace::TraceContext;
use crate::caps::trace::propagate::ChildOf;
use crate::logs::LogTap;
use crate::telemetry::{SpanSource, Trigger};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One invocation of one function.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The platform's request id (or a fresh one).
    pub request_id: Arc<str>,
    /// The app the function belongs to (the manifest's `[app] name`): the `app` field of its log lines.
    pub app: Arc<str>,
    /// The function's name.
    pub function: Arc<str>,
    /// When the guest is stopped, on the host's monotonic clock.
    pub deadline: Instant,
    /// The same instant in milliseconds since the Unix epoch, as the guest sees it.
    pub deadline_unix_ms: u64,
    /// What set the deadline: a deadline error names it.
    pub deadline_cause: DeadlineCause,
    /// The W3C trace context, as the guest sees it: its `traceparent` names
    /// the invocation's own span ([`Invocation::span`]) as the parent, so
    /// whatever the guest does chains under the invocation.
    pub trace: TraceContext,
    /// The invocation span's ids and its caller's span (the incoming parent).
    pub span: SpanIds,
    /// Where this invocation's guest log lines are also kept, for a platform that answers with them
    /// ([`Invocation::tap_logs`]); `None` (the default): they only go to the log sink.
    pub log_tap: Option<LogTap>,
}

impl Invocation {
    /// An invocation of `function` (of `app`) that must finish within `timeout` from now.
    /// The invocation gets a span of its own, child of `trace`'s parent id.
    pub fn new(
        app: Arc<str>,
        function: Arc<str>,
        timeout: Duration,
        request_id: Option<String>,
        mut trace: TraceContext,
    ) -> Invocation {
        let now_unix_ms = unix_ms_now();
        let span = SpanIds::child_of(&trace.traceparent);
        trace.traceparent = span.traceparent_for(span.span_id);
        Invocation {
            request_id: request_id.map(Arc::from).unwrap_or_else(|| Arc::from(new_request_id())),
            app,
            function,
            deadline: Instant::now() + timeout,
            deadline_unix_ms: now_unix_ms + timeout.as_millis() as u64,
            deadline_cause: DeadlineCause::Timeout(timeout),
            trace,
            span,
            log_tap: None,
        }
    }

    /// Keeps this invocation's guest log lines (stdout, stderr, `wasi:logging`) in a tap as well as writing
    /// them to the log sink, and gives the tap to read them once the invocation is over.
    pub fn tap_logs(&mut self) -> LogTap {
        let tap = LogTap::default();
        self.log_tap = Some(tap.clone());
        tap
    }

    /// An invocation whose deadline the platform set (Lambda's
    /// `Lambda-Runtime-Deadline-Ms`, named by `source`): the guest is stopped `margin` before
    /// it, so the host can always report an outcome before the platform
    /// kills the environment, and never later than `timeout` from now.
    pub fn with_platform_deadline(
        app: Arc<str>,
        function: Arc<str>,
        timeout: Duration,
        platform: PlatformDeadline,
        margin: Duration,
        request_id: Option<String>,
        trace: TraceContext,
    ) -> Invocation {
        let left = Duration::from_millis(platform.unix_ms.saturating_sub(unix_ms_now())).saturating_sub(margin);
        if left >= timeout {
            return Invocation::new(app, function, timeout, request_id, trace);
        }
        let mut inv = Invocation::new(app, function, left, request_id, trace);
        inv.deadline_cause = DeadlineCause::Platform {
            source: platform.source,
            budget: left,
            timeout,
        };
        inv
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What the invocation's spans (and the client spans of its outgoing requests) read from it.
impl SpanSource for Invocation {
    fn span_ids(&self) -> &SpanIds {
        &self.span
    }

    fn tracestate(&self) -> Option<&str> {
        self.trace.tracestate.as_deref()
    }

    fn request_id(&self) -> &Arc<str> {
        &self.request_id
    }

    fn function(&self) -> &Arc<str> {
        &self.function
    }
}

/// A platform's deadline for one invocation, as it announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformDeadline {
    /// The deadline in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Where it came from, for error messages (`Lambda-Runtime-Deadline-Ms`).
    pub source: &'static str,
}

/// What set an invocation's deadline, carried with it so that a deadline error names the real cause: the
/// manifest's `timeout`, or a platform deadline that came first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineCause {
    /// The function's `timeout` (from the manifest, or the budget a caller gave [`Invocation::new`]).
    Timeout(Duration),
    /// The platform's deadline, less the host's margin, came before the manifest's `timeout`.
    Platform {
        /// Where the platform's deadline came from (`Lambda-Runtime-Deadline-Ms`).
        source: &'static str,
        /// The time the invocation had.
        budget: Duration,
        /// The manifest's `timeout`, which was longer.
        timeout: Duration,
    },
}

impl DeadlineCause {
    /// The time the invocation had before it was stopped.
    pub fn budget(&self) -> Duration {
        match *self {
            DeadlineCause::Timeout(t) => t,
            DeadlineCause::Platform { budget, .. } => budget,
        }
    }
}

impl std::fmt::Display for DeadlineCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            DeadlineCause::Timeout(t) => write!(f, "the invocation ran longer than its {}ms timeout", t.as_millis()),
            DeadlineCause::Platform {
                source,
                budget,
                timeout,
            } => write!(
                f,
                "stopped at the platform deadline ({source}, less the host's margin) after {}, {} before the \
                 manifest timeout of {}",
                Seconds(budget),
                Seconds(timeout.saturating_sub(budget)),
                Seconds(timeout)
            ),
        }
    }
}

/// A duration for people: `850 ms`, `1.2 s`, `30 s`.
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if ms < 1000 {
            write!(f, "{ms} ms")
        } else if ms.is_multiple_of(1000) {
            write!(f, "{} s", ms / 1000)
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh request id, formatted like a UUID v4 (as Lambda's are).
pub fn new_request_id() -> String {
    let v = fastrand::u128(..);
    let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The source kind of an event (mirrors `nimbus:function/types.event-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// Direct invocation.
    Direct,
    /// SQS batch.
    Sqs,
    /// SNS notification.
    Sns,
    /// S3 notification.
    S3,
    /// EventBridge event.
    EventBridge,
    /// Scheduled event.
    Schedule,
    /// DynamoDB stream.
    DynamoDb,
    /// Kinesis stream.
    Kinesis,
    /// Anything else.
    Other,
}

/// The `faas.trigger` of an event from each source.
impl From<EventSource> for Trigger {
    fn from(source: EventSource) -> Trigger {
        match source {
            EventSource::Sqs | EventSource::Sns | EventSource::EventBridge | EventSource::Kinesis => Trigger::PubSub,
            EventSource::S3 | EventSource::DynamoDb => Trigger::Datasource,
            EventSource::Schedule => Trigger::Timer,
            EventSource::Direct | EventSource::Other => Trigger::Other,
        }
    }
}

/// An event for an event function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Where it came from.
    pub source: EventSource,
    /// The raw payload (JSON for every AWS source).
    pub payload: Vec<u8>,
}

/// What an invocation carries in.
// Payloads are moved once into `invoke`, never stored: boxing the request buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Payload {
    /// An HTTP request for an HTTP function.
    Http(http::Request<Body>),
    /// An event for an event function.
    Event(Event),
    /// A connection's lifecycle event for a WebSocket function, and the sender its `connections` calls
    /// use in this invocation (`None`: the boot's default).
    WebSocket(crate::websocket::WsEvent, Option<crate::websocket::Sender>),
    /// One run of a durable task (from [`nimbus_checkpoint::Durable::begin`]) for a task function; the
    /// invocation ends the run in the task store ([`Outcome::Task`]).
    Task(nimbus_checkpoint::Run),
}

impl Payload {
    /// The kind of function this payload is for.
    pub fn kind(&self) -> crate::Kind {
        match self {
            Payload::Http(_) => crate::Kind::Http,
            Payload::Event(_) => crate::Kind::Event,
            Payload::WebSocket(..) => crate::Kind::WebSocket,
            Payload::Task(_) => crate::Kind::Task,
        }
    }
}

/// What an invocation produced.
pub enum Outcome {
    /// An HTTP response; its body may still be streaming from the guest.
    Http(http::Response<Body>),
    /// An event function's output payload.
    Event(Vec<u8>),
    /// A WebSocket function's answer.
    WebSocket(crate::websocket::WsOutcome),
    /// How a task run ended, once committed to the task store.
    Task(RunEnd),
}

/// How one run of a task ended, once the invocation has committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The task finished; its result is committed.
    Done,
    /// The guest yielded; the continuation is queued.
    Yielded,
    /// The guest hit its deadline after committing a checkpoint; the continuation is queued and the next run
    /// resumes from that checkpoint.
    DeadlineResumed,
    /// The run failed with this error: retried from the last checkpoint, or the task is failed once
    /// `task.max_attempts` runs failed (the task's status says which).
    Failed(String),
    /// A newer run took the task over; this run wrote nothing more.
    Fenced,
}

impl Outcome {
    /// The HTTP response of an HTTP function's invocation; any other outcome is a host bug, reported as
    /// [`crate::InvokeError::Internal`].
    pub fn into_http(self) -> Result<http::Response<Body>, crate::InvokeError> {
        match self {
            Outcome::Http(resp) => Ok(resp),
            other => Err(crate::InvokeError::internal(format!(
                "an HTTP invocation produced {other:?}"
            ))),
        }
    }

    /// The output of an event function's invocation; any other outcome is a host bug.
    pub fn into_event(self) -> Result<Vec<u8>, crate::InvokeError> {
        match self {
            Outcome::Event(out) => Ok(out),
            other => Err(crate::InvokeError::internal(format!(
                "an event invocation produced {other:?}"
            ))),
        }
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Http(r) => write!(f, "Outcome::Http({})", r.status()),
            Outcome::Event(p) => write!(f, "Outcome::Event({} bytes)", p.len()),
            Outcome::WebSocket(w) => write!(f, "Outcome::WebSocket({w:?})"),
            Outcome::Task(end) => write!(f, "Outcome::Task({end:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::trace::is_valid_traceparent;

    #[test]
    fn traceparent_is_validated() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceContext::from_w3c(Some(ok), Some("a=b")).traceparent, ok);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let t = TraceContext::from_w3c(Some(bad), None);
            assert_ne!(t.traceparent, bad);
            assert!(is_valid_traceparent(&t.traceparent), "{}", t.traceparent);
        }
    }

    fn lambda(unix_ms: u64) -> PlatformDeadline {
        PlatformDeadline {
            unix_ms,
            source: "Lambda-Runtime-Deadline-Ms",
        }
    }

    #[test]
    fn platform_deadline_keeps_a_margin_and_never_exceeds_the_timeout() {
        let f: Arc<str> = Arc::from("f");
        let lambda_deadline = unix_ms_now() + 3_000;
        let margin = Duration::from_millis(100);
        let thirty = Duration::from_secs(30);
        let inv = Invocation::with_platform_deadline(
            Arc::from("shop"),
            f.clone(),
            thirty,
            lambda(lambda_deadline),
            margin,
            None,
            TraceContext::new_root(),
        );
        let early = lambda_deadline - inv.deadline_unix_ms;
        assert!((100..=150).contains(&early), "{early}");
        assert!(inv.remaining() <= Duration::from_millis(2_900));
        // The platform's deadline came first, and the cause says so.
        assert!(
            matches!(inv.deadline_cause, DeadlineCause::Platform { source: "Lambda-Runtime-Deadline-Ms", budget, timeout }
                if timeout == thirty && budget <= Duration::from_millis(2_900) && budget >= Duration::from_millis(2_800)),
            "{:?}",
            inv.deadline_cause
        );
        // The manifest's timeout still applies when it is shorter, and is then the cause.
        let half = Duration::from_millis(500);
        let inv = Invocation::with_platform_deadline(
            Arc::from("shop"),
            f.clone(),
            half,
            lambda(lambda_deadline),
            margin,
            None,
            TraceContext::new_root(),
        );
        assert!(inv.remaining() <= half);
        assert_eq!(inv.deadline_cause, DeadlineCause::Timeout(half));
        // A deadline already inside the margin leaves nothing: the guest is stopped at once.
        let inv = Invocation::with_platform_deadline(
            Arc::from("shop"),
            f,
            thirty,
            lambda(unix_ms_now() + 50),
            margin,
            None,
            TraceContext::new_root(),
        );
        assert_eq!(inv.remaining(), Duration::ZERO);
        assert_eq!(inv.deadline_cause.budget(), Duration::ZERO);
    }

    #[test]
    fn a_deadline_cause_names_what_stopped_the_invocation() {
        let timeout = DeadlineCause::Timeout(Duration::from_secs(30)).to_string();
        assert_eq!(timeout, "the invocation ran longer than its 30000ms timeout");
        let platform = DeadlineCause::Platform {
            source: "Lambda-Runtime-Deadline-Ms",
            budget: Duration::from_millis(1_850),
            timeout: Duration::from_secs(30),
        }
        .to_string();
        assert!(
            platform.contains("platform deadline (Lambda-Runtime-Deadline-Ms"),
            "{platform}"
        );
        assert!(
            platform.contains("after 1.9 s") || platform.contains("after 1.8 s"),
            "{platform}"
        );
        assert!(platform.contains("before the manifest timeout of 30 s"), "{platform}");
        assert!(!platform.contains("30000ms timeout"), "{platform}");
        let short = DeadlineCause::Platform {
            source: "Lambda-Runtime-Deadline-Ms",
            budget: Duration::from_millis(850),
            timeout: Duration::from_millis(1_000),
        }
        .to_string();
        assert!(
            short.contains("after 850 ms, 150 ms before the manifest timeout of 1 s"),
            "{short}"
        );
    }

    #[test]
    fn request_ids_look_like_uuid_v4() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
