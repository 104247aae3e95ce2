//! Function Compute requests → what Nimbus needs. Pure functions, tested on the documented header sets and
//! event payloads (`tests/fixtures/fc/`).
//!
//! - [`control_path`]: what Function Compute asks for (`x-fc-control-path`);
//! - [`request_id`], [`function_timeout`]: the invocation's identity and the platform's time budget;
//! - [`event_source`]: which trigger sent an `/invoke` payload (timer, OSS, MNS, else a direct invocation),
//!   sniffed once without building the document; the payload itself reaches the guest byte for byte;
//! - [`strip_platform_headers`]: an `/http-invoke` request as the guest sees it, without Function Compute's
//!   `x-fc-*` headers (the temporary credentials among them).

use http::HeaderMap;
use http::header::HeaderName;
use nimbus_core::EventSource;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::time::Duration;

/// The header naming what Function Compute asks for.
pub const CONTROL_PATH: &str = "x-fc-control-path";
/// The header carrying Function Compute's request id.
pub const REQUEST_ID: &str = "x-fc-request-id";
/// The header carrying the function's timeout in seconds.
pub const FUNCTION_TIMEOUT: &str = "x-fc-function-timeout";
/// The prefix of every header Function Compute adds (and of every header it forbids in a response).
pub const PLATFORM_PREFIX: &str = "x-fc-";

/// The longest request id taken from Function Compute (its ids are UUID-like, about 40 characters).
const MAX_REQUEST_ID: usize = 128;

/// The longest function timeout Function Compute allows (24 hours).
const MAX_FUNCTION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// What Function Compute asks a custom runtime to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlPath {
    /// `/invoke`: run the event function with the request body as its event.
    Invoke,
    /// `/http-invoke`: run the HTTP function with the request as sent.
    HttpInvoke,
    /// `/initialize`: the Initializer hook of a new instance.
    Initialize,
    /// `/pre-freeze`: the instance is about to be frozen.
    PreFreeze,
    /// `/pre-stop`: the instance is about to be stopped.
    PreStop,
}

impl ControlPath {
    /// Every control path, for messages.
    pub const ALL: [ControlPath; 5] = [
        ControlPath::Invoke,
        ControlPath::HttpInvoke,
        ControlPath::Initialize,
        ControlPath::PreFreeze,
        ControlPath::PreStop,
    ];

    /// The header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlPath::Invoke => "/invoke",
            ControlPath::HttpInvoke => "/http-invoke",
            ControlPath::Initialize => "/initialize",
            ControlPath::PreFreeze => "/pre-freeze",
            ControlPath::PreStop => "/pre-stop",
        }
    }
}

/// A request whose `x-fc-control-path` names nothing this runtime does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadControlPath {
    /// No `x-fc-control-path` header: not a request from Function Compute.
    #[error(
        "the request has no x-fc-control-path header: Function Compute sends one with every request \
         (/invoke, /http-invoke, /initialize, /pre-freeze or /pre-stop)"
    )]
    Missing,
    /// A value that is no control path (or several headers).
    #[error(
        "x-fc-control-path {0:?} is not one this runtime serves (/invoke, /http-invoke, /initialize, \
         /pre-freeze or /pre-stop)"
    )]
    Unknown(String),
}

/// What the request asks for, from its one `x-fc-control-path` header.
pub fn control_path(headers: &HeaderMap) -> Result<ControlPath, BadControlPath> {
    let mut values = headers.get_all(CONTROL_PATH).iter();
    let value = values.next().ok_or(BadControlPath::Missing)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    if values.next().is_some() {
        return Err(BadControlPath::Unknown(format!("{text}, repeated")));
    }
    ControlPath::ALL
        .into_iter()
        .find(|p| p.as_str() == text.trim())
        .ok_or_else(|| BadControlPath::Unknown(text.into_owned()))
}

/// Function Compute's request id (`x-fc-request-id`), if it sent a usable one: visible ASCII, at most 128
/// characters. `None`: the invocation gets a fresh id.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(REQUEST_ID)?.to_str().ok()?.trim();
    let ok = !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.to_owned())
}

/// The function timeout Function Compute announced (`x-fc-function-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionTimeout {
    /// Whole seconds, 1 to 86400.
    Seconds(Duration),
    /// No header.
    Absent,
    /// A value that is no timeout Function Compute could set; the manifest timeout applies.
    Implausible,
}

/// The function's timeout from `x-fc-function-timeout` (whole seconds, as Function Compute configures it).
pub fn function_timeout(headers: &HeaderMap) -> FunctionTimeout {
    let Some(v) = headers.get(FUNCTION_TIMEOUT) else {
        return FunctionTimeout::Absent;
    };
    match v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(s) if s > 0 && Duration::from_secs(s) <= MAX_FUNCTION_TIMEOUT => {
            FunctionTimeout::Seconds(Duration::from_secs(s))
        }
        _ => FunctionTimeout::Implausible,
    }
}

/// The fields of an `/invoke` payload that tell its trigger; everything else is skipped unread.
#[derive(Deserialize)]
struct Probe {
    /// Timer trigger: `{"triggerTime", "triggerName", "payload"}`.
    #[serde(rename = "triggerTime")]
    trigger_time: Option<IgnoredAny>,
    #[serde(rename = "triggerName")]
    trigger_name: Option<IgnoredAny>,
    /// OSS trigger: `{"events": [{"eventSource": "acs:oss", ...}]}`.
    events: Option<Vec<Record>>,
    /// MNS topic trigger (JSON notification format): `{"TopicOwner", "TopicName", "Message", ...}`.
    #[serde(rename = "TopicOwner")]
    topic_owner: Option<IgnoredAny>,
    #[serde(rename = "TopicName")]
    topic_name: Option<IgnoredAny>,
    /// An event EventBridge delivers (Function Compute 3.0's MNS and OSS triggers): a CloudEvent whose
    /// `type` names the source (`mns:Queue:SendMessage`, `mns:Topic:SendMessage`, `oss:ObjectCreated:...`).
    specversion: Option<IgnoredAny>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// One record of an OSS notification.
#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventSource")]
    event_source: Option<String>,
}

impl Probe {
    fn source(&self) -> Option<EventSource> {
        if self.trigger_time.is_some() && self.trigger_name.is_some() {
            return Some(EventSource::Schedule);
        }
        if let Some(events) = &self.events
            && !events.is_empty()
            && events.iter().all(|r| r.event_source.as_deref() == Some("acs:oss"))
        {
            return Some(EventSource::S3);
        }
        if self.topic_owner.is_some() && self.topic_name.is_some() {
            return Some(EventSource::Sns);
        }
        let kind = self.kind.as_deref().filter(|_| self.specversion.is_some())?;
        Some(if kind.starts_with("mns:Queue:") {
            EventSource::Sqs
        } else if kind.starts_with("mns:Topic:") {
            EventSource::Sns
        } else if kind.starts_with("oss:") {
            EventSource::S3
        } else {
            EventSource::EventBridge
        })
    }
}

/// Which trigger an `/invoke` payload came from: a timer is [`EventSource::Schedule`], an OSS notification
/// [`EventSource::S3`], an MNS topic message [`EventSource::Sns`], an MNS queue batch (through EventBridge)
/// [`EventSource::Sqs`], another EventBridge event [`EventSource::EventBridge`]; anything else (a custom
/// payload, not JSON, JSON of another shape) is a direct invocation ([`EventSource::Direct`]).
pub fn event_source(payload: &[u8]) -> EventSource {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    let source = match first {
        Some(b'{') => serde_json::from_slice::<Probe>(payload).ok().and_then(|p| p.source()),
        // EventBridge delivers batches as an array of CloudEvents: all of one kind, or it is no trigger's.
        Some(b'[') => serde_json::from_slice::<Vec<Probe>>(payload).ok().and_then(|batch| {
            let mut kinds = batch.iter().map(|p| p.source().filter(|_| p.specversion.is_some()));
            let first = kinds.next()??;
            kinds.all(|k| k == Some(first)).then_some(first)
        }),
        _ => None,
    };
    source.unwrap_or(EventSource::Direct)
}

/// Whether `name` is one of Function Compute's own headers (`x-fc-*`: its context, the temporary
/// credentials, the control path), which a guest never sees.
pub fn is_platform_header(name: &HeaderName) -> bool {
    name.as_str().starts_with(PLATFORM_PREFIX)
}

/// Removes Function Compute's own headers ([`is_platform_header`]) from a request the guest is to see;
/// returns how many lines were removed.
pub fn strip_platform_headers(headers: &mut HeaderMap) -> usize {
    let names: Vec<HeaderName> = headers.keys().filter(|n| is_platform_header(n)).cloned().collect();
    names
        .iter()
        .map(|n| match headers.entry(n) {
            http::header::Entry::Occupied(e) => e.remove_entry_mult().1.count(),
            http::header::Entry::Vacant(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../tests/fixtures/fc/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The documented header set of an HTTP-triggered request (`http-invoke-headers.txt`).
    pub(crate) fn documented_headers() -> HeaderMap {
        let text = String::from_utf8(fixture("http-invoke-headers.txt")).unwrap();
        let mut h = HeaderMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (name, value) = line.split_once(':').unwrap();
            h.append(
                HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
        h
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_documented_header_set_decodes() {
        let h = documented_headers();
        assert_eq!(control_path(&h), Ok(ControlPath::HttpInvoke));
        assert_eq!(request_id(&h).as_deref(), Some("1-6576b8d2-15e4a5b6-7f2d0f0e2a1c"));
        assert_eq!(function_timeout(&h), FunctionTimeout::Seconds(Duration::from_secs(60)));
    }

    #[test]
    fn every_control_path_is_recognised_and_others_are_refused() {
        for p in ControlPath::ALL {
            assert_eq!(control_path(&with(CONTROL_PATH, p.as_str())), Ok(p));
        }
        assert_eq!(control_path(&HeaderMap::new()), Err(BadControlPath::Missing));
        assert_eq!(
            control_path(&with(CONTROL_PATH, "/invoke/../admin")),
            Err(BadControlPath::Unknown("/invoke/../admin".into()))
        );
        assert!(matches!(
            control_path(&with(CONTROL_PATH, "")),
            Err(BadControlPath::Unknown(_))
        ));
        let mut twice = with(CONTROL_PATH, "/invoke");
        twice.append(CONTROL_PATH, HeaderValue::from_static("/http-invoke"));
        assert!(matches!(control_path(&twice), Err(BadControlPath::Unknown(_))));
    }

    #[test]
    fn unusable_request_ids_get_a_fresh_one() {
        assert_eq!(request_id(&HeaderMap::new()), None);
        assert_eq!(request_id(&with(REQUEST_ID, "  ")), None);
        assert_eq!(request_id(&with(REQUEST_ID, "a b")), None);
        assert_eq!(request_id(&with(REQUEST_ID, &"x".repeat(129))), None);
        assert_eq!(request_id(&with(REQUEST_ID, " abc-1 ")).as_deref(), Some("abc-1"));
    }

    #[test]
    fn function_timeouts_are_whole_seconds_within_a_day() {
        assert_eq!(function_timeout(&HeaderMap::new()), FunctionTimeout::Absent);
        assert_eq!(
            function_timeout(&with(FUNCTION_TIMEOUT, "3")),
            FunctionTimeout::Seconds(Duration::from_secs(3))
        );
        assert_eq!(
            function_timeout(&with(FUNCTION_TIMEOUT, "86400")),
            FunctionTimeout::Seconds(Duration::from_secs(86400))
        );
        for bad in ["0", "-1", "1.5", "86401", "60s", ""] {
            assert_eq!(
                function_timeout(&with(FUNCTION_TIMEOUT, bad)),
                FunctionTimeout::Implausible,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn documented_trigger_payloads_are_recognised() {
        assert_eq!(event_source(&fixture("timer.json")), EventSource::Schedule);
        assert_eq!(event_source(&fixture("oss.json")), EventSource::S3);
        assert_eq!(event_source(&fixture("mns-topic.json")), EventSource::Sns);
        assert_eq!(event_source(&fixture("mns-topic-eventbridge.json")), EventSource::Sns);
        assert_eq!(event_source(&fixture("mns-queue.json")), EventSource::Sqs);
    }

    #[test]
    fn custom_payloads_are_direct_invocations() {
        for payload in [
            &br#"{"n": 21}"#[..],
            b"",
            b"plain text",
            b"[1, 2, 3]",
            b"[]",
            b"{\"triggerTime\": 1}",
            b"{\"events\": []}",
            b"{\"events\": [{\"eventSource\": \"aws:s3\"}]}",
            b"{\"events\": 5}",
            b"{not json",
            br#"{"type": "mns:Queue:SendMessage"}"#,
        ] {
            assert_eq!(
                event_source(payload),
                EventSource::Direct,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        // A batch mixing kinds is no one trigger's.
        let mixed = br#"[{"specversion": "1.0", "type": "mns:Queue:SendMessage"},
                         {"specversion": "1.0", "type": "oss:ObjectCreated:PutObject"}]"#;
        assert_eq!(event_source(mixed), EventSource::Direct);
        let other = br#"{"specversion": "1.0", "type": "ecs:Instance:StateChange"}"#;
        assert_eq!(event_source(other), EventSource::EventBridge);
    }

    #[test]
    fn platform_headers_and_credentials_are_stripped_and_the_rest_kept() {
        let mut h = documented_headers();
        let before = h.len();
        let removed = strip_platform_headers(&mut h);
        assert_eq!(removed, 19, "every x-fc-* line of the documented set");
        assert_eq!(h.len(), before - removed);
        assert!(h.keys().all(|n| !n.as_str().starts_with("x-fc-")), "{h:?}");
        for gone in ["x-fc-access-key-id", "x-fc-access-key-secret", "x-fc-security-token"] {
            assert!(!h.contains_key(gone));
        }
        assert_eq!(h["x-client-header"], "kept");
        assert_eq!(h["host"], "1234567890123456.cn-hangzhou.fc.aliyuncs.com");
        assert!(h.contains_key("traceparent"));
    }
}
