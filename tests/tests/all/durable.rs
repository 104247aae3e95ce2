//! Durable long tasks end to end: the `task-function` world, the `checkpoint` capability, `Host::run_task`
//! and `Tasks` on the embedded store, and the gateway's `/tasks/` endpoints.

use nimbus_checkpoint::{TaskRecord, TaskStatus};
use nimbus_core::{Handled, Host, RunEnd, Tasks};
use nimbus_tests::{Logs, native, request};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Task functions with short timeouts, so one task needs many runs.
const MANIFEST: &str = r#"
manifest_version = 1

[function.steps]
component = "{TASK_STEPS}"
timeout = "400ms"
task = { yield_margin = "150ms", max_attempts = 3 }

[function.steps-tiny]
component = "{TASK_STEPS}"
timeout = "2s"
task = { max_checkpoint = "1KiB", max_attempts = 1 }

[function.sha]
component = "{SHA_TASK}"
timeout = "300ms"
task = { yield_margin = "100ms" }

[function.hello]
component = "{HELLO}"
routes = ["GET /tasks/hello/{*rest}"]
"#;

fn host() -> (Arc<Host>, Logs) {
    static HOST: OnceLock<(Arc<Host>, Logs)> = OnceLock::new();
    HOST.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(nimbus_tests::boot(MANIFEST))
        })
        .join()
        .unwrap()
    })
    .clone()
}

/// A fresh embedded store for one test.
fn tasks() -> (Arc<Tasks>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tasks = Tasks::embedded(host().0, dir.path()).expect("open store");
    (Arc::new(tasks), dir)
}

/// Receives and runs deliveries one at a time until the task is done or failed; returns its record and how
/// each run ended.
pub(crate) async fn drive(tasks: &Tasks, id: &str, within: Duration) -> (TaskRecord, Vec<RunEnd>) {
    let until = Instant::now() + within;
    let mut ends = Vec::new();
    loop {
        let record = tasks.status(id).await.unwrap().expect("task exists");
        if record.status.is_terminal() {
            return (record, ends);
        }
        assert!(
            Instant::now() < until,
            "task not finished in {within:?}: {record:?} after {ends:?}"
        );
        match tasks.receive().await.unwrap() {
            Some(delivery) => {
                if let Handled::Ran { end, .. } = tasks.handle(delivery).await.unwrap() {
                    ends.push(end);
                }
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn result_json(record: &TaskRecord) -> serde_json::Value {
    serde_json::from_slice(record.result.as_deref().expect("a result")).expect("JSON result")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_task_needing_many_runs_returns_the_uninterrupted_result() {
    let (tasks, _dir) = tasks();
    // 80 steps of 15 ms: 1.2 s of work against a 400 ms timeout that asks to yield after 250 ms.
    let input = br#"{"steps": 80, "step_ms": 15}"#.to_vec();
    let started = tasks.start("steps", input, None).await.unwrap();
    let (record, ends) = drive(&tasks, &started.task_id, Duration::from_secs(60)).await;
    assert_eq!(record.status, TaskStatus::Done, "{record:?}");
    assert!(ends.len() >= 5, "expected at least 5 runs, got {ends:?}");
    assert_eq!(ends.last(), Some(&RunEnd::Done));
    // Every run but the last yields (one cut off at its deadline on a slow disk resumes just the same).
    assert!(
        ends[..ends.len() - 1]
            .iter()
            .all(|e| matches!(e, RunEnd::Yielded | RunEnd::DeadlineResumed)),
        "{ends:?}"
    );
    assert_eq!(record.runs, ends.len() as u64);
    assert_eq!(record.seq, 80, "one commit per step");
    let out = result_json(&record);
    assert_eq!(out["steps"], 80);
    assert_eq!(out["acc"], native::steps_acc(80), "{out}");
    assert_eq!(record.progress.as_deref(), Some("80/80"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sha_task_matches_a_native_sha_chain() {
    let (tasks, _dir) = tasks();
    let input = br#"{"mib": 40, "seed": 11}"#.to_vec();
    let started = tasks.start("sha", input, None).await.unwrap();
    let (record, ends) = drive(&tasks, &started.task_id, Duration::from_secs(90)).await;
    assert_eq!(record.status, TaskStatus::Done, "{record:?} after {ends:?}");
    let out = result_json(&record);
    assert_eq!(out["sha256"], native::sha_chain(40, 11), "{out} after {ends:?}");
    assert_eq!(out["mib"], 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_guest_ignoring_should_yield_is_stopped_and_resumes_from_its_last_commit() {
    let (tasks, _dir) = tasks();
    // Never asks should-yield: every run is cut off by the 400 ms deadline, after committing some steps.
    let input = br#"{"steps": 40, "step_ms": 25, "ignore_yield": true}"#.to_vec();
    let started = tasks.start("steps", input, None).await.unwrap();
    let (record, ends) = drive(&tasks, &started.task_id, Duration::from_secs(60)).await;
    assert_eq!(record.status, TaskStatus::Done, "{record:?} after {ends:?}");
    let cut = ends.iter().filter(|e| **e == RunEnd::DeadlineResumed).count();
    assert!(cut >= 2, "runs should have been stopped at the deadline: {ends:?}");
    assert!(
        !ends.iter().any(|e| matches!(e, RunEnd::Failed(_))),
        "a cut-off run with commits is no failure: {ends:?}"
    );
    assert_eq!(result_json(&record)["acc"], native::steps_acc(40));
    assert_eq!(
        record.seq, 40,
        "no committed step was lost or redone twice into the chain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_oversized_checkpoint_fails_the_task_with_a_clear_error() {
    let (tasks, _dir) = tasks();
    let input = br#"{"steps": 3, "oversize": 4096}"#.to_vec();
    let started = tasks.start("steps-tiny", input, None).await.unwrap();
    let (record, ends) = drive(&tasks, &started.task_id, Duration::from_secs(30)).await;
    assert_eq!(record.status, TaskStatus::Failed, "{record:?}");
    assert_eq!(ends.len(), 1, "max_attempts = 1: {ends:?}");
    let error = record.error.clone().unwrap_or_default();
    assert!(
        error.contains("too large") && error.contains("1024"),
        "the error names the limit: {error}"
    );
    assert_eq!(record.seq, 0, "nothing was committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_failing_runs_are_retried_then_the_task_fails() {
    let (tasks, _dir) = tasks();
    let started = tasks
        .start("steps", br#"{"steps": 3, "fail": true}"#.to_vec(), None)
        .await
        .unwrap();
    let (record, ends) = drive(&tasks, &started.task_id, Duration::from_secs(30)).await;
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(ends.len(), 3, "max_attempts = 3: {ends:?}");
    assert!(record.error.unwrap_or_default().contains("told to fail"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_http_start_is_idempotent_and_status_has_its_shape() {
    let (host, logs) = host();
    let (tasks, _dir) = tasks();
    let gw = nimbus_platforms::local::Gateway::start(
        host,
        "127.0.0.1:0".parse().unwrap(),
        nimbus_platforms::local::GatewayOptions {
            log_sink: nimbus_core::logs::LogSink::Capture(logs),
            tasks: Some(tasks.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let addr = gw.addr();
    let body = br#"{"steps": 4}"#;
    let key = [("idempotency-key", "order-77")];
    let first = request(addr, "POST", "/tasks/steps", Some(body), &key).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let first = first.json();
    let id = first["task_id"].as_str().expect("task_id").to_owned();
    assert_eq!(first["created"], true);
    assert_eq!(first["status_url"], format!("/tasks/steps/{id}"));
    let again = request(addr, "POST", "/tasks/steps", Some(body), &key).await;
    assert_eq!(again.status, 202);
    assert_eq!(
        again.json()["task_id"],
        id.as_str(),
        "a retried start returns the same task"
    );
    assert_eq!(again.json()["created"], false);
    let other = request(addr, "POST", "/tasks/steps", Some(body), &[]).await.json();
    assert_ne!(other["task_id"], id.as_str(), "no key, a new task");

    let status = nimbus_tests::get(addr, &format!("/tasks/steps/{id}")).await;
    assert_eq!(status.status, 200);
    let status = status.json();
    for key in [
        "task_id", "function", "status", "seq", "attempts", "failures", "runs", "progress", "result", "error",
    ] {
        assert!(status.get(key).is_some(), "status has `{key}`: {status}");
    }
    assert_eq!(status["status"], "running");
    assert_eq!(status["function"], "steps");

    // Unknown task, wrong function, bad id: 404. GET on the start path: 405.
    assert_eq!(nimbus_tests::get(addr, "/tasks/steps/no-such-task").await.status, 404);
    assert_eq!(nimbus_tests::get(addr, &format!("/tasks/sha/{id}")).await.status, 404);
    assert_eq!(nimbus_tests::get(addr, "/tasks/steps/..%2F..").await.status, 404);
    assert_eq!(nimbus_tests::get(addr, "/tasks/steps").await.status, 405);
    // `/tasks/` is reserved only for task functions: an HTTP function's own route still works.
    assert_eq!(nimbus_tests::get(addr, "/tasks/hello/anything").await.status, 200);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(tasks.clone().work(stopped, Duration::from_secs(5)));
    let until = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let s = nimbus_tests::get(addr, &format!("/tasks/steps/{id}")).await.json();
        if s["status"] == "done" {
            break s;
        }
        assert!(Instant::now() < until, "not done: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["result"]["acc"], native::steps_acc(4));
    assert_eq!(done["result"]["steps"], 4);
    assert_eq!(done["seq"], 4);
    assert!(done["error"].is_null());
    let _ = stop.send(true);
    worker.await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn durable_task_settings_on_a_non_task_function_fail_boot() {
    let m = nimbus_tests::manifest(
        "manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /h\"]\ntask = { max_attempts = 2 }\n",
    );
    let err = match Host::boot(m, Default::default()).await {
        Ok(_) => panic!("a task section on an HTTP function must fail boot"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("`task` settings are for task functions"), "{err}");
}
