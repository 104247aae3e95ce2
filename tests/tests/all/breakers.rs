//! Circuit breakers on outbound hosts, end to end: a real upstream that fails and recovers, the `outbound`
//! guest calling it through the host, and the breaker opening, refusing at once (or answering with the
//! declared fallback, the cached GET, or the backup), probing and closing — with the thresholds as the
//! manifest writes them.

use nimbus_core::breaker::State;
use nimbus_core::faults::FaultPlan;
use nimbus_platforms::local::Gateway;
use nimbus_tests::upstream::Upstream;
use nimbus_tests::{Logs, boot, gateway, get};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// An upstream whose status the test sets.
async fn switchable(status: u16) -> (Upstream, Arc<AtomicU16>) {
    let current = Arc::new(AtomicU16::new(status));
    let c = current.clone();
    let up = Upstream::start(Arc::new(move |_| {
        http::Response::builder()
            .status(c.load(Ordering::SeqCst))
            .body(format!("status {}", c.load(Ordering::SeqCst)))
            .unwrap()
    }))
    .await;
    (up, current)
}

/// A function `f` calling any loopback port, with `breaker` (TOML table body) and `hosts` (extra sections).
async fn serve(breaker: &str, hosts: &str) -> (Gateway, Logs, Arc<nimbus_core::Host>) {
    let text = format!(
        r#"
manifest_version = 1
[function.f]
component = "{{OUTBOUND}}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
timeout = "10s"
[function.f.breaker]
{breaker}
{hosts}
"#
    );
    let (host, logs) = boot(&text).await;
    (gateway(host.clone(), logs.clone()).await, logs, host)
}

async fn fetch(gw: &Gateway, url: &str) -> Value {
    get(gw.addr(), &format!("/f?url={url}")).await.json()
}

fn transitions(logs: &Logs) -> Vec<(String, String)> {
    nimbus_tests::records(logs, "circuit breaker transition")
        .iter()
        .map(|v| {
            (
                v["from"].as_str().unwrap().to_owned(),
                v["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const THRESHOLDS: &str = r#"window = "30s"
minimum_calls = 4
failure_rate = 0.5
open_for = "300ms"
max_open_for = "2s"
probes = 2"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_host_opens_its_circuit_calls_fail_at_once_then_probes_close_it() {
    let (up, status) = switchable(503).await;
    let (gw, logs, host) = serve(THRESHOLDS, "").await;
    let url = format!("http://127.0.0.1:{}/pay", up.addr.port());
    for _ in 0..4 {
        assert_eq!(fetch(&gw, &url).await["status"], 503);
    }
    // Open: refused without a request, and the SDK reads the refusal as `CircuitOpen`.
    let v = fetch(&gw, &url).await;
    let e = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(
        e.starts_with(&format!("CircuitOpen 127.0.0.1:{}", up.addr.port())),
        "{e}"
    );
    assert_eq!(up.requests().len(), 4);
    let states = host.breakers().states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].2, State::Open);

    // The upstream recovers; after the open wait two probes pass and close the circuit.
    status.store(200, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(fetch(&gw, &url).await["status"], 200);
    assert_eq!(fetch(&gw, &url).await["status"], 200);
    assert_eq!(host.breakers().states()[0].2, State::Closed);
    assert_eq!(
        transitions(&logs),
        [("closed", "open"), ("open", "half_open"), ("half_open", "closed")].map(|(a, b)| (a.into(), b.into()))
    );
    // Another host is another breaker.
    let (other, _) = switchable(200).await;
    assert_eq!(
        fetch(&gw, &format!("http://127.0.0.1:{}/", other.addr.port())).await["status"],
        200
    );
    assert_eq!(host.breakers().states().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_probe_reopens_the_circuit_for_longer() {
    let (up, _status) = switchable(500).await;
    let (gw, logs, _host) = serve(THRESHOLDS, "").await;
    let url = format!("http://127.0.0.1:{}/", up.addr.port());
    for _ in 0..4 {
        fetch(&gw, &url).await;
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(fetch(&gw, &url).await["status"], 500, "the probe reaches the upstream");
    // Reopened for 600 ms now: after 350 ms it still refuses.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let v = fetch(&gw, &url).await;
    assert!(v["error"].as_str().is_some_and(|e| e.starts_with("CircuitOpen")), "{v}");
    assert_eq!(up.requests().len(), 5);
    let t = transitions(&logs);
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t[2], ("half_open".into(), "open".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_answers_with_the_fallback_the_cached_get_or_the_backup() {
    let (up, status) = switchable(200).await;
    let (backup, _) = switchable(203).await;
    let (port, backup_port) = (up.addr.port(), backup.addr.port());
    let hosts = format!(
        r#"[function.f.breaker.hosts."127.0.0.1:{port}"]
cache_get = true
fallback = {{ status = 299, body = "fallback body" }}
"#
    );
    let (gw, _logs, _host) = serve(THRESHOLDS, &hosts).await;
    // A good GET, read whole by the guest: kept.
    let cached = format!("http://127.0.0.1:{port}/cached");
    let read = |url: String| {
        let gw = &gw;
        async move { get(gw.addr(), &format!("/f?read=1&url={url}")).await.json() }
    };
    let v = read(cached.clone()).await;
    assert_eq!(
        (v["status"].as_u64(), v["body"].as_str()),
        (Some(200), Some("status 200")),
        "{v}"
    );
    status.store(502, Ordering::SeqCst);
    for _ in 0..4 {
        fetch(&gw, &format!("http://127.0.0.1:{port}/other")).await;
    }
    let before = up.requests().len();
    // The cached URL gets its last good response; another one the fallback. Neither reaches the upstream.
    let v = read(cached).await;
    assert_eq!(
        (v["status"].as_u64(), v["body"].as_str()),
        (Some(200), Some("status 200")),
        "{v}"
    );
    let v = read(format!("http://127.0.0.1:{port}/never-seen")).await;
    assert_eq!(
        (v["status"].as_u64(), v["body"].as_str()),
        (Some(299), Some("fallback body")),
        "{v}"
    );
    assert_eq!(up.requests().len(), before);

    // A backup origin instead.
    let hosts = format!(
        r#"[function.f.breaker.hosts."127.0.0.1:{port}"]
backup = "http://127.0.0.1:{backup_port}"
"#
    );
    let (gw, _logs, _host) = serve(THRESHOLDS, &hosts).await;
    for _ in 0..4 {
        fetch(&gw, &format!("http://127.0.0.1:{port}/x")).await;
    }
    assert_eq!(fetch(&gw, &format!("http://127.0.0.1:{port}/x")).await["status"], 203);
    let seen = backup.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/x");
    assert_eq!(seen[0].headers["host"], format!("127.0.0.1:{backup_port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_open_the_circuit_and_injected_faults_count_as_the_upstreams() {
    let (up, _status) = switchable(200).await;
    let (gw, logs, host) = serve(
        r#"minimum_calls = 3
slow_call = "150ms"
slow_call_rate = 0.6
open_for = "10s"
max_open_for = "10s""#,
        "",
    )
    .await;
    // Latency injected under the breaker makes every call slow.
    let plan = FaultPlan::parse(
        "seed = 1\n[[rule]]\ntarget = \"outbound\"\nkind = \"latency\"\nlatency = \"200ms\"",
        "test",
        || 0,
    )
    .unwrap();
    host.faults().replace(Some(plan));
    let url = format!("http://127.0.0.1:{}/", up.addr.port());
    let t = Instant::now();
    for _ in 0..3 {
        assert_eq!(fetch(&gw, &url).await["status"], 200);
    }
    assert!(t.elapsed() >= Duration::from_millis(600));
    let v = fetch(&gw, &url).await;
    assert!(v["error"].as_str().is_some_and(|e| e.starts_with("CircuitOpen")), "{v}");
    assert_eq!(transitions(&logs), [("closed".to_owned(), "open".to_owned())]);
    // The operator's reset closes it at once.
    assert!(host.breakers().force("f", "127.0.0.1", up.addr.port(), false));
    host.faults().replace(None);
    assert_eq!(fetch(&gw, &url).await["status"], 200);
}

#[test]
fn breaker_settings_are_checked_where_the_manifest_writes_them() {
    let parse = |breaker: &str| {
        let text = format!(
            "manifest_version = 1\n[function.f]\ncomponent = \"f.wasm\"\nallowed_outbound_hosts = [\"https://api.example\"]\n[function.f.breaker]\n{breaker}\n"
        );
        nimbus_core::Manifest::parse(&text, std::path::Path::new("t.toml"), std::path::Path::new("."))
    };
    let ok =
        parse("failure_rate = 0.4\n[function.f.breaker.hosts.\"api.example\"]\nbackup = \"https://api.example:8443\"");
    assert!(ok.is_err(), "api.example:8443 is not allowed (only port 443)");
    let ok = parse("[function.f.breaker.hosts.\"api.example\"]\nbackup = \"https://api.example\"").unwrap();
    let spec = ok.functions[0].breaker.clone().unwrap();
    assert_eq!(
        spec.answer("api.example", 443).unwrap().backup.as_ref().unwrap().port,
        443
    );
    for (bad, says) in [
        ("failure_rate = 0", "failure_rate"),
        ("failure_rate = 1.5", "failure_rate"),
        ("window = \"0s\"", "window"),
        ("open_for = \"10s\"\nmax_open_for = \"1s\"", "max_open_for"),
        ("[function.f.breaker.hosts.\"x\"]\nbackup = \"ftp://x\"", "backup"),
        (
            "[function.f.breaker.hosts.\"x\"]\nbackup = \"https://api.example/path\"",
            "path",
        ),
        (
            "[function.f.breaker.hosts.\"x\"]\nbackup = \"https://api.example\"\nfallback = { body = \"b\" }",
            "choose one",
        ),
        ("threshold = 3", "threshold"),
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad:?}: {e}");
    }
}
