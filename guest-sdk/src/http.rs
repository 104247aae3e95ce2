//! HTTP functions: a handler from [`Request`] to anything [`IntoResponse`].
//!
//! The request body is read fully before the handler runs (the host bounds
//! it with `max_request_body`); the response is written in one go. For
//! streaming, implement `wasi:http/incoming-handler` directly with
//! [`wasip2`](https://docs.rs/wasip2) — Nimbus runs any `wasi:http/proxy`
//! component.
//!
//! ```no_run
//! use nimbus_sdk::http::{Request, Response, StatusCode};
//!
//! fn handle(req: Request) -> Result<Response, String> {
//!     if req.method() != "POST" {
//!         return Ok(nimbus_sdk::http::status(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
//!     }
//!     let body = String::from_utf8(req.into_body()).map_err(|e| e.to_string())?;
//!     Ok(Response::new(body.to_uppercase().into_bytes()))
//! }
//!
//! nimbus_sdk::http_function!(handle);
//! # fn main() {}
//! ```

use std::io::{Read, Write};
use wasip2::http::types::{
    Fields, IncomingRequest, Method as WasiMethod, OutgoingBody, OutgoingResponse, ResponseOutparam, Scheme,
};

pub use ::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};

/// An HTTP request with its whole body.
pub type Request = ::http::Request<Vec<u8>>;
/// An HTTP response with its whole body.
pub type Response = ::http::Response<Vec<u8>>;

/// Why an outgoing request got no response: the `wasi:http` error code, with what Nimbus adds to it.
#[derive(Debug, Clone)]
pub struct FetchError(pub wasip2::http::types::ErrorCode);

impl FetchError {
    /// The circuit breaker's refusal, when that is what this is ([`CircuitOpen`]).
    pub fn circuit_open(&self) -> Option<CircuitOpen> {
        circuit_open(&self.0)
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.circuit_open() {
            Some(open) => write!(
                f,
                "circuit open for {} (retry after {} ms)",
                open.host, open.retry_after_ms
            ),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// An outgoing request the host refused because its host's circuit breaker is open (the manifest's
/// `[function.NAME.breaker]`): nothing was sent. A handler falls back on it (a cached value, a degraded
/// answer) instead of waiting on a host that is failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    /// The host and port whose circuit is open.
    pub host: String,
    /// How long until the breaker lets a probe through, in milliseconds.
    pub retry_after_ms: u64,
}

/// Whether an outgoing request's error is a circuit breaker's refusal ([`CircuitOpen`]). The host reports it
/// as `internal-error("circuit-open: HOST:PORT; retry after N ms")`; this reads that.
pub fn circuit_open(error: &wasip2::http::types::ErrorCode) -> Option<CircuitOpen> {
    let wasip2::http::types::ErrorCode::InternalError(Some(message)) = error else {
        return None;
    };
    let rest = message.strip_prefix("circuit-open: ")?;
    let (host, after) = rest.split_once("; retry after ")?;
    let retry_after_ms = after.strip_suffix(" ms")?.parse().ok()?;
    Some(CircuitOpen {
        host: host.to_owned(),
        retry_after_ms,
    })
}

/// GETs `url` through `wasi:http/outgoing-handler` (the manifest's `allowed_outbound_hosts` decide whether
/// it may leave) and reads the response body whole. Invocation trace headers are added by the host.
pub fn get(url: &str) -> Result<Response, FetchError> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{ErrorCode, OutgoingRequest};
    let internal = |what: &str| FetchError(ErrorCode::InternalError(Some(what.to_owned())));
    let uri: Uri = url.parse().map_err(|_| FetchError(ErrorCode::HttpRequestUriInvalid))?;
    let req = OutgoingRequest::new(Fields::new());
    let scheme = if uri.scheme_str() == Some("https") {
        Scheme::Https
    } else {
        Scheme::Http
    };
    req.set_scheme(Some(&scheme)).map_err(|_| internal("scheme"))?;
    req.set_authority(uri.authority().map(|a| a.as_str()))
        .map_err(|_| FetchError(ErrorCode::HttpRequestUriInvalid))?;
    req.set_path_with_query(Some(uri.path_and_query().map_or("/", |p| p.as_str())))
        .map_err(|_| FetchError(ErrorCode::HttpRequestUriInvalid))?;
    let pending = outgoing_handler::handle(req, None).map_err(FetchError)?;
    pending.subscribe().block();
    let incoming = pending
        .get()
        .ok_or_else(|| internal("no response"))?
        .map_err(|_| internal("response taken"))?
        .map_err(FetchError)?;
    let mut builder = ::http::Response::builder().status(incoming.status());
    for (name, value) in incoming.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = incoming.consume().map_err(|_| internal("body taken"))?;
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().map_err(|_| internal("body stream taken"))?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| FetchError(ErrorCode::InternalError(Some(format!("reading the body: {e}")))))?;
    }
    drop(body);
    builder.body(bytes).map_err(|e| internal(&e.to_string()))
}

/// A response with `status` and a plain-text body.
pub fn status(status: StatusCode, text: impl Into<String>) -> Response {
    let mut r = Response::new(text.into().into_bytes());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A `200 OK` JSON response.
pub fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut r = Response::new(body);
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode JSON: {e}")),
    }
}

/// What a handler may return.
pub trait IntoResponse {
    /// The response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        status(StatusCode::OK, self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        status(StatusCode::OK, self)
    }
}

impl IntoResponse for (StatusCode, String) {
    fn into_response(self) -> Response {
        status(self.0, self.1)
    }
}

impl<T: IntoResponse, E: std::fmt::Display> IntoResponse for Result<T, E> {
    /// `Err` becomes a 500 with the error's text.
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

fn to_request(req: &IncomingRequest) -> Result<Request, String> {
    let method = match req.method() {
        WasiMethod::Get => Method::GET,
        WasiMethod::Head => Method::HEAD,
        WasiMethod::Post => Method::POST,
        WasiMethod::Put => Method::PUT,
        WasiMethod::Delete => Method::DELETE,
        WasiMethod::Connect => Method::CONNECT,
        WasiMethod::Options => Method::OPTIONS,
        WasiMethod::Trace => Method::TRACE,
        WasiMethod::Patch => Method::PATCH,
        WasiMethod::Other(m) => Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string())?,
    };
    let scheme = match req.scheme() {
        Some(Scheme::Https) => "https".to_owned(),
        Some(Scheme::Other(s)) => s,
        _ => "http".to_owned(),
    };
    let authority = req.authority().unwrap_or_else(|| "localhost".into());
    let path = req.path_with_query().unwrap_or_else(|| "/".into());
    let mut builder = ::http::Request::builder()
        .method(method)
        .uri(format!("{scheme}://{authority}{path}"));
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let mut body = Vec::new();
    let incoming = req.consume().map_err(|_| "request body already consumed".to_owned())?;
    {
        let mut stream = incoming
            .stream()
            .map_err(|_| "request body stream unavailable".to_owned())?;
        stream
            .read_to_end(&mut body)
            .map_err(|e| format!("reading request body: {e}"))?;
    }
    drop(incoming);
    builder.body(body).map_err(|e| e.to_string())
}

fn send(resp: Response, out: ResponseOutparam) {
    let (parts, body) = resp.into_parts();
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let fields = match Fields::from_list(&headers) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("nimbus-sdk: invalid response headers: {e:?}");
            Fields::new()
        }
    };
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(parts.status.as_u16());
    let Ok(out_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = out_body.write()
        && let Err(e) = Write::write_all(&mut stream, &body).and_then(|_| Write::flush(&mut stream))
    {
        eprintln!("nimbus-sdk: writing response body: {e}");
    }
    let _ = OutgoingBody::finish(out_body, None);
}

#[doc(hidden)]
pub fn __serve<F, R>(req: IncomingRequest, out: ResponseOutparam, handler: F)
where
    F: FnOnce(Request) -> R,
    R: IntoResponse,
{
    let response = match to_request(&req) {
        Ok(r) => {
            drop(req);
            handler(r).into_response()
        }
        Err(e) => status(StatusCode::BAD_REQUEST, e),
    };
    send(response, out);
}

/// Exports a function `fn(Request) -> impl IntoResponse` as this
/// component's `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! http_function {
    ($handler:path) => {
        struct __NimbusHttpFunction;
        impl $crate::wasip2::exports::http::incoming_handler::Guest for __NimbusHttpFunction {
            fn handle(
                request: $crate::wasip2::http::types::IncomingRequest,
                response_out: $crate::wasip2::http::types::ResponseOutparam,
            ) {
                $crate::http::__serve(request, response_out, $handler)
            }
        }
        $crate::wasip2::http::proxy::export!(__NimbusHttpFunction with_types_in $crate::wasip2);
    };
}
