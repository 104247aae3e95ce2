//! What the Azure Functions host sends a custom handler → Nimbus invocations. Pure functions.
//!
//! The host invokes a function by POSTing `{"Data": {...}, "Metadata": {...}}` to `/<FunctionName>` (the
//! function's folder name): `Data` holds one member per trigger and input binding, by binding name,
//! `Metadata` the trigger's metadata and `sys` (`MethodName`, `UtcNow`, `RandGuid`). An HTTP trigger's member
//! is the request as `{Url, Method, Query, Headers, Params, Identities, Body}`. With `enableProxyingHttpRequest`
//! (or the legacy `enableForwardingHttpRequest`) in `host.json`, an HTTP-only function's requests come instead
//! as they are, at their own path (`/api/<route>`); [`route`] tells the two apart by their shape.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use nimbus_core::{Event, EventSource, InvokeError, Kind};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The header carrying the host's invocation id: the invocation's request id.
pub const INVOCATION_ID: &str = "x-azure-functions-invocationid";

/// The header a caller authenticates with to a function whose `authLevel` is `function`: a secret, removed
/// before the guest sees the request. (The `code` query parameter, its alternative, is left in the URL: an
/// OAuth redirect carries its own `code` there.)
pub const FUNCTION_KEY: &str = "x-functions-key";

/// How the host delivered a request to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /<FunctionName>` for the function served: a `{Data, Metadata}` invocation payload.
    Invocation,
    /// Any other request to an HTTP function: the caller's own request, proxied as it is.
    Proxied,
    /// Anything else: no function of this handler answers it.
    NotServed,
}

/// Which kind of delivery a request to `path` is, for the function `function` of kind `kind`. Azure names a
/// function by its folder, which `nimbus package --target azure` names after the manifest's function; the
/// host matches names without regard to case, and so does this.
pub fn route(kind: Kind, method: &Method, path: &str, function: &str) -> Route {
    let named = path.strip_prefix('/').is_some_and(|p| p.eq_ignore_ascii_case(function));
    match kind {
        _ if named && method == Method::POST => Route::Invocation,
        Kind::Http => Route::Proxied,
        _ => Route::NotServed,
    }
}

/// An invocation payload.
#[derive(Debug, Clone, Deserialize)]
pub struct InvocationRequest {
    /// The trigger's and input bindings' data, by binding name.
    #[serde(rename = "Data")]
    pub data: Map<String, Value>,
    /// The trigger's metadata (`null` or absent: none).
    #[serde(rename = "Metadata", default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Reads an invocation payload; anything but `{"Data": {...}, ...}` is a bad event (400).
pub fn invocation_request(body: &[u8]) -> Result<InvocationRequest, InvokeError> {
    serde_json::from_slice(body).map_err(|e| {
        InvokeError::BadEvent(format!(
            "not an Azure Functions invocation payload ({{\"Data\": {{...}}, \"Metadata\": {{...}}}}): {e}"
        ))
    })
}

/// The event an event function gets: the trigger's data (`Data.<binding>`) when `Data` has one member, else
/// the whole `Data` object (a trigger with input bindings). A string (a queue message, a blob bound as
/// `string`) is given as its text; a blob's bytes, which the host sends in base64, are decoded; any other
/// value as its JSON. The source kind comes from the trigger's metadata ([`source_kind`]).
pub fn event(req: &InvocationRequest) -> Result<Event, InvokeError> {
    let metadata = req.metadata.clone().unwrap_or_default();
    let whole;
    let data = match req.data.len() {
        0 => return Err(InvokeError::BadEvent("the invocation payload's Data is empty".into())),
        1 => req.data.values().next().unwrap_or(&Value::Null),
        _ => {
            whole = Value::Object(req.data.clone());
            &whole
        }
    };
    let source = source_kind(&metadata, data);
    let payload = match data {
        Value::String(s) if source == EventSource::S3 => blob_bytes(s, &metadata).unwrap_or_else(|| s.clone().into()),
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    Ok(Event { source, payload })
}

/// A blob's bytes: the host sends a blob bound as bytes (the default) in base64, one bound as `string` as
/// text. It is base64 when it decodes to exactly the blob's length (`Metadata.Properties.Length`).
fn blob_bytes(text: &str, metadata: &Map<String, Value>) -> Option<Vec<u8>> {
    let length = metadata.get("Properties")?.get("Length")?.as_u64()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?;
    (bytes.len() as u64 == length && text.len() as u64 != length).then_some(bytes)
}

/// The source kind of a trigger, from the metadata the host sends with it: a blob (`BlobTrigger`) is S3-like,
/// a Storage queue (`DequeueCount`, `PopReceipt`) or Service Bus (`DeliveryCount`, `MessageId`) message
/// SQS-like, a timer (its `TimerInfo`: `ScheduleStatus`, `IsPastDue`) a schedule; anything else is `Other`.
pub fn source_kind(metadata: &Map<String, Value>, data: &Value) -> EventSource {
    let has = |k: &str| metadata.contains_key(k);
    if has("BlobTrigger") {
        EventSource::S3
    } else if (has("DequeueCount") && has("PopReceipt")) || (has("DeliveryCount") && has("MessageId")) {
        EventSource::Sqs
    } else if data.get("ScheduleStatus").is_some() || data.get("IsPastDue").is_some() {
        EventSource::Schedule
    } else {
        EventSource::Other
    }
}

/// An HTTP trigger's request, as the host serialises it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HttpTrigger {
    url: String,
    method: String,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    body: Option<Value>,
}

/// The HTTP request of an HTTP trigger's payload: the `Data` member that is a request (`Url` and `Method`),
/// `req` first. Its URL gives the path and query (the `Query` member repeats the query, one value per name,
/// so it is not read), `Headers` the headers (each an array of values; the function key is removed), and
/// `Body` the body: text, or base64 for `application/octet-stream` and `multipart/*`, as the host encodes
/// them. A body over `max_body` is too large (413).
pub fn http_request(req: &InvocationRequest, max_body: u64) -> Result<Request<Bytes>, InvokeError> {
    let is_request = |v: &&Value| v.get("Url").is_some_and(Value::is_string) && v.get("Method").is_some();
    let value = req
        .data
        .get("req")
        .filter(is_request)
        .or_else(|| req.data.values().find(is_request))
        .ok_or_else(|| {
            InvokeError::BadEvent("the invocation payload has no HTTP request in Data (`Url` and `Method`)".into())
        })?;
    let trigger = HttpTrigger::deserialize(value)
        .map_err(|e| InvokeError::BadEvent(format!("the HTTP request in Data is malformed: {e}")))?;
    let method = Method::from_bytes(trigger.method.as_bytes())
        .map_err(|_| InvokeError::BadEvent(format!("the HTTP request's Method {:?} is no method", trigger.method)))?;
    let uri: http::Uri = trigger
        .url
        .parse()
        .map_err(|e| InvokeError::BadEvent(format!("the HTTP request's Url {:?} is no URL: {e}", trigger.url)))?;
    let mut headers = headers(trigger.headers.as_ref().unwrap_or(&Map::new()));
    let body = body(trigger.body, &headers)?;
    if body.len() as u64 > max_body {
        return Err(InvokeError::request_too_large(
            "request body",
            body.len() as u64,
            max_body,
        ));
    }
    if !headers.contains_key(header::HOST)
        && let Some(v) = uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(header::HOST, v);
    }
    // The body is whole: its length is known, whatever the caller's framing was.
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// `Headers` as a header map: each name with an array of values (or one string); names and values HTTP cannot
/// carry are left out with a warning (the host forwarded the caller's request, so none should be), and so is
/// the function key.
fn headers(json: &Map<String, Value>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(json.len());
    for (name, values) in json {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::warn!(header = %name, "leaving out a request header whose name is not a header name");
            continue;
        };
        if name == FUNCTION_KEY {
            continue;
        }
        let values: Vec<&str> = match values {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for v in values {
            match HeaderValue::from_str(v) {
                Ok(v) => {
                    out.append(name.clone(), v);
                }
                Err(_) => tracing::warn!(header = %name, "leaving out a request header value HTTP cannot carry"),
            }
        }
    }
    out
}

/// `Body`: text as its bytes, base64 for the media types the host sends as bytes, JSON text for anything else.
fn body(body: Option<Value>, headers: &HeaderMap) -> Result<Bytes, InvokeError> {
    match body {
        None | Some(Value::Null) => Ok(Bytes::new()),
        Some(Value::String(s)) if is_octet_or_multipart(headers) => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(Bytes::from)
            .map_err(|e| InvokeError::BadEvent(format!("the binary request body is not base64: {e}"))),
        Some(Value::String(s)) => Ok(Bytes::from(s)),
        Some(other) => Ok(Bytes::from(other.to_string())),
    }
}

/// Whether the host sent the body in base64: its media type is `application/octet-stream` or `multipart/*`.
fn is_octet_or_multipart(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/octet-stream" || essence.starts_with("multipart/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> InvocationRequest {
        let path = format!("{}/../../tests/fixtures/azure/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        invocation_request(&text).unwrap()
    }

    #[test]
    fn requests_are_told_apart_by_their_shape() {
        assert_eq!(
            route(Kind::Event, &Method::POST, "/orders", "orders"),
            Route::Invocation
        );
        assert_eq!(route(Kind::Http, &Method::POST, "/Orders", "orders"), Route::Invocation);
        assert_eq!(
            route(Kind::Http, &Method::POST, "/api/orders", "orders"),
            Route::Proxied
        );
        assert_eq!(route(Kind::Http, &Method::GET, "/orders", "orders"), Route::Proxied);
        assert_eq!(route(Kind::Event, &Method::POST, "/other", "orders"), Route::NotServed);
        assert_eq!(route(Kind::Event, &Method::GET, "/orders", "orders"), Route::NotServed);
        assert_eq!(
            route(Kind::Event, &Method::POST, "/orders/x", "orders"),
            Route::NotServed
        );
    }

    #[test]
    fn a_queue_message_is_its_text_from_an_sqs_like_source() {
        let ev = event(&fixture("queue-trigger.json")).unwrap();
        assert_eq!(ev.source, EventSource::Sqs);
        assert_eq!(ev.payload, b"{ message: \"Message sent\" }");
    }

    #[test]
    fn a_timer_is_its_timer_info_from_a_schedule() {
        let ev = event(&fixture("timer-trigger.json")).unwrap();
        assert_eq!(ev.source, EventSource::Schedule);
        let v: Value = serde_json::from_slice(&ev.payload).unwrap();
        assert_eq!(v["IsPastDue"], false);
        assert_eq!(v["ScheduleStatus"]["Next"], "2019-10-09T18:00:00+00:00");
    }

    #[test]
    fn a_blob_is_its_bytes_from_an_s3_like_source() {
        let ev = event(&fixture("blob-trigger.json")).unwrap();
        assert_eq!(ev.source, EventSource::S3);
        assert_eq!(ev.payload, br#"{"n": 21}"#);
        // A blob bound as `string` arrives as text, which is given as it is.
        let mut text = fixture("blob-trigger.json");
        text.data.insert("myBlob".into(), Value::String(r#"{"n": 21}"#.into()));
        assert_eq!(event(&text).unwrap().payload, br#"{"n": 21}"#);
    }

    #[test]
    fn several_bindings_give_the_whole_data_and_none_is_refused() {
        let mut req = fixture("queue-trigger.json");
        req.data.insert("extra".into(), Value::from(7));
        let v: Value = serde_json::from_slice(&event(&req).unwrap().payload).unwrap();
        assert_eq!(v["extra"], 7);
        assert_eq!(v["myQueueItem"], "{ message: \"Message sent\" }");
        req.data.clear();
        assert!(matches!(event(&req), Err(InvokeError::BadEvent(_))));
    }

    #[test]
    fn an_http_trigger_becomes_the_callers_request_without_the_function_key() {
        let req = http_request(&fixture("http-trigger.json"), 1 << 20).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/api/order");
        assert_eq!(req.uri().query(), Some("color=black&size=2"));
        let accept: Vec<_> = req.headers().get_all("accept").iter().collect();
        assert_eq!(accept, ["application/json", "text/plain"]);
        assert_eq!(req.headers()["host"], "localhost:7071");
        assert!(req.headers().get(FUNCTION_KEY).is_none());
        assert_eq!(req.body().as_ref(), br#"{"id":1005,"quantity":2,"color":"black"}"#);
        assert_eq!(req.headers()["content-length"], "40");
        // The event source of the same payload, for an event function bound to an HTTP trigger.
        assert_eq!(event(&fixture("http-trigger.json")).unwrap().source, EventSource::Other);
    }

    #[test]
    fn a_binary_body_is_decoded_and_a_large_one_refused() {
        let mut req = fixture("http-trigger.json");
        let r = req.data.get_mut("req").unwrap();
        r["Headers"]["Content-Type"] = serde_json::json!(["application/octet-stream"]);
        r["Body"] = Value::String("AAEC/w==".into());
        assert_eq!(http_request(&req, 1 << 20).unwrap().body().as_ref(), [0, 1, 2, 255]);
        assert!(matches!(http_request(&req, 3), Err(InvokeError::TooLarge { .. })));
        req.data.get_mut("req").unwrap()["Body"] = Value::String("not base64!".into());
        assert!(matches!(http_request(&req, 1 << 20), Err(InvokeError::BadEvent(_))));
    }

    #[test]
    fn malformed_payloads_are_bad_events() {
        for bad in [&b"not json"[..], b"[]", b"{}", br#"{"Data": 3}"#, br#"{"Data": null}"#] {
            assert!(
                matches!(invocation_request(bad), Err(InvokeError::BadEvent(_))),
                "{bad:?}"
            );
        }
        let no_request = invocation_request(br#"{"Data": {"myQueueItem": "x"}}"#).unwrap();
        assert!(matches!(http_request(&no_request, 1024), Err(InvokeError::BadEvent(_))));
        for req in [
            r#"{"Url": "http://h/p", "Method": "GE T"}"#,
            r#"{"Url": "http://h/ p", "Method": "GET"}"#,
            r#"{"Url": "http://h/p", "Method": 5}"#,
        ] {
            let payload = format!(r#"{{"Data": {{"req": {req}}}}}"#);
            let decoded = invocation_request(payload.as_bytes()).unwrap();
            assert!(
                matches!(http_request(&decoded, 1024), Err(InvokeError::BadEvent(_))),
                "{req}"
            );
        }
        // Headers HTTP cannot carry are left out; the rest of the request stands.
        let odd = r#"{"Data": {"req": {"Url": "http://h/p", "Method": "GET",
            "Headers": {"bad name": ["x"], "x-ok": ["fine", "bad\u0001value"], "x-one": "single"}}}}"#;
        let req = http_request(&invocation_request(odd.as_bytes()).unwrap(), 1024).unwrap();
        let ok: Vec<_> = req.headers().get_all("x-ok").iter().collect();
        assert_eq!(ok, ["fine"]);
        assert_eq!(req.headers()["x-one"], "single");
        assert_eq!(req.headers().len(), 4, "{:?}", req.headers());
    }
}
