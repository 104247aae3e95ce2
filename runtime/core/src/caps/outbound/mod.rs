//! `outbound`: outgoing HTTP from guests through `wasi:http/outgoing-handler`.
//!
//! Two checks, both before any byte leaves for the upstream:
//! 1. the **name**: a request must match an entry of the function's `allowed_outbound_hosts` (scheme,
//!    host — exact, `*.suffix` or `*` — and port); otherwise the guest gets `HttpRequestDenied`;
//! 2. the **address**: the host is looked up once and every address it has is checked by
//!    [`address::AddressPolicy`]: metadata services, link-local, unspecified and the platform's control
//!    endpoints never pass; loopback, private and other internal addresses pass only when the request
//!    names that IP literally and an entry naming that same IP matched it. Otherwise the guest gets
//!    `DestinationIpProhibited`. The connection is then made to a checked address ([`send`]): no second
//!    lookup can rebind it.
//!
//! An invocation has at most `outbound_concurrency` requests in flight (from the send until its connection
//! ends); past that a request fails at once with `connection-limit-reached`, so that a guest that fans out
//! without bound (an outbound fork-bomb) holds a bounded number of the host's connections.
//!
//! Every refusal is written to the function's log with its reason (host, port, the address refused;
//! never the path or query, which may carry credentials).
//!
//! An allowed request carries the invocation's trace: the host writes
//! `traceparent`/`tracestate` (and `X-Amzn-Trace-Id` on AWS) naming a new
//! client span ([`super::trace::propagate`]), and exports that span when telemetry is
//! on, as a child of the guest span open at the time ([`super::trace::SpanCursor`]).
//!
//! The exchange itself goes through [`OutboundHttp`], the seam fault injection and circuit breakers wrap
//! ([`super::Intercept::outbound`]); the host's own implementation is the [`Connector`].

pub mod address;
pub mod network;
pub mod send;

use super::logging::truncate;
use super::trace::{SpanCursor, propagate};
use super::{Boot, Capability, Grants, ViewFn};
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::logs::{LogSink, format_record};
use crate::manifest::{FunctionSpec, OutboundRule, literal_ip};
use crate::state::HostState;
use crate::telemetry::{OutboundRecord, Telemetry};
use address::Refusal;
use futures_util::future::BoxFuture;
use send::{ConnectError, Connector, Io, ResponseBody, Target};
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// A request that passed the allow-list, its trace headers set: what [`OutboundHttp`] sends.
pub struct OutboundCall {
    /// Where it may connect (the address is checked when connecting).
    pub target: Target,
    /// The request, as the guest made it plus the host's trace headers.
    pub request: http::Request<WasiBody>,
    /// The guest's timeouts.
    pub options: Option<RequestOptions>,
    /// The invocation's share of a running fault plan ([`crate::faults`]), if any: the exchange runs in a
    /// task of its own, so the fault layer finds it here rather than in the invocation's task.
    pub faults: Option<Arc<crate::faults::InvocationFaults>>,
    /// The client span the request's trace headers name.
    pub span_id: Option<u64>,
    /// The invocation making it (its function picks the circuit breakers).
    pub inv: Arc<Invocation>,
}

/// Why an outbound call got no response.
#[derive(Debug)]
pub enum SendError {
    /// The address policy refused an address the host resolved to (the guest sees
    /// `destination-ip-prohibited`; the refusal is logged).
    Refused {
        /// The address.
        addr: SocketAddr,
        /// Why.
        refusal: Refusal,
    },
    /// Lookup, connect, TLS, protocol or timeout failure, as the guest sees it.
    Failed(HttpError),
}

/// A response head and the task that drives the rest of the exchange.
pub type Exchange = (http::Response<ResponseBody>, Io);

/// Sends one outbound HTTP exchange: the seam for outbound calls. The host's implementation is the
/// [`Connector`] (checked addresses, TLS, HTTP/1.1); [`super::Intercept::outbound`] may wrap it.
pub trait OutboundHttp: Send + Sync + 'static {
    /// Connects to `call.target` and sends `call.request`.
    fn send(&self, call: OutboundCall) -> BoxFuture<'_, Result<Exchange, SendError>>;
}

impl OutboundHttp for Connector {
    fn send(&self, call: OutboundCall) -> BoxFuture<'_, Result<Exchange, SendError>> {
        Box::pin(async move {
            let connect_timeout = send::connect_timeout(call.options.as_ref());
            let stream = self.connect(&call.target, connect_timeout).await.map_err(|e| match e {
                ConnectError::Refused { addr, refusal } => SendError::Refused { addr, refusal },
                ConnectError::Failed(e) => SendError::Failed(e),
            })?;
            send::exchange(stream, call.request, call.options)
                .await
                .map_err(SendError::Failed)
        })
    }
}

/// The `outbound` capability.
pub struct Outbound;

/// A function's outbound settings, built once at boot and shared by its invocations.
#[derive(Clone)]
pub struct OutboundShared(Arc<Settings>);

struct Settings {
    /// Allowed origins.
    rules: Box<[OutboundRule]>,
    /// How allowed requests are sent (the host's connector, or what wraps it).
    sender: Arc<dyn OutboundHttp>,
    /// Where client spans go (`None`: propagation only).
    telemetry: Option<Telemetry>,
    /// Where refusals are logged.
    sink: LogSink,
    /// Requests one invocation may have in flight.
    concurrency: usize,
}

/// The outbound context of one invocation: the function's settings, the invocation whose trace outgoing
/// requests carry, and the innermost open guest span they are children of. `wasi:http` reaches it as its
/// hooks.
pub struct OutboundCtx {
    settings: Arc<Settings>,
    inv: Arc<Invocation>,
    cursor: SpanCursor,
    /// The invocation's requests in flight (made at its first request: most invocations send none).
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    /// Whether a request over `outbound_concurrency` was logged already (once per invocation is enough).
    over_logged: bool,
}

impl OutboundCtx {
    /// Where a request to `uri` would connect, if the allow-list lets it leave the sandbox; the address
    /// it resolves to is checked when it is sent.
    pub fn target(&self, uri: &http::Uri) -> Option<Target> {
        let authority = uri.authority()?;
        let host = authority.host();
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let scheme = uri.scheme_str().unwrap_or("https");
        let port = authority.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
        let ip = literal_ip(host);
        let mut allowed = false;
        let mut literal = None;
        for rule in self.settings.rules.iter().filter(|r| r.matches(scheme, host, port)) {
            allowed = true;
            if ip.is_some() && rule.ip == ip {
                literal = ip;
                break;
            }
        }
        allowed.then(|| Target {
            authority: authority.clone(),
            port,
            tls,
            ip,
            literal,
        })
    }
}

/// Writes one refusal to the function's log.
fn log_refusal(sink: &LogSink, inv: &Invocation, host: &str, port: u16, addr: Option<SocketAddr>, reason: &str) {
    let mut fields = vec![
        ("host", truncate(host, 256).into()),
        ("port", port.into()),
        ("reason", reason.into()),
    ];
    if let Some(a) = addr {
        fields.push(("address", a.to_string().into()));
    }
    sink.write_line(&format_record("WARN", "outbound request refused", Some(inv), &fields));
}

impl Capability for Outbound {
    const NAME: &'static str = "outbound";
    type Shared = OutboundShared;
    type Ctx = OutboundCtx;

    fn link(_linker: &mut Linker<HostState>, _view: ViewFn<OutboundCtx>) -> wasmtime::Result<()> {
        // `wasi:http/outgoing-handler` is linked with the rest of `wasi:http`;
        // this capability acts through the hooks below ([`HostState`]'s `WasiHttpView`).
        Ok(())
    }

    async fn configure(spec: &FunctionSpec, boot: &Boot) -> Result<Self::Shared, BootError> {
        for rule in &spec.allowed_outbound_hosts {
            // An entry no request can use is a mistake worth a line at boot.
            if let Some(refusal) = rule.ip.and_then(address::classify).filter(|r| r.is_absolute()) {
                tracing::warn!(
                    app = %boot.app,
                    function = %spec.name,
                    entry = %rule,
                    "allowed_outbound_hosts entry is never reachable: {refusal}"
                );
            }
        }
        Ok(OutboundShared(Arc::new(Settings {
            rules: spec.allowed_outbound_hosts.clone().into(),
            sender: boot.outbound.clone(),
            telemetry: boot.telemetry.clone(),
            sink: boot.log_sink.clone(),
            concurrency: spec.limits.outbound_concurrency as usize,
        })))
    }

    fn prepare(shared: &Self::Shared, inv: &Arc<Invocation>, grants: &mut Grants) -> OutboundCtx {
        OutboundCtx {
            settings: shared.0.clone(),
            inv: inv.clone(),
            cursor: grants.span_cursor.clone(),
            in_flight: None,
            over_logged: false,
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for OutboundCtx {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let Some(target) = self.target(request.uri()) else {
            let uri = request.uri();
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
            let host = uri.host().unwrap_or_default();
            log_refusal(
                &self.settings.sink,
                &self.inv,
                host,
                port,
                None,
                "not in allowed_outbound_hosts",
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let limit = self.settings.concurrency;
        let in_flight = self
            .in_flight
            .get_or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit)));
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            if !std::mem::replace(&mut self.over_logged, true) {
                let reason = format!("outbound_concurrency ({limit}) requests of this invocation already in flight");
                log_refusal(
                    &self.settings.sink,
                    &self.inv,
                    target.host(),
                    target.port,
                    None,
                    &reason,
                );
            }
            return Box::new(async { Err(HttpError::ConnectionLimitReached) });
        };
        let ids = propagate::client_span(request.headers_mut(), &self.inv, &self.cursor);
        let record = self
            .settings
            .telemetry
            .as_ref()
            .map(|t| OutboundRecord::start(t, &self.inv, ids, &request));
        // For the refusal's log line (an `Authority` clone shares its bytes).
        let shown = target.clone();
        let call = OutboundCall {
            target,
            request,
            options,
            faults: crate::faults::current(),
            span_id: Some(ids.0),
            inv: self.inv.clone(),
        };
        let settings = self.settings.clone();
        let inv = self.inv.clone();
        let faults = call.faults.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            let sent = settings.sender.send(call).await;
            let mut record = record;
            if let (Some(record), Some(faults)) = (record.as_mut(), &faults) {
                let mine: Vec<_> = faults
                    .injected()
                    .into_iter()
                    .filter(|i| i.span_id == Some(ids.0))
                    .collect();
                if let Some((count, events)) = crate::faults::span_telemetry(&mine) {
                    record.attribute(count);
                    for e in events {
                        record.event(e);
                    }
                }
            }
            let sent = sent.map_err(|e| match e {
                SendError::Refused { addr, refusal } => {
                    log_refusal(
                        &settings.sink,
                        &inv,
                        shown.host(),
                        shown.port,
                        Some(addr),
                        refusal.as_str(),
                    );
                    HttpError::DestinationIpProhibited
                }
                SendError::Failed(e) => e,
            });
            if let Some(record) = record {
                record.end(match &sent {
                    Ok((res, _)) => Ok(res.status().as_u16()),
                    Err(e) => Err(format!("{e:?}")),
                });
            }
            let (res, io) = sent?;
            // The request stays in flight until its connection ends (or its owner drops it).
            let io: send::Io = Box::new(async move {
                let ended = Box::into_pin(io).await;
                drop(permit);
                ended
            });
            Ok((res.map(BodyExt::boxed_unsync), io))
        })
    }
}
