//! Every sample event in `tests/fixtures/events` (its README says where each comes from), decoded by the
//! decoders the Lambda adapter uses for it, with what each yields written out: the request an HTTP function
//! receives, the lifecycle event a WebSocket function receives, the bytes and source kind an event function
//! receives, and the tasks a task function starts or continues. `every_fixture_has_a_case` fails when a
//! fixture is added without a case here.

mod events;
mod http;
mod websocket;

use crate::lambda::decode::task::{self, SqsBatch, SqsRecord, SqsWork};
use crate::lambda::decode::{self, Origin};
use nimbus_core::EventSource;
use nimbus_core::websocket::WsEvent;
use serde_json::value::RawValue;
use std::collections::BTreeSet;
use std::path::Path;

/// The fixture directory; case names are paths relative to it.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/events");

/// What one fixture decodes to.
enum Case {
    Http(Http),
    WebSocket(WebSocket),
    Event(EventCase),
}

/// The request an HTTP function receives.
struct Http {
    origin: Origin,
    method: &'static str,
    scheme: &'static str,
    authority: &'static str,
    /// Exactly as the guest sees it, percent-encoding included.
    path: &'static str,
    query: Option<&'static str>,
    /// Every header in order, repeated names once per value.
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
}

/// The WebSocket lifecycle event and the API's Management endpoint.
struct WebSocket {
    endpoint: Option<&'static str>,
    event: Ws,
}

enum Ws {
    Connect {
        connection_id: &'static str,
        path: &'static str,
        headers: &'static [(&'static str, &'static str)],
        query: &'static [(&'static str, &'static str)],
        source_ip: Option<&'static str>,
    },
    Disconnect {
        connection_id: &'static str,
        status_code: Option<u16>,
        reason: &'static str,
    },
}

/// An event for an event function (its payload is the fixture verbatim, `payload_len` bytes) and for a
/// task function.
struct EventCase {
    source: EventSource,
    payload_len: usize,
    task: Task,
}

/// What a task function makes of the event.
enum Task {
    /// One task started with the whole event as input, under this idempotency key (for request id
    /// [`REQUEST_ID`]).
    Start(&'static str),
    /// An SQS batch, record by record.
    Sqs(&'static [SqsCase]),
}

/// One SQS record: a task started with `body` under `key` when it comes from any queue but the
/// continuation queue; a continuation run when `queue` is the continuation queue.
struct SqsCase {
    queue: &'static str,
    message_id: &'static str,
    key: &'static str,
    body: &'static str,
    receipt_handle: &'static str,
}

/// The Lambda request id the task start keys are computed for.
const REQUEST_ID: &str = "request-1";

fn cases() -> impl Iterator<Item = &'static (&'static str, Case)> {
    http::CASES.iter().chain(websocket::CASES).chain(events::CASES)
}

fn read(name: &str) -> String {
    let path = Path::new(DIR).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn header_list<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn http_fixtures_become_these_requests() {
    for (name, case) in http::CASES {
        let Case::Http(want) = case else {
            panic!("{name}: not an HTTP case")
        };
        let raw = read(name);
        assert_eq!(decode::sniff(&raw), want.origin, "{name}");
        let req = decode::http_request(want.origin, &raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(req.method().as_str(), want.method, "{name}");
        assert_eq!(req.uri().scheme_str(), Some(want.scheme), "{name}");
        assert_eq!(
            req.uri().authority().map(|a| a.as_str()),
            Some(want.authority),
            "{name}"
        );
        assert_eq!(req.uri().path(), want.path, "{name}");
        assert_eq!(req.uri().query(), want.query, "{name}");
        let headers = header_list(req.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
        assert_eq!(headers, owned(want.headers), "{name}");
        assert_eq!(req.body().as_ref(), want.body, "{name}");
    }
}

#[test]
fn websocket_fixtures_become_these_lifecycle_events() {
    for (name, case) in websocket::CASES {
        let Case::WebSocket(want) = case else {
            panic!("{name}: not a WebSocket case")
        };
        let raw = read(name);
        assert_eq!(decode::sniff(&raw), Origin::WebSocket, "{name}");
        let got = decode::websocket_request(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.endpoint.as_deref(), want.endpoint, "{name}");
        match (&got.event, &want.event) {
            (
                WsEvent::Connect(c),
                Ws::Connect {
                    connection_id,
                    path,
                    headers,
                    query,
                    source_ip,
                },
            ) => {
                assert_eq!(c.connection_id, *connection_id, "{name}");
                assert_eq!(c.path, *path, "{name}");
                assert_eq!(c.headers, owned(headers), "{name}");
                assert_eq!(c.query, owned(query), "{name}");
                assert_eq!(c.source_ip.as_deref(), *source_ip, "{name}");
            }
            (
                WsEvent::Disconnect(d),
                Ws::Disconnect {
                    connection_id,
                    status_code,
                    reason,
                },
            ) => {
                assert_eq!(d.connection_id, *connection_id, "{name}");
                assert_eq!(d.status_code, *status_code, "{name}");
                assert_eq!(d.reason, *reason, "{name}");
            }
            (got, _) => panic!("{name}: decoded to {got:?}"),
        }
    }
}

#[test]
fn event_fixtures_reach_the_guest_verbatim_with_their_source() {
    for (name, case) in events::CASES {
        let Case::Event(want) = case else {
            panic!("{name}: not an event case")
        };
        let raw = read(name);
        let origin = decode::sniff(&raw);
        assert_eq!(origin, Origin::Event(want.source), "{name}");
        // As the adapter holds it: the Runtime API's body parsed as one raw JSON value.
        let value: Box<RawValue> = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let event = decode::event(origin, value);
        assert_eq!(event.source, want.source, "{name}");
        // Byte for byte the file's JSON; only the whitespace around the value (a trailing newline) is not
        // part of it.
        assert_eq!(event.payload.len(), want.payload_len, "{name}");
        assert_eq!(event.payload, raw.trim().as_bytes(), "{name}");
    }
}

#[test]
fn event_fixtures_start_or_continue_these_tasks() {
    for (name, case) in events::CASES {
        let Case::Event(want) = case else {
            panic!("{name}: not an event case")
        };
        let raw = read(name);
        match want.task {
            Task::Start(key) => {
                assert_ne!(want.source, EventSource::Sqs, "{name}");
                assert_eq!(task::start_key(want.source, &raw, REQUEST_ID), key, "{name}");
            }
            Task::Sqs(records) => {
                assert_eq!(want.source, EventSource::Sqs, "{name}");
                // From a queue other than the continuation queue, each record starts a task keyed by its id.
                let starts: Vec<SqsRecord> = records
                    .iter()
                    .map(|r| SqsRecord {
                        message_id: r.message_id.into(),
                        work: SqsWork::Start {
                            key: r.key.into(),
                            input: r.body.as_bytes().to_vec(),
                        },
                    })
                    .collect();
                assert_eq!(
                    task::sqs_batch(&raw, "nimbus-continuations").unwrap_or_else(|e| panic!("{name}: {e}")),
                    SqsBatch {
                        records: starts,
                        unidentified: vec![]
                    },
                    "{name}"
                );
                // Named as the continuation queue, the same records are continuation runs.
                for r in records.iter() {
                    let batch = task::sqs_batch(&raw, r.queue).unwrap_or_else(|e| panic!("{name}: {e}"));
                    let run = SqsRecord {
                        message_id: r.message_id.into(),
                        work: SqsWork::Continue {
                            body: r.body.into(),
                            receipt_handle: r.receipt_handle.into(),
                        },
                    };
                    assert!(batch.records.contains(&run), "{name}: {batch:?}");
                }
            }
        }
    }
}

/// A fixture added to `tests/fixtures/events` without a case here fails this test, and so does a case whose
/// fixture is gone or a name with two cases.
#[test]
fn every_fixture_has_a_case() {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|n| n != "README.md") {
                let rel = path.strip_prefix(DIR).unwrap_or(&path);
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut files = BTreeSet::new();
    walk(Path::new(DIR), &mut files);
    let mut named = BTreeSet::new();
    for (name, _) in cases() {
        assert!(named.insert(name.to_string()), "{name} has two cases");
    }
    let untested: Vec<&String> = files.difference(&named).collect();
    let missing: Vec<&String> = named.difference(&files).collect();
    assert!(
        untested.is_empty(),
        "fixtures without a case in {}: {untested:?}",
        file!()
    );
    assert!(missing.is_empty(), "cases without a fixture in {DIR}: {missing:?}");
}
