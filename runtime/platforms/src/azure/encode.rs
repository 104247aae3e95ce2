//! Nimbus outcomes → the answers the Azure Functions host expects from a custom handler. Pure functions.
//!
//! An invocation payload is answered `200 {"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`: `Logs` the
//! guest's log lines of that invocation (the host records each in the invocation's log, Application Insights
//! in Azure), `ReturnValue` an event function's output (for a `$return` output binding), `Outputs.res` an
//! HTTP function's response (for an HTTP output binding named `res`; the same object is the `ReturnValue`, so
//! an HTTP output bound to `$return` works too). A failed invocation is answered 500, so the host records a
//! failure (and retries a queue message); the body still says what failed and carries the log lines.

use crate::lambda::encode::event_output;
use crate::reply::{self, Reply};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use nimbus_core::InvokeError;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, json};
use std::borrow::Cow;

/// The answer to an invocation payload, serialised as it is (no JSON tree is built: this is the per-request
/// path of payload mode).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Answer<'a, O: Serialize, R: Serialize> {
    outputs: O,
    logs: &'a [String],
    return_value: R,
}

/// An event function's output as `ReturnValue`: its JSON when it is JSON, else its text as a JSON string, and
/// no output at all as `null` (as Lambda's answer has it).
pub fn event_result(output: Vec<u8>, logs: &[String]) -> Reply {
    let value = event_output(output);
    reply::json(
        StatusCode::OK,
        &Answer {
            outputs: Map::new(),
            logs,
            return_value: &*value,
        },
    )
}

/// A failed invocation: 500, with the error's type and public message and the log lines.
pub fn failure(e: &InvokeError, logs: &[String]) -> Reply {
    reply::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({
            "Outputs": {},
            "Logs": logs,
            "ReturnValue": null,
            "error": { "type": e.error_type(), "message": e.public_message() },
        }),
    )
}

/// Why an HTTP function's response cannot go back in the invocation payload's answer.
#[derive(Debug, thiserror::Error)]
#[error(
    "the response body is not UTF-8 text ({0} bytes), and an HTTP output binding carries text only: set \
     `enableProxyingHttpRequest` in host.json to send bytes"
)]
pub struct NotText(pub usize);

/// An HTTP output binding's value.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpOutput<'a> {
    status_code: u16,
    headers: SingleValued<'a>,
    body: &'a str,
}

/// The `Outputs` of an HTTP function: its response as the binding `res`.
#[derive(Serialize)]
struct HttpOutputs<'a> {
    res: &'a HttpOutput<'a>,
}

/// An HTTP function's response as the HTTP output binding `res` (and `ReturnValue`): `statusCode`,
/// `headers` (one value per name: see [`single_valued`]) and `body` as text.
pub fn http_result(resp: Reply, logs: &[String]) -> Result<Reply, NotText> {
    let body = std::str::from_utf8(&resp.body).map_err(|_| NotText(resp.body.len()))?;
    let res = HttpOutput {
        status_code: resp.status.as_u16(),
        headers: SingleValued(single_valued(&resp.headers)),
        body,
    };
    Ok(reply::json(
        StatusCode::OK,
        &Answer {
            outputs: HttpOutputs { res: &res },
            logs,
            return_value: &res,
        },
    ))
}

/// Headers with one value per name, serialised as a JSON object.
struct SingleValued<'a>(Vec<(&'a str, Cow<'a, str>)>);

impl Serialize for SingleValued<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Response headers as the binding's `headers` object, which holds one text value per name. Repeated values
/// are joined with `, ` (HTTP's list syntax), except `Set-Cookie`, which cannot be joined: its first value is
/// kept. Values that are not UTF-8, and the headers the host frames the response with itself
/// (`Content-Length`, `Transfer-Encoding`, hop-by-hop), are left out. Each loss is warned about.
fn single_valued(headers: &HeaderMap) -> Vec<(&str, Cow<'_, str>)> {
    let mut out = Vec::with_capacity(headers.keys_len());
    for name in headers.keys() {
        if is_framing(name) {
            tracing::warn!(header = %name, "leaving out a response header the Functions host sets itself");
            continue;
        }
        let mut values = headers.get_all(name).iter().filter_map(|v| text(name, v));
        let Some(first) = values.next() else { continue };
        let joined = if name == header::SET_COOKIE {
            let dropped = values.count();
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "an HTTP output binding carries one Set-Cookie header: the others are left out \
                     (set `enableProxyingHttpRequest` in host.json to send them all)"
                );
            }
            Cow::Borrowed(first)
        } else {
            match values.next() {
                None => Cow::Borrowed(first),
                Some(second) => {
                    let mut all = format!("{first}, {second}");
                    for v in values {
                        all.push_str(", ");
                        all.push_str(v);
                    }
                    Cow::Owned(all)
                }
            }
        };
        out.push((name.as_str(), joined));
    }
    out
}

/// The value as text, or `None` (warned about) when it is not UTF-8.
fn text<'a>(name: &http::HeaderName, value: &'a HeaderValue) -> Option<&'a str> {
    let t = value.to_str().ok();
    if t.is_none() {
        tracing::warn!(header = %name, "leaving out a response header value that is not UTF-8");
    }
    t
}

/// The headers that frame a message rather than describe it: the host writes its own.
fn is_framing(name: &http::HeaderName) -> bool {
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::Value;

    fn parse(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn an_event_output_is_the_return_value_with_the_logs() {
        let logs = vec!["one".to_owned(), "two".to_owned()];
        let r = event_result(br#"{"doubled": 4}"#.to_vec(), &logs);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(
            parse(&r),
            json!({"Outputs": {}, "Logs": ["one", "two"], "ReturnValue": {"doubled": 4}})
        );
        assert_eq!(
            parse(&event_result(b"plain text".to_vec(), &[]))["ReturnValue"],
            "plain text"
        );
        assert_eq!(parse(&event_result(Vec::new(), &[]))["ReturnValue"], Value::Null);
    }

    #[test]
    fn a_failure_is_a_500_with_the_error_and_the_logs() {
        let e = InvokeError::Trap("wasm backtrace: secret frame names".into());
        let r = failure(&e, &["before the trap".to_owned()]);
        assert_eq!(r.status, 500);
        let v = parse(&r);
        assert_eq!(v["Logs"], json!(["before the trap"]));
        assert_eq!(v["error"]["type"], e.error_type());
        assert!(!v.to_string().contains("secret frame names"), "{v}");
    }

    #[test]
    fn an_http_response_is_the_res_output() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("vary", HeaderValue::from_static("accept"));
        headers.append("vary", HeaderValue::from_static("origin"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.insert("content-length", HeaderValue::from_static("7"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("x-odd", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let resp = Reply {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"a\":1}"),
        };
        let v = parse(&http_result(resp, &["l".to_owned()]).unwrap());
        let res = json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "vary": "accept, origin", "set-cookie": "a=1"},
            "body": "{\"a\":1}",
        });
        assert_eq!(v["Outputs"]["res"], res);
        assert_eq!(v["ReturnValue"], res);
        assert_eq!(v["Logs"], json!(["l"]));
    }

    #[test]
    fn a_binary_http_response_cannot_be_an_output() {
        let resp = Reply {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(&[0xff, 0xfe, 0]),
        };
        assert!(matches!(http_result(resp, &[]), Err(NotText(3))));
    }
}
