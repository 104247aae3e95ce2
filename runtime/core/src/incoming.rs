//! The guest's view of an incoming HTTP request: its `Host` header.
//!
//! wasmtime keeps the headers a guest may not set (`host`, `connection`, …) out of an incoming request as
//! well, since the request's authority carries the host. That loses nothing while the `Host` header and the
//! authority agree. An adapter may have to put another authority in the URI, though: AWS's own sample API
//! Gateway event says `Host: 1234567890.execute-api.{dns_suffix}`, which no URI authority can hold, so the
//! Lambda adapter falls back to `requestContext.domainName` or `localhost`. Such a `Host` header reaches the
//! guest as the client sent it, so the guest still sees what the client asked for.

use crate::state::HostState;
use http::header::{HOST, HeaderName};
use std::sync::Arc;
use wasmtime::component::Resource;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::types::HostIncomingRequest;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, ForbiddenHeaderFilter, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// Puts `req` into the store as the guest's incoming request, with its `Host` header when that differs from
/// the URI's authority (see the module docs).
pub(crate) fn new_incoming_request<B>(
    state: &mut HostState,
    scheme: Scheme,
    req: http::Request<B>,
) -> wasmtime::Result<Resource<HostIncomingRequest>>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    if !host_differs(&req) {
        return state.http().new_incoming_request(scheme, req);
    }
    WasiHttpCtxView {
        ctx: &mut state.http,
        table: &mut state.table,
        hooks: &mut KeepHost,
    }
    .new_incoming_request(scheme, req)
}

/// Whether the request's `Host` header says something its URI's authority does not. Without an authority in
/// the URI (a server's origin-form request), the `Host` header is the authority.
fn host_differs<B>(req: &http::Request<B>) -> bool {
    match (req.uri().authority(), req.headers().get(HOST)) {
        (Some(authority), Some(host)) => !host.as_bytes().eq_ignore_ascii_case(authority.as_str().as_bytes()),
        _ => false,
    }
}

/// wasmtime's forbidden headers, less `host`.
struct KeepHost;

fn forbidden_but_host(name: &HeaderName) -> bool {
    *name != HOST && DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

impl WasiHttpHooks for KeepHost {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(forbidden_but_host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_a_host_the_authority_does_not_carry_is_kept() {
        assert!(!host_differs(&request(
            "https://api.example.com/x",
            Some("api.example.com")
        )));
        assert!(!host_differs(&request(
            "https://api.example.com/x",
            Some("API.example.com")
        )));
        assert!(!host_differs(&request("https://api.example.com/x", None)));
        // A server's origin-form request: the Host header is the authority.
        assert!(!host_differs(&request("/x", Some("localhost:8080"))));
        assert!(host_differs(&request(
            "https://localhost/x",
            Some("1234567890.execute-api.{dns_suffix}")
        )));
        assert!(forbidden_but_host(&http::header::CONNECTION));
        assert!(!forbidden_but_host(&HOST));
    }
}
