//! The degradation ladder, end to end through the local gateway: load shed at level 2 (in-flight bound, rate
//! limit) with 503 and `Retry-After` before any instance is taken; level 4 when enough dependencies' circuits
//! are open (the guest is not run, but a probe gets through now and then); the operator forcing a level and
//! resetting breakers through the fault plan's document; each change of level logged.

use nimbus_core::faults::FaultPlan;
use nimbus_tests::upstream::Upstream;
use nimbus_tests::{Logs, boot, gateway, get};
use serde_json::Value;
use std::time::Duration;

fn levels(logs: &Logs) -> Vec<(u64, u64)> {
    nimbus_tests::records(logs, "degradation level")
        .iter()
        .map(|v| (v["from"].as_u64().unwrap(), v["to"].as_u64().unwrap()))
        .collect()
}

fn plan(text: &str) -> FaultPlan {
    FaultPlan::parse(text, "test", || 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_in_flight_is_shed_at_once_with_retry_after() {
    let (host, logs) = boot(
        r#"
manifest_version = 1
[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]
degradation = { max_in_flight = 2, retry_after = "3s" }
"#,
    )
    .await;
    // Every invocation takes 400 ms before its guest runs.
    host.faults().replace(Some(plan(
        "[[rule]]\ntarget = \"invocation\"\nkind = \"latency\"\nlatency = \"400ms\"",
    )));
    let gw = gateway(host.clone(), logs.clone()).await;
    let addr = gw.addr();
    let calls: Vec<_> = (0..6)
        .map(|_| tokio::spawn(async move { get(addr, "/hello").await }))
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        let r = c.await.unwrap();
        if r.status == 503 {
            assert_eq!(r.headers["retry-after"], "3");
            assert_eq!(r.json()["error"], "Nimbus.Degraded");
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503, 503, 503], "two in flight, the rest shed");
    host.faults().replace(None);
    assert_eq!(get(addr, "/hello").await.status, 200);
    assert_eq!(levels(&logs), [(0, 2), (2, 0)]);
    assert_eq!(host.function("hello").unwrap().degradation_level(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_is_shed_and_the_bucket_refills() {
    let (host, logs) = boot(
        r#"
manifest_version = 1
[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]
degradation = { rate_limit = 4 }
"#,
    )
    .await;
    let gw = gateway(host, logs.clone()).await;
    let mut ok = 0;
    for _ in 0..12 {
        ok += usize::from(get(gw.addr(), "/hello").await.status == 200);
    }
    // A full bucket of 4, plus what refilled while the 12 ran (well under a second on any machine).
    assert!((4..12).contains(&ok), "{ok} of 12 admitted at 4/s");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(get(gw.addr(), "/hello").await.status, 200, "refilled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_dependencies_take_the_function_to_level_4_until_the_operator_resets_them() {
    let down = Upstream::status(503).await;
    let (host, logs) = boot(
        r#"
manifest_version = 1
[function.f]
component = "{OUTBOUND}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
breaker = { minimum_calls = 2, failure_rate = 0.5, open_for = "60s", max_open_for = "60s" }
degradation = { cascade = 1, probe_every = "60s" }
"#,
    )
    .await;
    let gw = gateway(host.clone(), logs.clone()).await;
    let url = format!("/f?url=http://127.0.0.1:{}/", down.addr.port());
    for _ in 0..2 {
        assert_eq!(get(gw.addr(), &url).await.json()["status"], 503);
    }
    // One circuit open = `cascade`: the function is at level 4. The first invocation probes (it runs, and
    // its call meets the open circuit); the next is refused without running.
    let probe: Value = get(gw.addr(), &url).await.json();
    assert!(
        probe["error"].as_str().is_some_and(|e| e.starts_with("CircuitOpen")),
        "{probe}"
    );
    let r = get(gw.addr(), &url).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "Nimbus.Degraded");
    assert!(
        r.json()["message"].as_str().unwrap().contains("cascading failure"),
        "{}",
        r.text()
    );
    assert_eq!(
        down.requests().len(),
        2,
        "neither the probe nor the refused call reached the upstream"
    );

    // The operator resets the breakers through the plan's document (what NIMBUS_FAULTS_PARAMETER carries).
    host.faults()
        .replace(Some(plan("[[override]]\nfunction = \"f\"\nreset_breakers = true")));
    let ok = Upstream::status(200).await;
    let v: Value = get(gw.addr(), &format!("/f?url=http://127.0.0.1:{}/", ok.addr.port()))
        .await
        .json();
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(
        levels(&logs),
        [(0, 4), (4, 0)],
        "one open circuit is the cascade here: straight to 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_forces_a_level_and_lifts_it() {
    let (host, logs) = boot(
        r#"
manifest_version = 1
[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]
degradation = { probe_every = "1h" }
"#,
    )
    .await;
    let gw = gateway(host.clone(), logs.clone()).await;
    host.faults()
        .replace(Some(plan("[[override]]\nfunction = \"hello\"\nlevel = 4")));
    // The first invocation at level 4 is its probe; the next are refused.
    get(gw.addr(), "/hello").await;
    let r = get(gw.addr(), "/hello").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("forced to 4 by the operator"), "{}", r.text());
    host.faults().replace(None);
    assert_eq!(get(gw.addr(), "/hello").await.status, 200);
    assert_eq!(levels(&logs), [(0, 4), (4, 0)]);
    let e = FaultPlan::parse("[[override]]\nlevel = 9", "t", || 0).unwrap_err();
    assert!(e.to_string().contains("0 to 5"), "{e}");
}

#[test]
fn a_cascade_needs_breakers_and_bounds_are_checked() {
    let parse = |section: &str| {
        let text = format!(
            "manifest_version = 1\n[function.f]\ncomponent = \"f.wasm\"\n[function.f.degradation]\n{section}\n"
        );
        nimbus_core::Manifest::parse(&text, std::path::Path::new("t.toml"), std::path::Path::new("."))
    };
    for (section, says) in [
        ("cascade = 1", "give the function a `breaker` section"),
        ("max_in_flight = 0", "max_in_flight"),
        ("rate_limit = 0", "rate_limit"),
        ("probe_every = \"0s\"", "probe_every"),
        ("shed = true", "shed"),
    ] {
        let e = parse(section).unwrap_err().to_string();
        assert!(e.contains(says), "{section:?}: {e}");
    }
    assert_eq!(
        parse("max_in_flight = 8\nrate_limit = 50").unwrap().functions[0]
            .degradation
            .as_ref()
            .unwrap()
            .max_in_flight,
        Some(8)
    );
}

/// Level 1: a dependency whose p95 stays over `jitter_p95` for `jitter_windows` windows is answered from its
/// declared fallback for a window, without calling it and without an alarm; then it is called again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jittering_dependency_is_answered_from_its_fallback_for_a_window() {
    let up = Upstream::status(200).await;
    let port = up.addr.port();
    let (host, logs) = boot(&format!(
        r#"
manifest_version = 1
[function.f]
component = "{{OUTBOUND}}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
degradation = {{ max_in_flight = 100 }}
[function.f.breaker]
jitter_p95 = "100ms"
jitter_windows = 2
jitter_window = "400ms"
[function.f.breaker.hosts."127.0.0.1:{port}"]
fallback = {{ status = 299, body = "steady" }}
"#
    ))
    .await;
    host.faults().replace(Some(plan(
        "[[rule]]\ntarget = \"outbound\"\nkind = \"latency\"\nlatency = \"150ms\"",
    )));
    let gw = gateway(host.clone(), logs.clone()).await;
    let url = format!("/f?url=http://127.0.0.1:{port}/");
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = get(gw.addr(), &url).await.json();
        if v["status"] == 299 {
            break;
        }
        assert_eq!(v["status"], 200, "{v}");
        assert!(std::time::Instant::now() < until, "the fallback was never served");
    }
    let calls = up.requests().len();
    // While the fallback is served the upstream is not called, and the function is at level 1.
    let v: Value = get(gw.addr(), &url).await.json();
    assert_eq!(v["status"], 299, "{v}");
    assert_eq!(up.requests().len(), calls);
    assert_eq!(host.function("f").unwrap().degradation_level(), 1);
    let jitter = nimbus_tests::records(&logs, "transient jitter");
    assert_eq!(jitter.len(), 1, "{jitter:?}");
    assert_eq!(jitter[0]["level"], "INFO", "no alarm");
    assert!(jitter[0]["p95_ms"].as_f64().unwrap() >= 100.0);
    // After the window it is called again.
    host.faults().replace(None);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let v: Value = get(gw.addr(), &url).await.json();
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(up.requests().len(), calls + 1);
}

/// The fault snapshot level 5 writes before the host exits: besides breakers and levels, the last invocation
/// errors (not the ladder's own refusals) and each function's config version, never its values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_snapshot_has_the_last_errors_and_each_config_version() {
    let (host, logs) = boot(
        r#"
manifest_version = 1
[function.trap]
component = "{TRAP}"
routes = ["GET /trap"]
[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]
degradation = { probe_every = "1h" }
[function.hello.config]
secret = { value = "hunter2", secret = true }
"#,
    )
    .await;
    let gw = gateway(host.clone(), logs.clone()).await;
    let mut failed = Vec::new();
    for _ in 0..2 {
        let r = get(gw.addr(), "/trap").await;
        assert_eq!(r.status, 500, "{}", r.text());
        failed.push(r.headers["x-nimbus-request-id"].to_str().unwrap().to_owned());
    }
    // A refusal by the ladder is not an error worth keeping.
    host.faults()
        .replace(Some(plan("[[override]]\nfunction = \"hello\"\nlevel = 4")));
    get(gw.addr(), "/hello").await;
    assert_eq!(get(gw.addr(), "/hello").await.status, 503);
    host.faults().replace(None);

    let fields = nimbus_core::degrade::pressure::snapshot(&host, "a test", 1 << 20, 1 << 30);
    let snap: serde_json::Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(snap["reason"], "a test");
    let errors = snap["recent_errors"].as_array().unwrap();
    let ids: Vec<&str> = errors.iter().map(|e| e["request_id"].as_str().unwrap()).collect();
    assert_eq!(ids, failed, "{errors:?}");
    for e in errors {
        assert_eq!(e["function"], "trap");
        assert_eq!(e["error_type"], "Nimbus.Trap");
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    assert_eq!(snap["config"]["hello"]["version"], 1);
    assert_eq!(snap["config"]["trap"]["version"], 1);
    assert!(!Value::Object(snap.clone()).to_string().contains("hunter2"));
    assert_eq!(snap["levels"]["hello"], 4);
}
