//! Fault injection end to end: plans from the manifest, `NIMBUS_FAULTS` and a live replacement, applied to
//! each host-call family and to the invocation itself, reproducible from a seed, and visible in the log.
//!
//! The tests share one host and switch its plan ([`nimbus_core::faults::Faults::replace`], what a refresh
//! does), one test at a time.

use nimbus_checkpoint::TaskStatus;
use nimbus_core::faults::FaultPlan;
use nimbus_core::{Host, Settings, Tasks};
use nimbus_tests::upstream::Upstream;
use nimbus_tests::{Logs, gateway, get, native};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard};

const MANIFEST: &str = r#"
manifest_version = 1
defaults = { timeout = "5s" }

[function.fetch]
component = "{OUTBOUND}"
routes = ["GET /fetch"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]

[function.slow-fetch]
component = "{OUTBOUND}"
routes = ["GET /slow-fetch"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
timeout = "1s"

[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]

[function.config-get]
component = "{CONFIG_GET}"
routes = ["GET /config"]
config = { greeting = { value = "hi" } }

# The shipped example's task settings (nimbus.toml).
[function.sha-task]
component = "{SHA_TASK}"
timeout = "2s"
task = { max_checkpoint = "1MiB", yield_margin = "500ms", max_attempts = 3 }

# Runs from the manifest's own plan until a test replaces it.
[faults]
seed = 5
[[faults.rule]]
name = "manifest-rule"
function = "hello"
target = "invocation"
kind = "respond"
status = 299
body = "from the manifest"
"#;

/// The shared host, its log, and the lock each test holds while it owns the host's plan.
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

async fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// Runs `toml` on the shared host from now (its clock and invocation count start again).
fn run_plan(host: &Host, toml: &str) {
    let plan = FaultPlan::parse(toml, "test", || 0).unwrap_or_else(|e| panic!("{e}"));
    host.faults().replace(None);
    host.faults().replace(Some(plan));
}

/// The host's "fault injected" records since `from` log lines.
fn injected(logs: &Logs, from: usize) -> Vec<Value> {
    logs.lock().unwrap()[from..]
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["msg"] == "fault injected")
        .collect()
}

fn log_len(logs: &Logs) -> usize {
    logs.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_plan_runs_from_boot_and_a_replacement_switches_it_off() {
    let _own = exclusive().await;
    let (host, logs) = host();
    host.faults().replace(nimbus_tests::manifest(MANIFEST).faults);
    let gw = gateway(host.clone(), logs.clone()).await;
    let r = get(gw.addr(), "/hello").await;
    assert_eq!((r.status, r.text().as_str()), (299, "from the manifest"));
    assert_eq!(r.headers["x-nimbus-fault"], "manifest-rule");
    host.faults().replace(None);
    let r = get(gw.addr(), "/hello").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_error_rule_answers_for_the_calls_it_names_without_reaching_the_upstream() {
    let _own = exclusive().await;
    let (host, logs) = host();
    let up = Upstream::status(200).await;
    run_plan(
        &host,
        r#"seed = 1
           [[rule]]
           name = "payments-down"
           target = "outbound"
           host = "127.0.0.1"
           path_prefix = "/payments"
           kind = "error"
           status = 502"#,
    );
    let gw = gateway(host.clone(), logs.clone()).await;
    let from = log_len(&logs);
    let port = up.addr.port();
    let v: Value = get(
        gw.addr(),
        &format!("/fetch?url=http://127.0.0.1:{port}/payments/charge"),
    )
    .await
    .json();
    assert_eq!(v["status"], 502, "{v}");
    let v: Value = get(gw.addr(), &format!("/fetch?url=http://127.0.0.1:{port}/orders"))
        .await
        .json();
    assert_eq!(v["status"], 200, "{v}");
    let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/orders"], "the injected error never reached the upstream");
    let seen = injected(&logs, from);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["rule"], "payments-down");
    assert_eq!(seen[0]["target"], "outbound");
    assert_eq!(seen[0]["kind"], "error");
    assert_eq!(seen[0]["function"], "fetch");
    assert_eq!(seen[0]["seed"], 1);
    assert!(seen[0]["request_id"].is_string(), "{:?}", seen[0]);
    host.faults().replace(None);
}

/// The statuses 24 sequential fetches get under a rule that fires half the time.
async fn pattern(host: &Arc<Host>, logs: &Logs, seed: u64, port: u16) -> Vec<u64> {
    run_plan(
        host,
        &format!(
            r#"seed = {seed}
               [[rule]]
               target = "outbound"
               kind = "error"
               probability = 0.5"#
        ),
    );
    let gw = gateway(host.clone(), logs.clone()).await;
    let mut statuses = Vec::new();
    for _ in 0..24 {
        let v: Value = get(gw.addr(), &format!("/fetch?url=http://127.0.0.1:{port}/x"))
            .await
            .json();
        statuses.push(v["status"].as_u64().unwrap_or_else(|| panic!("{v}")));
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_and_requests_inject_the_same_faults() {
    let _own = exclusive().await;
    let (host, logs) = host();
    let up = Upstream::status(200).await;
    let port = up.addr.port();
    let first = pattern(&host, &logs, 42, port).await;
    let again = pattern(&host, &logs, 42, port).await;
    let other = pattern(&host, &logs, 43, port).await;
    host.faults().replace(None);
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(first.contains(&503) && first.contains(&200), "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_latency_reset_and_timeout() {
    let _own = exclusive().await;
    let (host, logs) = host();
    let up = Upstream::status(200).await;
    let port = up.addr.port();
    let gw = gateway(host.clone(), logs.clone()).await;
    let url = format!("http://127.0.0.1:{port}/x");

    run_plan(
        &host,
        r#"[[rule]]
           target = "outbound"
           kind = "latency"
           latency = "300ms""#,
    );
    let t = Instant::now();
    let v: Value = get(gw.addr(), &format!("/fetch?url={url}")).await.json();
    assert_eq!(v["status"], 200, "{v}");
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());

    run_plan(
        &host,
        r#"[[rule]]
           target = "outbound"
           kind = "reset""#,
    );
    let v: Value = get(gw.addr(), &format!("/fetch?url={url}")).await.json();
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("ConnectionTerminated")),
        "{v}"
    );

    // No first-byte timeout from the guest: it waits until the invocation's deadline stops it.
    run_plan(
        &host,
        r#"[[rule]]
           target = "outbound"
           kind = "timeout""#,
    );
    let r = get(gw.addr(), &format!("/slow-fetch?url={url}")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    host.faults().replace(None);
    assert_eq!(up.requests().len(), 1, "only the delayed request went out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_rules_delay_fail_trap_answer_and_squeeze_memory() {
    let _own = exclusive().await;
    let (host, logs) = host();
    let gw = gateway(host.clone(), logs.clone()).await;
    let rule = |kind: &str| format!("[[rule]]\nfunction = \"hello\"\ntarget = \"invocation\"\n{kind}");

    run_plan(&host, &rule("kind = \"latency\"\nlatency = \"300ms\""));
    let t = Instant::now();
    assert_eq!(get(gw.addr(), "/hello").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());

    run_plan(&host, &rule("kind = \"cpu\"\nburn = \"200ms\""));
    let t = Instant::now();
    assert_eq!(get(gw.addr(), "/hello").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());

    let from = log_len(&logs);
    run_plan(&host, &rule("kind = \"error\""));
    let r = get(gw.addr(), "/hello").await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("fault injected"), "{}", r.text());

    run_plan(&host, &rule("kind = \"trap\""));
    assert_eq!(get(gw.addr(), "/hello").await.status, 500);

    run_plan(
        &host,
        &rule("kind = \"respond\"\nstatus = 418\nbody = \"short and stout\""),
    );
    let r = get(gw.addr(), "/hello").await;
    assert_eq!((r.status, r.text().as_str()), (418, "short and stout"));

    // The hello guest needs more than 64 KiB of linear memory to start.
    run_plan(&host, &rule("kind = \"memory\"\nmemory = \"64KiB\""));
    assert_eq!(get(gw.addr(), "/hello").await.status, 500);
    host.faults().replace(None);
    assert_eq!(
        get(gw.addr(), "/hello").await.status,
        200,
        "the limit was for that invocation only"
    );

    let kinds: Vec<Value> = injected(&logs, from).iter().map(|v| v["kind"].clone()).collect();
    assert_eq!(kinds, ["error", "trap", "respond", "memory"]);
    let errors: Vec<String> = logs.lock().unwrap()[from..]
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["error_type"].as_str().map(str::to_owned))
        .collect();
    for wanted in ["Nimbus.FaultInjected", "Nimbus.Trap", "Nimbus.OutOfMemory"] {
        assert!(errors.iter().any(|e| e == wanted), "{wanted} not in {errors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_keep_to_their_share_schedule_and_function() {
    let _own = exclusive().await;
    let (host, logs) = host();
    let gw = gateway(host.clone(), logs.clone()).await;
    // Half the invocations; a rule that has not started; a rule for another function.
    run_plan(
        &host,
        r#"seed = 9
           [[rule]]
           function = "hello"
           target = "invocation"
           kind = "error"
           percent = 50
           [[rule]]
           target = "invocation"
           kind = "respond"
           status = 201
           start_after = "1h"
           [[rule]]
           function = "config-get"
           target = "invocation"
           kind = "trap""#,
    );
    let mut failed = 0;
    for _ in 0..40 {
        let status = get(gw.addr(), "/hello").await.status;
        assert!(status == 200 || status == 500, "{status}");
        failed += usize::from(status == 500);
    }
    host.faults().replace(None);
    assert!((8..=32).contains(&failed), "{failed} of 40 failed under percent = 50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reads_fail_with_the_interfaces_error() {
    let _own = exclusive().await;
    let (host, logs) = host();
    let gw = gateway(host.clone(), logs.clone()).await;
    let v: Value = get(gw.addr(), "/config?key=greeting").await.json();
    assert_eq!(v["value"], "hi", "{v}");
    run_plan(
        &host,
        r#"[[rule]]
           target = "config"
           kind = "error""#,
    );
    let from = log_len(&logs);
    let v: Value = get(gw.addr(), "/config?key=greeting").await.json();
    host.faults().replace(None);
    assert_eq!(v["value"], Value::Null, "{v}");
    assert!(!injected(&logs, from).is_empty());
}

/// The chaos test of the durable example: with the shipped settings, seeded errors and latency on the
/// checkpoint store's writes and commits (and on outbound calls) still give the exact result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_example_finishes_with_the_exact_result_under_store_faults() {
    let _own = exclusive().await;
    let (host, logs) = host();
    run_plan(
        &host,
        r#"seed = 2026
           [[rule]]
           name = "commits-fail"
           target = "checkpoint"
           op = "commit"
           kind = "error"
           probability = 0.3
           [[rule]]
           name = "writes-fail"
           target = "checkpoint"
           op = "write"
           kind = "error"
           probability = 0.3
           [[rule]]
           name = "store-slow"
           target = "checkpoint"
           kind = "latency"
           latency = { min = "1ms", max = "30ms" }
           [[rule]]
           target = "outbound"
           kind = "reset"
           probability = 0.5"#,
    );
    let from = log_len(&logs);
    let dir = tempfile::tempdir().unwrap();
    let tasks = Tasks::embedded(host.clone(), dir.path()).expect("open store");
    let started = tasks
        .start("sha-task", br#"{"mib": 48, "seed": 3}"#.to_vec(), None)
        .await
        .unwrap();
    let (record, ends) = crate::durable::drive(&tasks, &started.task_id, Duration::from_secs(240)).await;
    host.faults().replace(None);
    assert_eq!(record.status, TaskStatus::Done, "{record:?} after {ends:?}");
    let out: Value = serde_json::from_slice(record.result.as_deref().unwrap()).unwrap();
    assert_eq!(out["sha256"], native::sha_chain(48, 3), "{out} after {ends:?}");
    let seen = injected(&logs, from);
    assert!(
        seen.iter().any(|v| v["rule"] == "commits-fail") && seen.iter().any(|v| v["rule"] == "writes-fail"),
        "the store faults fired: {seen:?}"
    );
}

#[test]
fn nimbus_faults_takes_inline_toml_json_or_a_file_and_refuses_a_bad_plan() {
    let inline = Settings::from_vars([(
        "NIMBUS_FAULTS",
        "seed = 3\n[[rule]]\ntarget = \"outbound\"\nkind = \"reset\"",
    )])
    .unwrap();
    let plan = inline.faults.expect("a plan");
    assert_eq!((plan.seed, plan.rules.len()), (3, 1));
    let json = Settings::from_vars([(
        "NIMBUS_FAULTS",
        r#"{"faults": {"seed": 3, "rule": [{"target": "outbound", "kind": "reset"}]}}"#,
    )])
    .unwrap();
    assert_eq!(json.faults, Some(plan.clone()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chaos.toml");
    std::fs::write(
        &file,
        "[faults]\nseed = 3\n[[faults.rule]]\ntarget = \"outbound\"\nkind = \"reset\"\n",
    )
    .unwrap();
    let from_file = Settings::from_vars([("NIMBUS_FAULTS", file.as_os_str())]).unwrap();
    assert_eq!(from_file.faults, Some(plan));

    for (bad, says) in [
        (
            "[[rule]]\ntarget = \"config\"\nkind = \"reset\"",
            "applies to target = \"outbound\" only",
        ),
        (
            "[[rule]]\ntarget = \"outbound\"\nkind = \"error\"\nprobability = 2",
            "not from 0 to 1",
        ),
        ("/no/such/plan.toml", "cannot read /no/such/plan.toml"),
        ("{\"rule\": [}", "NIMBUS_FAULTS"),
    ] {
        let e = Settings::from_vars([("NIMBUS_FAULTS", bad)]).unwrap_err();
        assert_eq!(e.name(), "NIMBUS_FAULTS");
        assert!(e.to_string().contains(says), "{bad:?}: {e}");
    }
}

#[test]
fn a_manifest_fault_rule_for_an_undeclared_function_is_refused_with_its_line() {
    let text = "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n\n[faults]\n[[faults.rule]]\nfunction = \"b\"\ntarget = \"invocation\"\nkind = \"trap\"\n";
    let e = nimbus_core::Manifest::parse(text, std::path::Path::new("t.toml"), std::path::Path::new(".")).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("`b`") && s.contains("faults"), "{s}");
    let text = "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[faults]\n[[faults.rule]]\ntarget = \"outbound\"\nkind = \"trap\"\n";
    let e = nimbus_core::Manifest::parse(text, std::path::Path::new("t.toml"), std::path::Path::new(".")).unwrap_err();
    assert!(e.to_string().contains("applies to target = \"invocation\" only"), "{e}");
}

/// The plan in an SSM parameter (here the overrides file `nimbus serve --ssm-overrides` reads): fetched at
/// boot, switched by editing the parameter, without a restart; a bad plan keeps the running one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_in_an_ssm_parameter_is_switched_on_and_off_without_a_restart() {
    use nimbus_core::BootOptions;
    use nimbus_core::caps::config::SsmProvider;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssm.json");
    let write = |plan: &str| std::fs::write(&file, serde_json::json!({ "/chaos/plan": plan }).to_string()).unwrap();
    write("[[rule]]\ntarget = \"invocation\"\nkind = \"respond\"\nstatus = 418");
    let opts = BootOptions {
        ssm: SsmProvider::overrides_file(&file).unwrap(),
        faults_parameter: Some("/chaos/plan".into()),
        ..BootOptions::default()
    };
    let text = "manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\nconfig_refresh = \"200ms\"\n";
    let (host, logs) = nimbus_tests::boot_with(text, opts).await;
    let gw = gateway(host.clone(), logs).await;
    assert_eq!(get(gw.addr(), "/hello").await.status, 418);
    // Until the refresh sees an edit, the plan stays; a plan that does not parse changes nothing.
    write("[[rule]]\ntarget = \"invocation\"\nkind = \"explode\"");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(gw.addr(), "/hello").await.status, 418);
    write("off");
    let until = Instant::now() + Duration::from_secs(20);
    while get(gw.addr(), "/hello").await.status != 200 {
        assert!(Instant::now() < until, "the plan was never switched off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(host.faults().plan().is_none());

    // A parameter that cannot be fetched at boot stops it, naming the parameter.
    let opts = BootOptions {
        ssm: SsmProvider::overrides_file(&file).unwrap(),
        faults_parameter: Some("/chaos/plan".into()),
        ..BootOptions::default()
    };
    std::fs::write(&file, "{\"/chaos/plan\": \"[[rule]]\\ntarget = 1\"}").unwrap();
    let e = nimbus_core::Host::boot(nimbus_tests::manifest(text), opts)
        .await
        .err()
        .expect("boot refused");
    assert!(e.to_string().contains("SSM parameter /chaos/plan"), "{e}");
}

/// Key-value calls fail with the store's error (the guest is told only that the operation failed on the
/// host), the n-th call of an invocation the same in every run, and latency delays them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyvalue_calls_fail_or_wait_as_the_rules_say() {
    let dir = tempfile::tempdir().unwrap();
    let host = crate::keyvalue::kv_ops_host(dir.path()).await;
    let ops = serde_json::json!([
        {"op": "set", "key": "a", "value": "1"},
        {"op": "get", "key": "a"},
        {"op": "increment", "key": "n", "delta": 1},
        {"op": "get", "key": "a"},
    ]);
    let plan =
        |p: &str| FaultPlan::parse(&format!("seed = 8\n[[rule]]\ntarget = \"keyvalue\"\n{p}"), "test", || 0).unwrap();
    host.faults().replace(Some(plan("kind = \"error\"\nprobability = 0.5")));
    let first = crate::keyvalue::kv_ops(&host, ops.clone()).await;
    host.faults().replace(None);
    host.faults().replace(Some(plan("kind = \"error\"\nprobability = 0.5")));
    let again = crate::keyvalue::kv_ops(&host, ops.clone()).await;
    assert_eq!(first, again, "the same seed fails the same calls");
    let failed: Vec<bool> = first.iter().map(|r| r.get("err").is_some()).collect();
    assert!(failed.contains(&true) && failed.contains(&false), "{first:?}");
    for r in first.iter().filter_map(|r| r.get("err")) {
        assert!(r.as_str().unwrap().contains("failed on the host"), "{r}");
    }
    host.faults()
        .replace(Some(plan("kind = \"latency\"\nlatency = \"100ms\"")));
    let t = Instant::now();
    let ok = crate::keyvalue::kv_ops(&host, ops).await;
    assert!(t.elapsed() >= Duration::from_millis(400), "{:?}", t.elapsed());
    assert!(ok.iter().all(|r| r.get("ok").is_some()), "{ok:?}");
}
