//! Azure Functions custom handler end to end: the real `bootstrap` runs as a child process with
//! `FUNCTIONS_CUSTOMHANDLER_PORT` set, as the Functions host starts it, and the tests play the Functions host:
//! invocation payloads (`{Data, Metadata}` POSTed to `/<function>`) and proxied HTTP requests
//! (`enableProxyingHttpRequest`).

use nimbus_tests::azure::http_payload;
use nimbus_tests::components::{CONTEXT, ECHO, EVENT_CHECK, HTTP_ECHO};
use nimbus_tests::process::{Process, free_port};
use nimbus_tests::{Reply, header_values, request};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const MANIFEST: &str = r#"
manifest_version = 1
app = { name = "azure-suite" }
defaults = { timeout = "30s" }

[function.http-echo]
component = "{HTTP_ECHO}"
routes = ["ANY /{*rest}"]
max_request_body = "4KiB"

[function.event-check]
component = "{EVENT_CHECK}"

[function.echo]
component = "{ECHO}"

[function.context]
component = "{CONTEXT}"
routes = ["ANY /{*rest}"]
"#;

/// What the Functions host puts in the handler's environment that a guest must never see.
const AZURE_SECRETS: &[(&str, &str)] = &[
    (
        "AzureWebJobsStorage",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleQ==",
    ),
    ("IDENTITY_HEADER", "identity-header-secret"),
    ("IDENTITY_ENDPOINT", "http://127.0.0.1:8081/msi/token"),
    ("MSI_SECRET", "msi-secret"),
    ("FUNCTIONS_WORKER_RUNTIME", "Custom"),
];

/// `bootstrap` serving one function of [`MANIFEST`] as an Azure custom handler.
struct Handler {
    process: Process,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Handler {
    /// Starts `bootstrap` for `function` and waits (up to 60 s on a slow machine) for its `listening` line.
    async fn start(function: &str) -> Handler {
        let dir = tempfile::tempdir().unwrap();
        let manifest = MANIFEST
            .replace("{HTTP_ECHO}", HTTP_ECHO)
            .replace("{EVENT_CHECK}", EVENT_CHECK)
            .replace("{ECHO}", ECHO)
            .replace("{CONTEXT}", CONTEXT);
        let path = dir.path().join("nimbus.toml");
        std::fs::write(&path, manifest).unwrap();
        let port = free_port();
        let port_text = port.to_string();
        let mut env = vec![
            ("FUNCTIONS_CUSTOMHANDLER_PORT", port_text.as_str()),
            ("NIMBUS_MANIFEST", path.to_str().unwrap()),
            ("NIMBUS_FUNCTION", function),
            ("NIMBUS_LOG", "info"),
        ];
        env.extend_from_slice(AZURE_SECRETS);
        let process = Process::start(Path::new(env!("CARGO_BIN_EXE_bootstrap")), &[], &env);
        let ready = process.stderr_line("listening", Duration::from_secs(60)).await;
        assert!(ready.is_some(), "not ready: {:?}", process.stderr());
        let line = ready.unwrap_or_default();
        assert!(line.contains(&format!("127.0.0.1:{port}")), "loopback only: {line}");
        Handler {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        }
    }

    /// POSTs an invocation payload to `/<function>`, with the host's invocation id.
    async fn invoke(&self, function: &str, payload: &Value) -> Reply {
        let body = payload.to_string();
        self.post(&format!("/{function}"), body.as_bytes()).await
    }

    async fn post(&self, path: &str, body: &[u8]) -> Reply {
        let headers = [
            ("content-type", "application/json"),
            ("x-azure-functions-invocationid", "3f2c1a9e-0d7b-4d1e-9a51-2b7c4e8f6a10"),
        ];
        request(self.addr, "POST", path, Some(body), &headers).await
    }
}

/// The JSON an HTTP_ECHO response body holds.
fn echoed(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not the echo ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_payload_mode_and_proxy_mode_reach_the_http_function_and_hostile_input_is_refused() {
    let h = Handler::start("http-echo").await;

    // Payload mode: Data.req is the request; its response is Outputs.res.
    let headers = json!({
        "Content-Type": ["application/json"],
        "Accept": ["application/json", "text/plain"],
        "x-functions-key": ["the-function-key"],
        "traceparent": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    });
    let payload = http_payload(
        "http-echo",
        "POST",
        "http://app.azurewebsites.net/api/orders?color=black",
        "{\"id\":1}",
        headers,
    );
    let r = h.invoke("http-echo", &payload).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let res = &v["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{v}");
    assert_eq!(res["headers"]["content-type"], "application/json");
    assert_eq!(v["ReturnValue"], *res);
    let echo = echoed(res["body"].as_str().unwrap());
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/orders");
    assert_eq!(echo["query"], "color=black");
    assert_eq!(echo["body_hex"], hex(b"{\"id\":1}"));
    assert_eq!(header_values(&echo, "accept"), ["application/json", "text/plain"]);
    assert!(
        header_values(&echo, "x-functions-key").is_empty(),
        "the function key reached the guest: {echo}"
    );
    assert!(
        header_values(&echo, "traceparent")[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{echo}"
    );

    // Proxy mode: the caller's request as it is, at its own path; the response as it is.
    let proxied = request(
        h.addr,
        "PUT",
        "/api/items/7?binary=1",
        Some(&[0u8, 1, 2, 255][..]),
        &[("x-functions-key", "the-function-key"), ("x-custom", "yes")],
    )
    .await;
    assert_eq!(proxied.status, 200);
    assert_eq!(proxied.headers["content-type"], "application/octet-stream");
    assert_eq!(proxied.body.as_ref().unwrap().len(), 256, "bytes go back as they are");
    let proxied = request(
        h.addr,
        "PUT",
        "/api/items/7?cookies=2",
        Some(b"abc"),
        &[("x-functions-key", "k"), ("x-custom", "yes")],
    )
    .await;
    let echo = proxied.json();
    assert_eq!(
        (echo["method"].as_str(), echo["path"].as_str()),
        (Some("PUT"), Some("/api/items/7"))
    );
    assert_eq!(header_values(&echo, "x-custom"), ["yes"]);
    assert!(header_values(&echo, "x-functions-key").is_empty(), "{echo}");
    assert_eq!(proxied.headers.get_all("set-cookie").iter().count(), 2);

    // Hostile input; the handler goes on serving after each.
    for bad in [
        &b"not json"[..],
        b"{\"Data\": 5}",
        b"{\"Data\": {\"queueItem\": \"x\"}}",
    ] {
        let r = h.post("/http-echo", bad).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.json()["error"], "Function.BadEvent");
    }
    let big = "x".repeat(8 * 1024);
    let r = h
        .invoke(
            "http-echo",
            &http_payload("http-echo", "POST", "http://h/api/big", &big, json!({})),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    let r = h.post("/http-echo", &vec![b' '; 400 * 1024]).await;
    assert_eq!(r.status, 413, "an oversized payload is refused unread");
    // Headers an HTTP output binding cannot carry: one Set-Cookie is kept, the rest left out.
    let r = h
        .invoke(
            "http-echo",
            &http_payload("http-echo", "GET", "http://h/api/c?cookies=3", "", json!({})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Outputs"]["res"]["headers"]["set-cookie"], "c0=v0; Path=/");
    // A binary response cannot be a text output: the invocation fails, and says how to send bytes.
    let r = h
        .invoke(
            "http-echo",
            &http_payload("http-echo", "GET", "http://h/api/b?binary=1", "", json!({})),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("enableProxyingHttpRequest"), "{}", r.text());

    let r = h.invoke("http-echo", &payload).await;
    assert_eq!(r.status, 200, "still serving: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_message_invokes_the_event_function_with_its_log_lines_and_failures_are_500() {
    let h = Handler::start("event-check").await;
    let queue = |item: &str| {
        json!({
            "Data": { "myQueueItem": item },
            "Metadata": { "DequeueCount": 1, "PopReceipt": "AgAAAA==", "Id": "800ae4b3",
                          "sys": { "MethodName": "event-check", "UtcNow": "2026-01-01T00:00:00Z", "RandGuid": "g" } },
        })
    };
    let r = h.invoke("event-check", &queue(r#"{"n": 21}"#)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["ReturnValue"], json!({"doubled": 42}));
    assert_eq!(v["Logs"], json!(["event-check: doubling 21"]), "{v}");
    assert_eq!(v["Outputs"], json!({}));
    // Each invocation's own lines only.
    let v = h.invoke("event-check", &queue(r#"{"n": 2}"#)).await.json();
    assert_eq!(v["Logs"], json!(["event-check: doubling 2"]), "{v}");

    // A failure is a 500 the host records, with the error and the lines logged before it.
    let r = h.invoke("event-check", &queue(r#"{"fail": "out of stock"}"#)).await;
    assert_eq!(r.status, 500, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "Function.Failed", "{v}");
    assert_eq!(v["Logs"], json!(["event-check: failing: out of stock"]), "{v}");
    // The lines also reach stdout, with the invocation id as the request id.
    let mut found = false;
    for _ in 0..200 {
        found = h
            .process
            .stdout()
            .iter()
            .any(|l| l.contains("event-check: doubling 21") && l.contains("3f2c1a9e-0d7b-4d1e-9a51-2b7c4e8f6a10"));
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "{:?}", h.process.stdout());

    // Another function's name, another path or method: 404 JSON.
    for (method, path) in [
        ("POST", "/other-function"),
        ("GET", "/event-check"),
        ("POST", "/api/event-check"),
    ] {
        let r = request(h.addr, method, path, Some(b"{}"), &[]).await;
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(r.json()["error"], "NotFound");
    }
    let r = h.post("/event-check", b"{\"Metadata\": {}}").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = h.invoke("event-check", &queue(r#"{"n": 5}"#)).await;
    assert_eq!(r.json()["ReturnValue"], json!({"doubled": 10}), "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_reaches_the_event_function_as_a_schedule_with_its_timer_info() {
    let h = Handler::start("echo").await;
    let timer = json!({
        "Data": { "myTimer": {
            "Schedule": { "AdjustForDST": true },
            "ScheduleStatus": { "Last": "2026-01-01T00:00:00+00:00", "Next": "2026-01-01T00:05:00+00:00",
                                "LastUpdated": "2026-01-01T00:00:00+00:00" },
            "IsPastDue": false,
        }},
        "Metadata": { "sys": { "MethodName": "echo", "UtcNow": "2026-01-01T00:05:00Z", "RandGuid": "g" } },
    });
    let r = h.invoke("echo", &timer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json()["ReturnValue"].clone();
    assert_eq!(v["source"], "schedule", "{v}");
    assert_eq!(v["echo"]["IsPastDue"], false, "{v}");
    assert_eq!(v["request_id"], "3f2c1a9e-0d7b-4d1e-9a51-2b7c4e8f6a10");
    assert_eq!(v["function"], "echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_environment_and_the_function_key_are_invisible_to_the_guest() {
    let h = Handler::start("context").await;
    let r = request(
        h.addr,
        "GET",
        "/api/context",
        None,
        &[
            ("x-functions-key", "the-function-key"),
            ("x-azure-functions-invocationid", "0b6c1d2e-aaaa-4bbb-8ccc-123456789abc"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["env_count"], 0,
        "the guest sees none of the handler's environment: {v}"
    );
    assert_eq!(v["request_id"], "0b6c1d2e-aaaa-4bbb-8ccc-123456789abc");
    assert!(!r.text().contains("secret"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_port_the_handler_says_which_variable_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nimbus.toml");
    std::fs::write(
        &path,
        MANIFEST
            .replace("{HTTP_ECHO}", HTTP_ECHO)
            .replace("{EVENT_CHECK}", EVENT_CHECK)
            .replace("{ECHO}", ECHO)
            .replace("{CONTEXT}", CONTEXT),
    )
    .unwrap();
    let env = [("NIMBUS_MANIFEST", path.to_str().unwrap()), ("NIMBUS_FUNCTION", "echo")];
    let mut p = Process::start(
        Path::new(env!("CARGO_BIN_EXE_bootstrap")),
        &["--platform", "azure"],
        &env,
    );
    assert_eq!(p.exit_code(Duration::from_secs(60)).await, Some(1), "{:?}", p.stderr());
    assert!(
        p.stderr_line("FUNCTIONS_CUSTOMHANDLER_PORT is not set", Duration::from_secs(5))
            .await
            .is_some(),
        "{:?}",
        p.stderr()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
