//! The HTTP kind's step. Its guest keeps running after it hands over the response head (it streams the
//! body), so the shared path's guest call runs in its own task holding the permit, and the invocation's
//! outcome is the response head as soon as the guest sets it.

use super::Function;
use super::Host;
use super::http_body::{LimitedBody, content_length};
use super::instances::Idle;
use super::invoke::Step;
use super::meter::Meter;
use crate::Body;
use crate::bindings::types;
use crate::error::InvokeError;
use crate::invocation::{Invocation, Outcome};
use crate::manifest::Limits;
use crate::state::HostState;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::Resource;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::types::HostIncomingRequest;
use wasmtime_wasi_http::p2::types::HostResponseOutparam;

/// What the guest answers through its response outparam: the response head, or an error code.
type Answer = Result<http::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, ErrorCode>;

/// One HTTP request: it enters the store as WASI HTTP resources (its body limited to `max_request_body`).
struct HttpStep {
    request: Option<http::Request<Body>>,
    /// `max_request_body`.
    limit: u64,
    /// Set once the guest has read past `max_request_body`.
    too_large: Arc<AtomicBool>,
    answer: Option<oneshot::Sender<Answer>>,
    resources: Option<(Resource<HostIncomingRequest>, Resource<HostResponseOutparam>)>,
}

impl Step<Proxy> for HttpStep {
    type Value = ();

    fn check_input(&self, limits: &Limits) -> Result<(), InvokeError> {
        if let Some(len) = self.request.as_ref().and_then(|r| content_length(r.headers()))
            && len > limits.max_request_body
        {
            return Err(InvokeError::request_too_large(
                "request body",
                len,
                limits.max_request_body,
            ));
        }
        Ok(())
    }

    fn enter(&mut self, state: &mut HostState) -> Result<(), InvokeError> {
        let (Some(req), Some(answer)) = (self.request.take(), self.answer.take()) else {
            return Err(InvokeError::internal("an HTTP invocation entered twice"));
        };
        // Adapters that know the client's scheme (Lambda: `https://host/…`) put it in the URI.
        let scheme = match req.uri().scheme() {
            Some(s) if *s == http::uri::Scheme::HTTPS => Scheme::Https,
            _ => Scheme::Http,
        };
        let limit = self.limit;
        let tripped = self.too_large.clone();
        let req = req.map(|b| {
            LimitedBody::new(b, limit, tripped, wasmtime_wasi_http::Error::HttpRequestBodySize).boxed_unsync()
        });
        let req = crate::incoming::new_incoming_request(state, scheme, req)
            .map_err(|e| InvokeError::internal_from("cannot hand the request to the guest", e))?;
        let out = state
            .http()
            .new_response_outparam(answer)
            .map_err(|e| InvokeError::internal_from("cannot make the response outparam", e))?;
        self.resources = Some((req, out));
        Ok(())
    }

    async fn call(
        &mut self,
        proxy: &Proxy,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let Some((req, out)) = self.resources.take() else {
            return Err(wasmtime::Error::msg("the HTTP request was not handed to the guest"));
        };
        proxy.wasi_http_incoming_handler().call_handle(store, req, out).await?;
        Ok(Ok(()))
    }
}

impl Host {
    /// An HTTP invocation: admitted through the shared path, its guest call spawned, its outcome the
    /// response head (whose body is limited to `max_response_body`).
    pub(super) async fn invoke_http(
        &self,
        f: &Function,
        pre: &ProxyPre<HostState>,
        idle: &Idle<Proxy>,
        inv: &Arc<Invocation>,
        req: http::Request<Body>,
        meter: Meter,
    ) -> Result<Outcome, InvokeError> {
        let limit = f.limits.max_request_body;
        let too_large = Arc::new(AtomicBool::new(false));
        let (tx, rx) = oneshot::channel();
        let step = HttpStep {
            request: Some(req),
            limit,
            too_large: too_large.clone(),
            answer: Some(tx),
            resources: None,
        };
        let admitted = self.admit(f, pre, idle, inv, meter, step).await?;
        // The guest call runs in its own task: the fault plan's share goes with it.
        let faults = crate::faults::current();
        let call = tokio::spawn(crate::faults::scope(faults, async move { admitted.call().await.0 }));

        let answer = rx.await;
        // Whatever the guest made of a truncated request body, the answer is 413.
        if too_large.load(Ordering::Relaxed) {
            return Err(InvokeError::request_too_large("request body", limit + 1, limit));
        }
        let response = match answer {
            Ok(Ok(resp)) => resp,
            Ok(Err(code)) => {
                return Err(InvokeError::Guest(format!(
                    "the function answered with error code {code:?}"
                )));
            }
            Err(_) => {
                call.await
                    .map_err(|e| InvokeError::internal_from("the invocation task failed", e))??;
                return Err(InvokeError::NoResponse);
            }
        };

        let out_limit = f.limits.max_response_body;
        if let Some(len) = content_length(response.headers())
            && len > out_limit
        {
            return Err(InvokeError::response_too_large("response body", len, out_limit));
        }
        let flag = Arc::new(AtomicBool::new(false));
        Ok(Outcome::Http(response.map(|b| {
            LimitedBody::new(b, out_limit, flag, wasmtime_wasi_http::Error::HttpResponseBodySize).boxed_unsync()
        })))
    }
}
