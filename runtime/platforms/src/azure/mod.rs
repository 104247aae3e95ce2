//! An Azure Functions custom handler: the web server the Functions host starts (`host.json`'s
//! `customHandler.description.defaultExecutablePath`) and sends every invocation to, on
//! `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`. The host is its only client, so it listens on loopback only.
//!
//! It serves the one function `bootstrap` booted, whose Azure function (its folder) bears the manifest
//! function's name:
//! - `POST /<function>` with `{"Data": {...}, "Metadata": {...}}` ([`decode::route`]) is an invocation. An
//!   event function gets the trigger's data ([`decode::event`]: a queue message's text, a timer's `TimerInfo`,
//!   a blob's bytes) with its source kind, and its output is the `ReturnValue`; an HTTP function gets the
//!   request in `Data.req` ([`decode::http_request`]) and its response is the `res` output. Both answers carry
//!   the guest's log lines of that invocation in `Logs` ([`nimbus_core::logs::LogTap`]); the lines also go to
//!   stdout as usual. A failed invocation is answered 500 ([`encode::failure`]); a payload that is not one is
//!   answered 400, one over `max_request_body` 413.
//! - With `enableProxyingHttpRequest` (or the legacy `enableForwardingHttpRequest`), the host forwards an
//!   HTTP-only function's requests as they are, at their own path (`/api/<route>`): every request to an HTTP
//!   function that is not `POST /<function>` is such a request, and its response goes back as it is
//!   (streamed, any headers and bytes).
//! - Anything else (another function's name, an event function's other paths) is answered 404.
//!
//! The request id is the host's invocation id (`X-Azure-Functions-InvocationId`); the trace context comes from
//! the caller's `traceparent` (or X-Ray / FC headers, [`TraceContext::from_headers`]). The function key
//! (`x-functions-key`) never reaches the guest, nor does anything of the process's environment (the storage
//! connection string, `IDENTITY_HEADER`, …): a guest sees only what its manifest grants.

pub mod decode;
pub mod encode;

use crate::listener::{ListenerLimits, Peer};
use crate::local::body::read_limited;
use crate::local::encode::reply_response;
use crate::reply;
use crate::serving::{self, ServeError, Serving};
use decode::Route;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use nimbus_core::logs::{LogSink, LogTap};
use nimbus_core::settings::azure::PORT_VARIABLE;
use nimbus_core::{Body, Function, Host, Invocation, InvokeError, Kind, Outcome, Payload, Settings, TraceContext};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Longest invocation id taken as the request id; a longer (or odd) one is replaced by a fresh id.
const MAX_INVOCATION_ID: usize = 128;

/// What an invocation payload may add around the request body it carries: the JSON envelope, the request's
/// headers and metadata. A payload's limit is this plus the body's limit, times 4/3 for a body in base64.
const ENVELOPE_ALLOWANCE: u64 = 256 * 1024;

/// Serves `host.functions()[0]` to the Functions host on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` until
/// SIGTERM or SIGINT (the host stops its handler with them), then drains in-flight invocations and flushes
/// telemetry ([`serving::serve`]).
pub async fn serve(host: Arc<Host>, settings: &Settings) -> Result<(), ServeError> {
    let port = settings.azure.port.ok_or(ServeError::Unset {
        name: PORT_VARIABLE,
        expected: "the port the Functions host sends invocations to (it sets it when it starts the handler)",
    })?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let serving = Serving::new(addr, ListenerLimits::from_settings(&settings.listener));
    let handler = Arc::new(Handler::new(host.clone(), 0, LogSink::Stdout));
    serving::serve(&host, serving, move |req, peer| {
        let handler = handler.clone();
        async move { handler.handle(req, peer).await }
    })
    .await
}

/// The handler of the Functions host's requests for one function.
pub struct Handler {
    host: Arc<Host>,
    function: usize,
    sink: LogSink,
}

impl Handler {
    /// Serves `host.functions()[function]` (an HTTP or an event function: `bootstrap` refuses the others at
    /// init), writing its failure lines to `sink`.
    pub fn new(host: Arc<Host>, function: usize, sink: LogSink) -> Handler {
        Handler { host, function, sink }
    }

    /// Answers one request from the Functions host.
    pub async fn handle(&self, req: Request<Incoming>, _peer: Peer) -> Response<Body> {
        let f = &self.host.functions()[self.function];
        match decode::route(f.kind, req.method(), req.uri().path(), &f.name) {
            Route::Invocation => reply_response(self.invocation(f, req).await),
            Route::Proxied => self.proxied(f, req).await,
            Route::NotServed => reply_response(reply::plain(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!(
                    "this custom handler serves the function `{0}`: the Functions host invokes it with POST /{0}",
                    f.name
                ),
            )),
        }
    }

    /// `POST /<function>`: an invocation payload, answered `{Outputs, Logs, ReturnValue}`.
    async fn invocation(&self, f: &Function, req: Request<Incoming>) -> reply::Reply {
        let limit = f.limits.max_request_body;
        let envelope = limit.saturating_mul(4) / 3 + ENVELOPE_ALLOWANCE;
        let (parts, body) = req.into_parts();
        let payload = match read_limited(body, envelope, "invocation payload").await {
            Ok(b) => b,
            Err(e) => {
                let inv = self.invocation_for(f, &parts.headers, trace_of(&parts.headers));
                self.log_failure(&inv, &e);
                return reply::for_error(&e);
            }
        };
        match f.kind {
            Kind::Http => {
                let request = decode::http_request(&payload, limit);
                // The caller's trace context is in the request's headers, not the host's.
                let trace = match &request {
                    Ok(r) => trace_of(r.headers()),
                    Err(_) => trace_of(&parts.headers),
                };
                let mut inv = self.invocation_for(f, &parts.headers, trace);
                let request = match request {
                    Ok(r) => r,
                    Err(e) => {
                        self.log_failure(&inv, &e);
                        return reply::for_error(&e);
                    }
                };
                let tap = inv.tap_logs();
                let meta = inv.clone();
                let request = request.map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync());
                let answered = match self.host.invoke(f, inv, Payload::Http(request)).await {
                    Ok(outcome) => match outcome.into_http() {
                        Ok(resp) => reply::collect(resp).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                let encoded = answered.and_then(|resp| {
                    encode::http_result(resp, &tap.lines()).map_err(|e| InvokeError::Guest(e.to_string()))
                });
                encoded.unwrap_or_else(|e| self.failed(&meta, &e, &tap))
            }
            _ => {
                let mut inv = self.invocation_for(f, &parts.headers, trace_of(&parts.headers));
                let event = match decode::invocation_request(&payload).and_then(|p| decode::event(&p)) {
                    Ok(ev) => ev,
                    Err(e) => {
                        self.log_failure(&inv, &e);
                        return reply::for_error(&e);
                    }
                };
                let tap = inv.tap_logs();
                let meta = inv.clone();
                match self
                    .host
                    .invoke(f, inv, Payload::Event(event))
                    .await
                    .and_then(Outcome::into_event)
                {
                    Ok(out) => encode::event_result(out, &tap.lines()),
                    Err(e) => self.failed(&meta, &e, &tap),
                }
            }
        }
    }

    /// A request the host proxied as it is: to the HTTP function, without the function key; the response
    /// goes back as it is.
    async fn proxied(&self, f: &Function, mut req: Request<Incoming>) -> Response<Body> {
        req.headers_mut().remove(decode::FUNCTION_KEY);
        let inv = self.invocation_for(f, req.headers(), trace_of(req.headers()));
        let meta = inv.clone();
        let req = req.map(|b| b.map_err(nimbus_core::HttpError::Hyper).boxed_unsync());
        match self
            .host
            .invoke(f, inv, Payload::Http(req))
            .await
            .and_then(Outcome::into_http)
        {
            Ok(resp) => resp,
            Err(e) => {
                self.log_failure(&meta, &e);
                reply_response(reply::for_error(&e))
            }
        }
    }

    /// An invocation of `f` with the host's invocation id (when it is one) as its request id.
    fn invocation_for(&self, f: &Function, headers: &HeaderMap, trace: TraceContext) -> Invocation {
        let id = headers
            .get(decode::INVOCATION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|id| !id.is_empty() && id.len() <= MAX_INVOCATION_ID)
            .map(str::to_owned);
        self.host.new_invocation(f, id, trace)
    }

    /// A failed invocation: logged with its details, answered 500 with its log lines.
    fn failed(&self, inv: &Invocation, e: &InvokeError, tap: &LogTap) -> reply::Reply {
        self.log_failure(inv, e);
        encode::failure(e, &tap.lines())
    }

    fn log_failure(&self, inv: &Invocation, e: &InvokeError) {
        reply::log_failure(&self.sink, inv, e.error_type(), &e.to_string());
    }
}

/// The trace context the headers carry (W3C, X-Ray or Function Compute's), or a new root.
fn trace_of(headers: &HeaderMap) -> TraceContext {
    TraceContext::from_headers(|name| headers.get_all(name).into_iter().map(|v| v.as_bytes()))
}
