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
//! Every refusal is written to the function's log with its reason (host, port, the address refused;
//! never the path or query, which may carry credentials).
//!
//! An allowed request carries the invocation's trace: the host writes
//! `traceparent`/`tracestate` (and `X-Amzn-Trace-Id` on AWS) naming a new
//! client span ([`super::propagate`]), and exports that span when telemetry is
//! on, as a child of the guest span open at the time ([`super::spans`]).

pub mod address;
pub mod network;
pub mod send;

use super::logging::truncate;
use super::propagate;
use super::{Boot, Capability};
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::logs::{LogSink, format_record};
use crate::manifest::{FunctionSpec, OutboundRule, literal_ip};
use crate::state::HostState;
use crate::telemetry::{OutboundRecord, Telemetry};
use send::{ConnectError, Connector, Target};
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The `outbound` capability.
pub struct Outbound;

/// A function's outbound settings, built once at boot and shared by its invocations.
#[derive(Clone)]
pub struct OutboundShared(Arc<Settings>);

struct Settings {
    /// Allowed origins.
    rules: Box<[OutboundRule]>,
    /// The host's connector (network, address policy, TLS).
    connector: Arc<Connector>,
    /// Where client spans go (`None`: propagation only).
    telemetry: Option<Telemetry>,
    /// Where refusals are logged.
    sink: LogSink,
}

/// The policy for one invocation (an `Arc` of the function's settings) and the
/// invocation whose trace outgoing requests carry.
pub struct OutboundPolicy {
    settings: Arc<Settings>,
    inv: Arc<Invocation>,
    /// The guest span requests are made under (0: the invocation span),
    /// kept by [`super::spans`].
    pub(crate) parent_span: u64,
}

impl OutboundPolicy {
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
    type State = OutboundPolicy;

    fn link(_linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        // `wasi:http/outgoing-handler` is linked with the rest of `wasi:http`;
        // this capability acts through the hooks below.
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
            connector: boot.outbound.clone(),
            telemetry: boot.telemetry.clone(),
            sink: boot.log_sink.clone(),
        })))
    }

    fn prepare(shared: &Self::Shared, inv: &Arc<Invocation>) -> OutboundPolicy {
        OutboundPolicy {
            settings: shared.0.clone(),
            inv: inv.clone(),
            parent_span: 0,
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for OutboundPolicy {
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
        let span_id = propagate::new_span_id();
        propagate::inject(request.headers_mut(), &self.inv, span_id);
        let parent = match self.parent_span {
            0 => self.inv.span.span_id,
            guest => guest,
        };
        let record = self
            .settings
            .telemetry
            .as_ref()
            .map(|t| OutboundRecord::start(t, &self.inv, (span_id, parent), &request));
        let settings = self.settings.clone();
        let inv = self.inv.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            let connect_timeout = send::connect_timeout(options.as_ref());
            let sent = match settings.connector.connect(&target, connect_timeout).await {
                Ok(stream) => send::exchange(stream, request, options).await,
                Err(ConnectError::Refused { addr, refusal }) => {
                    log_refusal(
                        &settings.sink,
                        &inv,
                        target.host(),
                        target.port,
                        Some(addr),
                        refusal.as_str(),
                    );
                    Err(HttpError::DestinationIpProhibited)
                }
                Err(ConnectError::Failed(e)) => Err(e),
            };
            if let Some(record) = record {
                record.end(match &sent {
                    Ok((res, _)) => Ok(res.status().as_u16()),
                    Err(e) => Err(format!("{e:?}")),
                });
            }
            let (res, io) = sent?;
            Ok((res.map(BodyExt::boxed_unsync), io))
        })
    }
}
