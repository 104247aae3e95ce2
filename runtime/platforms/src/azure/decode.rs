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
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

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
    serde_json::from_slice(body).map_err(not_a_payload)
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

/// An invocation payload read for an HTTP function: `Data`'s members as they are, borrowed from the payload
/// (only the member that is the request is read further).
#[derive(Deserialize)]
struct HttpPayload<'a> {
    #[serde(rename = "Data", borrow)]
    data: BTreeMap<Text<'a>, &'a RawValue>,
}

/// An HTTP trigger's request as the host serialises it, borrowed from the payload. A member is a request when
/// it has a `Url` string and a `Method`; its other fields are read once it is chosen, so that a malformed
/// request is reported as one.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HttpTrigger<'a> {
    #[serde(borrow)]
    url: Text<'a>,
    #[serde(borrow)]
    method: &'a RawValue,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
}

/// The HTTP request of an HTTP trigger's payload: the `Data` member that is a request (`Url` and `Method`),
/// `req` first, then the others by name. Its URL gives the path and query (the `Query` member repeats the
/// query, one value per name, so it is not read), `Headers` the headers (each an array of values; the function
/// key is removed), and `Body` the body: text, or base64 for `application/octet-stream` and `multipart/*`, as
/// the host encodes them. Anything but such a payload is a bad event (400); a body over `max_body` is too
/// large (413).
///
/// The payload is read in place, without building a JSON tree: this is the per-request path of payload mode
/// (`bench/platforms`).
pub fn http_request(payload: &[u8], max_body: u64) -> Result<Request<Bytes>, InvokeError> {
    let payload: HttpPayload = serde_json::from_slice(payload).map_err(not_a_payload)?;
    let trigger = payload
        .data
        .get(&Text(Cow::Borrowed("req")))
        .and_then(as_request)
        .or_else(|| payload.data.values().find_map(as_request))
        .ok_or_else(|| {
            InvokeError::BadEvent("the invocation payload has no HTTP request in Data (`Url` and `Method`)".into())
        })?;
    let malformed = |e: serde_json::Error| InvokeError::BadEvent(format!("the HTTP request in Data is malformed: {e}"));
    let method: Text = serde_json::from_str(trigger.method.get()).map_err(malformed)?;
    let method = Method::from_bytes(method.0.as_bytes())
        .map_err(|_| InvokeError::BadEvent(format!("the HTTP request's Method {:?} is no method", method.0)))?;
    let url = trigger.url.0;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| InvokeError::BadEvent(format!("the HTTP request's Url {url:?} is no URL: {e}")))?;
    let mut headers = match trigger.headers {
        Some(raw) => serde_json::from_str::<Headers>(raw.get()).map_err(malformed)?.0,
        None => HeaderMap::new(),
    };
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

fn not_a_payload(e: serde_json::Error) -> InvokeError {
    InvokeError::BadEvent(format!(
        "not an Azure Functions invocation payload ({{\"Data\": {{...}}, \"Metadata\": {{...}}}}): {e}"
    ))
}

/// The member as an HTTP trigger's request, if it is one.
fn as_request<'a>(raw: &&'a RawValue) -> Option<HttpTrigger<'a>> {
    serde_json::from_str(raw.get()).ok()
}

/// A JSON string, borrowed from the payload unless it has escapes.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// `Headers` read straight into a header map: each name with an array of values (or one string). Names and
/// values HTTP cannot carry, and array members that are not strings, are left out with a warning (the host
/// forwarded the caller's request, so none should be), and so is the function key.
struct Headers(HeaderMap);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of header names to arrays of values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Headers(HeaderMap::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = HeaderMap::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(name) = map.next_key::<Text>()? {
                    match HeaderName::from_bytes(name.0.as_bytes()) {
                        Ok(n) if n == FUNCTION_KEY => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        Ok(n) => map.next_value_seed(Append {
                            out: &mut out,
                            name: &n,
                            top: true,
                        })?,
                        Err(_) => {
                            tracing::warn!(header = %name.0, "leaving out a request header whose name is not a header name");
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Appends a header's values (a string, or the strings of an array) to the map; anything else is skipped.
struct Append<'m> {
    out: &'m mut HeaderMap,
    name: &'m HeaderName,
    /// Whether this is the header's value itself (an array is its values) rather than an array member.
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a header value or an array of them")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match HeaderValue::from_str(v) {
            Ok(v) => {
                self.out.append(self.name.clone(), v);
            }
            Err(_) => tracing::warn!(header = %self.name, "leaving out a request header value HTTP cannot carry"),
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            while seq
                .next_element_seed(Append {
                    out: &mut *self.out,
                    name: self.name,
                    top: false,
                })?
                .is_some()
            {}
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `Body`: text as its bytes, base64 for the media types the host sends as bytes, the JSON as it is for
/// anything else.
fn body(body: Option<&RawValue>, headers: &HeaderMap) -> Result<Bytes, InvokeError> {
    let Some(raw) = body.filter(|r| r.get() != "null") else {
        return Ok(Bytes::new());
    };
    if !raw.get().starts_with('"') {
        return Ok(Bytes::copy_from_slice(raw.get().as_bytes()));
    }
    let text: Text = serde_json::from_str(raw.get())
        .map_err(|e| InvokeError::BadEvent(format!("the HTTP request's Body is malformed: {e}")))?;
    if is_octet_or_multipart(headers) {
        return base64::engine::general_purpose::STANDARD
            .decode(text.0.trim())
            .map(Bytes::from)
            .map_err(|e| InvokeError::BadEvent(format!("the binary request body is not base64: {e}")));
    }
    Ok(match text.0 {
        Cow::Borrowed(s) => Bytes::copy_from_slice(s.as_bytes()),
        Cow::Owned(s) => Bytes::from(s),
    })
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

    fn fixture_bytes(name: &str) -> Vec<u8> {
        let path = format!("{}/../../tests/fixtures/azure/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn fixture_value(name: &str) -> Value {
        serde_json::from_slice(&fixture_bytes(name)).unwrap()
    }

    fn http(payload: &Value, max_body: u64) -> Result<Request<Bytes>, InvokeError> {
        http_request(&serde_json::to_vec(payload).unwrap(), max_body)
    }

    #[test]
    fn an_http_trigger_becomes_the_callers_request_without_the_function_key() {
        let req = http_request(&fixture_bytes("http-trigger.json"), 1 << 20).unwrap();
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
    fn the_request_is_found_by_its_shape_and_json_bodies_pass_as_they_are() {
        // Not named `req`, beside a member that is not a request.
        let mut v = fixture_value("http-trigger.json");
        let req = v["Data"]["req"].take();
        v["Data"] = serde_json::json!({"aQueueItem": "text", "request": req});
        let r = http(&v, 1 << 20).unwrap();
        assert_eq!(r.uri().path(), "/api/order");
        // A `req` that is not a request does not hide one that is.
        v["Data"]["req"] = serde_json::json!({"Url": 5, "Method": "GET"});
        assert_eq!(http(&v, 1 << 20).unwrap().uri().path(), "/api/order");
        // A body the host sent as JSON rather than text is given as its JSON; null is no body.
        let payload = br#"{"Data":{"req":{"Url":"http://h/p","Method":"POST","Body":{"a": [1, 2]}}}}"#;
        assert_eq!(
            http_request(payload, 1024).unwrap().body().as_ref(),
            br#"{"a": [1, 2]}"#
        );
        let payload = br#"{"Data":{"req":{"Url":"http://h/p","Method":"GET","Body":null,"Headers":null}}}"#;
        assert!(http_request(payload, 1024).unwrap().body().is_empty());
        // Escaped strings are read as the text they stand for.
        let payload = br#"{"Data":{"req":{"Url":"http:\/\/h\/p\u0020q","Method":"GET"}}}"#;
        let r = http_request(payload, 1024);
        assert!(matches!(r, Err(InvokeError::BadEvent(_))), "a space is no URL: {r:?}");
        let payload = br#"{"Data":{"req":{"Url":"http:\/\/h\/p","Method":"G\u0045T","Headers":{"x-\u0061":["\"q\""]},"Body":"line\nnext"}}}"#;
        let r = http_request(payload, 1024).unwrap();
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri().path(), "/p");
        assert_eq!(r.headers()["x-a"], "\"q\"");
        assert_eq!(r.body().as_ref(), b"line\nnext");
    }

    #[test]
    fn a_binary_body_is_decoded_and_a_large_one_refused() {
        let mut req = fixture_value("http-trigger.json");
        let r = &mut req["Data"]["req"];
        r["Headers"]["Content-Type"] = serde_json::json!(["application/octet-stream"]);
        r["Body"] = Value::String("AAEC/w==".into());
        assert_eq!(http(&req, 1 << 20).unwrap().body().as_ref(), [0, 1, 2, 255]);
        assert!(matches!(http(&req, 3), Err(InvokeError::TooLarge { .. })));
        req["Data"]["req"]["Body"] = Value::String("not base64!".into());
        assert!(matches!(http(&req, 1 << 20), Err(InvokeError::BadEvent(_))));
    }

    #[test]
    fn malformed_payloads_are_bad_events() {
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"Data": 3}"#,
            br#"{"Data": null}"#,
            b"{\"Data\": {",
        ] {
            assert!(
                matches!(invocation_request(bad), Err(InvokeError::BadEvent(_))),
                "{bad:?}"
            );
            assert!(
                matches!(http_request(bad, 1024), Err(InvokeError::BadEvent(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            http_request(br#"{"Data": {"myQueueItem": "x"}}"#, 1024),
            Err(InvokeError::BadEvent(_))
        ));
        for req in [
            r#"{"Url": "http://h/p", "Method": "GE T"}"#,
            r#"{"Url": "http://h/ p", "Method": "GET"}"#,
            r#"{"Url": "http://h/p", "Method": 5}"#,
            r#"{"Url": "http://h/p", "Method": "GET", "Headers": 5}"#,
            r#"{"Url": "http://h/p", "Method": "GET", "Headers": {"a": ["b"}}"#,
        ] {
            let payload = format!(r#"{{"Data": {{"req": {req}}}}}"#);
            assert!(
                matches!(http_request(payload.as_bytes(), 1024), Err(InvokeError::BadEvent(_))),
                "{req}"
            );
        }
        // Headers HTTP cannot carry are left out; the rest of the request stands.
        let odd = r#"{"Data": {"req": {"Url": "http://h/p", "Method": "GET",
            "Headers": {"bad name": ["x"], "x-ok": ["fine", "bad\u0001value", 5, ["nested"], {"o": 1}],
                        "x-one": "single", "x-num": 7}}}}"#;
        let req = http_request(odd.as_bytes(), 1024).unwrap();
        let ok: Vec<_> = req.headers().get_all("x-ok").iter().collect();
        assert_eq!(ok, ["fine"]);
        assert_eq!(req.headers()["x-one"], "single");
        assert_eq!(req.headers().len(), 4, "{:?}", req.headers());
    }
}
