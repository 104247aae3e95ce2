//! AWS Lambda: the custom-runtime adapter behind `bootstrap`.
//!
//! The loop is `lambda_runtime`'s (`/next`, `/response`, `/error`); this
//! module turns each event into one Nimbus invocation and back:
//!
//! - the deadline comes from `Lambda-Runtime-Deadline-Ms`, less a margin, so
//!   the host reports an outcome before Lambda kills the environment;
//! - the trace id comes from `Lambda-Runtime-Trace-Id` (X-Ray), converted to
//!   W3C for the guest and kept verbatim as its `_X_AMZN_TRACE_ID`;
//! - HTTP events ([`decode`]) go to `wasi:http` functions and come back in
//!   their source's response shape ([`encode`]), failures included (500,
//!   504, … as API Gateway would answer);
//! - other events go to `events.handle`; a failure is reported to
//!   `/invocation/{id}/error` with Nimbus's `errorType`;
//! - with span export or OTLP metrics on, the invocation's spans and metrics
//!   are flushed (both at once) before the result goes back to
//!   `lambda_runtime`: once it is posted, Lambda may freeze the environment
//!   before a background export runs. The flush is bounded
//!   (`NIMBUS_OTEL_FLUSH_TIMEOUT_MS`, default 200 ms), so a slow or
//!   unreachable collector delays a result by at most that, never fails it.
//!
//! Boot failures are reported to `/init/error` by [`report_init_error`].

pub mod decode;
pub mod encode;
pub mod management;
pub mod tasks;

use crate::reply;
use crate::reply::Reply;
use bytes::Bytes;
use decode::Origin;
use http_body_util::BodyExt;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use nimbus_core::logs::{LogSink, format_record};
use nimbus_core::manifest::offered_subprotocols;
use nimbus_core::websocket::{Rejection, WsEvent, WsOutcome};
use nimbus_core::{Event, EventSource, Function, Host, Invocation, InvokeError, Kind, Outcome, Payload, TraceContext};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;

/// The Runtime API version prefix.
pub const API_PREFIX: &str = "/2018-06-01/runtime";

/// What the Lambda adapter needs besides the host.
#[derive(Clone)]
pub struct LambdaOptions {
    /// The guest is stopped this long before Lambda's deadline.
    pub deadline_margin: Duration,
    /// Where invocation error lines go.
    pub log_sink: LogSink,
    /// The AWS task store, when the function is a task function.
    pub tasks: Option<Arc<tasks::LambdaTasks>>,
}

impl Default for LambdaOptions {
    fn default() -> Self {
        LambdaOptions {
            // Time to classify the failure, post it and flush logs, with room
            // for a slow, freshly thawed environment.
            deadline_margin: Duration::from_millis(100),
            log_sink: LogSink::Stdout,
            tasks: None,
        }
    }
}

/// The environment variables `lambda_runtime` requires (it panics without
/// them); [`check_env`] names the missing ones instead.
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
    Ok(())
}

/// The host and port of the Runtime API from `AWS_LAMBDA_RUNTIME_API`'s value: `127.0.0.1:9001`, or a URL
/// such as `http://127.0.0.1:9001/.rt/fn`. The host keeps IPv6 brackets off. `None`: neither.
pub fn runtime_api_authority(value: &str) -> Option<(String, u16)> {
    let (scheme, rest) = match value.trim().split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, value.trim()),
    };
    let authority: http::uri::Authority = rest.split(['/', '?']).next()?.parse().ok()?;
    // `Authority` accepts any text after the colon; a port that is not a number is a bad value.
    let has_port = !authority.as_str().ends_with(authority.host());
    let port = match (authority.port_u16(), has_port, scheme) {
        (Some(p), _, _) => p,
        (None, true, _) => return None,
        (None, false, Some("https")) => 443,
        (None, false, _) => 80,
    };
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The addresses of the Runtime API (which also serves the Extensions and Telemetry APIs), from
/// `AWS_LAMBDA_RUNTIME_API`: no guest may reach them, whatever its allow-list says (a guest that could
/// would take other invocations' events). Empty when the variable is unset; `Err` with the value when it
/// cannot be read or its host does not resolve.
pub async fn runtime_api_endpoints() -> Result<Vec<std::net::SocketAddr>, String> {
    let Ok(value) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return Ok(Vec::new());
    };
    let (host, port) = runtime_api_authority(&value).ok_or_else(|| value.clone())?;
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(addrs) => Ok(addrs.collect()),
        Err(_) => Err(value),
    }
}

/// The event exactly as Lambda delivered it: JSON, or why it is not.
///
/// Deserializing never fails, so a malformed event reaches our handler and
/// is reported as `Function.BadEvent` with a clear message instead of
/// `lambda_runtime`'s internal error type.
pub struct RawEvent(Result<Box<RawValue>, String>);

impl<'de> Deserialize<'de> for RawEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawEvent(Box::<RawValue>::deserialize(d).map_err(|e| e.to_string())))
    }
}

/// Serves invocations of `function` until the Runtime API goes away.
/// Call [`check_env`] first: `lambda_runtime` panics without its variables.
pub async fn run(host: Arc<Host>, function: usize, opts: LambdaOptions) -> Result<(), lambda_runtime::Error> {
    let handler = Arc::new(Handler {
        host,
        function,
        opts,
        senders: management::Senders::default(),
        ws_endpoint: management::endpoint_from_env(),
    });
    let service = service_fn(move |ev: LambdaEvent<RawEvent>| {
        let h = handler.clone();
        async move {
            let result = h.handle(ev).await;
            h.host.flush_telemetry().await;
            result
        }
    });
    lambda_runtime::Runtime::new(service).run().await
}

struct Handler {
    host: Arc<Host>,
    function: usize,
    opts: LambdaOptions,
    /// Management API senders by endpoint, for WebSocket invocations.
    senders: management::Senders,
    /// `NIMBUS_WEBSOCKET_ENDPOINT`, read once: it overrides each event's own endpoint.
    ws_endpoint: Option<String>,
}

impl Handler {
    async fn handle(&self, ev: LambdaEvent<RawEvent>) -> Result<Box<RawValue>, Diagnostic> {
        let f = &self.host.functions()[self.function];
        let ctx = ev.context;
        let trace = match ctx.xray_trace_id.as_deref() {
            Some(x) => TraceContext::from_xray(x),
            None => TraceContext::new_root(),
        };
        let rid = Some(ctx.request_id);
        // A task run's span joins the platform's trace itself (the invocation below only carries the deadline).
        let task_trace = (f.kind == Kind::Task).then(|| trace.clone());
        let inv = if ctx.deadline > 0 {
            Invocation::with_platform_deadline(
                f.name.clone(),
                f.limits.timeout,
                ctx.deadline,
                self.opts.deadline_margin,
                rid,
                trace,
            )
        } else {
            self.host.new_invocation(f, rid, trace)
        };
        let raw = match ev.payload.0 {
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
                    InvokeError::Internal(format!("task function `{}` has no task store", f.name)),
                )),
            },
            Kind::Event => {
                let source = match origin {
                    Origin::Event(s) => s,
                    _ => EventSource::Other,
                };
                self.event(f, inv, source, raw).await
            }
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
                    Ok(resp) => collect(resp).await,
                    Err(e) => Err(e),
                }
            }
        };
        let reply = reply.unwrap_or_else(|e| {
            self.log_failure(&meta, &e);
            reply::for_error(&e)
        });
        encode::http_response(origin, reply).unwrap_or_else(|e| {
            let e = InvokeError::Internal(format!("cannot encode the response: {e}"));
            self.log_failure(&meta, &e);
            // An error reply is plain JSON text: it always encodes.
            encode::http_response(origin, reply::for_error(&e)).unwrap_or_default()
        })
    }

    async fn event(
        &self,
        f: &Function,
        inv: Invocation,
        source: EventSource,
        raw: Box<RawValue>,
    ) -> Result<Box<RawValue>, Diagnostic> {
        let meta = inv.clone();
        let payload = Box::<str>::from(raw).into_boxed_bytes().into_vec();
        match self
            .host
            .invoke(f, inv, Payload::Event(Event { source, payload }))
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
        let sender = match self.ws_endpoint.clone().or(req.endpoint) {
            Some(endpoint) => Some(self.senders.get(&endpoint).await),
            None => None,
        };
        let meta = inv.clone();
        match self.host.invoke(f, inv, Payload::WebSocket(req.event, sender)).await {
            Ok(Outcome::WebSocket(outcome)) => Ok(encode::websocket_response(outcome, subprotocol.as_deref())),
            Ok(other) => Err(self.failed(
                &meta,
                InvokeError::Internal(format!("a WebSocket invocation produced {other:?}")),
            )),
            Err(e) => Err(self.failed(&meta, e)),
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
        let line = format_record(
            "ERROR",
            "invocation failed",
            Some(inv),
            &[("error_type", error_type.into()), ("error", message.into())],
        );
        self.opts.log_sink.write_line(&line);
    }
}

/// Reads a guest's whole response: Lambda's response is one JSON document.
async fn collect(resp: http::Response<nimbus_core::Body>) -> Result<Reply, InvokeError> {
    let (parts, body) = resp.into_parts();
    let body: Bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(match e {
                nimbus_core::HttpError::HttpResponseBodySize(limit) => InvokeError::TooLarge {
                    what: "response body",
                    size: limit.unwrap_or(0) + 1,
                    limit: limit.unwrap_or(0),
                    quota: "max_response_body",
                },
                other => InvokeError::Trap(format!(
                    "the function failed while sending its response body: {other:?}"
                )),
            });
        }
    };
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Reports a boot failure to `/init/error` (Lambda then fails the init and
/// shows the message). Errors reaching the Runtime API are returned, not panicked on.
pub async fn report_init_error(error_type: &str, message: &str) -> Result<(), String> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| "AWS_LAMBDA_RUNTIME_API is not set".to_string())?;
    let endpoint: http::Uri = format!("http://{api}")
        .parse()
        .map_err(|e| format!("bad AWS_LAMBDA_RUNTIME_API {api:?}: {e}"))?;
    let client = lambda_runtime_api_client::Client::builder()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("Runtime API client: {e}"))?;
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string();
    let req = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri(format!("{API_PREFIX}/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(lambda_runtime_api_client::body::Body::from(body))
        .map_err(|e| e.to_string())?;
    let resp = client.call(req).await.map_err(|e| format!("POST /init/error: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("POST /init/error answered {}", resp.status()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::runtime_api_authority;

    #[test]
    fn the_runtime_api_address_is_read_from_either_form() {
        for (value, want) in [
            ("127.0.0.1:9001", Some(("127.0.0.1", 9001))),
            ("http://127.0.0.1:9001/.rt/fn", Some(("127.0.0.1", 9001))),
            ("http://169.254.100.1:9001", Some(("169.254.100.1", 9001))),
            ("localhost:9001", Some(("localhost", 9001))),
            ("[::1]:9001", Some(("::1", 9001))),
            ("http://[fd00::1]:8080/2018-06-01/runtime", Some(("fd00::1", 8080))),
            ("http://runtime.internal/x", Some(("runtime.internal", 80))),
            (" 127.0.0.1:9001 ", Some(("127.0.0.1", 9001))),
            ("", None),
            ("http://", None),
            ("127.0.0.1:notaport", None),
        ] {
            let got = runtime_api_authority(value);
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{value:?}");
        }
    }
}
