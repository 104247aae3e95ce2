//! Alibaba Cloud Function Compute 3.0: the custom-runtime adapter behind `bootstrap`.
//!
//! Function Compute starts `/code/bootstrap` and sends every request to the HTTP server it opens on
//! `0.0.0.0:$FC_CUSTOM_LISTEN_PORT` (default 9000), with `x-fc-control-path` saying what it asks
//! ([`decode::control_path`]):
//!
//! - `/invoke` (InvokeFunction, timer, OSS, MNS and other triggers): an event function gets the body as its
//!   event, byte for byte, with the trigger recognised ([`decode::event_source`]); an HTTP function gets the
//!   request as sent (`POST /invoke`), as Function Compute 3.0 does for its web functions;
//! - `/http-invoke` (HTTP triggers, custom domains): the HTTP function gets method, path, query, headers and
//!   body as sent, without Function Compute's `x-fc-*` headers (the temporary credentials among them). An
//!   event function cannot take an HTTP request: it is refused with `400`, naming the function's kind;
//! - `/initialize`: `200` (the host booted before the server listened);
//! - `/pre-freeze`: telemetry is flushed (the instance may stay frozen a long time), then `200`;
//! - `/pre-stop`: in-flight requests finish (bounded by the drain timeout), telemetry is flushed, `200`.
//!
//! A request without a control path, or with one this runtime does not serve, is answered `400` in
//! Function Compute's error shape; the server goes on serving.
//!
//! Each invocation's request id is `x-fc-request-id`; its deadline is the smaller of the manifest's `timeout`
//! and `x-fc-function-timeout` (less the deadline margin); its trace parent is `traceparent` (3.0) or the
//! OpenTracing `x-fc-tracing-opentracing-span-context` (2.0). Every response carries `x-fc-status` and none
//! of the headers Function Compute forbids ([`encode`]); a guest's forbidden headers are dropped and logged
//! once per header name. `FC Invoke Start RequestId: …` / `FC Invoke End RequestId: …` (and the Initialize,
//! PreFreeze and PreStop pairs) go to stdout around each request ([`markers`]), beside the JSON log lines.
//!
//! The credentials Function Compute sends are kept ([`credentials`]) for the host's own calls; guests see
//! neither them nor the process's environment (`ALIBABA_CLOUD_*` included).

pub mod credentials;
pub mod decode;
pub mod encode;
pub mod markers;

use crate::listener::{ListenerLimits, Peer, authority};
use crate::local::body::read_limited;
use crate::serving::{self, InFlight, ServeError, Serving};
use decode::{ControlPath, FunctionTimeout};
use encode::FcStatus;
use http::header::HeaderName;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use markers::{Marked, Phase};
use nimbus_core::Settings;
use nimbus_core::caps::config::OosCredentials;
use nimbus_core::invocation::{new_request_id, unix_ms_now};
use nimbus_core::logs::LogSink;
use nimbus_core::settings::ListenerSettings;
use nimbus_core::{
    Body, Event, Function, Host, HttpError, Invocation, Kind, Outcome, Payload, PlatformDeadline, TraceContext,
};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The listener's limits on Function Compute: only its proxy connects, so there is no per-address bound, and
/// kept-alive connections are not closed after a short idle time. An instance is frozen between requests and
/// its clock jumps on thaw: a short idle timeout would close the proxy's connection just as it sends the next
/// request. The `NIMBUS_*` listener settings still apply over these.
pub fn limits(settings: &ListenerSettings) -> ListenerLimits {
    let mut limits = ListenerLimits::from_settings(settings);
    if settings.keep_alive_idle.is_none() {
        limits.keep_alive_idle = KEEP_ALIVE_IDLE;
    }
    if settings.max_connections_per_ip.is_none() {
        limits.max_connections_per_ip = None;
    }
    limits
}

/// How long a kept-alive connection from Function Compute's proxy may sit idle: a day, longer than an
/// instance usually lives.
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(24 * 3600);

/// Serves the host's one function (`host.functions()[0]`) on `0.0.0.0:$FC_CUSTOM_LISTEN_PORT` through
/// [`crate::serving`] (no `Date` header: Function Compute forbids it) until SIGTERM or SIGINT.
pub async fn serve(host: Arc<Host>, settings: &Settings, credentials: OosCredentials) -> Result<(), ServeError> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, settings.fc.port()));
    let mut serving = Serving::new(addr, limits(&settings.listener));
    serving.date_header = false;
    let defaults = FcOptions::default();
    let opts = FcOptions {
        deadline_margin: settings.lambda.deadline_margin.unwrap_or(defaults.deadline_margin),
        drain: serving.drain,
        credentials,
        ..defaults
    };
    let handler = Arc::new(FcHandler::new(host.clone(), 0, opts));
    let handle = move |req: Request<Incoming>, peer: Peer| {
        let handler = handler.clone();
        async move { handler.handle(req, peer).await }
    };
    serving::serve(&host, serving, handle).await
}

/// How the adapter behaves besides the host.
#[derive(Clone)]
pub struct FcOptions {
    /// The guest is stopped this long before Function Compute's deadline.
    pub deadline_margin: Duration,
    /// How long `/pre-stop` waits for in-flight requests.
    pub drain: Duration,
    /// Where the marker lines and invocation error lines go.
    pub log_sink: LogSink,
    /// The OOS provider's credentials, which the ones each request carries replace.
    pub credentials: OosCredentials,
}

impl Default for FcOptions {
    fn default() -> Self {
        FcOptions {
            // As on Lambda: time to classify the failure and answer before the platform gives up.
            deadline_margin: Duration::from_millis(100),
            drain: Duration::from_secs(10),
            log_sink: LogSink::Stdout,
            credentials: OosCredentials::default(),
        }
    }
}

/// Serves the host's one function to Function Compute's requests.
pub struct FcHandler {
    host: Arc<Host>,
    function: usize,
    opts: FcOptions,
    /// Where the latest credentials Function Compute sent go: the OOS provider's.
    credentials: OosCredentials,
    /// Requests being answered (hooks excluded), for `/pre-stop`.
    in_flight: InFlight,
    /// Forbidden response headers already logged, by name.
    dropped_logged: Mutex<HashSet<HeaderName>>,
    /// Whether an implausible `x-fc-function-timeout` was warned about (once per process).
    timeout_warned: AtomicBool,
}

impl FcHandler {
    /// A handler for `host`'s function number `function`.
    pub fn new(host: Arc<Host>, function: usize, opts: FcOptions) -> FcHandler {
        FcHandler {
            host,
            function,
            credentials: opts.credentials.clone(),
            opts,
            in_flight: InFlight::default(),
            dropped_logged: Mutex::new(HashSet::new()),
            timeout_warned: AtomicBool::new(false),
        }
    }

    /// Answers one request from Function Compute.
    pub async fn handle(&self, req: Request<Incoming>, peer: Peer) -> Response<Body> {
        credentials::update(&self.credentials, req.headers());
        let path = match decode::control_path(req.headers()) {
            Ok(path) => path,
            Err(e) => {
                tracing::warn!(method = %req.method(), path = %req.uri().path(), "refused: {e}");
                return encode::refusal(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string());
            }
        };
        let rid = decode::request_id(req.headers()).unwrap_or_else(new_request_id);
        match path {
            ControlPath::Initialize => {
                let _m = Marked::start(&self.opts.log_sink, Phase::Initialize, &rid);
                encode::hook_done()
            }
            ControlPath::PreFreeze => {
                let _m = Marked::start(&self.opts.log_sink, Phase::PreFreeze, &rid);
                self.host.flush_telemetry().await;
                encode::hook_done()
            }
            ControlPath::PreStop => {
                let _m = Marked::start(&self.opts.log_sink, Phase::PreStop, &rid);
                self.drain().await;
                self.host.flush_telemetry().await;
                encode::hook_done()
            }
            ControlPath::Invoke | ControlPath::HttpInvoke => {
                let _counted = self.in_flight.enter();
                let _m = Marked::start(&self.opts.log_sink, Phase::Invoke, &rid);
                self.invoke(path, req, peer, rid.clone()).await
            }
        }
    }

    /// Waits, at most the drain timeout, until no request is in flight.
    async fn drain(&self) {
        if !self.in_flight.settled(0, self.opts.drain).await {
            tracing::warn!(
                in_flight = self.in_flight.count(),
                "pre-stop: requests still in flight after {}s",
                self.opts.drain.as_secs()
            );
        }
    }

    async fn invoke(&self, path: ControlPath, req: Request<Incoming>, peer: Peer, rid: String) -> Response<Body> {
        let f = &self.host.functions()[self.function];
        // W3C, or Function Compute 2.0's OpenTracing context (an x-fc-* header: read before they go).
        let trace = TraceContext::from_headers(|name| req.headers().get_all(name).into_iter().map(|v| v.as_bytes()));
        let inv = self.invocation(f, req.headers(), rid, trace);
        match (f.kind, path) {
            (Kind::Http, _) => self.http(f, inv, req, peer).await,
            (Kind::Event, ControlPath::Invoke) => self.event(f, inv, req).await,
            (kind, _) => {
                let takes = match kind {
                    Kind::Event => "events (/invoke: InvokeFunction and triggers), not HTTP requests (/http-invoke)",
                    _ => "nothing Function Compute sends (bootstrap serves HTTP and event functions there)",
                };
                let message = format!(
                    "function `{}` is {} function: it takes {takes}",
                    f.name,
                    kind.with_article()
                );
                self.log_line(&inv, "Nimbus.WrongKind", &message);
                encode::refusal(StatusCode::BAD_REQUEST, "Nimbus.WrongKind", &message)
            }
        }
    }

    /// The invocation: Function Compute's request id, and the deadline its function timeout sets when that
    /// comes before the manifest's.
    fn invocation(&self, f: &Function, headers: &HeaderMap, rid: String, trace: TraceContext) -> Invocation {
        match decode::function_timeout(headers) {
            FunctionTimeout::Seconds(t) => Invocation::with_platform_deadline(
                self.host.app().clone(),
                f.name.clone(),
                f.limits.timeout,
                PlatformDeadline {
                    unix_ms: unix_ms_now().saturating_add(t.as_millis() as u64),
                    source: decode::FUNCTION_TIMEOUT,
                },
                self.opts.deadline_margin,
                Some(rid),
                trace,
            ),
            FunctionTimeout::Implausible => {
                if !self.timeout_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        function = %f.name,
                        value = ?headers.get(decode::FUNCTION_TIMEOUT),
                        "{} is not a timeout in whole seconds (1 to 86400): invocations run with the manifest \
                         timeout (warned once)",
                        decode::FUNCTION_TIMEOUT
                    );
                }
                self.host.new_invocation(f, Some(rid), trace)
            }
            FunctionTimeout::Absent => self.host.new_invocation(f, Some(rid), trace),
        }
    }

    /// An HTTP function: the request as sent, less Function Compute's headers; the response as the guest gave
    /// it, less the headers Function Compute forbids.
    async fn http(&self, f: &Function, inv: Invocation, req: Request<Incoming>, peer: Peer) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        decode::strip_platform_headers(&mut parts.headers);
        let mut req = Request::from_parts(parts, body.map_err(HttpError::Hyper).boxed_unsync());
        if let Err(bad) = authority::resolve(&mut req, peer.local) {
            self.log_line(&inv, "BadRequest", &bad.to_string());
            return encode::refusal(StatusCode::BAD_REQUEST, "InvalidArgument", &bad.to_string());
        }
        let meta = inv.clone();
        match self
            .host
            .invoke(f, inv, Payload::Http(req))
            .await
            .and_then(Outcome::into_http)
        {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let (resp, dropped) = encode::response(parts.status, parts.headers, body, FcStatus::Succeeded);
                self.log_dropped(f, &dropped);
                resp
            }
            Err(e) => {
                self.log_line(&meta, e.error_type(), &e.to_string());
                encode::http_error(&e)
            }
        }
    }

    /// An event function: the body as its event, with the trigger it came from.
    async fn event(&self, f: &Function, inv: Invocation, req: Request<Incoming>) -> Response<Body> {
        let meta = inv.clone();
        let result = match read_limited(req.into_body(), f.limits.max_request_body, "event").await {
            Ok(body) => {
                let event = Event {
                    source: decode::event_source(&body),
                    payload: body.to_vec(),
                };
                self.host
                    .invoke(f, inv, Payload::Event(event))
                    .await
                    .and_then(Outcome::into_event)
            }
            Err(e) => Err(e),
        };
        result.map(encode::event_output).unwrap_or_else(|e| {
            self.log_line(&meta, e.error_type(), &e.to_string());
            encode::event_error(&e)
        })
    }

    /// Logs each forbidden header name a guest sent, once per process.
    fn log_dropped(&self, f: &Function, dropped: &[HeaderName]) {
        if dropped.is_empty() {
            return;
        }
        let mut logged = self.dropped_logged.lock().unwrap_or_else(|p| p.into_inner());
        for name in dropped {
            if logged.insert(name.clone()) {
                tracing::warn!(
                    function = %f.name,
                    header = %name,
                    "the function's response header `{name}` is one Function Compute forbids: dropped (logged once \
                     per header)"
                );
            }
        }
    }

    fn log_line(&self, inv: &Invocation, error_type: &str, message: &str) {
        crate::reply::log_failure(&self.opts.log_sink, inv, error_type, message);
    }
}
