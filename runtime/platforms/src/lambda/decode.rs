//! Lambda events → Nimbus payloads. Pure functions, tested on fixtures.
//!
//! The event's source is sniffed once with a probe that skips everything it
//! does not need ([`sniff`]), then the event is deserialized once into its
//! `aws_lambda_events` type. HTTP events (API Gateway REST v1 and HTTP API
//! v2, Function URLs, ALB) become `http::Request`s for `wasi:http`
//! ([`http_request`]); WebSocket API events become lifecycle events
//! ([`websocket_request`]); every other event goes to `events.handle`
//! verbatim with its source kind ([`event`]).
//!
//! The request conversion is ours rather than `lambda_http`'s: that one
//! panics on a malformed `Host` header or path and keeps the API Gateway
//! stage in the path, where a guest should see the same path it sees under
//! `nimbus serve`.
//!
//! Every sample event in `tests/fixtures/events` is decoded in `tests/`, with
//! what each decoder yields for it written out.

mod sniff;
pub mod task;
#[cfg(test)]
mod tests;
mod websocket;

pub use sniff::sniff;
pub use websocket::{WebSocketRequest, websocket_request};

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use nimbus_core::{Event, EventSource};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::value::RawValue;

/// Where an event came from, as far as the response shape is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// API Gateway REST API (payload format 1.0).
    ApiGatewayV1,
    /// API Gateway HTTP API (payload format 2.0).
    ApiGatewayV2,
    /// A Lambda Function URL (format 2.0, its own response type).
    FunctionUrl,
    /// An Application Load Balancer target group.
    Alb {
        /// The target group has multi-value headers on: answer in kind.
        multi_value: bool,
    },
    /// An API Gateway WebSocket API route.
    WebSocket,
    /// Anything else: SQS, SNS, S3, EventBridge, DynamoDB, Kinesis, plain JSON.
    Event(EventSource),
}

impl Origin {
    /// Whether this is an HTTP request for a `wasi:http` function.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Origin::ApiGatewayV1 | Origin::ApiGatewayV2 | Origin::FunctionUrl | Origin::Alb { .. }
        )
    }

    /// A short name for logs and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Origin::ApiGatewayV1 => "API Gateway REST (v1)",
            Origin::ApiGatewayV2 => "API Gateway HTTP API (v2)",
            Origin::FunctionUrl => "Function URL",
            Origin::Alb { .. } => "ALB",
            Origin::WebSocket => "API Gateway WebSocket",
            Origin::Event(EventSource::Sqs) => "SQS",
            Origin::Event(EventSource::Sns) => "SNS",
            Origin::Event(EventSource::S3) => "S3",
            Origin::Event(EventSource::EventBridge) => "EventBridge",
            Origin::Event(EventSource::Schedule) => "scheduled",
            Origin::Event(EventSource::DynamoDb) => "DynamoDB stream",
            Origin::Event(EventSource::Kinesis) => "Kinesis",
            Origin::Event(_) => "direct",
        }
    }
}

/// The event for an event function: the event's JSON text verbatim (what
/// Lambda sent, byte for byte) with the source kind [`sniff`] told. Events of
/// other shapes (HTTP, WebSocket) reach an event function as `Other`.
pub fn event(origin: Origin, raw: Box<RawValue>) -> Event {
    let source = match origin {
        Origin::Event(s) => s,
        _ => EventSource::Other,
    };
    Event {
        source,
        payload: Box::<str>::from(raw).into_boxed_bytes().into_vec(),
    }
}

/// The source-independent parts of an HTTP event, before validation.
struct HttpParts {
    method: Method,
    path: String,
    /// Already percent-encoded.
    query: Option<String>,
    headers: HeaderMap,
    /// Used as `Host` when the event carries no `Host` header.
    domain: Option<String>,
    body: Option<String>,
    base64: bool,
}

/// Decodes an HTTP event of `origin` (see [`sniff`]) into a request whose
/// URI is absolute (`https://host/path?query`) so the guest sees scheme,
/// authority, path and query. Errors are messages for `Function.BadEvent`.
pub fn http_request(origin: Origin, raw: &str) -> Result<Request<Bytes>, String> {
    let bad = |e: serde_json::Error| format!("malformed {} event: {e}", origin.name());
    let parts = match origin {
        Origin::ApiGatewayV1 => v1_parts(serde_json::from_str(raw).map_err(bad)?),
        Origin::ApiGatewayV2 => v2_parts(serde_json::from_str(raw).map_err(bad)?),
        Origin::FunctionUrl => url_parts(serde_json::from_str(raw).map_err(bad)?)?,
        Origin::Alb { .. } => alb_parts(serde_json::from_str(raw).map_err(bad)?),
        other => return Err(format!("{} events are not HTTP requests", other.name())),
    };
    build(parts)
}

fn v1_parts(ev: ApiGatewayProxyRequest) -> HttpParts {
    // `path` is the request path without the stage (`requestContext.path` has it).
    let path = ev.path.or(ev.request_context.path).unwrap_or_else(|| "/".into());
    let query = if ev.multi_value_query_string_parameters.is_empty() {
        encode_query(&ev.query_string_parameters)
    } else {
        encode_query(&ev.multi_value_query_string_parameters)
    };
    HttpParts {
        method: ev.http_method,
        path,
        query,
        headers: merge_headers(ev.multi_value_headers, ev.headers),
        domain: ev.request_context.domain_name,
        body: ev.body,
        base64: ev.is_base64_encoded,
    }
}

fn v2_parts(ev: ApiGatewayV2httpRequest) -> HttpParts {
    let ctx = ev.request_context;
    let raw_path = ev.raw_path.or(ctx.http.path).unwrap_or_else(|| "/".into());
    let mut headers = ev.headers;
    add_cookies(&mut headers, ev.cookies);
    HttpParts {
        method: ctx.http.method,
        path: strip_stage(&raw_path, ctx.stage.as_deref()).to_owned(),
        query: ev.raw_query_string.filter(|q| !q.is_empty()),
        headers,
        domain: ctx.domain_name,
        body: ev.body,
        base64: ev.is_base64_encoded,
    }
}

fn url_parts(ev: LambdaFunctionUrlRequest) -> Result<HttpParts, String> {
    let ctx = ev.request_context;
    let method = ctx.http.method.as_deref().unwrap_or("GET");
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| format!("bad HTTP method {method:?}"))?;
    let mut headers = ev.headers;
    add_cookies(&mut headers, ev.cookies);
    Ok(HttpParts {
        method,
        path: ev.raw_path.or(ctx.http.path).unwrap_or_else(|| "/".into()),
        query: ev.raw_query_string.filter(|q| !q.is_empty()),
        headers,
        domain: ctx.domain_name,
        body: ev.body,
        base64: ev.is_base64_encoded,
    })
}

fn alb_parts(ev: AlbTargetGroupRequest) -> HttpParts {
    // ALB passes query parameters exactly as the client sent them (still
    // percent-encoded), so they are joined, not encoded again.
    let params = if ev.multi_value_query_string_parameters.is_empty() {
        &ev.query_string_parameters
    } else {
        &ev.multi_value_query_string_parameters
    };
    let query = join_query(params, |s| s.into());
    HttpParts {
        method: ev.http_method,
        path: ev.path.unwrap_or_else(|| "/".into()),
        query,
        headers: merge_headers(ev.multi_value_headers, ev.headers),
        domain: None,
        body: ev.body,
        base64: ev.is_base64_encoded,
    }
}

/// HTTP API puts a named stage in `rawPath` (`/prod/hello`); the guest sees `/hello`.
fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => match path.strip_prefix('/') {
            Some(rest) => match rest.strip_prefix(stage) {
                Some("") => "/",
                Some(tail) if tail.starts_with('/') => tail,
                _ => path,
            },
            None => path,
        },
        _ => path,
    }
}

/// Multi-value headers win; single-value ones fill in names they lack.
fn merge_headers(mut multi: HeaderMap, single: HeaderMap) -> HeaderMap {
    for (name, value) in single.iter() {
        if !multi.contains_key(name) {
            multi.insert(name.clone(), value.clone());
        }
    }
    multi
}

/// Payload format 2.0 moves `Cookie` headers into `cookies`; put them back.
fn add_cookies(headers: &mut HeaderMap, cookies: Option<Vec<String>>) {
    if let Some(cookies) = cookies.filter(|c| !c.is_empty())
        && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Characters escaped in a query component (RFC 3986 unreserved ones stay).
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b'%')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']');

/// Characters that cannot appear in a URI at all; `%` is left alone, so
/// already-encoded text stays as it is.
const RAW: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// In a path, `?` would start the query.
const PATH: &AsciiSet = &RAW.add(b'?');

/// API Gateway v1 hands over decoded parameters; encode them again.
fn encode_query(q: &QueryMap) -> Option<String> {
    join_query(q, |s| utf8_percent_encode(s, QUERY).to_string())
}

/// `k=v&k=v2&…` with keys sorted (the map has no order) and each key's
/// values in their original order.
fn join_query(q: &QueryMap, enc: impl Fn(&str) -> String) -> Option<String> {
    if q.is_empty() {
        return None;
    }
    let mut pairs: Vec<(&str, &str)> = q.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&enc(k));
        out.push('=');
        out.push_str(&enc(v));
    }
    Some(out)
}

fn build(p: HttpParts) -> Result<Request<Bytes>, String> {
    let body = match (p.body, p.base64) {
        (None, _) => Bytes::new(),
        (Some(b), false) => Bytes::from(b),
        (Some(b), true) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map(Bytes::from)
            .map_err(|e| format!("isBase64Encoded is true but the body is not base64: {e}"))?,
    };
    let mut headers = p.headers;
    // The URI's authority: the Host header when it is a valid one, else the event's domain name, else
    // `localhost`. The Host header itself is never rewritten: one that no authority can hold (AWS's sample
    // events say `1234567890.execute-api.{dns_suffix}`) reaches the guest as given.
    let host = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(h) if h.parse::<http::uri::Authority>().is_ok() => h.to_owned(),
        _ => p
            .domain
            .filter(|d| d.parse::<http::uri::Authority>().is_ok())
            .unwrap_or_else(|| "localhost".into()),
    };
    if !headers.contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(&host)
    {
        headers.insert(header::HOST, v);
    }
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        _ => "https",
    };
    let mut uri = format!("{scheme}://{host}");
    if !p.path.starts_with('/') {
        uri.push('/');
    }
    uri.extend(utf8_percent_encode(&p.path, PATH));
    if let Some(q) = p.query {
        uri.push('?');
        // Raw query strings come from the client: escape what a URI cannot hold.
        uri.extend(utf8_percent_encode(&q, RAW));
    }
    let uri: http::Uri = uri
        .parse()
        .map_err(|e| format!("cannot form a request URI from the event: {e}"))?;
    // The event's own Content-Length, if any, may describe the base64 text.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut req = Request::new(body);
    *req.method_mut() = p.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}
