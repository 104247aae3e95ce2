//! AWS Lambda: the custom-runtime adapter behind `bootstrap`.
//!
//! The loop ([`run`]) speaks the Runtime API through [`runtime_api`]
//! (`/next`, `/response`, `/error`); this module turns each event into one
//! Nimbus invocation and back:
//!
//! - the deadline comes from `Lambda-Runtime-Deadline-Ms`, less a margin, so
//!   the host reports an outcome before Lambda kills the environment; a
//!   missing header, or one that is no deadline Lambda could set (`600000`,
//!   as another emulator sent), leaves the manifest timeout in force, with a
//!   warning logged once per process;
//! - the trace id comes from `Lambda-Runtime-Trace-Id` (X-Ray), converted to
//!   W3C for the guest and kept verbatim as its `_X_AMZN_TRACE_ID`, never set
//!   in the host's own environment;
//! - HTTP events ([`decode`]) go to `wasi:http` functions and come back in
//!   their source's response shape ([`encode`]), failures included (500,
//!   504, … as API Gateway would answer);
//! - other events go to `events.handle`; a failure is reported to
//!   `/invocation/{id}/error` with Nimbus's `errorType`;
//! - with span export or OTLP metrics on, the invocation's spans and metrics
//!   are flushed (both at once) before the result is posted: once it is,
//!   Lambda may freeze the environment before a background export runs. The
//!   flush is bounded (`NIMBUS_OTEL_FLUSH_TIMEOUT_MS`, default 200 ms), so a
//!   slow or unreachable collector delays a result by at most that, never
//!   fails it.
//!
//! The loop ends only when the Runtime API cannot go on: no answer, a 5xx
//! (which AWS documents as unrecoverable), or an event without a request id,
//! which can never be answered. It returns that as a [`RuntimeApiError`]
//! naming the call; `bootstrap` logs it and exits 1. A 4xx to a posted result
//! (a response over Lambda's quota, a stale request id) fails that one
//! invocation: it is logged and the loop goes on, as `lambda_runtime`'s did.
//!
//! Boot failures are reported to `/init/error` by [`report_init_error`].

pub mod decode;
pub mod encode;
pub mod management;
pub mod runtime_api;
pub mod tasks;

use crate::reply;
use bytes::Bytes;
use decode::Origin;
use http_body_util::BodyExt;
use lambda_runtime::Diagnostic;
use nimbus_core::logs::LogSink;
use nimbus_core::manifest::offered_subprotocols;
use nimbus_core::websocket::{Rejection, WsEvent, WsOutcome};
use nimbus_core::{
    Event, Function, Host, Invocation, InvokeError, Kind, Outcome, Payload, PlatformDeadline, TraceContext,
};
use runtime_api::{DEADLINE_HEADER, DeadlineHeader, NextEvent, RuntimeApi, RuntimeApiError};
use serde_json::value::RawValue;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use runtime_api::API_PREFIX;

/// What the Lambda adapter needs besides the host.
#[derive(Clone)]
pub struct LambdaOptions {
    /// The guest is stopped this long before Lambda's deadline.
    pub deadline_margin: Duration,
    /// Where invocation error lines go.
    pub log_sink: LogSink,
    /// The AWS task store, when the function is a task function.
    pub tasks: Option<Arc<tasks::LambdaTasks>>,
    /// The API Gateway Management API every WebSocket send goes to (`NIMBUS_WEBSOCKET_ENDPOINT`), over the
    /// one each WebSocket event names.
    pub ws_endpoint: Option<String>,
}

impl Default for LambdaOptions {
    fn default() -> Self {
        LambdaOptions {
            // Time to classify the failure, post it and flush logs, with room
            // for a slow, freshly thawed environment.
            deadline_margin: Duration::from_millis(100),
            log_sink: LogSink::Stdout,
            tasks: None,
            ws_endpoint: None,
        }
    }
}

/// The environment variables Lambda sets for every custom runtime: without
/// them this is not Lambda, and [`check_env`] says so.
pub const REQUIRED_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Checks that this process runs where Lambda's runtime environment variables are set.
pub fn check_env() -> Result<(), String> {
    let missing: Vec<&str> = REQUIRED_ENV
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not running on AWS Lambda: {} not set (bootstrap is Lambda's custom runtime; use `nimbus serve` locally)",
            missing.join(", ")
        ));
    }
    if std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").is_ok_and(|m| m.parse::<i32>().is_err()) {
        return Err("AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a number".into());
    }
    if let Ok(api) = std::env::var(runtime_api::ENDPOINT_ENV) {
        // Not even an init error could be reported to it.
        runtime_api::parse_endpoint(&api).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The addresses of the Runtime API (which also serves the Extensions and Telemetry APIs), from
/// `AWS_LAMBDA_RUNTIME_API` ([`runtime_api::parse_endpoint`]): no guest may reach them, whatever its
/// allow-list says (a guest that could would take other invocations' events). Empty when the variable is
/// unset; an error when it cannot be read or its host does not resolve.
pub async fn runtime_api_endpoints() -> Result<Vec<std::net::SocketAddr>, String> {
    let Ok(value) = std::env::var(runtime_api::ENDPOINT_ENV) else {
        return Ok(Vec::new());
    };
    let endpoint = runtime_api::parse_endpoint(&value).map_err(|e| e.to_string())?;
    let authority = endpoint.authority();
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => Ok(addrs.collect()),
        Err(e) => Err(format!("{value:?}: its host does not resolve ({e})")),
    }
}

/// Serves invocations of `function` from the Runtime API that
/// `AWS_LAMBDA_RUNTIME_API` names, until it cannot go on (see the module docs).
pub async fn run(host: Arc<Host>, function: usize, opts: LambdaOptions) -> Result<Infallible, RuntimeApiError> {
    let api = RuntimeApi::from_env()?;
    let handler = Handler {
        host,
        function,
        opts,
        senders: management::Senders::default(),
        deadline_warned: AtomicBool::new(false),
    };
    loop {
        let event = api.next().await?;
        let result = handler.handle(&event).await;
        handler.host.flush_telemetry().await;
        let posted = match result {
            Ok(body) => {
                api.respond(&event, Bytes::from(Box::<str>::from(body).into_boxed_bytes()))
                    .await
            }
            Err(diagnostic) => api.report_error(&event, &diagnostic).await,
        };
        match posted {
            Ok(()) => {}
            // The Runtime API refused this one answer (Lambda's quota, a stale id): the invocation fails, the
            // environment goes on.
            Err(e) if e.is_refusal() => {
                tracing::error!(request_id = %event.request_id, "the Runtime API refused the result: {e}");
            }
            Err(e) => return Err(e),
        }
    }
}

struct Handler {
    host: Arc<Host>,
    function: usize,
    opts: LambdaOptions,
    /// Management API senders by endpoint, for WebSocket invocations.
    senders: management::Senders,
    /// Whether an event without a usable deadline was warned about (once per process).
    deadline_warned: AtomicBool,
}

impl Handler {
    async fn handle(&self, ev: &NextEvent) -> Result<Box<RawValue>, Diagnostic> {
        let f = &self.host.functions()[self.function];
        let trace = match ev.trace_id.as_deref() {
            Some(x) => TraceContext::from_xray(x),
            None => TraceContext::new_root(),
        };
        let rid = Some(ev.request_id.clone());
        // A task run's span joins the platform's trace itself (the invocation below only carries the deadline).
        let task_trace = (f.kind == Kind::Task).then(|| trace.clone());
        let inv = match &ev.deadline {
            DeadlineHeader::Epoch(unix_ms) => Invocation::with_platform_deadline(
                self.host.app().clone(),
                f.name.clone(),
                f.limits.timeout,
                PlatformDeadline {
                    unix_ms: *unix_ms,
                    source: DEADLINE_HEADER,
                },
                self.opts.deadline_margin,
                rid,
                trace,
            ),
            other => {
                self.warn_no_deadline(other, f);
                self.host.new_invocation(f, rid, trace)
            }
        };
        let raw = match serde_json::from_slice::<Box<RawValue>>(&ev.body) {
            Ok(raw) => raw,
            Err(e) => return Err(self.failed(&inv, InvokeError::BadEvent(format!("the event is not valid JSON: {e}")))),
        };
        let origin = decode::sniff(raw.get());
        match f.kind {
            Kind::Http if origin.is_http() => Ok(self.http(f, inv, origin, &raw).await),
            Kind::Http => {
                let hint = if origin == Origin::WebSocket {
                    " (a WebSocket API needs a function exporting `nimbus:function/websocket`)"
                } else {
                    ""
                };
                Err(self.failed(
                    &inv,
                    InvokeError::BadEvent(format!(
                        "function `{}` is an HTTP function: it takes API Gateway, Function URL and ALB events, \
                         not a {} event{hint}",
                        f.name,
                        origin.name()
                    )),
                ))
            }
            Kind::WebSocket if origin == Origin::WebSocket => self.websocket(f, inv, &raw).await,
            Kind::WebSocket => Err(self.failed(
                &inv,
                InvokeError::BadEvent(format!(
                    "function `{}` is a WebSocket function: it takes API Gateway WebSocket events, not a {} event",
                    f.name,
                    origin.name()
                )),
            )),
            Kind::Task => match (&self.opts.tasks, task_trace) {
                (Some(tasks), Some(trace)) => tasks.handle(f, &inv, trace, origin, &raw).await.inspect_err(|d| {
                    self.log_line(&inv, &d.error_type, &d.error_message);
                }),
                _ => Err(self.failed(
                    &inv,
                    InvokeError::internal(format!("task function `{}` has no task store", f.name)),
                )),
            },
            Kind::Event => self.event(f, inv, decode::event(origin, raw)).await,
        }
    }

    /// An HTTP event: always answered in the source's shape, failures included.
    async fn http(&self, f: &Function, inv: Invocation, origin: Origin, raw: &RawValue) -> Box<RawValue> {
        let meta = inv.clone();
        let reply = match decode::http_request(origin, raw.get()) {
            Err(msg) => Err(InvokeError::BadEvent(msg)),
            Ok(req) => {
                let req = req.map(|b| {
                    http_body_util::Full::new(b)
                        .map_err(|never| match never {})
                        .boxed_unsync()
                });
                match self
                    .host
                    .invoke(f, inv, Payload::Http(req))
                    .await
                    .and_then(Outcome::into_http)
                {
                    Ok(resp) => reply::collect(resp).await,
                    Err(e) => Err(e),
                }
            }
        };
        let reply = reply.unwrap_or_else(|e| {
            self.log_failure(&meta, &e);
            reply::for_error(&e)
        });
        encode::http_response(origin, reply).unwrap_or_else(|e| {
            let e = InvokeError::internal_from("cannot encode the response", e);
            self.log_failure(&meta, &e);
            // An error reply is plain JSON text: it always encodes.
            encode::http_response(origin, reply::for_error(&e)).unwrap_or_default()
        })
    }

    async fn event(&self, f: &Function, inv: Invocation, event: Event) -> Result<Box<RawValue>, Diagnostic> {
        let meta = inv.clone();
        match self
            .host
            .invoke(f, inv, Payload::Event(event))
            .await
            .and_then(Outcome::into_event)
        {
            Ok(out) => Ok(encode::event_output(out)),
            Err(e) => Err(self.failed(&meta, e)),
        }
    }

    /// An API Gateway WebSocket event: the guest's answer as the route's response (`statusCode`, `body`);
    /// its sends go to the API the event came from (or `NIMBUS_WEBSOCKET_ENDPOINT`).
    async fn websocket(&self, f: &Function, inv: Invocation, raw: &RawValue) -> Result<Box<RawValue>, Diagnostic> {
        let req = match decode::websocket_request(raw.get()) {
            Ok(req) => req,
            Err(m) => return Err(self.failed(&inv, InvokeError::BadEvent(m))),
        };
        // The subprotocol is the manifest's to choose, on `$connect`; a client offering only others is
        // refused here, without asking the function.
        let subprotocol = match (&req.event, &f.websocket) {
            (WsEvent::Connect(c), Some(spec)) => match spec.select_subprotocol(offered_subprotocols(&c.headers)) {
                Ok(p) => p.map(str::to_owned),
                Err(m) => {
                    return Ok(encode::websocket_response(
                        WsOutcome::Rejected(Rejection { status: 400, reason: m }),
                        None,
                    ));
                }
            },
            _ => None,
        };
        let sender = match self.opts.ws_endpoint.clone().or(req.endpoint) {
            Some(endpoint) => Some(self.senders.get(&endpoint).await),
            None => None,
        };
        let meta = inv.clone();
        match self.host.invoke(f, inv, Payload::WebSocket(req.event, sender)).await {
            Ok(Outcome::WebSocket(outcome)) => Ok(encode::websocket_response(outcome, subprotocol.as_deref())),
            Ok(other) => Err(self.failed(
                &meta,
                InvokeError::internal(format!("a WebSocket invocation produced {other:?}")),
            )),
            Err(e) => Err(self.failed(&meta, e)),
        }
    }

    /// An event without a usable deadline runs with the manifest timeout; that is said once per process, since
    /// a Runtime API that sends one such event sends them all.
    fn warn_no_deadline(&self, header: &DeadlineHeader, f: &Function) {
        if self.deadline_warned.swap(true, Ordering::Relaxed) {
            return;
        }
        let timeout_ms = f.limits.timeout.as_millis() as u64;
        match header {
            DeadlineHeader::Implausible(value) => tracing::warn!(
                app = %self.host.app(),
                function = %f.name,
                timeout_ms,
                "{DEADLINE_HEADER} {value:?} is no deadline (milliseconds since the Unix epoch, within the hour \
                 ahead): invocations run with the manifest timeout instead (warned once)"
            ),
            _ => tracing::warn!(
                app = %self.host.app(),
                function = %f.name,
                timeout_ms,
                "the event has no {DEADLINE_HEADER} header: invocations run with the manifest timeout (warned once)"
            ),
        }
    }

    /// Logs a failed invocation and turns it into Lambda's error report.
    fn failed(&self, inv: &Invocation, e: InvokeError) -> Diagnostic {
        self.log_failure(inv, &e);
        encode::diagnostic(&e)
    }

    fn log_failure(&self, inv: &Invocation, e: &InvokeError) {
        self.log_line(inv, e.error_type(), &e.to_string());
    }

    fn log_line(&self, inv: &Invocation, error_type: &str, message: &str) {
        reply::log_failure(&self.opts.log_sink, inv, error_type, message);
    }
}

/// Reports a boot failure to `/init/error` at the Runtime API that
/// `AWS_LAMBDA_RUNTIME_API` names (Lambda then fails the init and shows the
/// message). Errors reaching the Runtime API are returned, not panicked on.
pub async fn report_init_error(error_type: &str, message: &str) -> Result<(), RuntimeApiError> {
    let diagnostic = Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message.to_owned(),
    };
    RuntimeApi::from_env()?.init_error(&diagnostic).await
}
