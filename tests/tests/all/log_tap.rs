//! The per-invocation log tap: an adapter that answers with the guest's log lines (Azure Functions' `Logs`)
//! gets exactly that invocation's lines, from every guest stream, while the log sink still gets them all.

use crate::shared;
use http_body_util::{BodyExt, Empty};
use nimbus_core::logs::LogTap;
use nimbus_core::{Host, Payload, TraceContext};

/// One tapped HTTP invocation of `function` in-process (`tap`: whether to tap it); its tap and request id.
async fn call(host: &Host, function: &str, path: &str, tap: bool) -> (Option<LogTap>, String) {
    let f = host.function(function).unwrap();
    let mut inv = host.new_invocation(f, None, TraceContext::new_root());
    let tapped = tap.then(|| inv.tap_logs());
    let rid = inv.request_id.to_string();
    let req = http::Request::get(format!("http://localhost{path}"))
        .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
        .unwrap();
    let resp = host
        .invoke(f, inv, Payload::Http(req))
        .await
        .unwrap()
        .into_http()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The guest has finished once its body is complete.
    resp.into_body().collect().await.unwrap();
    (tapped, rid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_gets_stdout_stderr_and_wasi_logging_lines_and_the_sink_still_does() {
    let (host, _) = shared();
    let (tap, rid) = call(&host, "context", "/context", true).await;
    assert_eq!(
        tap.unwrap().lines(),
        [
            "context line one",
            "context line two",
            "context sdk record",
            "context sdk debug"
        ]
    );
    let (_, logs) = shared();
    let logs = logs.lock().unwrap().clone();
    for msg in ["context line one", "context line two", "context sdk record"] {
        assert!(
            logs.iter().any(|l| l.contains(msg) && l.contains(&rid)),
            "{msg} with {rid} is not in the log: {logs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_gives_each_tap_only_its_own_invocations_lines() {
    // A host of its own: the shared one's warm functions count their calls for other tests.
    let (host, _) = nimbus_tests::boot(
        r#"
manifest_version = 1
[function.warm]
component = "{WARM_COUNTER}"
reuse = true
concurrency = 1
"#,
    )
    .await;
    for n in [1, 3, 5] {
        let (tap, _) = call(&host, "warm", "/", true).await;
        assert_eq!(tap.unwrap().lines(), [format!("warm-counter call {n}")]);
        // An invocation without a tap in between adds nothing to the last one's.
        let (none, _) = call(&host, "warm", "/", false).await;
        assert!(none.is_none());
    }
}
