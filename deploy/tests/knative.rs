//! Cloud Run / Knative Serving end to end: the real `bootstrap` runs as a child process with the
//! container contract's environment (`PORT`, `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION`), and the test
//! plays the platform's front end with real HTTP/1.1 and h2c clients: HTTP requests, CloudEvents in binary
//! and structured mode, Pub/Sub push bodies, `X-Cloud-Trace-Context`, hostile input and the SIGTERM drain.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_tests::components::{CONTEXT, ECHO, EVENT_CHECK, HTTP_ECHO};
use nimbus_tests::otlp_receiver::OtlpReceiver;
use nimbus_tests::process::free_port;
use nimbus_tests::{Logs, Reply, collect_lines, request};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixtures the decode unit tests read, sent here as the platform would.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/knative");

/// A running `bootstrap` serving one function the Cloud Run way; killed on drop.
struct Service {
    child: Child,
    addr: SocketAddr,
    stdout: Logs,
    stderr: Logs,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts `bootstrap` for one function (`component`, extra manifest lines `extra`), with Cloud Run's
    /// variables and `env`, and waits until it logs that it listens.
    async fn start(component: &str, extra: &str, env: &[(&str, &str)]) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            "manifest_version = 1\napp = {{ name = \"kn-suite\" }}\n\n[function.hello]\ncomponent = \"{component}\"\n{extra}\n"
        );
        std::fs::write(dir.path().join("nimbus.toml"), manifest).unwrap();
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("K_SERVICE", "hello")
            .env("K_REVISION", "hello-00001-abc")
            .env("K_CONFIGURATION", "hello")
            .env("NIMBUS_MANIFEST", dir.path().join("nimbus.toml"))
            .env("NIMBUS_LOG", "info")
            // What a platform may hold in the environment never reaches the guest.
            .env("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json")
            .env("CLOUDSDK_AUTH_ACCESS_TOKEN", "ya29.must-not-leak")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn bootstrap");
        let stdout = collect_lines(child.stdout.take().unwrap());
        let stderr = collect_lines(child.stderr.take().unwrap());
        let mut service = Service {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stdout,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !service.logged("listening") {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("bootstrap exited with {status} before listening:\n{}", service.logs());
            }
            assert!(
                Instant::now() < deadline,
                "not listening after 60 s:\n{}",
                service.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        service
    }

    fn logged(&self, what: &str) -> bool {
        let has = |l: &Logs| l.lock().unwrap().iter().any(|line| line.contains(what));
        has(&self.stderr) || has(&self.stdout)
    }

    fn logs(&self) -> String {
        let (out, err) = (self.stdout.lock().unwrap(), self.stderr.lock().unwrap());
        format!("stdout:\n{}\nstderr:\n{}", out.join("\n"), err.join("\n"))
    }

    async fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        request(self.addr, "POST", path, Some(body), headers).await
    }

    /// Sends SIGTERM, as Cloud Run does when it scales an instance in.
    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    async fn exited(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A fixture's headers and body.
fn fixture(name: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let raw = std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = std::str::from_utf8(&raw[..split])
        .unwrap()
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (headers, raw[split + 4..].to_vec())
}

async fn post_fixture(s: &Service, name: &str) -> Reply {
    let (headers, body) = fixture(name);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s.post("/", &body, &headers).await
}

/// Writes `bytes` on a new connection and reads the answer until the server closes it (bounded).
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_functions_get_the_request_as_is_over_http1_and_h2c() {
    let s = Service::start(HTTP_ECHO, "", &[]).await;
    assert!(s.logged("platform: Cloud Run / Knative"), "{}", s.logs());
    let r = s
        .post(
            "/items/7?x=1&y=two",
            b"\x00\x01body",
            &[("x-custom", "a"), ("x-custom", "b")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.headers.contains_key("x-nimbus-request-id"));
    let echo = r.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/items/7");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["body_hex"], "0001626f6479");
    let custom: Vec<&Value> = echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "x-custom")
        .map(|h| &h[1])
        .collect();
    assert_eq!(custom, [&json!("a"), &json!("b")]);

    // HTTP/2 cleartext with prior knowledge, as Cloud Run sends it to a service deployed with --use-http2.
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    for i in 0..3 {
        let req = http::Request::builder()
            .method("PUT")
            .uri(format!("http://{}/h2/{i}", s.addr))
            .body(Full::new(Bytes::from_static(b"over h2")))
            .unwrap();
        let resp = h2.send_request(req).await.expect("h2 request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let echo: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (echo["method"].as_str(), echo["path"].as_str()),
            (Some("PUT"), Some(&*format!("/h2/{i}")))
        );
        assert_eq!(echo["body_hex"], "6f766572206832");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_and_pubsub_push_reach_event_functions_with_their_source() {
    let s = Service::start(ECHO, "", &[]).await;
    for (fixture, source, ce_type) in [
        (
            "eventarc-pubsub-binary.http",
            "sns",
            Some("google.cloud.pubsub.topic.v1.messagePublished"),
        ),
        (
            "eventarc-pubsub-structured.http",
            "sns",
            Some("google.cloud.pubsub.topic.v1.messagePublished"),
        ),
        (
            "eventarc-storage-binary.http",
            "s3",
            Some("google.cloud.storage.object.v1.finalized"),
        ),
        (
            "eventarc-storage-structured.http",
            "s3",
            Some("google.cloud.storage.object.v1.finalized"),
        ),
        ("knative-ping-binary.http", "schedule", Some("dev.knative.sources.ping")),
        ("pubsub-push.http", "sns", None),
    ] {
        let r = post_fixture(&s, fixture).await;
        assert_eq!(r.status, 200, "{fixture}: {}", r.text());
        let out = r.json();
        assert_eq!(out["source"], source, "{fixture}: {out}");
        assert_eq!(out["function"], "hello");
        match ce_type {
            // The guest sees the CloudEvent's envelope, whatever the mode.
            Some(t) => {
                assert_eq!(out["echo"]["type"], t, "{fixture}: {out}");
                assert_eq!(out["echo"]["specversion"], "1.0");
                assert!(out["echo"]["data"].is_object(), "{fixture}: {out}");
            }
            None => assert_eq!(
                out["echo"]["subscription"],
                "projects/myproject/subscriptions/mysubscription"
            ),
        }
    }
    // A plain body is a direct invocation, as under `nimbus serve`.
    let r = s
        .post("/", br#"{"n": 1}"#, &[("content-type", "application/json")])
        .await;
    assert_eq!((r.status, r.json()["source"].clone()), (200, json!("direct")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_invocation_is_not_2xx_so_pubsub_retries() {
    let s = Service::start(EVENT_CHECK, "", &[]).await;
    let ce =
        |extra: &str| format!(r#"{{"specversion":"1.0","type":"com.example.t","source":"//example","id":"1"{extra}}}"#);
    let structured = [("content-type", "application/cloudevents+json")];
    // An integer extension attribute is what EVENT_CHECK reads at the top level.
    let r = s.post("/", ce(r#","n":21"#).as_bytes(), &structured).await;
    assert_eq!((r.status, r.json()), (200, json!({"doubled": 42})));
    // The guest refuses the event (400) or fails (500): Pub/Sub only acknowledges 2xx.
    let r = post_fixture(&s, "pubsub-push.http").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "Function.BadEvent");
    let r = s.post("/", ce(r#","fail":"boom""#).as_bytes(), &structured).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["error"], "Function.Failed");
    let r = s.post("/", ce(r#","panic":true"#).as_bytes(), &structured).await;
    assert!(r.status >= 500, "{}", r.text());
    // And it still serves.
    let r = s.post("/", ce(r#","n":1"#).as_bytes(), &structured).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cloud_trace_context_reaches_the_guest_as_w3c_and_no_credentials_do() {
    let s = Service::start(CONTEXT, "", &[]).await;
    let trace = "105445aa7843bc8bf206b12000100000";
    let r = request(
        s.addr,
        "GET",
        "/",
        None,
        &[("x-cloud-trace-context", &format!("{trace}/1;o=1"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ctx = r.json();
    let tp = ctx["traceparent"].as_str().unwrap();
    // The guest's parent is the invocation span: same trace and flags, a new parent id.
    assert!(tp.starts_with(&format!("00-{trace}-")) && tp.ends_with("-01"), "{ctx}");
    assert_eq!(ctx["function"], "hello");
    assert_eq!(ctx["env_count"], 0, "no platform environment reaches the guest: {ctx}");
    // When both are sent, a valid traceparent wins.
    let w3c = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = request(
        s.addr,
        "GET",
        "/",
        None,
        &[
            ("x-cloud-trace-context", &format!("{trace}/1;o=1")),
            ("traceparent", w3c),
        ],
    )
    .await;
    let tp = r.json()["traceparent"].as_str().unwrap().to_owned();
    assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
    // A hostile header starts a new trace; the request is served.
    let r = request(
        s.addr,
        "GET",
        "/",
        None,
        &[("x-cloud-trace-context", &format!("{trace}/99999999999999999999999"))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!r.json()["traceparent"].as_str().unwrap().contains(trace));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_clearly_and_the_server_keeps_serving() {
    let s = Service::start(ECHO, "", &[]).await;
    // Malformed CloudEvents: 400 with a JSON error saying what is wrong.
    let structured = [("content-type", "application/cloudevents+json")];
    for (body, headers, says) in [
        (&b"{not json"[..], &structured[..], "not valid JSON"),
        (
            br#"{"specversion":"1.0","type":"t","source":"s"}"#,
            &structured[..],
            "no id attribute",
        ),
        (
            br#"{"specversion":"0.1","type":"t","source":"s","id":"1"}"#,
            &structured[..],
            "specversion",
        ),
        (
            b"{}",
            &[("ce-specversion", "1.0"), ("ce-type", "t"), ("ce-id", "1")][..],
            "no source attribute",
        ),
    ] {
        let r = s.post("/", body, headers).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let err = r.json();
        assert_eq!(err["error"], "Nimbus.BadCloudEvent", "{err}");
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
    }
    assert!(
        s.logged("Nimbus.BadCloudEvent"),
        "a refused event is logged: {}",
        s.logs()
    );
    // A body over max_request_body (6 MiB by default) is a 413 before it is read.
    let oversized = raw_exchange(
        s.addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 7340032\r\n\r\n",
    )
    .await;
    assert!(oversized.starts_with("HTTP/1.1 413"), "{oversized}");
    // A slow client holding a half-sent request head does not hold the server.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-").await.unwrap();
    let r = post_fixture(&s, "pubsub-push.http").await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(slow);
    let r = post_fixture(&s, "eventarc-pubsub-binary.http").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_flushes_spans_and_exits_0() {
    let otlp = OtlpReceiver::start().await;
    let endpoint = otlp.endpoint();
    let mut s = Service::start(HTTP_ECHO, "", &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    // A request whose body is still arriving when SIGTERM comes: in flight.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /slow HTTP/1.1\r\nhost: x\r\ntraceparent: 00-{trace}-b7ad6b7169203331-01\r\ncontent-length: 10\r\n\r\n12345"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term = Instant::now();
    s.sigterm();
    // New connections are refused once the listener has stopped (bounded wait for the signal to land).
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(s.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 5 s after SIGTERM:\n{}",
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The in-flight request completes.
    slow.write_all(b"67890").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), slow.read_to_end(&mut answer))
        .await
        .expect("the in-flight request is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("31323334353637383930"),
        "the whole body reached the guest: {answer}"
    );
    let status = s.exited(Duration::from_secs(10)).await;
    let took = term.elapsed();
    assert_eq!(status.code(), Some(0), "{}", s.logs());
    assert!(
        took < Duration::from_secs(9),
        "exit took {took:?}, past Cloud Run's 10 s grace"
    );
    // Its span was exported before the process exited: nothing is waited for after.
    let spans = otlp.spans();
    let span = spans
        .iter()
        .find(|sp| sp.trace_id == trace)
        .unwrap_or_else(|| panic!("no span of the drained request in {spans:?}\n{}", s.logs()));
    assert_eq!(span.parent_span_id, "b7ad6b7169203331");
    assert_eq!(
        span.resource.get("faas.name"),
        Some(&json!("hello")),
        "{:?}",
        span.resource
    );
}
