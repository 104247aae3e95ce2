//! Requests for an event function on Cloud Run / Knative → a Nimbus [`Event`]. Pure functions, tested on
//! the requests in `tests/fixtures/knative/`.
//!
//! What the guest receives, by what arrived ([`Mode`]):
//! - a CloudEvent in **structured mode** (`Content-Type: application/cloudevents+json`): the JSON envelope
//!   verbatim, once checked;
//! - a CloudEvent in **binary mode** (`ce-*` headers, the body is the event's data): the same envelope the
//!   structured mode would have carried, built from the headers (values percent-decoded), with
//!   `datacontenttype` from `Content-Type` and the body as `data` (JSON when the content type is JSON or
//!   absent and the body parses, a string when it is other UTF-8 text, else `data_base64`). So the guest
//!   sees one shape whatever the mode, with `type`, `source`, `id` and `subject` in it;
//! - a **batch** (`application/cloudevents-batch+json`): the JSON array verbatim, every member checked;
//! - a Pub/Sub **push** body (`{"message": {...}, "subscription": "..."}`, no CloudEvent): verbatim;
//! - anything else: the body verbatim, as `nimbus serve`'s Invoke API passes it.
//!
//! The source kind comes from the CloudEvent's `type` ([`source_of`]): Pub/Sub is SNS-like (a topic's
//! message pushed to a subscriber), Cloud Storage is S3-like, Cloud Scheduler and Knative's `PingSource`
//! are `Schedule`, others `Other`. A Pub/Sub push body is SNS-like; a Cloud Scheduler HTTP target
//! (`X-CloudScheduler: true`) is `Schedule`; any other body is `Direct`.
//!
//! A CloudEvent that breaks the HTTP binding or the JSON format (a required attribute missing or empty,
//! a `specversion` other than `1.0`, JSON that does not parse, an attribute name outside `a-z0-9`, a
//! repeated `ce-` header, both `data` and `data_base64`) is a [`DecodeError`], which the adapter answers
//! with 400.

#[cfg(test)]
mod tests;

use base64::Engine as _;
use http::{HeaderMap, header};
use nimbus_core::{Event, EventSource};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

/// The media type of a structured-mode CloudEvent in JSON.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The media type of a batch of CloudEvents in JSON.
pub const BATCH: &str = "application/cloudevents-batch+json";
/// The one CloudEvents version accepted.
pub const SPECVERSION: &str = "1.0";
/// The attributes every CloudEvent has.
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];
/// The optional context attributes that are strings in the JSON format.
const OPTIONAL_STRINGS: [&str; 4] = ["datacontenttype", "dataschema", "subject", "time"];
/// The header Cloud Scheduler's HTTP targets carry.
const CLOUD_SCHEDULER_HEADER: &str = "x-cloudscheduler";

/// How an event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A CloudEvent in binary mode (`ce-*` headers).
    Binary,
    /// A CloudEvent in structured mode (`application/cloudevents+json`).
    Structured,
    /// A batch of CloudEvents (`application/cloudevents-batch+json`).
    Batch,
    /// A Pub/Sub push subscription's wrapped message.
    PubSubPush,
    /// Any other body.
    Plain,
}

/// A decoded request: how it arrived and the event the guest gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// How it arrived (for the access log).
    pub mode: Mode,
    /// The event.
    pub event: Event,
}

/// Why a request is not a CloudEvent the adapter can deliver: the message of a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required attribute is missing or empty.
    #[error("the CloudEvent has no {0} attribute (id, source, specversion and type are required)")]
    Missing(&'static str),
    /// A `specversion` this adapter does not speak.
    #[error("unsupported CloudEvents specversion {0:?}: expected \"1.0\"")]
    Specversion(String),
    /// The body is not the JSON its content type says.
    #[error("the {what} is not valid JSON: {error}")]
    Json {
        /// What was being read.
        what: &'static str,
        /// The parser's message.
        error: String,
    },
    /// The JSON is not the shape the format requires.
    #[error("{0}")]
    Shape(String),
    /// A `ce-` header that cannot be an attribute.
    #[error("bad CloudEvents header {name}: {why}")]
    Header {
        /// The header.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A structured mode in another event format than JSON.
    #[error("unsupported CloudEvents format {0:?}: only {STRUCTURED} and {BATCH} are read")]
    Format(String),
}

/// Decodes a request for an event function (see the module docs).
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Decoded, DecodeError> {
    let media = media_type(headers);
    let (mode, source, payload) = match media.as_deref() {
        Some(STRUCTURED) => {
            let event = parse_json(body, "structured CloudEvent")?;
            (Mode::Structured, check_structured(&event)?, body.to_vec())
        }
        Some(BATCH) => (Mode::Batch, check_batch(body)?, body.to_vec()),
        Some(m) if m.starts_with("application/cloudevents") => return Err(DecodeError::Format(m.to_owned())),
        _ if headers.keys().any(|k| k.as_str().starts_with("ce-")) => {
            let event = binary(headers, media.as_deref(), body)?;
            let source = source_of(event.get("type").and_then(Value::as_str).unwrap_or(""));
            (Mode::Binary, source, Value::Object(event).to_string().into_bytes())
        }
        _ if is_pubsub_push(body) => (Mode::PubSubPush, EventSource::Sns, body.to_vec()),
        _ => {
            let scheduler = headers
                .get(CLOUD_SCHEDULER_HEADER)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            let source = if scheduler {
                EventSource::Schedule
            } else {
                EventSource::Direct
            };
            (Mode::Plain, source, body.to_vec())
        }
    };
    Ok(Decoded {
        mode,
        event: Event { source, payload },
    })
}

/// The source kind of a CloudEvent `type`.
pub fn source_of(event_type: &str) -> EventSource {
    match event_type {
        "google.cloud.pubsub.topic.v1.messagePublished" => EventSource::Sns,
        "google.cloud.scheduler.job.v1.executed" | "dev.knative.sources.ping" => EventSource::Schedule,
        t if t.starts_with("google.cloud.storage.object.v1.") => EventSource::S3,
        _ => EventSource::Other,
    }
}

/// The `Content-Type`'s media type, lowercase, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

/// Whether a media type says JSON (`application/json`, `text/json`, `*/*+json`).
fn is_json(media: &str) -> bool {
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

fn parse_json(body: &[u8], what: &'static str) -> Result<Value, DecodeError> {
    serde_json::from_slice(body).map_err(|e| DecodeError::Json {
        what,
        error: e.to_string(),
    })
}

/// Whether `name` is a CloudEvents attribute name: lowercase ASCII letters and digits.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Checks a structured-mode event and tells its source kind.
fn check_structured(event: &Value) -> Result<EventSource, DecodeError> {
    let Value::Object(attrs) = event else {
        return Err(DecodeError::Shape(
            "a structured CloudEvent must be a JSON object".into(),
        ));
    };
    let spec = attrs.get("specversion").and_then(Value::as_str).unwrap_or("");
    if !spec.is_empty() && spec != SPECVERSION {
        return Err(DecodeError::Specversion(spec.to_owned()));
    }
    for name in REQUIRED {
        if !attrs.get(name).and_then(Value::as_str).is_some_and(|v| !v.is_empty()) {
            return Err(DecodeError::Missing(name));
        }
    }
    for name in OPTIONAL_STRINGS {
        if attrs.get(name).is_some_and(|v| !v.is_string()) {
            return Err(DecodeError::Shape(format!("the CloudEvent's {name} must be a string")));
        }
    }
    if let Some(bad) = attrs.keys().find(|k| !valid_name(k) && k.as_str() != "data_base64") {
        return Err(DecodeError::Shape(format!(
            "{bad:?} is not a CloudEvents attribute name (lowercase letters and digits)"
        )));
    }
    match (attrs.get("data"), attrs.get("data_base64")) {
        (Some(_), Some(_)) => {
            return Err(DecodeError::Shape(
                "a CloudEvent carries data or data_base64, not both".into(),
            ));
        }
        (None, Some(b64)) => {
            let ok = b64
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                return Err(DecodeError::Shape("the CloudEvent's data_base64 is not base64".into()));
            }
        }
        _ => {}
    }
    Ok(source_of(attrs["type"].as_str().unwrap_or("")))
}

/// Checks a batch and tells its source kind: the members' if they all share one, else `Other`.
fn check_batch(body: &[u8]) -> Result<EventSource, DecodeError> {
    let Value::Array(events) = parse_json(body, "CloudEvents batch")? else {
        return Err(DecodeError::Shape("a CloudEvents batch must be a JSON array".into()));
    };
    let mut kinds = events.iter().map(check_structured);
    let first = kinds
        .next()
        .ok_or_else(|| DecodeError::Shape("the CloudEvents batch is empty".into()))??;
    let mut source = first;
    for kind in kinds {
        if kind? != first {
            source = EventSource::Other;
        }
    }
    Ok(source)
}

/// A binary-mode event as its structured (JSON) envelope.
fn binary(headers: &HeaderMap, media: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let mut attrs = Map::new();
    for name in headers.keys() {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let bad = |why| DecodeError::Header {
            name: name.to_string(),
            why,
        };
        if !valid_name(attr) || attr == "data" {
            return Err(bad("not a CloudEvents attribute name (lowercase letters and digits)"));
        }
        let mut values = headers.get_all(name).iter();
        let value = values.next().ok_or_else(|| bad("no value"))?;
        if values.next().is_some() {
            return Err(bad("repeated"));
        }
        let text = value
            .to_str()
            .map_err(|_| bad("not ASCII (non-ASCII must be percent-encoded)"))?;
        let value = percent_decode_str(text)
            .decode_utf8()
            .map_err(|_| bad("percent-encoding that is not UTF-8"))?;
        attrs.insert(attr.to_owned(), Value::String(value.into_owned()));
    }
    let spec = attrs.get("specversion").and_then(Value::as_str).unwrap_or("");
    if spec.is_empty() {
        return Err(DecodeError::Missing("specversion"));
    }
    if spec != SPECVERSION {
        return Err(DecodeError::Specversion(spec.to_owned()));
    }
    for name in REQUIRED {
        if attrs.get(name).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(DecodeError::Missing(name));
        }
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        attrs.insert("datacontenttype".into(), Value::String(ct.to_owned()));
    }
    if !body.is_empty() {
        let (name, data) = binary_data(media, body)?;
        attrs.insert(name.into(), data);
    }
    Ok(attrs)
}

/// A binary-mode body as the envelope's `data` (JSON or text) or `data_base64`.
fn binary_data(media: Option<&str>, body: &[u8]) -> Result<(&'static str, Value), DecodeError> {
    if media.is_some_and(is_json) {
        return Ok(("data", parse_json(body, "event data (its content type says JSON)")?));
    }
    // Without a content type, JSON is what the JSON format assumes; other bodies stay as they are.
    if media.is_none()
        && let Ok(v) = serde_json::from_slice(body)
    {
        return Ok(("data", v));
    }
    Ok(match std::str::from_utf8(body) {
        Ok(text) => ("data", Value::String(text.to_owned())),
        Err(_) => (
            "data_base64",
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
        ),
    })
}

/// Whether a body is a Pub/Sub push subscription's wrapped message: a JSON object with a `message` object
/// and a non-empty `subscription` string.
fn is_pubsub_push(body: &[u8]) -> bool {
    let Ok(Value::Object(push)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    push.get("message").is_some_and(Value::is_object)
        && push
            .get("subscription")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
}
