//! Every kind of invocation (HTTP, event, WebSocket, task run) goes through the one path, `Host::invoke`:
//! the function's admission limit, the metering and the classification of failures apply to a task run and
//! a WebSocket message exactly as they do to an HTTP request.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::metrics::MetricsFormat;
use nimbus_core::websocket::{IncomingMessage, Message, WsEvent};
use nimbus_core::{
    BootOptions, Event, EventSource, Handled, Host, InvokeError, Payload, RunEnd, TaskError, Tasks, TasksError,
    TraceContext,
};
use nimbus_tests::{Logs, boot_with};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// One function of each kind, each admitting one invocation at a time; a full function refuses after 300 ms.
const MANIFEST: &str = r#"
manifest_version = 1

[function.spin]
component = "{SPIN}"
routes = ["GET /spin"]
timeout = "3s"
concurrency = 1

[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]

[function.events]
component = "{EVENT_CHECK}"

[function.ws]
component = "{WS_ECHO}"
timeout = "3s"
concurrency = 1

[function.steps]
component = "{TASK_STEPS}"
timeout = "3s"
concurrency = 1
task = { yield_margin = "100ms", max_attempts = 5 }
"#;

async fn boot() -> (Arc<Host>, Logs) {
    let opts = BootOptions {
        metrics: MetricsFormat::Emf {
            namespace: "SharedPath".into(),
        },
        queue_timeout: Some(Duration::from_millis(300)),
        ..BootOptions::default()
    };
    boot_with(MANIFEST, opts).await
}

fn message(text: &str) -> Payload {
    Payload::WebSocket(
        WsEvent::Message(IncomingMessage {
            connection_id: "c1".into(),
            route_key: "$default".into(),
            message: Message::Text(text.into()),
        }),
        None,
    )
}

fn get(path: &str) -> Payload {
    let req = http::Request::get(format!("http://localhost{path}"))
        .body(Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync())
        .unwrap();
    Payload::Http(req)
}

async fn invoke(host: &Host, function: &str, payload: Payload) -> Result<nimbus_core::Outcome, InvokeError> {
    let f = host.function(function).unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    host.invoke(f, inv, payload).await
}

/// Starts `blocker` (an invocation that holds `function`'s only instance for seconds), then probes the
/// function until a probe is refused as `Overloaded`; a probe that was admitted first (on a slow machine
/// the blocker may not have started yet) just runs, and the next probe meets the blocker.
async fn refused_while_busy<B, P, PF>(blocker: B, probe: P) -> bool
where
    B: Future<Output = ()> + Send + 'static,
    P: Fn() -> PF,
    PF: Future<Output = bool>,
{
    let blocker = tokio::spawn(blocker);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..10 {
        if probe().await {
            // The blocker ends at its deadline (or, for a task run, when it yields).
            let _ = blocker.await;
            return true;
        }
        if blocker.is_finished() {
            break;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admission_limit_applies_to_every_kind() {
    let (host, _logs) = boot().await;

    // HTTP: a request to a function whose one instance is spinning is refused.
    let h = host.clone();
    let busy = refused_while_busy(
        async move {
            let _ = invoke(&h, "spin", get("/spin")).await;
        },
        || async {
            matches!(
                invoke(&host, "spin", get("/spin")).await,
                Err(InvokeError::Overloaded { .. })
            )
        },
    )
    .await;
    assert!(busy, "HTTP: no probe was refused while the instance was busy");

    // WebSocket: a message while the function's one instance spins on another is refused.
    let h = host.clone();
    let busy = refused_while_busy(
        async move {
            let _ = invoke(&h, "ws", message("spin")).await;
        },
        || async {
            matches!(
                invoke(&host, "ws", message("echo:hi")).await,
                Err(InvokeError::Overloaded { .. })
            )
        },
    )
    .await;
    assert!(busy, "WebSocket: no probe was refused while the instance was busy");

    // Task: a run while another run holds the function's one instance is refused, and nothing is committed.
    let dir = tempfile::tempdir().unwrap();
    let tasks = Arc::new(Tasks::embedded(host.clone(), dir.path()).unwrap());
    let long = br#"{"steps": 100000, "step_ms": 10}"#.to_vec();
    let first = tasks.start("steps", long.clone(), None).await.unwrap().task_id;
    let delivery = tasks.receive().await.unwrap().expect("the first task's message");
    let t = tasks.clone();
    let busy = refused_while_busy(
        async move {
            let _ = t.handle(delivery).await;
        },
        || async {
            let probe = tasks.start("steps", long.clone(), None).await.unwrap().task_id;
            assert_ne!(probe, first);
            let delivery = loop {
                match tasks.receive().await.unwrap() {
                    Some(d) if d.task_id == probe => break d,
                    Some(_) | None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            matches!(
                tasks.handle(delivery).await,
                Err(TasksError::Run(TaskError::Invoke(InvokeError::Overloaded { .. })))
            )
        },
    )
    .await;
    assert!(busy, "task: no run was refused while the instance was busy");
}

/// The EMF records in the captured log, in order.
fn records(logs: &Logs) -> Vec<Value> {
    logs.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_metered_and_classified_alike() {
    let (host, logs) = boot().await;
    let event = |payload: &str| {
        Payload::Event(Event {
            source: EventSource::Direct,
            payload: payload.as_bytes().to_vec(),
        })
    };
    invoke(&host, "hello", get("/hello")).await.unwrap();
    invoke(&host, "events", event(r#"{"n": 1}"#)).await.unwrap();
    invoke(&host, "ws", message("echo:hi")).await.unwrap();
    assert!(matches!(
        invoke(&host, "events", event(r#"{"fail": "no"}"#)).await,
        Err(InvokeError::Guest(_))
    ));
    assert!(matches!(
        invoke(&host, "ws", message("fail")).await,
        Err(InvokeError::Guest(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let tasks = Tasks::embedded(host.clone(), dir.path()).unwrap();
    for input in [&br#"{"steps": 3}"#[..], br#"{"steps": 3, "fail": true}"#] {
        tasks.start("steps", input.to_vec(), None).await.unwrap();
        let delivery = tasks.receive().await.unwrap().expect("the task's message");
        let handled = tasks.handle(delivery).await.unwrap();
        let Handled::Ran { end, .. } = handled else {
            panic!("{handled:?}")
        };
        assert!(matches!(end, RunEnd::Done | RunEnd::Failed(_)), "{end:?}");
    }

    // The HTTP record is written when the guest returns, just after the response.
    let mut got = Vec::new();
    for _ in 0..100 {
        got = records(&logs);
        if got.len() >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut summary: Vec<(String, u64, String)> = got
        .iter()
        .map(|r| {
            assert!(r["Duration"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["PeakMemory"].as_u64().unwrap() >= 65536, "{r}");
            (
                r["function"].as_str().unwrap().to_owned(),
                r["Errors"].as_u64().unwrap(),
                r["error_type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("hello", 0, ""),
        ("events", 0, ""),
        ("ws", 0, ""),
        ("events", 1, "Function.Failed"),
        ("ws", 1, "Function.Failed"),
        ("steps", 0, ""),
        ("steps", 1, "Function.Failed"),
    ];
    let mut expected: Vec<(String, u64, String)> = expected
        .iter()
        .map(|(f, e, t)| (f.to_string(), *e, t.to_string()))
        .collect();
    // An HTTP guest's record is written by its own task, so records need not come in invocation order.
    summary.sort();
    expected.sort();
    assert_eq!(summary, expected);
}
