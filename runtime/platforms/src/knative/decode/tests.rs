//! The decoder on the requests of `tests/fixtures/knative/` and on hostile ones.

use super::*;
use http::{HeaderName, HeaderValue};

/// A fixture's headers and body (`tests/fixtures/knative/README.md` describes the format).
fn fixture(name: &str) -> (HeaderMap, Vec<u8>) {
    let path = format!("{}/../../tests/fixtures/knative/{name}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a blank line after the headers");
    let head = std::str::from_utf8(&raw[..split]).expect("text headers");
    let mut headers = HeaderMap::new();
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':').expect("name: value");
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    (headers, raw[split + 4..].to_vec())
}

fn decoded(name: &str) -> (Decoded, Vec<u8>) {
    let (headers, body) = fixture(name);
    (decode(&headers, &body).unwrap_or_else(|e| panic!("{name}: {e}")), body)
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("the guest gets JSON")
}

#[test]
fn pubsub_push_is_passed_verbatim_as_an_sns_like_event() {
    let (d, body) = decoded("pubsub-push.http");
    assert_eq!(d.mode, Mode::PubSubPush);
    assert_eq!(d.event.source, EventSource::Sns);
    assert_eq!(d.event.payload, body);
    let v = json(&d.event.payload);
    assert_eq!(v["message"]["messageId"], "2070443601311540");
    assert_eq!(v["subscription"], "projects/myproject/subscriptions/mysubscription");
}

#[test]
fn eventarc_pubsub_binary_and_structured_give_the_guest_one_envelope() {
    let (binary, body) = decoded("eventarc-pubsub-binary.http");
    assert_eq!(binary.mode, Mode::Binary);
    assert_eq!(binary.event.source, EventSource::Sns);
    let b = json(&binary.event.payload);
    assert_eq!(b["specversion"], "1.0");
    assert_eq!(b["type"], "google.cloud.pubsub.topic.v1.messagePublished");
    assert_eq!(
        b["source"],
        "//pubsub.googleapis.com/projects/my-project/topics/my-topic"
    );
    assert_eq!(b["id"], "1234567890");
    assert_eq!(b["time"], "2020-08-08T00:11:44.895529672Z");
    assert_eq!(b["datacontenttype"], "application/json; charset=utf-8");
    // The body is the data, as JSON; base64 `message.data` is left for the guest to decode.
    assert_eq!(b["data"], json(&body));
    assert_eq!(b["data"]["message"]["data"], "V29ybGQ=");
    // Only ce-* headers become attributes: no Host, no traceparent.
    assert!(b.get("host").is_none() && b.get("traceparent").is_none(), "{b}");

    let (structured, body) = decoded("eventarc-pubsub-structured.http");
    assert_eq!(structured.mode, Mode::Structured);
    assert_eq!(structured.event.source, EventSource::Sns);
    assert_eq!(
        structured.event.payload, body,
        "structured mode reaches the guest verbatim"
    );
    let s = json(&structured.event.payload);
    for attr in ["specversion", "type", "source", "id", "time"] {
        assert_eq!(s[attr], b[attr], "{attr}");
    }
}

#[test]
fn eventarc_storage_events_are_s3_like_in_both_modes() {
    let (binary, body) = decoded("eventarc-storage-binary.http");
    assert_eq!((binary.mode, binary.event.source), (Mode::Binary, EventSource::S3));
    let b = json(&binary.event.payload);
    assert_eq!(b["type"], "google.cloud.storage.object.v1.finalized");
    assert_eq!(b["subject"], "objects/my-file.txt");
    // An extension attribute (Eventarc's `bucket`) is kept.
    assert_eq!(b["bucket"], "my-bucket");
    assert_eq!(b["data"], json(&body));
    assert_eq!(b["data"]["name"], "my-file.txt");

    let (structured, body) = decoded("eventarc-storage-structured.http");
    assert_eq!(
        (structured.mode, structured.event.source),
        (Mode::Structured, EventSource::S3)
    );
    assert_eq!(structured.event.payload, body);
}

#[test]
fn knative_ping_source_is_a_schedule() {
    let (d, _) = decoded("knative-ping-binary.http");
    assert_eq!((d.mode, d.event.source), (Mode::Binary, EventSource::Schedule));
    let v = json(&d.event.payload);
    assert_eq!(v["source"], "/apis/v1/namespaces/default/pingsources/test-ping-source");
    assert_eq!(v["data"]["message"], "Hello world!");
}

#[test]
fn a_batch_is_checked_whole_and_passed_verbatim() {
    let (d, body) = decoded("batch.http");
    assert_eq!((d.mode, d.event.source), (Mode::Batch, EventSource::Sns));
    assert_eq!(d.event.payload, body);
    // Mixed kinds are `Other`.
    let mixed =
        br#"[{"specversion":"1.0","type":"google.cloud.pubsub.topic.v1.messagePublished","source":"s","id":"1"},
                     {"specversion":"1.0","type":"google.cloud.storage.object.v1.deleted","source":"s","id":"2"}]"#;
    let d = decode(&content_type(BATCH), mixed).unwrap();
    assert_eq!(d.event.source, EventSource::Other);
    // One bad member refuses the batch; so do an empty batch and an object.
    for bad in [
        &br#"[{"specversion":"1.0","type":"t","source":"s","id":"1"},{"specversion":"1.0","type":"t","source":"s"}]"#[..],
        b"[]",
        br#"{"specversion":"1.0","type":"t","source":"s","id":"1"}"#,
        b"[",
    ] {
        assert!(
            decode(&content_type(BATCH), bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn source_kinds_follow_the_event_type() {
    for (t, kind) in [
        ("google.cloud.pubsub.topic.v1.messagePublished", EventSource::Sns),
        ("google.cloud.storage.object.v1.finalized", EventSource::S3),
        ("google.cloud.storage.object.v1.deleted", EventSource::S3),
        ("google.cloud.storage.object.v1.archived", EventSource::S3),
        ("google.cloud.storage.object.v1.metadataUpdated", EventSource::S3),
        ("google.cloud.scheduler.job.v1.executed", EventSource::Schedule),
        ("dev.knative.sources.ping", EventSource::Schedule),
        ("google.cloud.audit.log.v1.written", EventSource::Other),
        ("google.cloud.firestore.document.v1.written", EventSource::Other),
        ("com.example.order.created", EventSource::Other),
    ] {
        assert_eq!(source_of(t), kind, "{t}");
    }
}

fn content_type(ct: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h
}

/// Binary-mode headers: the four required attributes, then `extra`.
fn binary_headers(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "42"),
        ("ce-source", "//example.com/s"),
        ("ce-type", "com.example.t"),
    ]
    .iter()
    .chain(extra)
    {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

#[test]
fn binary_mode_data_keeps_its_form() {
    // Text stays text, binary becomes data_base64, no body no data, no content type and JSON: JSON.
    let text = decode(&binary_headers(&[("content-type", "text/plain")]), b"hello").unwrap();
    let v = json(&text.event.payload);
    assert_eq!(
        (v["data"].as_str(), v["datacontenttype"].as_str()),
        (Some("hello"), Some("text/plain"))
    );
    let bin = decode(
        &binary_headers(&[("content-type", "application/octet-stream")]),
        &[0, 159, 146, 150],
    )
    .unwrap();
    let v = json(&bin.event.payload);
    assert_eq!(v["data_base64"], "AJ+Slg==");
    assert!(v.get("data").is_none());
    let empty = decode(&binary_headers(&[]), b"").unwrap();
    let v = json(&empty.event.payload);
    assert!(v.get("data").is_none() && v.get("datacontenttype").is_none(), "{v}");
    let untyped = decode(&binary_headers(&[]), br#"{"n": 21}"#).unwrap();
    assert_eq!(json(&untyped.event.payload)["data"]["n"], 21);
    let untyped_text = decode(&binary_headers(&[]), b"not json").unwrap();
    assert_eq!(json(&untyped_text.event.payload)["data"], "not json");
    // Header values are percent-decoded (the HTTP binding's encoding of non-ASCII and `%`, `"`, space).
    let enc = decode(&binary_headers(&[("ce-subject", "caf%C3%A9%20%25%22")]), b"").unwrap();
    assert_eq!(json(&enc.event.payload)["subject"], "caf\u{e9} %\"");
}

#[test]
fn malformed_cloudevents_are_refused_with_a_reason() {
    let structured = |body: &str| decode(&content_type(STRUCTURED), body.as_bytes());
    let valid = r#"{"specversion":"1.0","type":"t","source":"s","id":"1"}"#;
    assert!(structured(valid).is_ok());
    for (body, want) in [
        (
            r#"{"specversion":"1.0","type":"t","source":"s"}"#,
            DecodeError::Missing("id"),
        ),
        (
            r#"{"specversion":"1.0","type":"t","id":"1"}"#,
            DecodeError::Missing("source"),
        ),
        (
            r#"{"specversion":"1.0","source":"s","id":"1"}"#,
            DecodeError::Missing("type"),
        ),
        (
            r#"{"type":"t","source":"s","id":"1"}"#,
            DecodeError::Missing("specversion"),
        ),
        (
            r#"{"specversion":"1.0","type":"","source":"s","id":"1"}"#,
            DecodeError::Missing("type"),
        ),
        (
            r#"{"specversion":"1.0","type":7,"source":"s","id":"1"}"#,
            DecodeError::Missing("type"),
        ),
        (
            r#"{"specversion":"0.3","type":"t","source":"s","id":"1"}"#,
            DecodeError::Specversion("0.3".into()),
        ),
        (
            r#"{"specversion":"2.0","type":"t","source":"s","id":"1"}"#,
            DecodeError::Specversion("2.0".into()),
        ),
    ] {
        assert_eq!(structured(body), Err(want), "{body}");
    }
    for body in [
        "",
        "{",
        "not json",
        "[]",
        r#""a string""#,
        r#"{"specversion":"1.0","type":"t","source":"s","id":"1","data":1,"data_base64":"AA=="}"#,
        r#"{"specversion":"1.0","type":"t","source":"s","id":"1","data_base64":"%%%"}"#,
        r#"{"specversion":"1.0","type":"t","source":"s","id":"1","time":5}"#,
        r#"{"specversion":"1.0","type":"t","source":"s","id":"1","Bad-Name":"x"}"#,
    ] {
        assert!(structured(body).is_err(), "{body}");
    }
    // Other event formats are not read.
    assert!(matches!(
        decode(&content_type("application/cloudevents+avro"), b"x"),
        Err(DecodeError::Format(_))
    ));

    // Binary mode.
    let mut h = binary_headers(&[]);
    h.remove("ce-id");
    assert_eq!(decode(&h, b"{}"), Err(DecodeError::Missing("id")));
    let mut h = binary_headers(&[]);
    h.remove("ce-specversion");
    assert_eq!(decode(&h, b"{}"), Err(DecodeError::Missing("specversion")));
    let mut h = binary_headers(&[]);
    h.insert("ce-specversion", HeaderValue::from_static("0.3"));
    assert_eq!(decode(&h, b"{}"), Err(DecodeError::Specversion("0.3".into())));
    // Only a ce- header that is not even a full event: still a malformed CloudEvent, not a plain body.
    let mut h = HeaderMap::new();
    h.insert("ce-type", HeaderValue::from_static("t"));
    assert_eq!(decode(&h, b"{}"), Err(DecodeError::Missing("specversion")));
    for (extra, body) in [
        (&[("ce-id", "43")][..], &b"{}"[..]),
        (&[("ce-bad-name", "x")][..], b"{}"),
        (&[("ce-data", "x")][..], b"{}"),
        (&[("ce-subject", "%FF")][..], b"{}"),
        (&[("content-type", "application/json")][..], b"{not json"),
    ] {
        assert!(decode(&binary_headers(extra), body).is_err(), "{extra:?}");
    }
}

#[test]
fn plain_bodies_are_direct_or_scheduled() {
    let d = decode(&content_type("application/json"), br#"{"n": 21}"#).unwrap();
    assert_eq!((d.mode, d.event.source), (Mode::Plain, EventSource::Direct));
    assert_eq!(d.event.payload, br#"{"n": 21}"#);
    let mut h = content_type("application/json");
    h.insert("x-cloudscheduler", HeaderValue::from_static("true"));
    h.insert("x-cloudscheduler-jobname", HeaderValue::from_static("nightly"));
    let d = decode(&h, b"{}").unwrap();
    assert_eq!((d.mode, d.event.source), (Mode::Plain, EventSource::Schedule));
    // Almost a push body (no subscription, or message not an object) is plain.
    for body in [
        &br#"{"message":{"data":"AA=="}}"#[..],
        br#"{"message":"x","subscription":"projects/p/subscriptions/s"}"#,
        br#"{"message":{},"subscription":""}"#,
    ] {
        assert_eq!(decode(&HeaderMap::new(), body).unwrap().mode, Mode::Plain);
    }
}
