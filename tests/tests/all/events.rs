//! Event functions, in-process and over the Lambda Invoke API path.

use crate::{shared, shared_gateway};
use nimbus_core::{Event, EventSource, InvokeError, Outcome, Payload, TraceContext};
use nimbus_tests::request;

async fn invoke(name: &str, payload: &str) -> Result<Outcome, InvokeError> {
    let (host, _) = shared();
    let f = host.function(name).unwrap();
    let inv = host.new_invocation(f, Some("req-123".into()), TraceContext::new_root());
    let ev = Event {
        source: EventSource::Sqs,
        payload: payload.as_bytes().to_vec(),
    };
    host.invoke(f, inv, Payload::Event(ev)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_round_trips_through_echo() {
    let Ok(Outcome::Event(out)) = invoke("echo", r#"{"order": 7, "items": ["a", "b"]}"#).await else {
        panic!("echo failed")
    };
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["echo"], serde_json::json!({"order": 7, "items": ["a", "b"]}));
    assert_eq!(v["source"], "sqs");
    assert_eq!(v["request_id"], "req-123");
    assert_eq!(v["function"], "echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_errors_are_typed() {
    let Ok(Outcome::Event(out)) = invoke("event-check", r#"{"n": 21}"#).await else {
        panic!()
    };
    assert_eq!(out, br#"{"doubled":42}"#);
    match invoke("event-check", r#"{"fail": "database down"}"#).await {
        Err(e @ InvokeError::Guest(_)) => {
            assert_eq!(e.error_type(), "Function.Failed");
            assert!(e.to_string().contains("database down"));
        }
        other => panic!("{other:?}"),
    }
    match invoke("event-check", r#"{"m": 1}"#).await {
        Err(e @ InvokeError::BadEvent(_)) => assert_eq!(e.http_status(), 400),
        other => panic!("{other:?}"),
    }
    match invoke("echo", "{not json").await {
        Err(InvokeError::BadEvent(m)) => assert!(m.contains("JSON"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_payload_kind_is_refused() {
    let (host, _) = shared();
    let f = host.function("hello").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let ev = Event {
        source: EventSource::Direct,
        payload: b"{}".to_vec(),
    };
    assert!(matches!(
        host.invoke(f, inv, Payload::Event(ev)).await,
        Err(InvokeError::WrongKind { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_invoke_api_path_invokes_event_functions() {
    let (gw, _) = shared_gateway().await;
    let path = "/2015-03-31/functions/event-check/invocations";
    let r = request(gw.addr(), "POST", path, Some(br#"{"n": 5}"#), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"doubled": 10}));
    let r = request(gw.addr(), "POST", path, Some(b"nope"), &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "Function.BadEvent");
    let r = request(
        gw.addr(),
        "POST",
        "/2015-03-31/functions/missing/invocations",
        Some(b"{}"),
        &[],
    )
    .await;
    assert_eq!(r.status, 404);
    let r = request(gw.addr(), "GET", path, None, &[]).await;
    assert_eq!(r.status, 405);
}
