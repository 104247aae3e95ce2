//! Alibaba Cloud Function Compute 3.0 end to end: the real `bootstrap` runs as a child process with Function
//! Compute's environment (`FC_FUNCTION_NAME`, `FC_CUSTOM_LISTEN_PORT`, `FC_REGION`, the `ALIBABA_CLOUD_*`
//! credentials), and an FC-shaped client replays Function Compute 3.0's requests: its documented header set
//! (`tests/fixtures/fc/http-invoke-headers.txt`) and trigger payloads.

use nimbus_tests::components::{CONTEXT, ECHO, EVENT_CHECK, HTTP_ECHO, SPIN, STD_ENV, TRAP};
use nimbus_tests::fc::{self, documented_headers};
use nimbus_tests::process::{Process, free_port};
use nimbus_tests::{Reply, header_values, request};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"
manifest_version = 1
app = { name = "fc-suite" }
defaults = { timeout = "30s" }

[function.http-echo]
component = "{HTTP_ECHO}"
routes = ["ANY /{*rest}"]

[function.small-http]
component = "{HTTP_ECHO}"
routes = ["ANY /{*rest}"]
max_request_body = "1KiB"

[function.echo]
component = "{ECHO}"

[function.event-check]
component = "{EVENT_CHECK}"
max_request_body = "1KiB"

[function.context]
component = "{CONTEXT}"
routes = ["ANY /{*rest}"]

[function.std-env]
component = "{STD_ENV}"
routes = ["ANY /{*rest}"]

[function.trap]
component = "{TRAP}"
routes = ["ANY /{*rest}"]

[function.spin]
component = "{SPIN}"
routes = ["ANY /{*rest}"]
"#;

/// The credentials Function Compute puts in the environment and in the request headers (fake).
const ENV_SECRET: &str = "env-secret-must-not-leak";
const HEADER_SECRET: &str = "7jXkCTy4mXy7bKLWo2mDhZMwTpsqHFZ****";

/// The manifest, written once for the whole binary.
fn manifest() -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fc-suite");
        std::fs::create_dir_all(&dir).unwrap();
        let text = MANIFEST
            .replace("{HTTP_ECHO}", HTTP_ECHO)
            .replace("{ECHO}", ECHO)
            .replace("{EVENT_CHECK}", EVENT_CHECK)
            .replace("{CONTEXT}", CONTEXT)
            .replace("{STD_ENV}", STD_ENV)
            .replace("{TRAP}", TRAP)
            .replace("{SPIN}", SPIN);
        let path = dir.join("nimbus.toml");
        std::fs::write(&path, text).unwrap();
        path
    })
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/fc/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `bootstrap` serving one function as Function Compute runs it; killed on drop.
struct Fc {
    process: Process,
    addr: SocketAddr,
}

impl Fc {
    /// Starts `bootstrap` for `function` and waits until it accepts connections.
    async fn start(function: &str) -> Fc {
        Fc::start_with(manifest(), function, &[]).await
    }

    /// Starts `bootstrap` for `function` of `manifest`, with `env` added to Function Compute's.
    async fn start_with(manifest: &std::path::Path, function: &str, env: &[(&str, &str)]) -> Fc {
        let port = free_port().to_string();
        let manifest = manifest.to_string_lossy();
        let mut vars = vec![
            ("FC_FUNCTION_NAME", "fc-test-function"),
            ("FC_CUSTOM_LISTEN_PORT", port.as_str()),
            ("FC_REGION", "cn-hangzhou"),
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.env-key-id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ENV_SECRET),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token-must-not-leak"),
            ("NIMBUS_MANIFEST", &manifest),
            ("NIMBUS_FUNCTION", function),
            ("NIMBUS_LOG", "info"),
        ];
        vars.extend_from_slice(env);
        let process = Process::start(std::path::Path::new(env!("CARGO_BIN_EXE_bootstrap")), &[], &vars);
        let fc = Fc {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>().unwrap())),
        };
        // Ready: the `listening` line (it listens on 0.0.0.0, so loopback reaches it).
        let until = Instant::now() + Duration::from_secs(120);
        while !fc.stderr().iter().any(|l| l.contains("\"listening\"")) {
            assert!(Instant::now() < until, "bootstrap never listened: {:?}", fc.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            fc.stderr().iter().any(|l| l.contains("0.0.0.0:")),
            "listens on all addresses: {:?}",
            fc.stderr()
        );
        fc
    }

    async fn send(&self, method: &str, path: &str, body: &[u8], headers: &[(String, String)]) -> Reply {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        request(self.addr, method, path, Some(body), &h).await
    }

    /// `POST /invoke` with the documented headers and `payload`.
    async fn invoke(&self, request_id: &str, payload: &[u8]) -> Reply {
        self.send("POST", "/invoke", payload, &fc::headers("/invoke", request_id))
            .await
    }

    fn stdout(&self) -> Vec<String> {
        self.process.stdout()
    }

    fn stderr(&self) -> Vec<String> {
        self.process.stderr()
    }

    /// Waits (at most 20 s: lines come through a pipe) until stdout has a line equal to each of `lines`.
    async fn wait_stdout(&self, lines: &[&str]) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.stdout();
            if lines.iter().all(|l| out.iter().any(|o| o == l)) || Instant::now() > until {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks the response on the wire: `x-fc-status` once, and none of the headers Function Compute forbids.
fn assert_fc_response(r: &Reply, fc_status: &str) {
    let statuses: Vec<_> = r.headers.get_all("x-fc-status").iter().collect();
    assert_eq!(statuses, [fc_status], "{r:?}");
    for (name, value) in &r.headers {
        let n = name.as_str();
        assert!(
            n == "x-fc-status" || !n.starts_with("x-fc-"),
            "forbidden {n} on the wire: {r:?}"
        );
        for forbidden in ["content-length", "date", "server", "connection", "keep-alive"] {
            assert_ne!(n, forbidden, "forbidden header on the wire: {r:?}");
        }
        if n == "content-disposition" {
            assert!(
                !value
                    .to_str()
                    .unwrap_or("")
                    .to_ascii_lowercase()
                    .starts_with("attachment")
            );
        }
    }
}

#[tokio::test]
async fn http_invoke_passes_the_request_through_without_platform_headers() {
    let fc = Fc::start("http-echo").await;
    let mut headers = fc::headers("/http-invoke", "req-http-1");
    headers.push(("x-multi".into(), "1".into()));
    headers.push(("x-multi".into(), "2".into()));
    let r = fc
        .send("PUT", "/items/a%20b?a=1&a=2&cookies=2", b"\x00\x01hi", &headers)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_fc_response(&r, "200");
    assert_eq!(r.headers.get_all("set-cookie").iter().count(), 2);
    let e = r.json();
    assert_eq!(e["method"], "PUT");
    assert_eq!(e["path"], "/items/a%20b");
    assert_eq!(e["query"], "a=1&a=2&cookies=2");
    assert_eq!(e["body_hex"], "00016869");
    assert_eq!(header_values(&e, "x-client-header"), ["kept"]);
    assert_eq!(header_values(&e, "x-multi"), ["1", "2"]);
    assert_eq!(header_values(&e, "content-type"), ["text/plain"]);
    let names: Vec<&str> = e["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h[0].as_str())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("x-fc-")),
        "platform headers reach the guest: {names:?}"
    );
    assert!(!e.to_string().contains(HEADER_SECRET), "{e}");
    let out = fc
        .wait_stdout(&[
            "FC Invoke Start RequestId: req-http-1",
            "FC Invoke End RequestId: req-http-1",
        ])
        .await;
    let start = out.iter().position(|l| l == "FC Invoke Start RequestId: req-http-1");
    let end = out.iter().position(|l| l == "FC Invoke End RequestId: req-http-1");
    assert!(start.is_some() && start < end, "{out:?}");
    // The same connection-less client again: the server keeps serving.
    let again = fc
        .send("GET", "/", b"", &fc::headers("/http-invoke", "req-http-2"))
        .await;
    assert_eq!(again.status, 200);
    assert_fc_response(&again, "200");
}

#[tokio::test]
async fn lifecycle_hooks_answer_200_with_their_log_lines() {
    let fc = Fc::start("echo").await;
    for (path, word) in [
        ("/initialize", "Initialize"),
        ("/pre-freeze", "PreFreeze"),
        ("/pre-stop", "PreStop"),
    ] {
        let rid = format!("hook-{word}");
        let r = fc.send("POST", path, b"", &fc::headers(path, &rid)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_fc_response(&r, "200");
        let start = format!("FC {word} Start RequestId: {rid}");
        let end = format!("FC {word} End RequestId: {rid}");
        let out = fc.wait_stdout(&[&start, &end]).await;
        assert!(out.contains(&start) && out.contains(&end), "{out:?}");
    }
    // After pre-stop, requests still in flight or late are answered.
    let r = fc.invoke("after-stop", br#"{"x": 1}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn invoke_recognises_timer_oss_mns_and_custom_payloads() {
    let fc = Fc::start("echo").await;
    for (fixture_name, source) in [
        ("timer.json", "schedule"),
        ("oss.json", "s3"),
        ("mns-topic.json", "sns"),
        ("mns-queue.json", "sqs"),
    ] {
        let payload = fixture(fixture_name);
        let rid = format!("event-{fixture_name}");
        let r = fc.invoke(&rid, &payload).await;
        assert_eq!(r.status, 200, "{fixture_name}: {}", r.text());
        assert_fc_response(&r, "200");
        let out = r.json();
        assert_eq!(out["source"], source, "{fixture_name}");
        assert_eq!(out["request_id"], rid.as_str());
        let sent: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(out["echo"], sent, "the payload reaches the guest as sent");
    }
    let r = fc.invoke("custom-1", br#"{"order": 42}"#).await;
    assert_eq!(r.json()["source"], "direct");
    assert_eq!(r.json()["echo"]["order"], 42);
}

#[tokio::test]
async fn guest_failures_are_function_errors_and_the_server_keeps_serving() {
    let fc = Fc::start("trap").await;
    for i in 0..2 {
        let r = fc
            .send("GET", "/boom", b"", &fc::headers("/http-invoke", &format!("trap-{i}")))
            .await;
        assert_eq!(r.status, 500, "{}", r.text());
        assert_fc_response(&r, "404");
        assert_eq!(r.json()["error"], "Nimbus.Trap", "{}", r.text());
    }
    drop(fc);
    let fc = Fc::start("event-check").await;
    let r = fc.invoke("panic-1", br#"{"panic": true}"#).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_fc_response(&r, "404");
    assert!(r.json()["errorType"].as_str().unwrap().contains("Trap"), "{}", r.text());
    let r = fc.invoke("ok-1", br#"{"n": 21}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["doubled"], 42);
}

#[tokio::test]
async fn x_fc_function_timeout_stops_the_guest_before_the_manifest_timeout() {
    let fc = Fc::start("spin").await;
    let mut headers = fc::headers("/http-invoke", "spin-1");
    headers.retain(|(n, _)| n != "x-fc-function-timeout");
    headers.push(("x-fc-function-timeout".into(), "1".into()));
    let started = Instant::now();
    let r = fc.send("GET", "/", b"", &headers).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_fc_response(&r, "404");
    // The manifest says 30 s; Function Compute said 1 s.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let out = fc.wait_stdout(&["FC Invoke End RequestId: spin-1"]).await;
    assert!(
        out.iter()
            .any(|l| l.contains("spin-1") && l.contains("x-fc-function-timeout")),
        "the error names the platform deadline: {out:?}"
    );
}

#[tokio::test]
async fn credentials_and_the_environment_are_invisible_to_the_guest() {
    let fc = Fc::start("std-env").await;
    let r = fc.send("GET", "/", b"", &fc::headers("/http-invoke", "env-1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let env = r.json();
    assert_eq!(env["env"], serde_json::json!([]), "{env}");
    assert!(!r.text().contains(ENV_SECRET) && !r.text().contains(HEADER_SECRET));
    drop(fc);
    let fc = Fc::start("context").await;
    let r = fc.send("GET", "/", b"", &fc::headers("/http-invoke", "ctx-1")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ctx = r.json();
    assert_eq!(ctx["env_count"], 0, "{ctx}");
    assert_eq!(ctx["request_id"], "ctx-1");
    assert_eq!(
        &ctx["traceparent"].as_str().unwrap()[3..35],
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "the trace continues FC's traceparent: {ctx}"
    );
    // Function Compute 2.0's span context, when no traceparent is sent.
    let mut headers: Vec<(String, String)> = fc::headers("/http-invoke", "ctx-2")
        .into_iter()
        .filter(|(n, _)| n != "traceparent")
        .collect();
    headers.push((
        "x-fc-tracing-opentracing-span-context".into(),
        "1f2e3d4c5b6a7988:a1b2c3d4e5f60718:0:1".into(),
    ));
    let ctx = fc.send("GET", "/", b"", &headers).await.json();
    assert_eq!(
        &ctx["traceparent"].as_str().unwrap()[3..35],
        "00000000000000001f2e3d4c5b6a7988",
        "{ctx}"
    );
    let logs = fc.stdout().join("\n") + &fc.stderr().join("\n");
    assert!(
        !logs.contains(HEADER_SECRET) && !logs.contains(ENV_SECRET),
        "secrets in the logs"
    );
}

#[tokio::test]
async fn requests_without_a_usable_control_path_are_refused_and_serving_goes_on() {
    let fc = Fc::start("echo").await;
    let no_path: Vec<(String, String)> = documented_headers()
        .into_iter()
        .filter(|(n, _)| n != "x-fc-control-path")
        .collect();
    let r = fc.send("POST", "/invoke", b"{}", &no_path).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_fc_response(&r, "404");
    assert_eq!(r.json()["ErrorCode"], "InvalidArgument");
    assert!(r.json()["ErrorMessage"].as_str().unwrap().contains("x-fc-control-path"));
    let r = fc.send("POST", "/", b"{}", &fc::headers("/admin", "bad-path")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_fc_response(&r, "404");
    // An event function cannot take an HTTP request.
    let r = fc
        .send("GET", "/", b"", &fc::headers("/http-invoke", "wrong-kind"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["ErrorMessage"].as_str().unwrap().contains("event function"),
        "{}",
        r.text()
    );
    let r = fc.invoke("still-serving", br#"{"ok": true}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_serving_goes_on() {
    let fc = Fc::start("event-check").await;
    let big = format!(r#"{{"n": 1, "pad": "{}"}}"#, "x".repeat(4096));
    let r = fc.invoke("big-event", big.as_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_fc_response(&r, "404");
    let r = fc.invoke("small-event", br#"{"n": 2}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(fc);
    let fc = Fc::start("small-http").await;
    let r = fc
        .send("POST", "/", big.as_bytes(), &fc::headers("/http-invoke", "big-http"))
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_fc_response(&r, "404");
    let r = fc
        .send("POST", "/", b"small", &fc::headers("/http-invoke", "small-http"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `oos` config keys are fetched with Function Compute's credentials: at boot the environment's, after a
/// request the fresher ones its `x-fc-access-key-*` headers carry (the environment's token has expired by
/// then, so only the headers' can sign the refresh). The fake checks every signature with Alibaba Cloud's
/// own signer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oos_config_refreshes_with_the_credentials_each_request_carries() {
    use nimbus_tests::oos::{FRESH_KEY_ID, FRESH_KEY_SECRET, FRESH_TOKEN, FakeOos, KEY_ID, KEY_SECRET, State, TOKEN};
    let mut state = State::default();
    state.plain.insert("/app/greeting".into(), "hello".into());
    let fake = FakeOos::start(&state);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("nimbus.toml");
    std::fs::write(
        &manifest,
        format!(
            "manifest_version = 1\n[function.cfg]\ncomponent = \"{}\"\nroutes = [\"ANY /{{*rest}}\"]\n\
             config_refresh = \"300ms\"\n[function.cfg.config]\ngreeting = {{ oos = \"/app/greeting\" }}\n",
            nimbus_tests::components::CONFIG_GET
        ),
    )
    .unwrap();
    let endpoint = fake.endpoint();
    let env = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", TOKEN),
        ("NIMBUS_OOS_ENDPOINT", endpoint.as_str()),
    ];
    let fc = Fc::start_with(&manifest, "cfg", &env).await;
    let greeting = |r: &Reply| r.json()["value"].as_str().map(str::to_owned);
    let mut headers = fc::headers("/http-invoke", "req-oos-1");
    headers.retain(|(n, _)| !n.starts_with("x-fc-access-key") && n != "x-fc-security-token");
    headers.extend([
        ("x-fc-access-key-id".to_owned(), FRESH_KEY_ID.to_owned()),
        ("x-fc-access-key-secret".to_owned(), FRESH_KEY_SECRET.to_owned()),
        ("x-fc-security-token".to_owned(), FRESH_TOKEN.to_owned()),
    ]);
    let r = fc.send("GET", "/config?key=greeting", b"", &headers).await;
    assert_eq!(greeting(&r).as_deref(), Some("hello"), "{r:?}");

    // The environment's token expires and the value changes: only the headers' credentials can fetch it.
    state.expired_tokens = vec![TOKEN.into()];
    state.plain.insert("/app/greeting".into(), "rotated".into());
    fake.set(&state);
    let until = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < until {
        let r = fc.send("GET", "/config?key=greeting", b"", &headers).await;
        seen = greeting(&r);
        if seen.as_deref() == Some("rotated") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen.as_deref(),
        Some("rotated"),
        "the refresh signed with the request's credentials; stderr: {:?}",
        fc.stderr()
    );
    let logs = fc.stderr().join("\n") + &fc.stdout().join("\n");
    for secret in [KEY_SECRET, TOKEN, FRESH_KEY_SECRET, FRESH_TOKEN] {
        assert!(!logs.contains(secret), "a credential reached the logs");
    }
}
