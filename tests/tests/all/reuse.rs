//! `reuse`: warm instances keep their globals between invocations, take
//! each invocation's own ids, and are never reused after a failure.

use crate::shared;
use http_body_util::{BodyExt, Empty};
use nimbus_core::{Event, EventSource, InvokeError, Outcome, Payload, TraceContext};
use serde_json::Value;

/// One HTTP invocation of `function` in-process; the JSON answer or the error.
async fn call(function: &str, path: &str, request_id: &str, trace: TraceContext) -> Result<Value, InvokeError> {
    let (host, _) = shared();
    let f = host.function(function).unwrap();
    let inv = host.new_invocation(f, Some(request_id.into()), trace);
    let req = http::Request::get(format!("http://localhost{path}"))
        .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
        .unwrap();
    match host.invoke(f, inv, Payload::Http(req)).await? {
        Outcome::Http(resp) => {
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            Ok(serde_json::from_slice(&body).unwrap())
        }
        other => panic!("HTTP function gave {other:?}"),
    }
}

async fn calls(function: &str, path: &str) -> Result<u64, InvokeError> {
    Ok(call(function, path, "r", TraceContext::new_root()).await?["calls"]
        .as_u64()
        .unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_keeps_its_globals_until_it_fails() {
    assert_eq!(calls("warm", "/").await.unwrap(), 1);
    assert_eq!(calls("warm", "/").await.unwrap(), 2);
    assert_eq!(calls("warm", "/").await.unwrap(), 3);
    // A trap discards the instance: the next invocation starts from scratch.
    assert!(matches!(calls("warm", "/panic").await, Err(InvokeError::Trap(_))));
    assert_eq!(calls("warm", "/").await.unwrap(), 1);
    assert_eq!(calls("warm", "/").await.unwrap(), 2);
    // So does a timeout (the guest is stopped mid-call).
    assert!(matches!(calls("warm", "/spin").await, Err(InvokeError::Deadline(_))));
    assert_eq!(calls("warm", "/").await.unwrap(), 1);

    // Every invocation sees its own request id and trace, and log lines
    // carry them, though the instance (and its stdout stream) is the same.
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let v = call("warm", "/", "req-warm-a", TraceContext::from_xray(xray))
        .await
        .unwrap();
    assert_eq!(v["calls"], 2);
    assert_eq!(v["request_id"], "req-warm-a");
    assert_eq!(v["xray"], xray, "the SDK reads the X-Ray header from the invocation");
    assert!(
        v["xray_env"].is_null(),
        "a warm instance gets no stale _X_AMZN_TRACE_ID"
    );
    let v = call("warm", "/", "req-warm-b", TraceContext::new_root()).await.unwrap();
    assert_eq!(v["calls"], 3);
    assert_eq!(v["request_id"], "req-warm-b");
    assert!(v["xray"].is_null());
    let (_, logs) = shared();
    let logs = logs.lock().unwrap().clone();
    for (rid, n) in [("req-warm-a", 2), ("req-warm-b", 3)] {
        assert!(
            logs.iter()
                .any(|l| l.contains(&format!("warm-counter call {n}")) && l.contains(rid)),
            "no log line of call {n} with {rid}: {logs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_reuse_replaces_the_instance_and_fresh_never_reuses() {
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(calls("warm-twice", "/").await.unwrap());
    }
    assert_eq!(seen, [1, 2, 1, 2, 1]);
    for _ in 0..3 {
        assert_eq!(calls("warm-fresh", "/").await.unwrap(), 1);
    }
    // Fresh instances still get the Lambda environment variable.
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let v = call("warm-fresh", "/", "r", TraceContext::from_xray(xray))
        .await
        .unwrap();
    assert_eq!(v["xray_env"], xray);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_share_at_most_concurrency_warm_instances() {
    let tasks: Vec<_> = (0..60).map(|_| tokio::spawn(calls("warm-pool", "/"))).collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap().unwrap());
    }
    // Each instance counts from 1: the number of 1s is the number of instances.
    let instances = answers.iter().filter(|c| **c == 1).count();
    assert!(
        (1..=3).contains(&instances),
        "{instances} instances for concurrency 3: {answers:?}"
    );
    assert_eq!(answers.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_event_instances_survive_error_values_but_not_traps() {
    async fn ev(payload: &str) -> Result<Value, InvokeError> {
        let (host, _) = shared();
        let f = host.function("warm-events").unwrap();
        let inv = host.new_invocation(f, None, TraceContext::new_root());
        let event = Event {
            source: EventSource::Direct,
            payload: payload.as_bytes().to_vec(),
        };
        match host.invoke(f, inv, Payload::Event(event)).await? {
            Outcome::Event(out) => Ok(serde_json::from_slice(&out).unwrap()),
            other => panic!("event function gave {other:?}"),
        }
    }
    assert_eq!(ev("{}").await.unwrap()["calls"], 1);
    assert_eq!(ev("{}").await.unwrap()["calls"], 2);
    // An error value is an answer, not a crash: the instance stays.
    assert!(matches!(ev(r#"{"fail": "no"}"#).await, Err(InvokeError::Guest(_))));
    assert!(matches!(ev("not json").await, Err(InvokeError::BadEvent(_))));
    assert_eq!(ev("{}").await.unwrap()["calls"], 5);
    assert!(matches!(ev(r#"{"panic": true}"#).await, Err(InvokeError::Trap(_))));
    assert_eq!(ev("{}").await.unwrap()["calls"], 1);
}
