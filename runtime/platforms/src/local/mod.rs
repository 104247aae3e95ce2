//! The local gateway behind `nimbus serve`.
//!
//! Routes come from the manifest. Each request becomes one invocation in a
//! fresh instance; failures become clear JSON errors with the status an API
//! gateway would use (404, 405, 413, 500, 502, 503 + `Retry-After`, 504);
//! a failed invocation's details go to its log line, not to the caller.
//! Connections are accepted and bounded by the shared [`crate::listener`],
//! and a request without a usable `Host` is answered 400 before routing.
//! Event functions are reachable through the Lambda Invoke API path
//! (`POST /2015-03-31/functions/{name}/invocations`), so
//! `aws lambda invoke --endpoint-url http://127.0.0.1:3000` works too.
//! Task functions are started with `POST /tasks/{name}` and observed with
//! `GET /tasks/{name}/{id}` when the gateway is given the host's [`Tasks`].
//! WebSocket functions accept upgrades on their `websocket.path` ([`websocket`]).

pub(crate) mod body;
pub(crate) mod encode;
pub mod tasks;
pub mod websocket;

pub use websocket::Connections;

use crate::listener::{self, Listener, ListenerLimits, Peer};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use nimbus_core::logs::{LogSink, format_record};
use nimbus_core::{Body, Event, EventSource, Host, InvokeError, Outcome, Payload, RouteMatch, Tasks, TraceContext};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use websocket::WebSockets;

/// The Lambda Invoke API path prefix.
const INVOKE_PREFIX: &str = "/2015-03-31/functions/";

/// How the gateway behaves.
#[derive(Clone)]
pub struct GatewayOptions {
    /// Write one JSON access-log line per request.
    pub access_log: bool,
    /// Where access-log lines go.
    pub log_sink: LogSink,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// The host's durable tasks: enables the `/tasks/` endpoints of task functions.
    pub tasks: Option<Arc<Tasks>>,
    /// The WebSocket connections registry. Give the same one to [`nimbus_core::BootOptions::connections`]
    /// so that every function can send to the gateway's clients; `None`: the gateway makes its own, which
    /// only WebSocket functions' own invocations reach.
    pub connections: Option<Arc<Connections>>,
    /// The listener's connection limits (`nimbus serve --header-read-timeout` and friends).
    pub limits: ListenerLimits,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            access_log: true,
            log_sink: LogSink::Stdout,
            drain_timeout: Duration::from_secs(10),
            tasks: None,
            connections: None,
            limits: ListenerLimits::default(),
        }
    }
}

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    connections: Arc<Connections>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Binds `addr` (port 0 picks a free port) and starts serving `host`.
    pub async fn start(host: Arc<Host>, addr: SocketAddr, opts: GatewayOptions) -> std::io::Result<Gateway> {
        let listener = Listener::bind(addr, opts.limits.clone()).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let connections = opts.connections.clone().unwrap_or_default();
        let ws = Arc::new(WebSockets::new(&host, connections, stopped.clone(), &opts));
        let connections = ws.connections().clone();
        let task = tokio::spawn(run(listener, host, Arc::new(opts), ws, stopped));
        Ok(Gateway {
            addr,
            connections,
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its open WebSocket connections.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// Stops accepting, lets in-flight requests finish and closes WebSocket connections with 1001 (bounded
    /// by the drain timeout), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves on the shared [`listener`] until stopped, then drains HTTP and WebSocket connections.
async fn run(
    listener: Listener,
    host: Arc<Host>,
    opts: Arc<GatewayOptions>,
    ws: Arc<WebSockets>,
    mut stopped: watch::Receiver<bool>,
) {
    let drain = opts.drain_timeout;
    let handler = {
        let (opts, ws) = (opts.clone(), ws.clone());
        move |req: Request<Incoming>, peer: Peer| {
            let (host, opts, ws) = (host.clone(), opts.clone(), ws.clone());
            async move { handle(&host, &opts, &ws, peer, req).await }
        }
    };
    let http = listener.serve(handler, stopped.clone(), drain);
    // WebSocket sessions see the stop too: they close with 1001 and run `on-disconnect` meanwhile.
    let websockets = async {
        let _ = stopped.wait_for(|stop| *stop).await;
        ws.closed(drain).await
    };
    let (http, websockets) = tokio::join!(http, websockets);
    if !http || !websockets {
        tracing::warn!(
            "shutdown: connections still open after {}s; closing them",
            drain.as_secs()
        );
    }
}

/// Serves one request: route, invoke, encode, log.
async fn handle(
    host: &Arc<Host>,
    opts: &GatewayOptions,
    ws: &WebSockets,
    peer: Peer,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    // An HTTP/1.1 request without `Host` is refused here, before routing, so the access log shows it.
    let authority = listener::authority::resolve(&mut req, peer.local);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // W3C, X-Ray or Function Compute: whichever the caller sent, bridged to W3C.
    let trace = TraceContext::from_headers(|name| req.headers().get_all(name).into_iter().map(|v| v.as_bytes()));

    let task = opts.tasks.as_ref().and_then(|t| Some((t, tasks::task_path(t, &path)?)));
    let (function, result) = if let Err(bad) = authority {
        (None, Err(encode::reply_response(bad.reply())))
    } else if let Some((t, (name, id))) = task {
        let f = host.function(name).map(|f| (f.name.clone(), f.limits.max_request_body));
        match f {
            Some((fname, limit)) => (
                Some((fname, Arc::from(id.unwrap_or("start")))),
                tasks::handle(t, limit, req, name, id).await,
            ),
            None => (
                None,
                Err(encode::plain_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "no such function",
                )),
            ),
        }
    } else if let Some(rest) = path.strip_prefix(INVOKE_PREFIX) {
        invoke_api(host, &opts.log_sink, req, rest, trace).await
    } else if ws.serves(&path) && websocket::is_upgrade(&req) {
        ws.upgrade(host, req, peer.remote, trace).await
    } else {
        match host.route(&method, &path) {
            RouteMatch::Found { function, .. } => {
                let f = &host.functions()[function];
                let inv = host.new_invocation(f, None, trace);
                let rid = inv.request_id.clone();
                let req = req.map(|b| b.map_err(wasmtime_error).boxed_unsync());
                let r = host
                    .invoke(f, inv, Payload::Http(req))
                    .await
                    .and_then(Outcome::into_http);
                let r = r.map_err(|e| failed(&opts.log_sink, host.app(), &f.name, &rid, &e));
                (Some((f.name.clone(), rid)), r)
            }
            // A WebSocket path no HTTP route shares: say what it takes.
            RouteMatch::MethodNotAllowed | RouteMatch::NotFound if ws.serves(&path) => {
                (None, Err(websocket::upgrade_required(&path)))
            }
            RouteMatch::MethodNotAllowed => (
                None,
                Err(encode::plain_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    &format!("{method} is not routed for {path}"),
                )),
            ),
            RouteMatch::NotFound => (
                None,
                Err(encode::plain_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("no route for {method} {path}"),
                )),
            ),
        }
    };

    let mut resp = result.unwrap_or_else(|e| e);
    if let Some((_, rid)) = &function
        && let Ok(v) = http::HeaderValue::from_str(rid)
    {
        resp.headers_mut().insert("x-nimbus-request-id", v);
    }
    if opts.access_log {
        let mut fields: Vec<(&str, serde_json::Value)> = vec![
            ("method", method.as_str().into()),
            ("path", path.into()),
            ("status", resp.status().as_u16().into()),
            ("duration_ms", ((started.elapsed().as_micros() as f64) / 1000.0).into()),
        ];
        if let Some((f, rid)) = &function {
            fields.push(("app", host.app().to_string().into()));
            fields.push(("function", f.to_string().into()));
            fields.push(("request_id", rid.to_string().into()));
        }
        let level = if resp.status().is_server_error() {
            "ERROR"
        } else {
            "INFO"
        };
        let line = format_record(level, "request", None, &fields);
        opts.log_sink.write_line(&line);
    }
    resp
}

/// The function and request id an answer belongs to (for the access log), and the answer: `Err` for
/// refusals and failures.
type Routed = (Option<(Arc<str>, Arc<str>)>, Result<Response<Body>, Response<Body>>);

/// Logs a failed invocation with all its details (a trap's backtrace) and answers the caller with its type
/// and the public part of its message.
pub(super) fn failed(sink: &LogSink, app: &str, function: &str, request_id: &str, e: &InvokeError) -> Response<Body> {
    let fields = [
        ("app", app.into()),
        ("function", function.into()),
        ("request_id", request_id.into()),
        ("error_type", e.error_type().into()),
        ("error", e.to_string().into()),
    ];
    sink.write_line(&format_record("ERROR", "invocation failed", None, &fields));
    encode::error(e)
}

/// `POST /2015-03-31/functions/{name}/invocations`: invoke an event function with the body as event.
async fn invoke_api(host: &Host, sink: &LogSink, req: Request<Incoming>, rest: &str, trace: TraceContext) -> Routed {
    let Some(name) = rest.strip_suffix("/invocations") else {
        return (
            None,
            Err(encode::plain_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "expected /2015-03-31/functions/{name}/invocations",
            )),
        );
    };
    if req.method() != Method::POST {
        return (
            None,
            Err(encode::plain_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "use POST",
            )),
        );
    }
    let Some(f) = host.function(name) else {
        return (
            None,
            Err(encode::plain_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                &format!("function not found: {name}"),
            )),
        );
    };
    let inv = host.new_invocation(f, None, trace);
    let rid = inv.request_id.clone();
    let tag = Some((f.name.clone(), rid.clone()));
    let body = match body::read_limited(req.into_body(), f.limits.max_request_body, "event").await {
        Ok(b) => b,
        Err(err) => return (tag, Err(failed(sink, host.app(), &f.name, &rid, &err))),
    };
    let event = Event {
        source: EventSource::Direct,
        payload: body.to_vec(),
    };
    match host
        .invoke(f, inv, Payload::Event(event))
        .await
        .and_then(Outcome::into_event)
    {
        Ok(out) => (tag, Ok(encode::json_response(StatusCode::OK, Bytes::from(out)))),
        Err(e) => (tag, Err(failed(sink, host.app(), &f.name, &rid, &e))),
    }
}

fn wasmtime_error(e: hyper::Error) -> nimbus_core::HttpError {
    nimbus_core::HttpError::Hyper(e)
}
