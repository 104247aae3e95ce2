//! `outbound`: outgoing HTTP from guests through `wasi:http/outgoing-handler`.
//!
//! Deny by default: a function reaches only the origins listed in its
//! `allowed_outbound_hosts`. Everything else — including the cloud instance
//! metadata endpoint — is refused with `HttpRequestDenied` before a
//! connection is opened.

use super::Capability;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::{FunctionSpec, OutboundRule};
use crate::state::HostState;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The `outbound` capability.
pub struct Outbound;

/// The policy for one invocation (an `Arc` of the function's rules).
pub struct OutboundPolicy {
    rules: Arc<[OutboundRule]>,
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
    type Shared = Arc<[OutboundRule]>;
    type State = OutboundPolicy;

    fn link(_linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        // `wasi:http/outgoing-handler` is linked with the rest of `wasi:http`;
        // this capability acts through the hooks below.
        Ok(())
    }

    async fn configure(spec: &FunctionSpec) -> Result<Self::Shared, BootError> {
        Ok(spec.allowed_outbound_hosts.clone().into())
    }

    fn prepare(shared: &Self::Shared, _inv: &Arc<Invocation>) -> OutboundPolicy {
        OutboundPolicy { rules: shared.clone() }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if !self.allows(request.uri()) {
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
