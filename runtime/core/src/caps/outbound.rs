//! `outbound`: outgoing HTTP from guests through `wasi:http/outgoing-handler`.
//!
//! Deny by default: a function reaches only the origins listed in its
//! `allowed_outbound_hosts`. Everything else — including the cloud instance
//! metadata endpoint — is refused with `HttpRequestDenied` before a
//! connection is opened.
//!
//! An allowed request carries the invocation's trace: the host writes
//! `traceparent`/`tracestate` (and `X-Amzn-Trace-Id` on AWS) naming a new
//! client span ([`super::propagate`]), and exports that span when telemetry is
//! on, as a child of the guest span open at the time ([`super::spans`]).

use super::propagate;
use super::{Boot, Capability};
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::{FunctionSpec, OutboundRule};
use crate::state::HostState;
use crate::telemetry::{OutboundRecord, Telemetry};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The `outbound` capability.
pub struct Outbound;

/// The function's allow-list and the host's telemetry, built once at boot.
#[derive(Clone)]
pub struct OutboundShared {
    /// Allowed origins.
    pub rules: Arc<[OutboundRule]>,
    /// Where client spans go (`None`: propagation only).
    pub telemetry: Option<Telemetry>,
}

/// The policy for one invocation (an `Arc` of the function's rules) and the
/// invocation whose trace outgoing requests carry.
pub struct OutboundPolicy {
    rules: Arc<[OutboundRule]>,
    inv: Arc<Invocation>,
    telemetry: Option<Telemetry>,
    /// The guest span requests are made under (0: the invocation span),
    /// kept by [`super::spans`].
    pub(crate) parent_span: u64,
}

/// Link-local metadata services are never reachable, whatever the allow-list says.
const METADATA_HOSTS: [&str; 3] = ["169.254.169.254", "169.254.170.2", "100.100.100.200"];

impl OutboundPolicy {
    /// Whether a request to `uri` may leave the sandbox.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else { return false };
        if METADATA_HOSTS.contains(&host) {
            return false;
        }
        let scheme = uri.scheme_str().unwrap_or("https");
        let port = uri.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.rules.iter().any(|r| r.matches(scheme, host, port))
    }
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
        Ok(OutboundShared {
            rules: spec.allowed_outbound_hosts.clone().into(),
            telemetry: boot.telemetry.clone(),
        })
    }

    fn prepare(shared: &Self::Shared, inv: &Arc<Invocation>) -> OutboundPolicy {
        OutboundPolicy {
            rules: shared.rules.clone(),
            inv: inv.clone(),
            telemetry: shared.telemetry.clone(),
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
        if !self.allows(request.uri()) {
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        drop(fut);
        let span_id = propagate::new_span_id();
        propagate::inject(request.headers_mut(), &self.inv, span_id);
        let parent = match self.parent_span {
            0 => self.inv.span.span_id,
            guest => guest,
        };
        let record = self
            .telemetry
            .as_ref()
            .map(|t| OutboundRecord::start(t, &self.inv, (span_id, parent), &request));
        Box::new(async move {
            use http_body_util::BodyExt;
            let sent = wasmtime_wasi_http::default_send_request(request, options).await;
            if let Some(record) = record {
                record.end(match &sent {
                    Ok((res, _)) => Ok(res.status().as_u16()),
                    Err(e) => Err(format!("{e:?}")),
                });
            }
            let (res, io) = sent?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
