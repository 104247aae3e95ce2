//! Lambda events → Nimbus payloads. Pure functions, tested on fixtures.
//!
//! The event's source is sniffed once with a probe that skips everything it
//! does not need, then the event is deserialized once into its
//! `aws_lambda_events` type. HTTP events (API Gateway REST v1 and HTTP API
//! v2, Function URLs, ALB) become `http::Request`s for `wasi:http`; every
//! other event goes to `events.handle` verbatim with its source kind.
//!
//! The request conversion is ours rather than `lambda_http`'s: that one
//! panics on a malformed `Host` header or path and keeps the API Gateway
//! stage in the path, where a guest should see the same path it sees under
//! `nimbus serve`.

use aws_lambda_events::alb::AlbTargetGroupRequest;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use nimbus_core::EventSource;
use nimbus_core::websocket::{ConnectRequest, Disconnect, IncomingMessage, Message, WsEvent};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;
use serde::de::IgnoredAny;

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

/// Just enough of an event to tell its source; everything else is skipped.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "requestContext")]
    request_context: Option<ProbeContext>,
    #[serde(rename = "httpMethod")]
    http_method: Option<IgnoredAny>,
    #[serde(rename = "multiValueHeaders")]
    multi_value_headers: Option<IgnoredAny>,
    #[serde(rename = "Records")]
    records: Option<ProbeRecords>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    source: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProbeContext {
    http: Option<IgnoredAny>,
    elb: Option<IgnoredAny>,
    #[serde(rename = "connectionId")]
    connection_id: Option<IgnoredAny>,
    #[serde(rename = "domainName")]
    domain_name: Option<String>,
}

/// The first record's `eventSource` (`EventSource` for SNS); the rest are skipped.
struct ProbeRecords(Option<String>);

impl<'de> Deserialize<'de> for ProbeRecords {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ProbeRecords;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ProbeRecords, A::Error> {
                #[derive(Deserialize)]
                struct First {
                    #[serde(rename = "eventSource", alias = "EventSource")]
                    event_source: Option<String>,
                }
                let first = seq.next_element::<First>().ok().flatten();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ProbeRecords(first.and_then(|f| f.event_source)))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Tells an event's origin. Anything that is not recognisably an AWS
/// source — including JSON that is not an object — is a direct invocation.
pub fn sniff(raw: &str) -> Origin {
    let Ok(p) = serde_json::from_str::<Probe>(raw) else {
        return Origin::Event(EventSource::Direct);
    };
    if let Some(ctx) = &p.request_context {
        if ctx.connection_id.is_some() {
            return Origin::WebSocket;
        }
        if ctx.elb.is_some() {
            return Origin::Alb {
                multi_value: p.multi_value_headers.is_some(),
            };
        }
        if ctx.http.is_some() {
            let url = ctx.domain_name.as_deref().is_some_and(|d| d.contains(".lambda-url."));
            return if url { Origin::FunctionUrl } else { Origin::ApiGatewayV2 };
        }
        if p.http_method.is_some() {
            return Origin::ApiGatewayV1;
        }
    }
    if let Some(ProbeRecords(Some(src))) = &p.records {
        let source = match src.as_str() {
            "aws:sqs" => EventSource::Sqs,
            "aws:sns" => EventSource::Sns,
            "aws:s3" => EventSource::S3,
            "aws:dynamodb" => EventSource::DynamoDb,
            "aws:kinesis" => EventSource::Kinesis,
            _ => EventSource::Other,
        };
        return Origin::Event(source);
    }
    if let (Some(dt), Some(_)) = (&p.detail_type, &p.source) {
        return Origin::Event(if dt == "Scheduled Event" {
            EventSource::Schedule
        } else {
            EventSource::EventBridge
        });
    }
    Origin::Event(EventSource::Direct)
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

/// An API Gateway WebSocket event, decoded: the lifecycle event for the guest and the API it came from.
#[derive(Debug)]
pub struct WebSocketRequest {
    /// What the guest is invoked for.
    pub event: WsEvent,
    /// `https://{domainName}/{stage}`: the API's Management API endpoint (`@connections`).
    pub endpoint: Option<String>,
}

/// Decodes an API Gateway WebSocket event (`$connect`, `$disconnect`, or a message's route key).
pub fn websocket_request(raw: &str) -> Result<WebSocketRequest, String> {
    let ev: ApiGatewayWebsocketProxyRequest =
        serde_json::from_str(raw).map_err(|e| format!("malformed API Gateway WebSocket event: {e}"))?;
    let ctx = ev.request_context;
    let connection_id = ctx
        .connection_id
        .ok_or("the WebSocket event has no requestContext.connectionId")?;
    let endpoint = match (&ctx.domain_name, &ctx.stage) {
        (Some(domain), Some(stage)) => Some(format!("https://{domain}/{stage}")),
        _ => None,
    };
    let route_key = ctx.route_key.unwrap_or_else(|| "$default".into());
    let event = match (route_key.as_str(), ctx.event_type.as_deref()) {
        ("$connect", _) | (_, Some("CONNECT")) => {
            let headers = merge_headers(ev.multi_value_headers, ev.headers)
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let params = if ev.multi_value_query_string_parameters.is_empty() {
                &ev.query_string_parameters
            } else {
                &ev.multi_value_query_string_parameters
            };
            let query = params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            WsEvent::Connect(ConnectRequest {
                connection_id,
                path: ev.path.or(ctx.resource_path).unwrap_or_else(|| "/".into()),
                headers,
                query,
                source_ip: ctx.identity.source_ip,
            })
        }
        ("$disconnect", _) | (_, Some("DISCONNECT")) => WsEvent::Disconnect(Disconnect {
            connection_id,
            status_code: ctx.disconnect_status_code.and_then(|c| u16::try_from(c).ok()),
            reason: ctx.disconnect_reason.unwrap_or_default(),
        }),
        _ => {
            let body = ev.body.unwrap_or_default();
            let message = if ev.is_base64_encoded {
                Message::Binary(
                    base64::engine::general_purpose::STANDARD
                        .decode(body.as_bytes())
                        .map_err(|e| format!("the WebSocket message is not valid base64: {e}"))?,
                )
            } else {
                Message::Text(body)
            };
            WsEvent::Message(IncomingMessage {
                connection_id,
                route_key,
                message,
            })
        }
    };
    Ok(WebSocketRequest { event, endpoint })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_events_decode_with_their_api_endpoint() {
        let connect = r#"{"requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "abc=", "connectedAt": 1, "requestTimeEpoch": 1,
            "domainName": "id.execute-api.eu-west-1.amazonaws.com", "stage": "dev",
            "identity": {"sourceIp": "198.51.100.7"}},
            "headers": {"Origin": "https://app.example"},
            "multiValueQueryStringParameters": {"room": ["a", "b"]}}"#;
        let req = websocket_request(connect).unwrap();
        assert_eq!(
            req.endpoint.as_deref(),
            Some("https://id.execute-api.eu-west-1.amazonaws.com/dev")
        );
        let WsEvent::Connect(c) = req.event else {
            panic!("not a connect")
        };
        assert_eq!(c.connection_id, "abc=");
        assert_eq!(c.source_ip.as_deref(), Some("198.51.100.7"));
        assert!(
            c.headers.contains(&("origin".into(), "https://app.example".into())),
            "{:?}",
            c.headers
        );
        assert_eq!(c.query.iter().filter(|(k, _)| k == "room").count(), 2);

        let bad = r#"{"requestContext": {"routeKey": "send", "connectionId": "x", "connectedAt": 1, "requestTimeEpoch": 1}, "body": "%%", "isBase64Encoded": true}"#;
        assert!(websocket_request(bad).unwrap_err().contains("base64"));
        let anonymous =
            r#"{"requestContext": {"routeKey": "send", "connectedAt": 1, "requestTimeEpoch": 1}, "body": "hi"}"#;
        assert!(websocket_request(anonymous).unwrap_err().contains("connectionId"));
        let message = r#"{"requestContext": {"routeKey": "send", "connectionId": "x", "connectedAt": 1, "requestTimeEpoch": 1}, "body": "hi"}"#;
        let req = websocket_request(message).unwrap();
        assert_eq!(req.endpoint, None);
        assert!(
            matches!(req.event, WsEvent::Message(m) if m.route_key == "send" && matches!(&m.message, Message::Text(t) if t == "hi"))
        );
    }

    #[test]
    fn stage_is_stripped_only_as_a_whole_segment() {
        assert_eq!(strip_stage("/prod/hello", Some("prod")), "/hello");
        assert_eq!(strip_stage("/prod", Some("prod")), "/");
        assert_eq!(strip_stage("/production/x", Some("prod")), "/production/x");
        assert_eq!(strip_stage("/hello", Some("$default")), "/hello");
        assert_eq!(strip_stage("/hello", None), "/hello");
    }

    #[test]
    fn non_objects_and_unknown_shapes_are_direct() {
        for raw in [
            "42",
            "\"hi\"",
            "[1,2]",
            "{}",
            "{\"Records\": [1, 2]}",
            "{\"requestContext\": 5}",
            "null",
        ] {
            assert_eq!(sniff(raw), Origin::Event(EventSource::Direct), "{raw}");
        }
        assert_eq!(
            sniff(r#"{"Records":[{"eventSource":"aws:custom"}]}"#),
            Origin::Event(EventSource::Other)
        );
    }

    #[test]
    fn bad_host_header_and_odd_paths_do_not_panic() {
        let raw = r#"{"httpMethod":"GET","path":"/a b/<x>","headers":{"Host":"bad host"},
            "queryStringParameters":{"q":"a b&c"},"requestContext":{"httpMethod":"GET","domainName":"ok.example"}}"#;
        assert_eq!(sniff(raw), Origin::ApiGatewayV1);
        let req = http_request(Origin::ApiGatewayV1, raw).unwrap();
        assert_eq!(req.uri().to_string(), "https://ok.example/a%20b/%3Cx%3E?q=a%20b%26c");
        assert_eq!(
            req.headers()["host"],
            "bad host",
            "the Host header is passed on as given"
        );
    }

    #[test]
    fn a_host_that_is_no_authority_is_kept_beside_a_valid_one() {
        // AWS's sample API Gateway console event, with no domainName: the URI falls back to localhost.
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/events/aws_lambda_events/example-apigw-console-request.json"
        );
        let raw = std::fs::read_to_string(fixture).unwrap();
        let req = http_request(sniff(&raw), &raw).unwrap();
        assert_eq!(req.uri().authority().map(|a| a.as_str()), Some("localhost"));
        assert_eq!(req.headers()["host"], "1234567890.execute-api.{dns_suffix}");
        // HTTP API (v2): a valid requestContext.domainName is the authority; headers.host stays as given.
        let raw = r#"{"version":"2.0","rawPath":"/","headers":{"host":"id.execute-api.{dns_suffix}"},
            "requestContext":{"http":{"method":"GET"},"domainName":"id.execute-api.us-east-1.amazonaws.com"}}"#;
        let req = http_request(Origin::ApiGatewayV2, raw).unwrap();
        assert_eq!(req.uri().to_string(), "https://id.execute-api.us-east-1.amazonaws.com/");
        assert_eq!(req.headers()["host"], "id.execute-api.{dns_suffix}");
        // Without any Host header, the authority becomes one.
        let raw =
            r#"{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"GET"},"domainName":"d.example"}}"#;
        let req = http_request(Origin::ApiGatewayV2, raw).unwrap();
        assert_eq!(req.headers()["host"], "d.example");
    }

    #[test]
    fn bad_base64_is_a_bad_event() {
        let raw = r#"{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"POST"}},
            "body":"***","isBase64Encoded":true}"#;
        let err = http_request(Origin::ApiGatewayV2, raw).unwrap_err();
        assert!(err.contains("base64"), "{err}");
    }
}
