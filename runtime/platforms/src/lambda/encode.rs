//! Nimbus outcomes → what the Lambda Runtime API expects. Pure functions.
//!
//! An HTTP answer goes back in the exact response type of the event's
//! source (`aws_lambda_events`): `multiValueHeaders` for REST APIs,
//! `cookies` for HTTP APIs and Function URLs, a status description and the
//! target group's header mode for ALB, and `isBase64Encoded` with a base64
//! body whenever the body is not text. A failed HTTP invocation is still an
//! HTTP answer (500, 504, … with a JSON error body), as API Gateway would
//! give; a failed event invocation is a [`Diagnostic`] for
//! `/invocation/{id}/error`.

use super::decode::Origin;
use crate::reply::Reply;
use aws_lambda_events::alb::AlbTargetGroupResponse;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlResponse;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use lambda_runtime::Diagnostic;
use nimbus_core::InvokeError;
use serde_json::value::RawValue;

/// The `errorType` / `errorMessage` Lambda records for a failed invocation, which the invoker receives:
/// [`InvokeError::public_message`] (a trap's backtrace stays in the function's log).
pub fn diagnostic(e: &InvokeError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().into(),
        error_message: e.public_message().into_owned(),
    }
}

/// An event function's output as the invocation's response. Its output is
/// JSON as a rule; anything else is returned as a JSON string (Lambda's
/// Invoke API hands callers JSON), and no output at all as `null`.
pub fn event_output(output: Vec<u8>) -> Box<RawValue> {
    let text = match String::from_utf8(output) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    if text.trim().is_empty() {
        return raw_json("null".into());
    }
    if serde_json::from_str::<&RawValue>(&text).is_ok() {
        return raw_json(text);
    }
    raw_json(serde_json::Value::String(text).to_string())
}

/// A WebSocket function's answer as the route response API Gateway expects: `statusCode` (a rejected
/// connect's status refuses the connection; an accepted one carries the chosen `Sec-WebSocket-Protocol`),
/// and a message's reply as `body` (base64 when binary).
pub fn websocket_response(outcome: nimbus_core::websocket::WsOutcome, subprotocol: Option<&str>) -> Box<RawValue> {
    use nimbus_core::websocket::{Message, WsOutcome};
    let v = match outcome {
        WsOutcome::Accepted => match subprotocol {
            Some(p) => serde_json::json!({ "statusCode": 200, "headers": { "Sec-WebSocket-Protocol": p } }),
            None => serde_json::json!({ "statusCode": 200 }),
        },
        WsOutcome::Disconnected | WsOutcome::Handled(None) => serde_json::json!({ "statusCode": 200 }),
        WsOutcome::Rejected(r) => serde_json::json!({ "statusCode": r.status, "body": r.reason }),
        WsOutcome::Handled(Some(Message::Text(t))) => serde_json::json!({ "statusCode": 200, "body": t }),
        WsOutcome::Handled(Some(Message::Binary(b))) => serde_json::json!({
            "statusCode": 200,
            "body": base64::engine::general_purpose::STANDARD.encode(b),
            "isBase64Encoded": true,
        }),
    };
    raw_json(v.to_string())
}

/// Wraps text already known to be JSON as a response payload.
pub fn raw_json(text: String) -> Box<RawValue> {
    RawValue::from_string(text).unwrap_or_else(|_| serde_json::value::to_raw_value(&()).unwrap_or_default())
}

/// Whether a body goes out as text: a textual content type, no content
/// encoding, and valid UTF-8.
fn is_text(headers: &HeaderMap, body: &[u8]) -> bool {
    if headers.contains_key(header::CONTENT_ENCODING) || std::str::from_utf8(body).is_err() {
        return false;
    }
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || [
            "application/json",
            "application/javascript",
            "application/xml",
            "application/yaml",
        ]
        .contains(&essence.as_str())
        || ["+json", "+xml", "+yaml"].iter().any(|s| essence.ends_with(s))
        || essence == "application/x-www-form-urlencoded"
}

/// The body as `aws_lambda_events`' `Body` and its `isBase64Encoded` flag.
fn body_of(headers: &HeaderMap, body: Bytes) -> (Option<Body>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    if is_text(headers, &body) {
        (Some(Body::Text(String::from_utf8_lossy(&body).into_owned())), false)
    } else {
        (Some(Body::Binary(body.to_vec())), true)
    }
}

/// Drops header values that are not UTF-8: the JSON response cannot carry them.
fn utf8_only(headers: HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        if value.to_str().is_ok() {
            out.append(name.clone(), value.clone());
        } else {
            tracing::warn!(header = %name, "dropping a response header whose value is not UTF-8");
        }
    }
    out
}

/// One value per name: repeated values joined with `, ` (HTTP's list
/// syntax), except `Set-Cookie`, which cannot be joined and keeps its last.
fn single_valued(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        let joined = if name == header::SET_COOKIE {
            values.last().map(|v| (*v).to_owned())
        } else {
            Some(values.join(", "))
        };
        if let Some(v) = joined.and_then(|j| HeaderValue::from_str(&j).ok()) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Takes the `Set-Cookie` headers out, for the `cookies` field of format 2.0.
fn take_cookies(headers: &mut HeaderMap) -> Vec<String> {
    let cookies = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    headers.remove(header::SET_COOKIE);
    cookies
}

/// Encodes an HTTP answer in the response type of `origin`.
pub fn http_response(origin: Origin, reply: Reply) -> Result<Box<RawValue>, serde_json::Error> {
    let status = i64::from(reply.status.as_u16());
    let mut headers = utf8_only(reply.headers);
    let json = match origin {
        Origin::ApiGatewayV2 => {
            let cookies = take_cookies(&mut headers);
            let (body, b64) = body_of(&headers, reply.body);
            let mut r = ApiGatewayV2httpResponse::default();
            r.status_code = status;
            r.headers = single_valued(&headers);
            r.cookies = cookies;
            r.body = body;
            r.is_base64_encoded = b64;
            serde_json::value::to_raw_value(&r)?
        }
        Origin::FunctionUrl => {
            let cookies = take_cookies(&mut headers);
            let (body, b64) = body_of(&headers, reply.body);
            let mut r = LambdaFunctionUrlResponse::default();
            r.status_code = status;
            r.headers = single_valued(&headers);
            r.cookies = cookies;
            r.body = body.map(|b| match b {
                Body::Text(t) => t,
                Body::Binary(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
                _ => String::new(),
            });
            r.is_base64_encoded = b64;
            serde_json::value::to_raw_value(&r)?
        }
        Origin::Alb { multi_value } => {
            let (body, b64) = body_of(&headers, reply.body);
            let mut r = AlbTargetGroupResponse::default();
            r.status_code = status;
            r.status_description = Some(format!(
                "{} {}",
                reply.status.as_u16(),
                reply.status.canonical_reason().unwrap_or("Unknown")
            ));
            if multi_value {
                r.multi_value_headers = headers;
            } else {
                r.headers = single_valued(&headers);
            }
            r.body = body;
            r.is_base64_encoded = b64;
            serde_json::value::to_raw_value(&r)?
        }
        // REST APIs (and anything else): every header in `multiValueHeaders`,
        // none in `headers`, which API Gateway would merge in a second time.
        _ => {
            let (body, b64) = body_of(&headers, reply.body);
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = status;
            r.multi_value_headers = headers;
            r.body = body;
            r.is_base64_encoded = b64;
            serde_json::value::to_raw_value(&r)?
        }
    };
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::Value;

    fn reply(ct: Option<&str>, body: &[u8], cookies: &[&str]) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(ct) = ct {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        for c in cookies {
            headers.append(header::SET_COOKIE, HeaderValue::from_str(c).unwrap());
        }
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        Reply {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::copy_from_slice(body),
        }
    }

    fn json(origin: Origin, r: Reply) -> Value {
        serde_json::from_str(http_response(origin, r).unwrap().get()).unwrap()
    }

    #[test]
    fn v2_moves_cookies_and_joins_headers() {
        let v = json(
            Origin::ApiGatewayV2,
            reply(Some("application/json"), b"{}", &["a=1", "b=2"]),
        );
        assert_eq!(v["statusCode"], 201);
        assert_eq!(v["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(v["headers"]["x-multi"], "a, b");
        assert!(v["headers"].get("set-cookie").is_none());
        assert_eq!(v["body"], "{}");
        assert_eq!(v["isBase64Encoded"], false);
    }

    #[test]
    fn v1_uses_multi_value_headers_and_base64_for_binary() {
        let v = json(
            Origin::ApiGatewayV1,
            reply(Some("image/png"), &[0, 159, 146, 150], &["a=1", "b=2"]),
        );
        assert_eq!(v["multiValueHeaders"]["set-cookie"], serde_json::json!(["a=1", "b=2"]));
        assert_eq!(v["multiValueHeaders"]["x-multi"], serde_json::json!(["a", "b"]));
        assert_eq!(v["isBase64Encoded"], true);
        assert_eq!(v["body"], "AJ+Slg==");
    }

    #[test]
    fn alb_has_a_status_description_and_answers_in_the_requests_header_mode() {
        let v = json(
            Origin::Alb { multi_value: false },
            reply(Some("text/plain"), b"hi", &[]),
        );
        assert_eq!(v["statusDescription"], "201 Created");
        assert_eq!(v["headers"]["x-multi"], "a, b");
        let v = json(Origin::Alb { multi_value: true }, reply(Some("text/plain"), b"hi", &[]));
        assert_eq!(v["multiValueHeaders"]["x-multi"], serde_json::json!(["a", "b"]));
    }

    #[test]
    fn function_url_base64_body_is_a_string() {
        let v = json(Origin::FunctionUrl, reply(None, &[0xff, 0x00], &["c=3"]));
        assert_eq!(v["isBase64Encoded"], true);
        assert_eq!(v["body"], "/wA=");
        assert_eq!(v["cookies"], serde_json::json!(["c=3"]));
    }

    #[test]
    fn text_detection() {
        let h = |ct: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            m
        };
        assert!(is_text(&h("text/html; charset=utf-8"), b"<p>"));
        assert!(is_text(&h("application/problem+json"), b"{}"));
        assert!(!is_text(&h("application/octet-stream"), b"abc"));
        assert!(!is_text(&h("text/plain"), &[0xff]));
        let mut gz = h("text/plain");
        gz.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(!is_text(&gz, b"abc"));
    }

    #[test]
    fn event_output_is_passed_through_or_quoted() {
        assert_eq!(event_output(br#"{"a":1}"#.to_vec()).get(), r#"{"a":1}"#);
        assert_eq!(event_output(b"plain text".to_vec()).get(), r#""plain text""#);
        assert_eq!(event_output(vec![0xff]).get(), "\"\u{fffd}\"");
        assert_eq!(event_output(Vec::new()).get(), "null");
    }
}
