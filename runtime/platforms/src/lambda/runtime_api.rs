//! The Lambda Runtime API, spoken by Nimbus itself: `GET …/invocation/next`, `POST …/{id}/response`,
//! `POST …/{id}/error` and `POST …/init/error`, at the address in `AWS_LAMBDA_RUNTIME_API`.
//!
//! Why not `lambda_runtime`'s loop: version 1.5 `expect`s the `Lambda-Runtime-Aws-Request-Id` and
//! `Lambda-Runtime-Deadline-Ms` headers of every `/next` answer (`Context::new` and `invoke_request_id` in its
//! `types.rs`) before any handler or layer sees it, and its loop reads events from nowhere else. A `/next` that
//! answers 500 without those headers, or an event that lacks one, therefore panicked `bootstrap` (exit 101,
//! seen with another Runtime API emulator), where AWS documents a 500 as "exit promptly" and a missing header
//! calls for a message, not a backtrace. This client checks each answer and hands every failure back as a
//! [`RuntimeApiError`] naming the call and what was wrong; the loop in [`super::run`] decides what is fatal.
//! Both use hyper's pooled HTTP/1 client. Measured (debug build with this crate at opt-level 2, 3,000 API
//! Gateway hello invocations from a minimal Runtime API stub, median of 5 alternating runs): `bootstrap` used
//! 0.92 s of CPU with this client against 1.23 s with `lambda_runtime`'s loop, which leaves the `/response`
//! answer unread and so, against a server that sends that answer's body in a second write, connects anew for
//! every invocation; this client reads every answer and keeps its one connection.
//!
//! `AWS_LAMBDA_RUNTIME_API` is `host:port` on Lambda; emulators also set `http://host:port` and
//! `http://host:port/some/path` (`cargo lambda watch`: `http://127.0.0.1:9001/.rt/fn`), where the path is a
//! prefix before `/2018-06-01/runtime/…`. [`parse_endpoint`] accepts all three.

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lambda_runtime::Diagnostic;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::time::Duration;

/// The environment variable naming the Runtime API.
pub const ENDPOINT_ENV: &str = "AWS_LAMBDA_RUNTIME_API";
/// The Runtime API version prefix.
pub const API_PREFIX: &str = "/2018-06-01/runtime";
/// The event's request id.
pub const REQUEST_ID_HEADER: &str = "Lambda-Runtime-Aws-Request-Id";
/// The event's deadline, in milliseconds since the Unix epoch.
pub const DEADLINE_HEADER: &str = "Lambda-Runtime-Deadline-Ms";
/// The event's X-Ray trace header.
pub const TRACE_HEADER: &str = "Lambda-Runtime-Trace-Id";
/// Lambda Managed Instances' id of one delivery, echoed on `/response` and `/error` so a stale answer is refused.
pub const INVOCATION_ID_HEADER: &str = "Lambda-Runtime-Invocation-Id";
/// The `errorType` of an `/error` or `/init/error` report, as a header beside the JSON body.
pub const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";

/// The furthest ahead a `Lambda-Runtime-Deadline-Ms` may be and still be taken for a deadline: four times
/// Lambda's longest timeout (15 minutes). Further, or not after now, it is no deadline Lambda could have set
/// (`600000` is ten minutes after 1970), and the manifest timeout applies instead.
pub const PLAUSIBLE_AHEAD: Duration = Duration::from_secs(60 * 60);

/// Where the Runtime API is: `AWS_LAMBDA_RUNTIME_API`, parsed by [`parse_endpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeApiEndpoint {
    authority: Authority,
    base_path: String,
}

impl RuntimeApiEndpoint {
    /// `host:port`, the address to connect to.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The path before `/2018-06-01/runtime/…`: empty, or `/some/path` (no trailing `/`).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The full URI of `path` (which starts with [`API_PREFIX`]).
    fn uri(&self, path: &str) -> Result<Uri, http::Error> {
        let pq = PathAndQuery::try_from(format!("{}{path}", self.base_path))?;
        Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

impl std::fmt::Display for RuntimeApiEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.base_path)
    }
}

/// Why `AWS_LAMBDA_RUNTIME_API` is not a Runtime API address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ENDPOINT_ENV}={value:?} is not a Runtime API address ({reason}); expected host:port, http://host:port or \
     http://host:port/path"
)]
pub struct EndpointError {
    /// The value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses `AWS_LAMBDA_RUNTIME_API`: `host:port`, `http://host:port` or `http://host:port/some/path` (the path
/// is a prefix before `/2018-06-01/runtime/…`; a trailing `/` is dropped). The Runtime API is plain HTTP, so
/// any other scheme is refused, as are user info, a query and a fragment.
pub fn parse_endpoint(value: &str) -> Result<RuntimeApiEndpoint, EndpointError> {
    let bad = |reason| EndpointError {
        value: value.to_owned(),
        reason,
    };
    let text = value.trim();
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad("the Runtime API is plain http://, not https://"));
        }
        Some(_) => return Err(bad("the scheme is not http://")),
        None => text,
    };
    if rest.contains(['?', '#']) {
        return Err(bad("it has a query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad("it names no host"));
    }
    if authority.contains('@') {
        return Err(bad("it has user info"));
    }
    let authority: Authority = authority.parse().map_err(|_| bad("the host:port is not valid"))?;
    // `Authority` leaves the port unchecked; `[::1]` has colons but no port.
    let has_port = authority
        .as_str()
        .rsplit_once(':')
        .is_some_and(|(host, _)| !host.starts_with('[') || host.ends_with(']'));
    if has_port && authority.port_u16().is_none() {
        return Err(bad("the host:port is not valid"));
    }
    let base_path = path.trim_end_matches('/');
    if !base_path.is_empty() && PathAndQuery::try_from(base_path).is_err() {
        return Err(bad("the path is not a valid URI path"));
    }
    Ok(RuntimeApiEndpoint {
        authority,
        base_path: base_path.to_owned(),
    })
}

/// One Runtime API call, for messages: `GET /2018-06-01/runtime/invocation/next`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    method: Method,
    path: String,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// What went wrong talking to the Runtime API.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    /// `AWS_LAMBDA_RUNTIME_API` is not set.
    #[error("{ENDPOINT_ENV} is not set")]
    NotSet,
    /// `AWS_LAMBDA_RUNTIME_API` is not an address.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The call got no answer (refused, reset, or a request that cannot be formed).
    #[error("{call}: no answer from the Runtime API at {endpoint}: {reason}")]
    Unreachable {
        /// The call.
        call: Call,
        /// Where it went.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The Runtime API answered with an error status. Lambda documents a 5xx as a state the runtime cannot
    /// recover from ("exit promptly"); a 4xx refuses that one request.
    #[error("{call} answered {status}{}", colon_then(.body))]
    Status {
        /// The call.
        call: Call,
        /// The status.
        status: StatusCode,
        /// The start of the answer's body, on one line.
        body: String,
    },
    /// `/next` delivered an event without a usable request id: it can never be answered.
    #[error("{call}: the event has no usable {REQUEST_ID_HEADER} header ({problem}), so it cannot be answered")]
    NoRequestId {
        /// The call.
        call: Call,
        /// Missing, empty or not text.
        problem: &'static str,
    },
}

impl RuntimeApiError {
    /// Whether the Runtime API refused just this request (a 4xx) and can serve the next one.
    pub fn is_refusal(&self) -> bool {
        matches!(self, RuntimeApiError::Status { status, .. } if status.is_client_error())
    }
}

/// The event's `Lambda-Runtime-Deadline-Ms`, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineHeader {
    /// A deadline in milliseconds since the Unix epoch, after now and within [`PLAUSIBLE_AHEAD`].
    Epoch(u64),
    /// No header.
    Missing,
    /// A header that is no such deadline (`600000`, `0`, a date far ahead, not a number), as given.
    Implausible(String),
}

impl DeadlineHeader {
    /// Judges the header's value against `now_ms` (milliseconds since the Unix epoch).
    pub fn judge(value: Option<&HeaderValue>, now_ms: u64) -> DeadlineHeader {
        let Some(value) = value else {
            return DeadlineHeader::Missing;
        };
        let text = String::from_utf8_lossy(value.as_bytes());
        match text.trim().parse::<u64>() {
            Ok(ms) if ms > now_ms && ms - now_ms <= PLAUSIBLE_AHEAD.as_millis() as u64 => DeadlineHeader::Epoch(ms),
            _ => DeadlineHeader::Implausible(text.into_owned()),
        }
    }
}

/// One event from `/next`.
#[derive(Debug)]
pub struct NextEvent {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`, judged.
    pub deadline: DeadlineHeader,
    /// `Lambda-Runtime-Trace-Id`, the X-Ray header.
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Invocation-Id`, echoed back with the answer.
    invocation_id: Option<HeaderValue>,
    /// The event.
    pub body: Bytes,
}

/// A Runtime API client.
pub struct RuntimeApi {
    endpoint: RuntimeApiEndpoint,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Characters escaped in a request id put into a path (Lambda's are UUIDs: none).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

impl RuntimeApi {
    /// A client for `endpoint`.
    pub fn new(endpoint: RuntimeApiEndpoint) -> RuntimeApi {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        RuntimeApi {
            endpoint,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// A client for the Runtime API that `AWS_LAMBDA_RUNTIME_API` names.
    pub fn from_env() -> Result<RuntimeApi, RuntimeApiError> {
        let value = std::env::var(ENDPOINT_ENV).map_err(|_| RuntimeApiError::NotSet)?;
        Ok(RuntimeApi::new(parse_endpoint(&value)?))
    }

    /// Where it talks to.
    pub fn endpoint(&self) -> &RuntimeApiEndpoint {
        &self.endpoint
    }

    /// Waits for the next event.
    pub async fn next(&self) -> Result<NextEvent, RuntimeApiError> {
        let call = Call {
            method: Method::GET,
            path: format!("{API_PREFIX}/invocation/next"),
        };
        let (headers, body) = self.call(&call, HeaderMap::new(), Bytes::new()).await?;
        let request_id = match headers.get(REQUEST_ID_HEADER).map(|v| v.to_str()) {
            None => Err("missing"),
            Some(Err(_)) => Err("not text"),
            Some(Ok(id)) if id.trim().is_empty() => Err("empty"),
            Some(Ok(id)) => Ok(id.trim().to_owned()),
        }
        .map_err(|problem| RuntimeApiError::NoRequestId {
            call: call.clone(),
            problem,
        })?;
        Ok(NextEvent {
            request_id,
            deadline: DeadlineHeader::judge(headers.get(DEADLINE_HEADER), nimbus_core::invocation::unix_ms_now()),
            trace_id: headers
                .get(TRACE_HEADER)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            invocation_id: headers.get(INVOCATION_ID_HEADER).cloned(),
            body,
        })
    }

    /// Posts the event's result.
    pub async fn respond(&self, event: &NextEvent, body: Bytes) -> Result<(), RuntimeApiError> {
        let call = Call {
            method: Method::POST,
            path: self.invocation_path(event, "response"),
        };
        self.call(&call, echo(event), body).await.map(drop)
    }

    /// Reports the event's failure: the `errorType` / `errorMessage` JSON and the error-type header.
    pub async fn report_error(&self, event: &NextEvent, diagnostic: &Diagnostic) -> Result<(), RuntimeApiError> {
        let call = Call {
            method: Method::POST,
            path: self.invocation_path(event, "error"),
        };
        let mut headers = echo(event);
        error_headers(&mut headers, diagnostic);
        self.call(&call, headers, diagnostic_body(diagnostic)).await.map(drop)
    }

    /// Reports a failed init; Lambda then fails the init with this message.
    pub async fn init_error(&self, diagnostic: &Diagnostic) -> Result<(), RuntimeApiError> {
        let call = Call {
            method: Method::POST,
            path: format!("{API_PREFIX}/init/error"),
        };
        let mut headers = HeaderMap::new();
        error_headers(&mut headers, diagnostic);
        self.call(&call, headers, diagnostic_body(diagnostic)).await.map(drop)
    }

    fn invocation_path(&self, event: &NextEvent, what: &str) -> String {
        let id = utf8_percent_encode(&event.request_id, SEGMENT);
        format!("{API_PREFIX}/invocation/{id}/{what}")
    }

    /// Sends one request; a 2xx answer's headers and body, else the error.
    async fn call(&self, call: &Call, headers: HeaderMap, body: Bytes) -> Result<(HeaderMap, Bytes), RuntimeApiError> {
        let unreachable = |reason: String| RuntimeApiError::Unreachable {
            call: call.clone(),
            endpoint: self.endpoint.to_string(),
            reason,
        };
        let uri = self.endpoint.uri(&call.path).map_err(|e| unreachable(e.to_string()))?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = call.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the answer: {}", error_chain(&e))))?
            .to_bytes();
        if !parts.status.is_success() {
            return Err(RuntimeApiError::Status {
                call: call.clone(),
                status: parts.status,
                body: one_line(&body),
            });
        }
        Ok((parts.headers, body))
    }
}

/// The headers an answer to `event` carries back.
fn echo(event: &NextEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(id) = &event.invocation_id {
        headers.insert(INVOCATION_ID_HEADER, id.clone());
    }
    headers
}

fn error_headers(headers: &mut HeaderMap, diagnostic: &Diagnostic) {
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&diagnostic.error_type) {
        headers.insert(ERROR_TYPE_HEADER, v);
    }
}

/// `{"errorType": …, "errorMessage": …}`.
fn diagnostic_body(diagnostic: &Diagnostic) -> Bytes {
    Bytes::from(
        serde_json::json!({ "errorType": diagnostic.error_type, "errorMessage": diagnostic.error_message }).to_string(),
    )
}

/// `: text`, or nothing for no text.
fn colon_then(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// An error and its sources, on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The start of an answer's body, on one line, for a message.
fn one_line(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > MAX {
        let mut end = MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(value: &str) -> (String, String) {
        let e = parse_endpoint(value).unwrap_or_else(|e| panic!("{value}: {e}"));
        (e.authority().to_string(), e.base_path().to_owned())
    }

    #[test]
    fn endpoints_in_every_form_emulators_use() {
        assert_eq!(parts("127.0.0.1:9001"), ("127.0.0.1:9001".into(), "".into()));
        assert_eq!(parts("http://127.0.0.1:9001"), ("127.0.0.1:9001".into(), "".into()));
        assert_eq!(parts("http://127.0.0.1:9001/"), ("127.0.0.1:9001".into(), "".into()));
        assert_eq!(parts("HTTP://localhost:9001"), ("localhost:9001".into(), "".into()));
        assert_eq!(
            parts("http://127.0.0.1:9001/.rt/fn"),
            ("127.0.0.1:9001".into(), "/.rt/fn".into())
        );
        assert_eq!(
            parts("http://127.0.0.1:9001/.rt/fn/"),
            ("127.0.0.1:9001".into(), "/.rt/fn".into())
        );
        assert_eq!(parts("[::1]:9001"), ("[::1]:9001".into(), "".into()));
        assert_eq!(parts("[::1]"), ("[::1]".into(), "".into()));
        assert_eq!(parts(" localhost:9001\n"), ("localhost:9001".into(), "".into()));
    }

    #[test]
    fn every_call_goes_under_the_base_path() {
        let e = parse_endpoint("http://127.0.0.1:9001/.rt/fn").unwrap();
        assert_eq!(
            e.uri("/2018-06-01/runtime/init/error").unwrap().to_string(),
            "http://127.0.0.1:9001/.rt/fn/2018-06-01/runtime/init/error"
        );
        assert_eq!(e.to_string(), "http://127.0.0.1:9001/.rt/fn");
        let e = parse_endpoint("127.0.0.1:9001").unwrap();
        assert_eq!(
            e.uri("/2018-06-01/runtime/invocation/next").unwrap().to_string(),
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next"
        );
    }

    #[test]
    fn what_is_no_runtime_api_address_is_refused_with_a_reason() {
        for (value, needle) in [
            ("", "no host"),
            ("http://", "no host"),
            ("https://127.0.0.1:9001", "plain http"),
            ("ftp://127.0.0.1:9001", "scheme"),
            ("http://user@127.0.0.1:9001", "user info"),
            ("http://127.0.0.1:9001/x?y=1", "query"),
            ("http://127.0.0.1:notaport", "host:port"),
            ("127.0.0.1:", "host:port"),
            ("127.0.0.1:99999", "host:port"),
            ("http://127.0.0.1:9001/a b", "path"),
        ] {
            let e = parse_endpoint(value).expect_err(value);
            let text = e.to_string();
            assert!(text.contains(needle), "{value}: {text}");
            assert!(text.contains("AWS_LAMBDA_RUNTIME_API"), "{text}");
        }
    }

    #[test]
    fn a_deadline_is_an_epoch_time_ahead_of_now() {
        let now = 1_800_000_000_000;
        let judge = |v: &str| DeadlineHeader::judge(Some(&HeaderValue::from_str(v).unwrap()), now);
        assert_eq!(judge("1800000003000"), DeadlineHeader::Epoch(1_800_000_003_000));
        assert_eq!(judge(" 1800000900000 "), DeadlineHeader::Epoch(1_800_000_900_000));
        for implausible in [
            "600000",
            "0",
            "1800000000000",
            "1799999999000",
            "1800003600001",
            "soon",
            "-1",
        ] {
            assert_eq!(
                judge(implausible),
                DeadlineHeader::Implausible(implausible.into()),
                "{implausible}"
            );
        }
        assert_eq!(DeadlineHeader::judge(None, now), DeadlineHeader::Missing);
    }

    #[test]
    fn answer_bodies_become_one_short_line() {
        assert_eq!(one_line(b"{\"errorType\":\n  \"x\"}\n"), "{\"errorType\": \"x\"}");
        let long = one_line("é".repeat(400).as_bytes());
        assert!(
            long.ends_with('…') && long.len() <= 300 + '…'.len_utf8(),
            "{}",
            long.len()
        );
    }
}
