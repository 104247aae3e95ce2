//! AWS Lambda end to end: `nimbus package --target lambda` builds real zips,
//! the tests unpack them and run the packaged `bootstrap` as a child process
//! against the Lambda Runtime API emulator in `nimbus-tests`.

use nimbus_tests::components::{
    CHAT, CONTEXT, ECHO, EVENT_CHECK, HTTP_ECHO, OUTBOUND, SHA_TASK, SPIN, SQS_BATCH, TRAP, WARM_COUNTER, WS_ECHO,
};
use nimbus_tests::header_values;
use nimbus_tests::lambda_emulator::{DeadlineHeader, InvokeOptions, LambdaEmulator, Outcome};
use nimbus_tests::process::Process;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Terraform examples applied against moto, then served by the packaged `bootstrap`.
#[path = "lambda/terraform.rs"]
mod terraform;

/// Every function the tests deploy, packaged once for the whole binary.
struct Packaged {
    dist: PathBuf,
    /// Function zips unpacked, by function name.
    tasks: PathBuf,
}

const MANIFEST: &str = r#"
manifest_version = 1
app = { name = "lambda-suite" }
defaults = { timeout = "30s" }

[function.http-echo]
component = "{HTTP_ECHO}"
routes = ["ANY /{*rest}"]

[function.echo]
component = "{ECHO}"

[function.event-check]
component = "{EVENT_CHECK}"

[function.event-check-short]
component = "{EVENT_CHECK}"
timeout = "1s"

[function.context]
component = "{CONTEXT}"

[function.trap]
component = "{TRAP}"

[function.spin]
component = "{SPIN}"

[function.sqs-batch]
component = "{SQS_BATCH}"

[function.warm]
component = "{WARM_COUNTER}"
reuse = true

[function.sha-task]
component = "{SHA_TASK}"
# A run may work for about 50 ms of its 900 ms (the Lambda timeout less the 100 ms margin): many runs.
timeout = "1s"
task = { yield_margin = "850ms" }

[function.ws]
component = "{WS_ECHO}"
websocket = { subprotocols = ["chat.v2", "chat.v1"] }

[function.chat]
component = "{CHAT}"
keyvalue = ["rooms"]

[function.fetch]
component = "{OUTBOUND}"
routes = ["ANY /{*rest}"]
# The Runtime API is on loopback too: allowing loopback literally must not open it.
allowed_outbound_hosts = ["http://127.0.0.1:*"]

[function.needs-config]
component = "{ECHO}"
[function.needs-config.config]
api_key = { env = "NIMBUS_TEST_API_KEY" }
token = { file = "token.txt" }

# Only its deployment description is checked: every resource a deployment must grant, in every spelling.
[function.described]
component = "{HTTP_ECHO}"
routes = ["GET /items/{id}", "POST /items", "/{*rest}"]
timeout = "1500ms"
memory = "300MiB"
keyvalue = ["sessions", "carts"]
allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:*"]
[function.described.config]
password = { ssm = "/shop/db/password:3", secret = true }
flat = { ssm = "arn:aws:ssm:us-east-1:123456789012:parameter/flat-name" }
labelled = { ssm = "/shop/db/password:prod" }
everything = { ssm_path = "/shop/all/" }
region = { env = "AWS_REGION", default = "us-east-1" }
key = { env = "PAYMENT_KEY" }
literal = { value = "x" }
"#;

fn packaged() -> &'static Packaged {
    static P: OnceLock<Packaged> = OnceLock::new();
    P.get_or_init(|| {
        // A static is never dropped, so a temp dir would leak a gigabyte of packages per run: use one fixed
        // directory under the target dir, cleared at the start of each run instead.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lambda-packages");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = MANIFEST
            .replace("{HTTP_ECHO}", HTTP_ECHO)
            .replace("{ECHO}", ECHO)
            .replace("{EVENT_CHECK}", EVENT_CHECK)
            .replace("{CONTEXT}", CONTEXT)
            .replace("{TRAP}", TRAP)
            .replace("{SPIN}", SPIN)
            .replace("{SQS_BATCH}", SQS_BATCH)
            .replace("{WARM_COUNTER}", WARM_COUNTER)
            .replace("{SHA_TASK}", SHA_TASK)
            .replace("{WS_ECHO}", WS_ECHO)
            .replace("{CHAT}", CHAT)
            .replace("{OUTBOUND}", OUTBOUND);
        std::fs::write(dir.join("nimbus.toml"), text).unwrap();
        std::fs::write(dir.join("token.txt"), "file-token\n").unwrap();
        let dist = dir.join("dist");
        let out = nimbus()
            .args(["package", "--target", "lambda", "--arch", "x86_64", "--manifest"])
            .arg(dir.join("nimbus.toml"))
            // This build's bootstrap, not one a developer built earlier with scripts/build-bootstrap.
            .args(["--bootstrap", env!("CARGO_BIN_EXE_bootstrap")])
            .arg("--out")
            .arg(&dist)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nimbus package failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tasks = dir.join("tasks");
        for f in [
            "http-echo",
            "echo",
            "event-check",
            "event-check-short",
            "context",
            "trap",
            "spin",
            "sqs-batch",
            "warm",
            "sha-task",
            "ws",
            "chat",
            "fetch",
            "needs-config",
            "described",
        ] {
            unzip(&dist.join(format!("lambda-x86_64/{f}.zip")), &tasks.join(f));
        }
        Packaged {
            dist: dist.join("lambda-x86_64"),
            tasks,
        }
    })
}

fn nimbus() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nimbus"));
    c.env("NIMBUS_LOG", "warn");
    c
}

/// Unpacks a zip keeping Unix modes (the bootstrap must stay executable).
fn unzip(zip: &Path, into: &Path) {
    let file = std::fs::File::open(zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
    let mut archive = zip::ZipArchive::new(file).unwrap();
    archive.extract(into).unwrap();
}

fn zip_entries(zip: &Path) -> Vec<(String, Option<u32>)> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let f = archive.by_index(i).unwrap();
            (f.name().unwrap().to_string(), f.unix_mode().map(|m| m & 0o777))
        })
        .collect()
}

/// A packaged bootstrap running against its own emulator; killed on drop.
struct Runtime {
    emu: LambdaEmulator,
    process: Process,
    started: Instant,
}

impl Runtime {
    /// Starts `<task>/bootstrap` for the unpacked function `name`.
    async fn start(name: &str, env: &[(&str, &str)]) -> Runtime {
        let task = packaged().tasks.join(name);
        Runtime::start_in(&task.join("bootstrap"), &task, env).await
    }

    /// Starts `<task>/bootstrap` for the unpacked function `name` against `emu`.
    async fn start_on(emu: LambdaEmulator, name: &str, env: &[(&str, &str)]) -> Runtime {
        let task = packaged().tasks.join(name);
        Runtime::start_with(emu, &task.join("bootstrap"), &task, env).await
    }

    async fn start_in(bootstrap: &Path, task_root: &Path, env: &[(&str, &str)]) -> Runtime {
        Runtime::start_with(LambdaEmulator::start().await, bootstrap, task_root, env).await
    }

    /// Starts `bootstrap` as Lambda does (its variables, and a secret of the host's that must not leak), with
    /// `env` added.
    async fn start_with(emu: LambdaEmulator, bootstrap: &Path, task_root: &Path, env: &[(&str, &str)]) -> Runtime {
        let api = emu.runtime_api();
        let root = task_root.to_str().expect("the task root is UTF-8");
        let mut vars = vec![
            ("AWS_LAMBDA_RUNTIME_API", api.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "nimbus-test"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("LAMBDA_TASK_ROOT", root),
            ("NIMBUS_LOG", "warn"),
            ("AWS_SECRET_ACCESS_KEY", "host-secret-must-not-leak"),
        ];
        vars.extend_from_slice(env);
        let started = Instant::now();
        let process = Process::start(bootstrap, &[], &vars);
        Runtime { emu, process, started }
    }

    async fn invoke(&self, event: Value) -> Outcome {
        self.emu.invoke(event.to_string()).await
    }

    /// Guest and invocation log lines (stdout).
    fn logs(&self) -> Vec<String> {
        self.process.stdout()
    }

    /// Waits (at most 20 s: the lines arrive through a pipe, after the answer) until a stdout line has
    /// every one of `needles`; all lines so far.
    async fn wait_for_log(&self, needles: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = self.logs();
            if logs.iter().any(|l| needles.iter().all(|n| l.contains(n))) || Instant::now() > deadline {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The host's own log lines (stderr).
    fn host_logs(&self) -> Vec<String> {
        self.process.stderr()
    }

    /// The first host log line containing `needle`, waiting up to `wait` for it.
    async fn host_log_line(&self, needle: &str, wait: Duration) -> Option<String> {
        self.process.stderr_line(needle, wait).await
    }

    /// The `(errorType, errorMessage)` reported to `/init/error`.
    async fn init_failure(&self) -> (String, String) {
        match self.emu.init_error(Duration::from_secs(20)).await {
            Some(e) => e.error(),
            None => panic!("no /init/error; host logs: {:?}", self.host_logs()),
        }
    }

    /// Waits for the process to exit; its status code.
    async fn exit_code(&mut self, wait: Duration) -> Option<i32> {
        self.process.exit_code(wait).await
    }
}

/// The echoed request inside an HTTP response shape.
fn echoed(resp: &Value) -> Value {
    serde_json::from_str(resp["body"].as_str().expect("body is text")).expect("echo body is JSON")
}

#[tokio::test]
async fn api_gateway_rest_v1_maps_field_by_field() {
    let rt = Runtime::start("http-echo", &[]).await;
    let event = json!({
        "resource": "/{proxy+}",
        "path": "/items/a b",
        "httpMethod": "POST",
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Content-Type": "application/octet-stream",
                    "X-Forwarded-Proto": "https", "X-Single": "one"},
        "multiValueHeaders": {"Host": ["abc123.execute-api.us-east-1.amazonaws.com"], "X-Multi": ["1", "2"],
                              "Content-Type": ["application/octet-stream"], "X-Forwarded-Proto": ["https"]},
        "queryStringParameters": {"q": "z", "cookies": "2"},
        "multiValueQueryStringParameters": {"q": ["x y", "z"], "cookies": ["2"]},
        "pathParameters": {"proxy": "items/a b"},
        "stageVariables": null,
        "requestContext": {"stage": "prod", "path": "/prod/items/a b", "httpMethod": "POST",
                           "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "requestId": "r1",
                           "identity": {}, "accountId": "123456789012", "resourceId": "x", "apiId": "abc123"},
        "body": "AAEC/w==",
        "isBase64Encoded": true
    });
    let resp = rt.invoke(event).await.json();
    assert_eq!(resp["statusCode"], 200);
    assert_eq!(resp["isBase64Encoded"], false);
    assert_eq!(
        resp["multiValueHeaders"]["set-cookie"],
        json!(["c0=v0; Path=/", "c1=v1; Path=/"])
    );
    assert_eq!(resp["multiValueHeaders"]["content-type"], json!(["application/json"]));
    assert!(resp["headers"].as_object().is_none_or(|h| h.is_empty()), "{resp}");
    let e = echoed(&resp);
    assert_eq!(e["method"], "POST");
    assert_eq!(e["scheme"], "https");
    assert_eq!(e["authority"], "abc123.execute-api.us-east-1.amazonaws.com");
    assert_eq!(e["path"], "/items/a%20b", "no stage, spaces encoded");
    assert_eq!(e["query"], "cookies=2&q=x%20y&q=z", "multi-value query wins");
    assert_eq!(header_values(&e, "x-multi"), ["1", "2"]);
    assert_eq!(header_values(&e, "x-single"), ["one"]);
    assert_eq!(e["body_hex"], "000102ff");
    assert_eq!(header_values(&e, "content-length"), ["4"]);
}

#[tokio::test]
async fn http_api_v2_strips_the_stage_and_carries_cookies() {
    let rt = Runtime::start("http-echo", &[]).await;
    let event = json!({
        "version": "2.0",
        "routeKey": "ANY /{proxy+}",
        "rawPath": "/prod/items",
        "rawQueryString": "a=1&a=2&status=201&cookies=2",
        "cookies": ["s=1", "t=2"],
        "headers": {"host": "api.example.com", "content-type": "text/plain", "x-multi": "1,2"},
        "requestContext": {"http": {"method": "PUT", "path": "/prod/items", "protocol": "HTTP/1.1",
                                    "sourceIp": "1.2.3.4", "userAgent": "test"},
                           "stage": "prod", "domainName": "api.example.com", "requestId": "r2",
                           "apiId": "api", "accountId": "123456789012", "routeKey": "ANY /{proxy+}",
                           "time": "24/Nov/2026:10:00:00 +0000", "timeEpoch": 1},
        "body": "hello",
        "isBase64Encoded": false
    });
    let resp = rt.invoke(event).await.json();
    assert_eq!(resp["statusCode"], 201);
    assert_eq!(resp["cookies"], json!(["c0=v0; Path=/", "c1=v1; Path=/"]));
    assert!(
        resp["headers"].get("set-cookie").is_none(),
        "cookies move out of headers: {resp}"
    );
    assert_eq!(resp["headers"]["content-type"], "application/json");
    assert!(
        resp.get("multiValueHeaders")
            .is_none_or(|m| m.as_object().is_none_or(|o| o.is_empty()))
    );
    let e = echoed(&resp);
    assert_eq!(e["method"], "PUT");
    assert_eq!(e["path"], "/items");
    assert_eq!(e["query"], "a=1&a=2&status=201&cookies=2");
    assert_eq!(header_values(&e, "cookie"), ["s=1; t=2"]);
    assert_eq!(e["authority"], "api.example.com");
    assert_eq!(e["body_hex"], "68656c6c6f");
}

#[tokio::test]
async fn function_urls_and_binary_bodies() {
    let rt = Runtime::start("http-echo", &[]).await;
    let event = json!({
        "version": "2.0",
        "rawPath": "/download",
        "rawQueryString": "binary=1",
        "headers": {"host": "abcdefg.lambda-url.us-east-1.on.aws"},
        "requestContext": {"http": {"method": "GET", "path": "/download"},
                           "domainName": "abcdefg.lambda-url.us-east-1.on.aws", "timeEpoch": 1},
        "isBase64Encoded": false
    });
    let resp = rt.invoke(event).await.json();
    assert_eq!(resp["statusCode"], 200);
    assert_eq!(resp["isBase64Encoded"], true);
    assert_eq!(resp["headers"]["content-type"], "application/octet-stream");
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(resp["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, (0u8..=255).collect::<Vec<_>>());
    assert!(
        resp["cookies"].as_array().is_some(),
        "Function URL responses carry `cookies`: {resp}"
    );
}

#[tokio::test]
async fn alb_answers_in_the_target_groups_header_mode() {
    let rt = Runtime::start("http-echo", &[]).await;
    let base = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1"}},
        "httpMethod": "GET",
        "path": "/lb",
        "body": "",
        "isBase64Encoded": false
    });
    let mut multi = base.clone();
    multi["multiValueHeaders"] = json!({"host": ["lb.example.com"], "x-multi": ["1", "2"]});
    multi["multiValueQueryStringParameters"] = json!({"q": ["a%20b", "c"], "cookies": ["2"]});
    let resp = rt.invoke(multi).await.json();
    assert_eq!(resp["statusCode"], 200);
    assert_eq!(resp["statusDescription"], "200 OK");
    assert_eq!(
        resp["multiValueHeaders"]["set-cookie"],
        json!(["c0=v0; Path=/", "c1=v1; Path=/"])
    );
    let e = echoed(&resp);
    assert_eq!(
        e["query"], "cookies=2&q=a%20b&q=c",
        "ALB query values stay as the client encoded them"
    );
    assert_eq!(header_values(&e, "x-multi"), ["1", "2"]);

    let mut single = base;
    single["headers"] = json!({"host": "lb.example.com"});
    single["queryStringParameters"] = json!({"status": "404"});
    let resp = rt.invoke(single).await.json();
    assert_eq!(resp["statusCode"], 404);
    assert_eq!(resp["statusDescription"], "404 Not Found");
    assert_eq!(resp["headers"]["content-type"], "application/json");
    assert!(
        resp.get("multiValueHeaders")
            .is_none_or(|m| m.as_object().is_none_or(|o| o.is_empty()))
    );
}

#[tokio::test]
async fn trace_id_and_deadline_reach_the_guest() {
    let rt = Runtime::start("context", &[]).await;
    let event = json!({"version": "2.0", "rawPath": "/", "headers": {"host": "h"},
                       "requestContext": {"http": {"method": "GET"}, "stage": "$default"}, "isBase64Encoded": false});
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1";
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let opts = InvokeOptions {
        timeout: Duration::from_secs(5),
        trace_id: Some(xray.into()),
        ..InvokeOptions::default()
    };
    let resp = rt.emu.invoke_with(event.to_string(), opts).await.json();
    let ctx = echoed(&resp);
    assert_eq!(ctx["xray"], xray, "the SDK's xray_trace_id()");
    assert_eq!(ctx["xray_env"], xray, "the guest's _X_AMZN_TRACE_ID");
    // The X-Ray trace, with the invocation's own span (child of Lambda's segment) as the parent.
    let tp = ctx["traceparent"].as_str().unwrap();
    assert!(tp.starts_with("00-5759e988bd862e3fe1be46a994272793-"), "{tp}");
    assert!(tp.ends_with("-01"), "{tp}");
    assert_ne!(&tp[36..52], "53995c3f42cd8ad8");
    assert_eq!(ctx["env_count"], 1, "only the trace id; no host environment");
    assert!(ctx["request_id"].as_str().unwrap().starts_with("8476a536-"));
    let lambda_deadline = before + 5000;
    let guest_deadline = ctx["deadline_ms"].as_i64().unwrap();
    // The guest is stopped 100 ms (the default margin) before Lambda's deadline.
    let early = lambda_deadline - guest_deadline;
    assert!((20..=400).contains(&early), "guest deadline {early} ms before Lambda's");

    // Without a trace header the guest still gets a valid W3C context and no X-Ray variable.
    let opts = InvokeOptions {
        trace_id: None,
        ..InvokeOptions::default()
    };
    let ctx = echoed(&rt.emu.invoke_with(event.to_string(), opts).await.json());
    assert!(ctx["xray"].is_null());
    assert!(ctx["xray_env"].is_null());
    assert_eq!(ctx["env_count"], 0);
    assert_eq!(ctx["traceparent"].as_str().unwrap().len(), 55);
    // Guest log lines carry the invocation's request id and trace id (they arrive through a pipe, after the
    // answer).
    let logs = rt
        .wait_for_log(&["context line one", "5759e988bd862e3fe1be46a994272793"])
        .await;
    assert!(
        logs.iter()
            .any(|l| l.contains("context line one") && l.contains("5759e988bd862e3fe1be46a994272793")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn event_failures_go_to_the_error_endpoint_and_the_runtime_keeps_serving() {
    // A wide margin, so a slow machine still answers before Lambda's deadline.
    let rt = Runtime::start("event-check", &[("NIMBUS_DEADLINE_MARGIN_MS", "400")]).await;
    let ok = || async { rt.invoke(json!({"n": 21})).await.json() };
    assert_eq!(ok().await, json!({"doubled": 42}));

    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"{not json".to_vec(), "Function.BadEvent", "not valid JSON"),
        (br#"{"fail": "boom"}"#.to_vec(), "Function.Failed", "boom"),
        (br#"{"other": 1}"#.to_vec(), "Function.BadEvent", "expected"),
        (
            br#"{"panic": true}"#.to_vec(),
            "Nimbus.Trap",
            "the function trapped; the details are in its log",
        ),
        (
            format!(r#"{{"pad": "{}"}}"#, "x".repeat(6 * 1024 * 1024 + 10)).into_bytes(),
            "Nimbus.PayloadTooLarge",
            "max_request_body",
        ),
    ];
    for (event, error_type, needle) in cases {
        let outcome = rt.emu.invoke(event).await;
        let (ty, msg) = outcome.error();
        assert_eq!(ty, error_type, "{msg}");
        assert!(msg.contains(needle), "{ty}: {msg}");
        // The invoker never gets a trap's internals (the wasm backtrace, the trap's kind).
        assert!(!msg.contains(".wasm!") && !msg.contains("unreachable"), "{ty}: {msg}");
        // The error type goes in the header too.
        assert!(
            matches!(&outcome, Outcome::Error { header_type: Some(h), .. } if *h == ty),
            "{outcome:?}"
        );
        assert_eq!(ok().await, json!({"doubled": 42}), "after {error_type}");
    }

    // An endless loop is stopped before Lambda's deadline and reported as such.
    let t = Instant::now();
    let opts = InvokeOptions {
        timeout: Duration::from_millis(2000),
        ..InvokeOptions::default()
    };
    let outcome = rt.emu.invoke_with(r#"{"spin": true}"#, opts).await;
    let took = t.elapsed();
    assert_eq!(outcome.error().0, "Nimbus.Deadline");
    assert!(
        took < Duration::from_millis(2000),
        "answered after Lambda's deadline: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "stopped {took:?} in: before the deadline less the margin"
    );
    assert_eq!(ok().await, json!({"doubled": 42}));

    let logs = rt.wait_for_log(&["\"error_type\":\"Nimbus.Deadline\""]).await;
    assert!(
        logs.iter().any(|l| l.contains("\"error_type\":\"Nimbus.Deadline\"")),
        "failures are logged: {logs:?}"
    );
}

#[tokio::test]
async fn http_failures_answer_in_the_sources_shape() {
    let apigw = json!({"version": "2.0", "rawPath": "/x", "headers": {"host": "h"},
                       "requestContext": {"http": {"method": "GET"}}, "isBase64Encoded": false});
    let trap = Runtime::start("trap", &[]).await;
    for _ in 0..2 {
        let resp = trap.invoke(apigw.clone()).await.json();
        assert_eq!(resp["statusCode"], 500);
        let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
        // The caller learns the error type only; the trap and its wasm backtrace stay in the log.
        assert_eq!(
            body,
            json!({"error": "Nimbus.Trap", "message": "the function trapped; the details are in its log"})
        );
    }
    // The guest's panic message is in its log, with the request id, and so is the trap's backtrace.
    let panicked = ["deliberate panic", "8476a536-"];
    let logs = trap.wait_for_log(&panicked).await;
    assert!(logs.iter().any(|l| panicked.iter().all(|n| l.contains(n))), "{logs:?}");
    let failed = [
        r#""msg":"invocation failed""#,
        r#""app":"lambda-suite""#,
        "wasm backtrace",
        ".wasm!",
        "8476a536-",
    ];
    let logs = trap.wait_for_log(&failed).await;
    assert!(logs.iter().any(|l| failed.iter().all(|n| l.contains(n))), "{logs:?}");

    let spin = Runtime::start("spin", &[("NIMBUS_DEADLINE_MARGIN_MS", "400")]).await;
    let t = Instant::now();
    let opts = InvokeOptions {
        timeout: Duration::from_millis(2000),
        ..InvokeOptions::default()
    };
    let resp = spin.emu.invoke_with(apigw.to_string(), opts).await.json();
    assert!(t.elapsed() < Duration::from_millis(2000), "{:?}", t.elapsed());
    assert_eq!(resp["statusCode"], 504);
    assert!(resp["body"].as_str().unwrap().contains("Nimbus.Deadline"));

    // A non-HTTP event for an HTTP function is a bad event, not a crash.
    let echo = Runtime::start("http-echo", &[]).await;
    let (ty, msg) = echo
        .invoke(json!({"Records": [{"eventSource": "aws:sqs"}]}))
        .await
        .error();
    assert_eq!(ty, "Function.BadEvent");
    assert!(msg.contains("HTTP function") && msg.contains("SQS"), "{msg}");
    // A malformed HTTP event (bad base64) is answered 400 in the source's shape.
    let resp = echo
        .invoke(
            json!({"httpMethod": "POST", "path": "/", "headers": {"Host": "h"}, "body": "***",
                        "isBase64Encoded": true, "requestContext": {"httpMethod": "POST"}}),
        )
        .await
        .json();
    assert_eq!(resp["statusCode"], 400);
    assert!(resp["body"].as_str().unwrap().contains("base64"));
    // A body over the function's max_request_body (6 MiB by default) is a 413, and nothing breaks.
    let big = "x".repeat(6 * 1024 * 1024 + 1);
    let resp = echo
        .invoke(
            json!({"version": "2.0", "rawPath": "/", "headers": {"host": "h"}, "body": big,
                        "requestContext": {"http": {"method": "POST"}}, "isBase64Encoded": false}),
        )
        .await
        .json();
    assert_eq!(resp["statusCode"], 413);
    assert!(resp["body"].as_str().unwrap().contains("max_request_body"), "{resp}");
    let resp = echo.invoke(apigw.clone()).await.json();
    assert_eq!(resp["statusCode"], 200);
}

#[tokio::test]
async fn sqs_partial_batch_failures_through_the_sdk() {
    let rt = Runtime::start("sqs-batch", &[]).await;
    let record = |id: &str, body: &str| {
        json!({"messageId": id, "receiptHandle": "rh", "body": body, "attributes": {}, "messageAttributes": {},
               "md5OfBody": "x", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
               "awsRegion": "us-east-1"})
    };
    let event = json!({"Records": [record("m1", "ok"), record("m2", "please fail"), record("m3", "fine")]});
    let resp = rt.invoke(event).await.json();
    assert_eq!(resp, json!({"batchItemFailures": [{"itemIdentifier": "m2"}]}));
    let all_ok = json!({"Records": [record("m4", "ok")]});
    assert_eq!(rt.invoke(all_ok).await.json(), json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn init_errors_name_their_cause() {
    // A required config value that is missing at boot.
    let mut rt = Runtime::start("needs-config", &[]).await;
    let (ty, msg) = rt.init_failure().await;
    assert_eq!(ty, "Nimbus.Init.Config");
    assert!(msg.contains("api_key") && msg.contains("NIMBUS_TEST_API_KEY"), "{msg}");
    assert_ne!(rt.exit_code(Duration::from_secs(10)).await, Some(0));

    // With it set, the same package boots, and the file-sourced key came along in the zip.
    let rt = Runtime::start("needs-config", &[("NIMBUS_TEST_API_KEY", "k")]).await;
    let out = rt.invoke(json!({"hi": 1})).await.json();
    assert_eq!(out["echo"], json!({"hi": 1}));
    assert_eq!(out["source"], "direct");

    // A manifest with an unknown key, and a corrupt component with a corrupt artifact.
    let base = &packaged().tasks.join("echo");
    let broken = tempfile::tempdir().unwrap();
    for f in ["nimbus.toml", "echo.wasm", "echo.cwasm.lz4"] {
        std::fs::copy(base.join(f), broken.path().join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(broken.path().join("nimbus.toml")).unwrap();
    std::fs::write(
        broken.path().join("nimbus.toml"),
        manifest.replace("[function.echo]", "[function.echo]\nmemroy = \"64MiB\""),
    )
    .unwrap();
    let boot = base.join("bootstrap");
    let mut rt = Runtime::start_in(&boot, broken.path(), &[]).await;
    let (ty, msg) = rt.init_failure().await;
    assert_eq!(ty, "Nimbus.Init.Manifest");
    assert!(msg.contains("memroy") && msg.contains("nimbus.toml:"), "{msg}");
    assert_ne!(rt.exit_code(Duration::from_secs(10)).await, Some(0));

    std::fs::write(broken.path().join("nimbus.toml"), &manifest).unwrap();
    std::fs::write(broken.path().join("echo.wasm"), b"not wasm").unwrap();
    std::fs::write(broken.path().join("echo.cwasm.lz4"), b"not an artifact").unwrap();
    let rt = Runtime::start_in(&boot, broken.path(), &[]).await;
    let (ty, msg) = rt.init_failure().await;
    assert_eq!(ty, "Nimbus.Init.Artifact");
    assert!(
        msg.contains("echo.wasm") && msg.contains("not a valid WebAssembly component"),
        "{msg}"
    );

    // No manifest at all.
    let empty = tempfile::tempdir().unwrap();
    let rt = Runtime::start_in(&boot, empty.path(), &[]).await;
    let (ty, msg) = rt.init_failure().await;
    assert_eq!(ty, "Nimbus.Init.NoManifest");
    assert!(msg.contains("nimbus.toml"), "{msg}");
}

#[tokio::test]
async fn a_stale_or_foreign_artifact_falls_back_to_the_wasm() {
    let base = &packaged().tasks.join("echo");
    let dir = tempfile::tempdir().unwrap();
    for f in ["nimbus.toml", "echo.wasm"] {
        std::fs::copy(base.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("echo.cwasm.lz4"), b"NIMBUS\0A garbage").unwrap();
    let rt = Runtime::start_in(&base.join("bootstrap"), dir.path(), &[]).await;
    let out = rt.invoke(json!({"still": "works"})).await.json();
    assert_eq!(out["echo"], json!({"still": "works"}));
    let host = rt.host_logs();
    assert!(
        host.iter().any(|l| l.contains("precompiled artifact not usable")),
        "the fallback is logged: {host:?}"
    );
}

#[test]
fn packages_are_self_contained_or_split_into_layer_and_code() {
    let dist = &packaged().dist;
    let full = zip_entries(&dist.join("echo.zip"));
    let names: Vec<&str> = full.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["bootstrap", "echo.cwasm.lz4", "echo.wasm", "nimbus.toml"]);
    assert_eq!(full[0].1, Some(0o755), "bootstrap is executable");
    let thin: Vec<String> = zip_entries(&dist.join("echo-code.zip"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(thin, ["echo.cwasm.lz4", "echo.wasm", "nimbus.toml"]);
    let layer = zip_entries(&dist.join("nimbus-runtime.zip"));
    assert_eq!(layer, [("bootstrap".to_owned(), Some(0o755))]);
    let config: Vec<String> = zip_entries(&dist.join("needs-config.zip"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(config.contains(&"config/token".to_owned()), "{config:?}");

    // The packaged manifest holds just that function, pointing at the package's files.
    let manifest = std::fs::read_to_string(packaged().tasks.join("echo/nimbus.toml")).unwrap();
    assert!(manifest.contains("component = \"echo.wasm\""), "{manifest}");
    assert!(manifest.contains("precompiled = \"echo.cwasm.lz4\""), "{manifest}");
    assert!(!manifest.contains("http-echo"), "{manifest}");
}

/// `<function>.json`, what the Terraform modules read: every field, for each kind of function.
#[test]
fn packages_describe_each_function_for_terraform() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let dist = &packaged().dist;
    let describe = |name: &str| -> Value {
        let text = std::fs::read_to_string(dist.join(format!("{name}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let d = describe("described");
    for (file, sum) in [
        ("zip", "zip_sha256"),
        ("code_zip", "code_zip_sha256"),
        ("layer_zip", "layer_zip_sha256"),
    ] {
        let bytes = std::fs::read(dist.join(d["packages"][file].as_str().unwrap())).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&bytes));
        assert_eq!(d["packages"][sum], expected, "{file}");
    }
    let mut d = d;
    d.as_object_mut().unwrap().remove("packages");
    assert_eq!(
        d,
        json!({
            "format": "nimbus.function/1",
            "app": "lambda-suite",
            "function": "described",
            "kind": "http",
            "architecture": "x86_64",
            "runtime": "provided.al2023",
            "handler": "bootstrap",
            "timeout_seconds": 2,
            "memory_mb": 428,
            "instance_memory_mb": 300,
            "reuse": false,
            "routes": ["GET /items/{id}", "POST /items", "ANY /{rest+}"],
            "websocket": null,
            "task": null,
            "ssm_parameters": ["/shop/db/password", "flat-name"],
            "ssm_paths": ["/shop/all/"],
            "env_vars": [{"name": "AWS_REGION", "required": false}, {"name": "PAYMENT_KEY", "required": true}],
            "keyvalue_buckets": ["carts", "sessions"],
            "outbound_hosts": ["https://api.example.com:443", "http://127.0.0.1:*"]
        })
    );
    let packages = describe("echo")["packages"].clone();
    assert_eq!(
        (&packages["zip"], &packages["code_zip"], &packages["layer_zip"]),
        (
            &json!("echo.zip"),
            &json!("echo-code.zip"),
            &json!("nimbus-runtime.zip")
        )
    );

    let task = describe("sha-task");
    assert_eq!(task["kind"], "task");
    assert_eq!(task["timeout_seconds"], 1);
    assert_eq!(
        task["routes"],
        json!(["POST /tasks/sha-task", "GET /tasks/sha-task/{id}"])
    );
    assert_eq!(
        task["task"],
        json!({"max_checkpoint_bytes": 8 << 20, "yield_margin_ms": 850, "max_attempts": 3})
    );
    let ws = describe("ws");
    assert_eq!((&ws["kind"], &ws["routes"]), (&json!("websocket"), &json!([])));
    assert_eq!(
        ws["websocket"],
        json!({"route_selection_expression": "$request.body.action",
               "route_keys": ["$connect", "$disconnect", "$default"]})
    );
    let chat = describe("chat");
    assert_eq!(chat["keyvalue_buckets"], json!(["rooms"]));
    assert_eq!(describe("echo")["kind"], "event");
    assert_eq!(describe("warm")["reuse"], true);
    assert_eq!(
        describe("needs-config")["env_vars"],
        json!([{"name": "NIMBUS_TEST_API_KEY", "required": true}])
    );
}

#[tokio::test]
async fn layer_bootstrap_serves_a_thin_function_package() {
    let dist = &packaged().dist;
    let dir = tempfile::tempdir().unwrap();
    unzip(&dist.join("nimbus-runtime.zip"), &dir.path().join("opt"));
    unzip(&dist.join("echo-code.zip"), &dir.path().join("task"));
    let rt = Runtime::start_in(
        &dir.path().join("opt/bootstrap"),
        &dir.path().join("task"),
        &[("NIMBUS_LOG", "info")],
    )
    .await;
    let out = rt.invoke(json!({"layer": true})).await.json();
    assert_eq!(out["echo"], json!({"layer": true}));
    assert!(rt.emu.first_next().unwrap() > rt.started);
    // The packaged artifact was used as is (unzipping leaves file times arbitrary).
    let host = rt.host_logs();
    assert!(
        host.iter()
            .any(|l| l.contains("init done") && l.contains("\"loaded_from\":\"Precompiled\"")),
        "{host:?}"
    );
    assert!(
        host.iter()
            .any(|l| l.contains("init done") && l.contains("\"app\":\"lambda-suite\"")),
        "{host:?}"
    );
}

#[test]
fn arm64_packages_carry_a_cross_compiled_artifact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nimbus.toml"),
        format!("manifest_version = 1\n[function.echo]\ncomponent = \"{ECHO}\"\n"),
    )
    .unwrap();
    // `nimbus package` checks the bootstrap's ELF machine; building a real
    // arm64 bootstrap is `scripts/build-bootstrap arm64`, too slow for a test.
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[18] = 183; // EM_AARCH64
    let fake = dir.path().join("bootstrap-arm64");
    std::fs::write(&fake, &elf).unwrap();
    let out = nimbus()
        .current_dir(dir.path())
        .args(["package", "--arch", "arm64", "--bootstrap"])
        .arg(&fake)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let task = dir.path().join("task");
    unzip(&dir.path().join("dist/lambda-arm64/echo.zip"), &task);
    let art = std::fs::read(task.join("echo.cwasm.lz4")).unwrap();
    let (header, _) = nimbus_core::artifact::read_header(&art).unwrap();
    assert_eq!(header.target, "aarch64-linux");
    assert!(nimbus_core::artifact::unpack(&art).is_ok(), "intact");

    // The x86_64 bootstrap in place of the fake one is refused with the fix named.
    let out = nimbus()
        .current_dir(dir.path())
        .args([
            "package",
            "--arch",
            "arm64",
            "--bootstrap",
            env!("CARGO_BIN_EXE_bootstrap"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not built for arm64") && err.contains("scripts/build-bootstrap"),
        "{err}"
    );
}

#[test]
fn bootstrap_outside_lambda_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not running on AWS Lambda") && err.contains("nimbus serve"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// `bootstrap`'s first log line names the platform it chose and why: Lambda from its own variable.
#[test]
fn bootstrap_says_first_which_platform_it_chose_and_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        // A Runtime API nobody serves and a manifest that is not there: init fails, after the first line.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .env("AWS_LAMBDA_FUNCTION_NAME", "hello")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("NIMBUS_MANIFEST", "/nonexistent/nimbus.toml")
        .env_remove("NIMBUS_PLATFORM")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let first: serde_json::Value = serde_json::from_str(err.lines().next().unwrap_or_default()).expect(&err);
    assert_eq!(first["fields"]["platform"], "lambda", "{err}");
    assert_eq!(first["fields"]["reason"], "AWS_LAMBDA_RUNTIME_API is set", "{err}");
    assert!(err.contains("/nonexistent/nimbus.toml"), "{err}");
}

/// Off Lambda the platform is recognised and named first (`--platform` overrides the environment), and an
/// init error (here: no manifest) names its cause instead of serving.
#[test]
fn bootstrap_off_lambda_names_its_platform_then_what_stops_it() {
    let missing = std::env::temp_dir().join("nimbus-no-such-dir/nimbus.toml");
    let port = nimbus_tests::process::free_port().to_string();
    for (env, flag, platform, reason) in [
        (("FC_FUNCTION_NAME", "hello"), None, "fc", "FC_FUNCTION_NAME is set"),
        (("K_SERVICE", "hello"), None, "knative", "K_SERVICE is set"),
        (
            ("FUNCTIONS_CUSTOMHANDLER_PORT", port.as_str()),
            None,
            "azure",
            "FUNCTIONS_CUSTOMHANDLER_PORT is set",
        ),
        (("NIMBUS_PLATFORM", "fc"), Some("azure"), "azure", "--platform azure"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
            .env("NIMBUS_MANIFEST", &missing)
            .env("PORT", &port)
            .env(env.0, env.1);
        if let Some(flag) = flag {
            cmd.args(["--platform", flag]);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let first: serde_json::Value = serde_json::from_str(err.lines().next().unwrap_or_default()).expect(&err);
        assert_eq!(first["fields"]["platform"], platform, "{err}");
        assert_eq!(first["fields"]["reason"], reason, "{err}");
        assert!(
            err.contains("init failed") && err.contains("nimbus-no-such-dir") && !err.contains("panicked"),
            "the missing manifest is named: {err}"
        );
    }
}

/// Durable tasks checkpoint to the AWS store, and WebSocket functions need API Gateway's WebSocket API or
/// `nimbus serve`: off AWS both are refused at init, naming the function, its kind and the platform.
#[test]
fn task_and_websocket_functions_are_refused_off_aws() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("nimbus.toml");
    std::fs::write(
        &manifest,
        format!(
            "manifest_version = 1\n[function.job]\ncomponent = \"{SHA_TASK}\"\n\
             [function.ws]\ncomponent = \"{WS_ECHO}\"\nwebsocket = {{ subprotocols = [\"chat.v1\"] }}\n"
        ),
    )
    .unwrap();
    let port = nimbus_tests::process::free_port().to_string();
    for platform in ["fc", "knative", "azure"] {
        for (function, says) in [("job", "durable tasks"), ("ws", "WebSocket functions")] {
            let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
                .args(["--platform", platform])
                .env_remove("AWS_LAMBDA_RUNTIME_API")
                .env("NIMBUS_MANIFEST", &manifest)
                .env("NIMBUS_FUNCTION", function)
                .env("FC_CUSTOM_LISTEN_PORT", &port)
                .env("PORT", &port)
                .env("FUNCTIONS_CUSTOMHANDLER_PORT", &port)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{platform} {function}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("Nimbus.Init.Unsupported")
                    && err.contains(&format!("function `{function}`"))
                    && err.contains(says)
                    && !err.contains("\"listening\"")
                    && !err.contains("panicked"),
                "{platform} {function}: {err}"
            );
        }
    }
}

/// A platform name `bootstrap` does not know is refused, by flag or by setting.
#[test]
fn bootstrap_names_an_unknown_platform() {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(["--platform", "gcp"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown platform \"gcp\"") && err.contains("lambda, fc, knative or azure"),
        "{err}"
    );
    // A bad NIMBUS_PLATFORM outside any platform is a settings error naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("NIMBUS_PLATFORM", "gcp")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NIMBUS_PLATFORM") && err.contains("\"gcp\""), "{err}");
}

/// Every real sample event in `tests/fixtures/events` reaches the right
/// handler: HTTP shapes become requests with the event's method and path,
/// the rest reach `events.handle` with the right source kind.
#[tokio::test]
async fn real_sample_events_map() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/events");
    let http = Runtime::start("http-echo", &[]).await;
    let events = Runtime::start("echo", &[]).await;
    let mut seen = 0;
    for path in fixture_files(&fixtures) {
        let text = std::fs::read_to_string(&path).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
        let kind = expected_kind(&name, &event);
        let what = format!("{} ({kind})", path.display());
        match kind {
            "http" => {
                let resp = http.invoke(event.clone()).await.json();
                assert_eq!(resp["statusCode"], 200, "{what}: {resp}");
                let e = echoed(&resp);
                let method = event["httpMethod"]
                    .as_str()
                    .or(event["requestContext"]["http"]["method"].as_str())
                    .unwrap();
                assert_eq!(e["method"], method, "{what}");
                assert!(e["path"].as_str().unwrap().starts_with('/'), "{what}");
            }
            "websocket" => {
                let (ty, msg) = http.invoke(event).await.error();
                assert_eq!(ty, "Function.BadEvent", "{what}");
                assert!(msg.contains("WebSocket"), "{what}: {msg}");
            }
            source => {
                let out = events.invoke(event.clone()).await.json();
                assert_eq!(out["source"], source, "{what}");
                assert_eq!(out["echo"], event, "{what}: the payload arrives unchanged");
            }
        }
        seen += 1;
    }
    assert!(seen >= 40, "only {seen} fixtures found under {}", fixtures.display());
}

fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(fixture_files(&p));
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// What a fixture should map to, from its file name (the names come from
/// `aws_lambda_events` and `sam local generate-event`).
fn expected_kind(name: &str, event: &Value) -> &'static str {
    if name.contains("websocket") {
        "websocket"
    } else if name.contains("apigw")
        || name.contains("apigateway")
        || name.contains("alb")
        || name.contains("functionurl")
        || name.contains("function-url")
        || name.contains("aws-proxy")
    {
        "http"
    } else if name.contains("sqs") {
        "sqs"
    } else if name.contains("sns") {
        "sns"
    } else if name.contains("s3") {
        "s3"
    } else if name.contains("dynamodb") {
        "dynamodb"
    } else if name.contains("kinesis") {
        "kinesis"
    } else if name.contains("scheduled") || event["detail-type"] == "Scheduled Event" {
        "schedule"
    } else if name.contains("eventbridge") || name.contains("cloudwatch") {
        "eventbridge"
    } else {
        "direct"
    }
}

#[tokio::test]
async fn a_warm_function_keeps_its_instance_between_invocations_until_it_traps() {
    let rt = Runtime::start("warm", &[("NIMBUS_METRICS", "emf")]).await;
    let get = |path: &str| {
        json!({"version": "2.0", "rawPath": path, "headers": {"host": "h"},
               "requestContext": {"http": {"method": "GET"}, "stage": "$default"}, "isBase64Encoded": false})
    };
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let mut seen = Vec::new();
    for _ in 0..3 {
        let opts = InvokeOptions {
            trace_id: Some(xray.into()),
            ..InvokeOptions::default()
        };
        let ctx = echoed(&rt.emu.invoke_with(get("/").to_string(), opts).await.json());
        assert_eq!(ctx["xray"], xray, "xray_trace_id() in a warm instance");
        assert!(
            ctx["xray_env"].is_null(),
            "no stale _X_AMZN_TRACE_ID in a warm instance"
        );
        seen.push(ctx["calls"].as_u64().unwrap());
    }
    assert_eq!(seen, [1, 2, 3]);
    // A trap is a 500 in the source's shape, and the next invocation gets a new instance.
    let resp = rt.invoke(get("/panic")).await.json();
    assert_eq!(resp["statusCode"], 500);
    assert_eq!(echoed(&rt.invoke(get("/")).await.json())["calls"], 1);
    assert_eq!(echoed(&rt.invoke(get("/")).await.json())["calls"], 2);

    // NIMBUS_METRICS=emf: one CloudWatch EMF line per invocation on stdout,
    // the first one a cold start, the trap counted as an error.
    let until = Instant::now() + Duration::from_secs(10);
    let emf = loop {
        let emf: Vec<Value> = rt
            .logs()
            .iter()
            .filter(|l| l.contains("\"_aws\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if emf.len() >= 6 || Instant::now() > until {
            break emf;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(emf.len(), 6, "{emf:?}");
    assert_eq!(emf[0]["ColdStart"], true);
    assert!(emf[0]["InitDuration"].as_f64().is_some());
    assert_eq!(emf[3]["error_type"], "Nimbus.Trap");
    assert!(
        emf.iter()
            .all(|r| r["function"] == "warm" && r["request_id"].as_str().is_some_and(|id| !id.is_empty()))
    );
    assert!(emf.iter().all(|r| r["app"] == "lambda-suite"), "{emf:?}");
}

#[tokio::test]
async fn spans_reach_the_collector_before_each_result_is_returned() {
    let receiver = nimbus_tests::otlp_receiver::OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    // Batches are only sent by the per-invocation flush here: the background
    // schedule is a minute away. The flush bound is generous for a slow machine.
    let rt = Runtime::start(
        "warm",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
            ("NIMBUS_OTEL_FLUSH_TIMEOUT_MS", "10000"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]abc"),
        ],
    )
    .await;
    let get = json!({"version": "2.0", "rawPath": "/orders", "headers": {"host": "h"},
                     "requestContext": {"http": {"method": "GET"}, "stage": "$default"}, "isBase64Encoded": false});
    for (i, root) in ["5759e988bd862e3fe1be46a994272790", "5759e988bd862e3fe1be46a994272791"]
        .into_iter()
        .enumerate()
    {
        let opts = InvokeOptions {
            trace_id: Some(format!(
                "Root=1-{}-{};Parent=53995c3f42cd8ad8;Sampled=1",
                &root[..8],
                &root[8..]
            )),
            ..InvokeOptions::default()
        };
        let ctx = echoed(&rt.emu.invoke_with(get.to_string(), opts).await.json());
        let rid = rt.emu.last_request_id().unwrap();
        // Flushed before the result was posted: the span is there already
        // (a short grace for the receiver's bookkeeping only).
        let spans = receiver
            .wait_for(Duration::from_secs(2), |s| s.iter().any(|s| s.trace_id == root))
            .await;
        let inv: Vec<_> = spans.iter().filter(|s| s.trace_id == root).collect();
        assert_eq!(inv.len(), 1, "{spans:#?}");
        let inv = inv[0];
        assert_eq!(inv.attr("faas.invocation_id"), rid.as_str());
        assert_eq!(inv.attr("faas.coldstart"), i == 0, "cold only on the first invocation");
        assert_eq!(inv.attr("faas.trigger"), "http");
        assert_eq!(inv.attr("http.response.status_code"), 200);
        assert_eq!(inv.attr("url.path"), "/orders");
        assert_eq!(inv.parent_span_id, "53995c3f42cd8ad8", "Lambda's segment is the parent");
        // The guest (a warm instance from the second call on) sees the invocation span as its parent.
        assert_eq!(
            ctx["traceparent"],
            format!("00-{root}-{}-01", inv.span_id),
            "guest context on call {}",
            i + 1
        );
        for (k, v) in [
            ("service.name", json!("nimbus-test")),
            ("service.namespace", json!("lambda-suite")),
            ("cloud.provider", json!("aws")),
            ("cloud.platform", json!("aws_lambda")),
            ("cloud.region", json!("eu-west-1")),
            ("faas.name", json!("nimbus-test")),
            ("faas.version", json!("$LATEST")),
            ("faas.instance", json!("2026/11/25/[$LATEST]abc")),
            ("faas.max_memory", json!(128 * 1024 * 1024)),
        ] {
            assert_eq!(inv.resource.get(k), Some(&v), "resource {k}");
        }
    }
    let spans = receiver.spans();
    let init: Vec<_> = spans.iter().filter(|s| s.name == "nimbus.init").collect();
    assert_eq!(init.len(), 1, "one init span: {spans:#?}");
    assert_eq!(init[0].attr("faas.coldstart"), true);
}

#[tokio::test]
async fn otlp_metrics_reach_the_collector_before_each_result_is_returned() {
    use nimbus_tests::otlp_receiver::ReceivedPoint;
    // The last point of `metric` for function `warm` (cumulative: the total so far).
    fn last<'a>(points: &'a [ReceivedPoint], metric: &str, error: Option<&str>) -> Option<&'a ReceivedPoint> {
        points.iter().rfind(|p| {
            p.metric == metric && p.attr("faas.name") == "warm" && error.is_none_or(|e| p.attr("error.type") == e)
        })
    }
    let receiver = nimbus_tests::otlp_receiver::OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    // Only the per-invocation flush exports here: the periodic export is ten
    // minutes away. The flush bound is generous for a slow machine. Both
    // signals are asked to compress.
    let rt = Runtime::start(
        "warm",
        &[
            ("NIMBUS_METRICS", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
            ("NIMBUS_OTEL_FLUSH_TIMEOUT_MS", "10000"),
            ("AWS_REGION", "eu-west-1"),
        ],
    )
    .await;
    let get = |path: &str| {
        json!({"version": "2.0", "rawPath": path, "headers": {"host": "h"},
               "requestContext": {"http": {"method": "GET"}, "stage": "$default"}, "isBase64Encoded": false})
    };
    for n in 1..=2 {
        assert_eq!(echoed(&rt.invoke(get("/")).await.json())["calls"], n);
        // Flushed before the result was posted (an HTTP invocation is
        // measured when its guest returns, after the response): the count
        // is there already, a short grace for the receiver's bookkeeping only.
        let until = Instant::now() + Duration::from_secs(2);
        while last(&receiver.points(), "faas.invocations", None).is_none_or(|p| p.value < n as f64)
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let points = receiver.points();
        let inv = last(&points, "faas.invocations", None).unwrap_or_else(|| panic!("{points:#?}"));
        assert_eq!(inv.value, n as f64, "after invocation {n}");
        assert_eq!(inv.attr("faas.trigger"), "http");
        let duration = last(&points, "faas.invoke_duration", None).unwrap();
        assert_eq!(duration.count, n as u64);
        assert!(duration.value > 0.0);
        assert!(last(&points, "faas.mem_usage", None).unwrap().min_max.0.unwrap() >= 65536.0);
        for (k, v) in [
            ("service.name", json!("nimbus-test")),
            ("service.namespace", json!("lambda-suite")),
            ("cloud.platform", json!("aws_lambda")),
            ("cloud.region", json!("eu-west-1")),
            ("faas.name", json!("nimbus-test")),
        ] {
            assert_eq!(inv.resource.get(k), Some(&v), "resource {k}");
        }
    }
    assert_eq!(rt.invoke(get("/panic")).await.json()["statusCode"], 500);
    let until = Instant::now() + Duration::from_secs(2);
    while last(&receiver.points(), "faas.errors", Some("Nimbus.Trap")).is_none() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let points = receiver.points();
    assert_eq!(
        last(&points, "faas.errors", Some("Nimbus.Trap")).map(|p| p.value),
        Some(1.0),
        "{points:#?}"
    );
    let init = last(&points, "faas.init_duration", None).unwrap();
    assert_eq!(init.count, 1, "one cold start");
    // Spans went to the same collector, flushed alongside.
    assert!(receiver.spans().iter().any(|s| s.name == "warm"));
    // Every request of both signals came gzip-compressed.
    assert!(receiver.gzipped("/v1/metrics") >= 3, "metrics compressed");
    assert!(receiver.gzipped("/v1/traces") >= 1, "spans compressed");
    assert_eq!(
        receiver.gzipped("/v1/metrics") + receiver.gzipped("/v1/traces"),
        receiver.requests() as usize,
        "nothing sent uncompressed"
    );
}

/// An endpoint the exporter cannot use (TLS: export is plain HTTP) turns span export off with one warning
/// naming the variable; the function serves as before.
#[tokio::test]
async fn a_tls_span_endpoint_is_a_warning_not_an_outage() {
    let rt = Runtime::start(
        "warm",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example.com")],
    )
    .await;
    let get = json!({"version": "2.0", "rawPath": "/", "headers": {"host": "h"},
                     "requestContext": {"http": {"method": "GET"}, "stage": "$default"}, "isBase64Encoded": false});
    assert_eq!(echoed(&rt.invoke(get).await.json())["calls"], 1);
    let logs = rt.host_logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("span export is off")
                && l.contains("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// URL")),
        "{logs:#?}"
    );
}

/// `NIMBUS_POOL_INSTANCES` sizes `bootstrap`'s instance pool: unset, the pool is the least that fits one
/// invocation at a time (4 slots); set, it is used (before, boot overwrote it with that least). A bad value
/// of a setting is an init error naming it.
#[tokio::test]
async fn bootstrap_sizes_its_pool_from_nimbus_pool_instances() {
    for (asked, pool) in [(None, 4), (Some("12"), 12)] {
        let mut env = vec![("NIMBUS_LOG", "warn,nimbus_core::engine=debug")];
        env.extend(asked.map(|n| ("NIMBUS_POOL_INSTANCES", n)));
        let rt = Runtime::start("echo", &env).await;
        assert_eq!(rt.invoke(json!({"a": 1})).await.json()["echo"], json!({"a": 1}));
        let line = rt
            .host_log_line("engine settings", Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{:?}", rt.host_logs()));
        let fields = &serde_json::from_str::<Value>(&line).unwrap()["fields"];
        assert_eq!(
            fields["pool_instances"], pool,
            "NIMBUS_POOL_INSTANCES={asked:?}: {line}"
        );
    }
    let mut rt = Runtime::start("echo", &[("NIMBUS_POOL_INSTANCES", "many")]).await;
    let (ty, msg) = rt.init_failure().await;
    assert_eq!(ty, "Nimbus.Init.Setting");
    assert!(
        msg.contains("NIMBUS_POOL_INSTANCES") && msg.contains("\"many\""),
        "{msg}"
    );
    assert_ne!(rt.exit_code(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn otlp_metrics_without_a_collector_are_an_init_error() {
    let mut rt = Runtime::start("echo", &[("NIMBUS_METRICS", "otlp")]).await;
    let (ty, msg) = rt.init_failure().await;
    assert_eq!(ty, "Nimbus.Init.Setting");
    assert!(
        msg.contains("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") && msg.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{msg}"
    );
    assert_ne!(rt.exit_code(Duration::from_secs(10)).await, Some(0));
}

/// An HTTP API (v2) request event.
fn http_api(method: &str, path: &str, headers: Value, body: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "1.2.3.4", "userAgent": "test"},
                           "stage": "$default", "domainName": "api.example.com", "requestId": "r",
                           "apiId": "api", "accountId": "123456789012", "routeKey": "$default",
                           "time": "26/Nov/2026:10:00:00 +0000", "timeEpoch": 1},
        "body": body, "isBase64Encoded": false
    })
}

/// The JSON body of an HTTP answer, with its status.
fn http_json(resp: &Value) -> (u64, Value) {
    let body = resp["body"].as_str().unwrap_or_else(|| panic!("no text body: {resp}"));
    (
        resp["statusCode"].as_u64().expect("statusCode"),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}")),
    )
}

/// The Runtime API listens on loopback beside whatever local services a function may be allowed to call:
/// `http://127.0.0.1:*` opens those, never the Runtime API (a guest reaching it could take other
/// invocations' events). `bootstrap` reads its address from `AWS_LAMBDA_RUNTIME_API`.
#[tokio::test]
async fn guests_never_reach_the_runtime_api() {
    let up = nimbus_tests::upstream::Upstream::status(207).await;
    let rt = Runtime::start("fetch", &[]).await;
    let fetch = |url: String| {
        let mut event = http_api("GET", "/fetch", json!({}), "");
        event["rawQueryString"] = format!("url={url}").into();
        event
    };
    let (status, body) = http_json(&rt.invoke(fetch(format!("http://{}/x", up.addr))).await.json());
    assert_eq!((status, &body["status"]), (200, &json!(207)), "{body}");
    let api = rt.emu.runtime_api();
    let (_, body) = http_json(&rt.invoke(fetch(format!("http://{api}/2018-06-01/ping"))).await.json());
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("DestinationIpProhibited")),
        "{body}"
    );
    // The log line arrives through a pipe, after the answer.
    let logs = rt.wait_for_log(&["outbound request refused"]).await;
    let refusal = logs
        .iter()
        .find(|l| l.contains("outbound request refused"))
        .unwrap_or_else(|| panic!("no refusal logged: {logs:?}"));
    assert!(refusal.contains("platform control endpoint"), "{refusal}");
}

/// A task function on Lambda, on the AWS store (moto): started through API Gateway (idempotently) and by an
/// EventBridge event, continued by records from the continuation queue — the test plays the SQS event source
/// mapping — and cut off by a short Lambda timeout many times. The result equals the uninterrupted one.
#[tokio::test]
async fn durable_task_runs_across_many_lambda_invocations_on_the_aws_store() {
    let moto = nimbus_tests::moto::shared();
    let store = moto.task_store("lambda-task").await;
    let env = store.env(moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rt = Runtime::start("sha-task", &env).await;
    let short = InvokeOptions {
        timeout: Duration::from_secs(1),
        ..InvokeOptions::default()
    };

    let start = http_api(
        "POST",
        "/tasks/sha-task",
        json!({"content-type": "application/json", "idempotency-key": "order-7"}),
        r#"{"mib": 64, "seed": 5}"#,
    );
    let (status, started) = http_json(&rt.invoke(start.clone()).await.json());
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["created"], true);
    let id = started["task_id"].as_str().expect("task id").to_owned();
    assert_eq!(started["status_url"], format!("/tasks/sha-task/{id}"));
    let (status, again) = http_json(&rt.invoke(start).await.json());
    assert_eq!(
        (status, &again["task_id"], &again["created"]),
        (202, &json!(id), &json!(false))
    );

    // An event starts a task too, keyed by its own id: a redelivery starts nothing new.
    let event = json!({"version": "0", "id": "ev-42", "detail-type": "Job", "source": "app", "account": "1",
                       "time": "2026-11-26T10:00:00Z", "region": "us-east-1", "resources": [],
                       "detail": {"mib": 2}, "mib": 3, "seed": 1});
    let first = rt.invoke(event.clone()).await.json();
    let second = rt.invoke(event).await.json();
    assert_eq!(first["created"], true, "{first}");
    assert_eq!(
        (&second["task_id"], &second["created"]),
        (&first["task_id"], &json!(false))
    );

    // The event source mapping, one record per batch, until the queue is empty and both tasks are done.
    let until = Instant::now() + Duration::from_secs(240);
    let mut invocations = 0;
    let status_of = |task: &str| http_api("GET", &format!("/tasks/sha-task/{task}"), json!({}), "");
    loop {
        assert!(
            Instant::now() < until,
            "tasks not done; host logs: {:?}",
            rt.host_logs()
        );
        let Some(batch) = store.esm_receive(moto, 1, Duration::from_secs(5)).await else {
            let (_, a) = http_json(&rt.invoke(status_of(&id)).await.json());
            let (_, b) = http_json(&rt.invoke(status_of(first["task_id"].as_str().unwrap())).await.json());
            if a["status"] == "done" && b["status"] == "done" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let resp = rt.emu.invoke_with(batch.event.to_string(), short.clone()).await.json();
        invocations += 1;
        let failures: Vec<String> = resp["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("not a batch response: {resp}"))
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(
            failures.is_empty(),
            "a run failed: {resp}; host logs: {:?}",
            rt.host_logs()
        );
        store.esm_complete(moto, &batch, &failures).await;
    }

    let (status, record) = http_json(&rt.invoke(status_of(&id)).await.json());
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(
        record["result"]["sha256"],
        nimbus_tests::native::sha_chain(64, 5),
        "{record}"
    );
    let runs = record["runs"].as_u64().unwrap();
    assert!(runs >= 5, "the task needed only {runs} runs: {record}");
    assert!(
        invocations as u64 >= runs,
        "{invocations} SQS invocations for {runs} runs"
    );
    let (_, small) = http_json(&rt.invoke(status_of(first["task_id"].as_str().unwrap())).await.json());
    assert_eq!(
        small["result"]["sha256"],
        nimbus_tests::native::sha_chain(3, 1),
        "{small}"
    );

    // Unknown ids and other paths are answered in the source's shape.
    let (status, _) = http_json(&rt.invoke(status_of("no-such-task")).await.json());
    assert_eq!(status, 404);
    let (status, body) = http_json(&rt.invoke(http_api("GET", "/elsewhere", json!({}), "")).await.json());
    assert_eq!(status, 404, "{body}");
}

/// An SQS record without a `messageId` can neither key a task (an empty key would make every such record one
/// task) nor be named in `batchItemFailures` (Lambda fails the whole batch for an empty or missing
/// `itemIdentifier`): the invocation fails, naming it, so the whole batch comes back; the records with an id
/// are served first, and a redelivery starts no second task for them.
#[tokio::test]
async fn a_task_functions_sqs_record_without_a_message_id_fails_the_whole_batch() {
    let moto = nimbus_tests::moto::shared();
    let store = moto.task_store("lambda-task-no-id").await;
    let env = store.env(moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rt = Runtime::start("sha-task", &env).await;
    // Records of another queue than the continuation queue: each starts a task.
    let record = |id: Option<&str>, seed: u64| {
        let mut r = json!({"receiptHandle": "r", "body": json!({"mib": 1, "seed": seed}).to_string(),
                           "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders"});
        if let Some(id) = id {
            r["messageId"] = json!(id);
        }
        r
    };
    let batch = json!({"Records": [record(Some("m1"), 1), record(None, 2), record(Some(""), 3)]});
    for _ in 0..2 {
        let (kind, message) = rt.invoke(batch.clone()).await.error();
        assert_eq!(kind, "Function.BadEvent", "{message}");
        assert!(
            message.contains("without a messageId (number 2, 3 of 3)") && message.contains("whole batch"),
            "{message}"
        );
    }
    let logs = rt.wait_for_log(&["invocation failed", "without a messageId"]).await;
    assert!(
        logs.iter()
            .any(|l| l.contains("Function.BadEvent") && l.contains("without a messageId")),
        "{logs:?}"
    );
    // The record with an id started its task once, under its message id (the key space the task API shares).
    let start = http_api(
        "POST",
        "/tasks/sha-task",
        json!({"content-type": "application/json", "idempotency-key": "sqs:m1"}),
        r#"{"mib": 1, "seed": 1}"#,
    );
    let (status, started) = http_json(&rt.invoke(start).await.json());
    assert_eq!((status, &started["created"]), (202, &json!(false)), "{started}");
}

/// A task function without its store's settings fails init, naming what is missing.
#[tokio::test]
async fn task_function_without_a_store_is_an_init_error() {
    let rt = Runtime::start("sha-task", &[]).await;
    let (kind, message) = rt.init_failure().await;
    assert_eq!(kind, "Nimbus.Init.TaskStore");
    assert!(message.contains("NIMBUS_STATE_BUCKET"), "{message}");
}

/// An API Gateway WebSocket event for connection `c1` of API `abc123`, stage `prod`.
fn ws_event(route: &str, body: Option<&str>, base64: bool, extra: Value) -> Value {
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    let mut ctx = json!({
        "routeKey": route, "eventType": event_type, "connectionId": "c1", "stage": "prod",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "apiId": "abc123",
        "requestId": "r", "messageDirection": "IN", "connectedAt": 1, "requestTimeEpoch": 1,
        "identity": {"sourceIp": "203.0.113.9"}
    });
    if let (Some(c), Some(e)) = (ctx.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"requestContext": ctx, "body": body, "isBase64Encoded": base64})
}

/// API Gateway WebSocket events map to the `websocket` export, answers come back as route responses, and
/// `connections` sends reach the API Gateway Management API (moto, behind a recording proxy that also
/// plays a gone connection).
#[tokio::test]
async fn websocket_events_map_to_the_export_and_sends_reach_the_management_api() {
    use nimbus_tests::fault_proxy::{Fault, FaultProxy};
    let proxy = FaultProxy::start(&nimbus_tests::moto::shared().endpoint()).await;
    proxy.inject(Fault::gone_connection("gone-1"));
    // moto serves the Management API only at the root (`/@connections/...`), not under a stage path.
    let endpoint = proxy.endpoint();
    let env = [
        ("NIMBUS_WEBSOCKET_ENDPOINT", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let rt = Runtime::start("ws", &env).await;

    let connect = ws_event("$connect", None, false, json!({}));
    assert_eq!(rt.invoke(connect).await.json(), json!({"statusCode": 200}));
    // The subprotocol the manifest prefers among those offered is the `$connect` response's header
    // (API Gateway passes it to the client); offering only others is refused without asking the function.
    let mut offering = ws_event("$connect", None, false, json!({}));
    offering["headers"] = json!({"Sec-WebSocket-Protocol": "chat.v1, chat.v2"});
    assert_eq!(
        rt.invoke(offering).await.json(),
        json!({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat.v2"}})
    );
    let mut others = ws_event("$connect", None, false, json!({}));
    others["multiValueHeaders"] = json!({"Sec-WebSocket-Protocol": ["mqtt"]});
    let refused = rt.invoke(others).await.json();
    assert_eq!(refused["statusCode"], 400, "{refused}");
    assert!(
        refused["body"].as_str().unwrap().contains("websocket.subprotocols"),
        "{refused}"
    );
    let mut denied = ws_event("$connect", None, false, json!({}));
    denied["queryStringParameters"] = json!({"deny": "1"});
    assert_eq!(
        rt.invoke(denied).await.json(),
        json!({"statusCode": 401, "body": "denied by query"})
    );

    let echo = rt
        .invoke(ws_event("sendmessage", Some("echo:hi"), false, json!({})))
        .await
        .json();
    assert_eq!(echo, json!({"statusCode": 200, "body": "sendmessage|hi"}));
    let binary = rt
        .invoke(ws_event("$default", Some("AQID"), true, json!({})))
        .await
        .json();
    assert_eq!(
        binary,
        json!({"statusCode": 200, "body": "AwIB", "isBase64Encoded": true})
    );

    let sent = rt
        .invoke(ws_event("sendmessage", Some("send:a,gone-1:hello"), false, json!({})))
        .await
        .json();
    assert_eq!(
        sent["body"],
        "ok=1 gone=1 other=",
        "{sent}; host logs: {:?}",
        rt.host_logs()
    );
    let closed = rt
        .invoke(ws_event("$default", Some("close:a"), false, json!({})))
        .await
        .json();
    assert_eq!(closed["body"], "close=ok", "{closed}");
    let seen = proxy.seen();
    let post = seen
        .iter()
        .find(|s| s.method == "POST" && s.path == "/@connections/a")
        .unwrap_or_else(|| panic!("no PostToConnection reached moto: {seen:?}"));
    assert_eq!(&post.body[..], b"hello");
    assert!(!post.faulted);
    assert!(seen.iter().any(|s| s.path == "/@connections/gone-1" && s.faulted));
    assert!(
        seen.iter().any(|s| s.method == "DELETE" && s.path == "/@connections/a"),
        "{seen:?}"
    );

    let disconnect = ws_event(
        "$disconnect",
        None,
        false,
        json!({"disconnectStatusCode": 1001, "disconnectReason": "Going away"}),
    );
    assert_eq!(rt.invoke(disconnect).await.json(), json!({"statusCode": 200}));
    // Guest output arrives through a pipe read on another thread.
    let until = Instant::now() + Duration::from_secs(10);
    while !rt.logs().join("\n").contains("disconnect c1") && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = rt.logs().join("\n");
    assert!(
        logs.contains("disconnect c1 code=Some(1001) reason=Going away"),
        "{logs}"
    );
    assert!(logs.contains("connect c1 path=/ ip=Some"), "{logs}");

    // A failing handler is a Lambda error (API Gateway answers the client with an internal error).
    let (kind, _) = rt
        .invoke(ws_event("$default", Some("fail"), false, json!({})))
        .await
        .error();
    assert_eq!(kind, "Function.Failed");
    // Not a WebSocket event: refused, naming what it takes.
    let (kind, message) = rt.invoke(json!({"hello": 1})).await.error();
    assert_eq!(kind, "Function.BadEvent");
    assert!(message.contains("API Gateway WebSocket events"), "{message}");
}

/// The chat example on Lambda: its rooms in DynamoDB (`NIMBUS_KV_TABLE`, moto), its broadcasts through
/// the Management API (moto behind the recording proxy). Every message is a separate invocation, so the
/// room exists only in the table.
#[tokio::test]
async fn chat_on_lambda_keeps_rooms_in_dynamodb_and_broadcasts_through_the_management_api() {
    use nimbus_tests::fault_proxy::FaultProxy;
    let moto = nimbus_tests::moto::shared();
    let table = moto.kv_table("chat").await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let endpoint = proxy.endpoint();
    let env = [
        ("NIMBUS_WEBSOCKET_ENDPOINT", endpoint.as_str()),
        ("NIMBUS_KV_TABLE", table.as_str()),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.endpoint()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let rt = Runtime::start("chat", &env).await;
    chat_conversation(&rt, &proxy, "abc123").await;
}

/// Two clients of the chat function join a room, one sends, the other leaves: each reply is the route
/// response, and each broadcast and notice reaches the Management API behind `proxy`.
async fn chat_conversation(rt: &Runtime, proxy: &nimbus_tests::fault_proxy::FaultProxy, api_id: &str) {
    let msg = |conn: &str, route: &str, body: Value| {
        let mut ev = ws_event(route, Some(&body.to_string()), false, json!({}));
        ev["requestContext"]["connectionId"] = json!(conn);
        ev["requestContext"]["apiId"] = json!(api_id);
        ev
    };
    let joined = rt
        .invoke(msg("c1", "join", json!({"room": "lobby", "name": "ann"})))
        .await
        .json();
    assert_eq!(
        joined["body"],
        r#"{"joined":"lobby","members":1}"#,
        "{joined}; host: {:?}",
        rt.host_logs()
    );
    rt.invoke(msg("c2", "join", json!({"room": "lobby", "name": "bob"})))
        .await
        .json();
    let sent = rt.invoke(msg("c2", "send", json!({"text": "hi"}))).await.json();
    assert_eq!(sent["body"], r#"{"sent":2}"#, "{sent}");
    let to_ann: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.path == "/@connections/c1")
        .map(|s| String::from_utf8_lossy(&s.body).into_owned())
        .collect();
    assert!(
        to_ann.contains(&r#"{"event":"joined","name":"bob"}"#.to_owned()),
        "{to_ann:?}"
    );
    assert!(
        to_ann.contains(&r#"{"event":"message","from":"bob","text":"hi"}"#.to_owned()),
        "{to_ann:?}"
    );
    let bye = ws_event(
        "$disconnect",
        None,
        false,
        json!({"connectionId": "c1", "apiId": api_id}),
    );
    assert_eq!(rt.invoke(bye).await.json(), json!({"statusCode": 200}));
    let to_bob = proxy
        .seen()
        .iter()
        .filter(|s| s.path == "/@connections/c2")
        .any(|s| s.body.as_ref() == br#"{"event":"left","name":"ann"}"#);
    assert!(to_bob, "bob hears that ann left");
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `AWS_LAMBDA_RUNTIME_API` as a URL with a path before `/2018-06-01` (`cargo lambda watch` sets
/// `http://127.0.0.1:9001/.rt/fn`): every call goes under it, `/init/error` included; a plain `http://host:port`
/// works too.
#[tokio::test]
async fn a_runtime_api_url_with_a_path_serves_events_and_takes_init_errors() {
    let emu = LambdaEmulator::start_at("/.rt/fn").await;
    assert!(emu.runtime_api().starts_with("http://127.0.0.1:") && emu.runtime_api().ends_with("/.rt/fn"));
    let rt = Runtime::start_on(emu, "event-check", &[]).await;
    assert_eq!(rt.invoke(json!({"n": 21})).await.json(), json!({"doubled": 42}));
    let (ty, msg) = rt.invoke(json!({"fail": "boom"})).await.error();
    assert_eq!(ty, "Function.Failed", "{msg}");
    assert_eq!(rt.invoke(json!({"n": 1})).await.json(), json!({"doubled": 2}));

    // A boot that fails (no manifest) is reported under the path too, and the process exits non-zero.
    let boot = packaged().tasks.join("echo").join("bootstrap");
    let empty = tempfile::tempdir().unwrap();
    let mut rt = Runtime::start_with(LambdaEmulator::start_at("/.rt/fn").await, &boot, empty.path(), &[]).await;
    let (ty, msg) = rt.init_failure().await;
    assert_eq!(ty, "Nimbus.Init.NoManifest", "{msg}");
    assert_ne!(rt.exit_code(Duration::from_secs(10)).await, Some(0));

    // `http://host:port`, no path: the same.
    let emu = LambdaEmulator::start().await;
    let url = emu.runtime_api_url();
    let rt = Runtime::start_with(emu, &boot, empty.path(), &[("AWS_LAMBDA_RUNTIME_API", &url)]).await;
    assert_eq!(rt.init_failure().await.0, "Nimbus.Init.NoManifest");
    let emu = LambdaEmulator::start().await;
    let url = emu.runtime_api_url();
    let rt = Runtime::start_on(emu, "echo", &[("AWS_LAMBDA_RUNTIME_API", &url)]).await;
    assert_eq!(rt.invoke(json!({"x": 1})).await.json()["echo"], json!({"x": 1}));
}

/// A `Lambda-Runtime-Deadline-Ms` that is no epoch time (`600000`, as another emulator sent: a timeout, not a
/// time), or none at all, leaves the manifest's timeout in force, not a zero budget; the warning comes once.
#[tokio::test]
async fn a_deadline_that_is_no_epoch_time_leaves_the_manifest_timeout_and_warns_once() {
    let rt = Runtime::start("context", &[]).await;
    let event = json!({"version": "2.0", "rawPath": "/", "headers": {"host": "h"},
                       "requestContext": {"http": {"method": "GET"}, "stage": "$default"}, "isBase64Encoded": false});
    let headers = [
        DeadlineHeader::Raw("600000".into()),
        DeadlineHeader::Raw("600000".into()),
        DeadlineHeader::Raw("0".into()),
        DeadlineHeader::Missing,
    ];
    for header in headers {
        let before = unix_ms();
        let opts = InvokeOptions {
            deadline_header: header.clone(),
            ..InvokeOptions::default()
        };
        let resp = rt.emu.invoke_with(event.to_string(), opts).await.json();
        let after = unix_ms();
        assert_eq!(resp["statusCode"], 200, "{header:?}: {resp}");
        let ctx = echoed(&resp);
        // The manifest's 30 s timeout, less what a slow machine spent getting the guest going.
        let remaining = ctx["remaining_ms"].as_u64().unwrap();
        assert!(
            (20_000..=30_000).contains(&remaining),
            "{header:?}: {remaining} ms left"
        );
        // Set 30 s after the invocation arrived, which was between `before` and `after` (on a loaded machine
        // the event can take a while to reach the runtime's long poll).
        let deadline = ctx["deadline_ms"].as_u64().unwrap();
        assert!(
            deadline >= before + 25_000 && deadline <= after + 30_000,
            "{header:?}: deadline {} ms after the request, {} ms after the answer",
            deadline.saturating_sub(before),
            deadline.saturating_sub(after)
        );
    }
    let warnings: Vec<String> = rt
        .host_logs()
        .into_iter()
        .filter(|l| l.contains("Lambda-Runtime-Deadline-Ms"))
        .collect();
    assert_eq!(warnings.len(), 1, "warned once per process: {warnings:?}");
    assert!(
        warnings[0].contains("600000") && warnings[0].contains("manifest timeout") && warnings[0].contains("WARN"),
        "{warnings:?}"
    );
    // A real deadline is still followed.
    let ctx = echoed(
        &rt.emu
            .invoke_with(event.to_string(), InvokeOptions::default())
            .await
            .json(),
    );
    assert!(ctx["remaining_ms"].as_u64().unwrap() <= 10_000, "{ctx}");
}

/// A Runtime API that cannot go on ends the process cleanly: exit code 1, one log line naming the call and
/// what was wrong, no panic (before, `lambda_runtime` panicked: exit 101).
#[tokio::test]
async fn runtime_api_failures_end_the_process_with_one_clear_line() {
    // A 500 from /next, which AWS documents as unrecoverable, after a good invocation.
    let mut rt = Runtime::start("echo", &[]).await;
    assert_eq!(rt.invoke(json!({"a": 1})).await.json()["echo"], json!({"a": 1}));
    rt.emu.fail_next(http::StatusCode::INTERNAL_SERVER_ERROR);
    let code = rt.exit_code(Duration::from_secs(20)).await;
    assert_eq!(code, Some(1), "{:?}", rt.host_logs());
    let line = rt
        .host_log_line(
            "GET /2018-06-01/runtime/invocation/next answered 500",
            Duration::from_secs(5),
        )
        .await;
    assert!(line.is_some(), "{:?}", rt.host_logs());
    let logs = rt.host_logs();
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:?}");

    // An event without its request id can never be answered: the runtime says so and exits.
    let mut rt = Runtime::start("echo", &[]).await;
    let opts = InvokeOptions {
        request_id_header: false,
        wait: Duration::from_secs(5),
        ..InvokeOptions::default()
    };
    assert_eq!(rt.emu.try_invoke(json!({"a": 2}).to_string(), opts).await, None);
    assert_eq!(
        rt.exit_code(Duration::from_secs(20)).await,
        Some(1),
        "{:?}",
        rt.host_logs()
    );
    let line = rt
        .host_log_line("Lambda-Runtime-Aws-Request-Id", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{:?}", rt.host_logs()));
    assert!(
        line.contains("invocation/next") && line.contains("cannot be answered"),
        "{line}"
    );
    let logs = rt.host_logs();
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:?}");
}

/// A `Host` header that is no valid URI authority (AWS's sample event says
/// `1234567890.execute-api.{dns_suffix}`) reaches the guest as given; the URI gets the event's domain name or
/// `localhost`. A `Host` the authority carries is not repeated as a header, as before.
#[tokio::test]
async fn a_host_header_that_is_no_authority_reaches_the_guest_as_given() {
    let rt = Runtime::start("http-echo", &[]).await;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/events/aws_lambda_events/example-apigw-console-request.json");
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    let resp = rt.invoke(sample).await.json();
    assert_eq!(resp["statusCode"], 200, "{resp}");
    let e = echoed(&resp);
    assert_eq!(
        header_values(&e, "host"),
        ["1234567890.execute-api.{dns_suffix}"],
        "{e}"
    );
    assert_eq!(e["authority"], "localhost");
    assert_eq!(e["path"], "/path/to/resource");

    // HTTP API (v2): the valid domain name is the authority, the odd host header stays.
    let v2 = json!({"version": "2.0", "rawPath": "/x", "headers": {"host": "id.execute-api.{dns_suffix}"},
                    "requestContext": {"http": {"method": "GET"}, "domainName": "id.execute-api.us-east-1.amazonaws.com"},
                    "isBase64Encoded": false});
    let e = echoed(&rt.invoke(v2).await.json());
    assert_eq!(e["authority"], "id.execute-api.us-east-1.amazonaws.com");
    assert_eq!(header_values(&e, "host"), ["id.execute-api.{dns_suffix}"]);

    let plain = json!({"version": "2.0", "rawPath": "/x", "headers": {"host": "api.example.com"},
                       "requestContext": {"http": {"method": "GET"}}, "isBase64Encoded": false});
    let e = echoed(&rt.invoke(plain).await.json());
    assert_eq!(e["authority"], "api.example.com");
    assert!(header_values(&e, "host").is_empty(), "{e}");
}

/// A deadline error names what stopped the invocation: Lambda's deadline when it came before the manifest's
/// timeout, the manifest's timeout when that came first.
#[tokio::test]
async fn a_deadline_error_names_what_stopped_the_invocation() {
    // Lambda allows 2 s; the manifest 30 s.
    let rt = Runtime::start("event-check", &[("NIMBUS_DEADLINE_MARGIN_MS", "400")]).await;
    let opts = InvokeOptions {
        timeout: Duration::from_secs(2),
        ..InvokeOptions::default()
    };
    let (ty, msg) = rt.emu.invoke_with(r#"{"spin": true}"#, opts.clone()).await.error();
    assert_eq!(ty, "Nimbus.Deadline");
    assert!(
        msg.contains("platform deadline (Lambda-Runtime-Deadline-Ms") && msg.contains("manifest timeout of 30 s"),
        "{msg}"
    );
    assert!(!msg.contains("30000ms"), "{msg}");
    let logs = rt.wait_for_log(&["Nimbus.Deadline", "platform deadline"]).await;
    assert!(
        logs.iter()
            .any(|l| l.contains("Nimbus.Deadline") && l.contains("platform deadline")),
        "the log line says the same: {logs:?}"
    );
    // An HTTP function's 504 says the same.
    let spin = Runtime::start("spin", &[("NIMBUS_DEADLINE_MARGIN_MS", "400")]).await;
    let apigw = json!({"version": "2.0", "rawPath": "/x", "headers": {"host": "h"},
                       "requestContext": {"http": {"method": "GET"}}, "isBase64Encoded": false});
    let resp = spin.emu.invoke_with(apigw.to_string(), opts).await.json();
    assert_eq!(resp["statusCode"], 504);
    let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("platform deadline (Lambda-Runtime-Deadline-Ms"),
        "{body}"
    );

    // Lambda allows 10 s; the manifest 1 s.
    let rt = Runtime::start("event-check-short", &[]).await;
    let (ty, msg) = rt.emu.invoke(r#"{"spin": true}"#).await.error();
    assert_eq!(ty, "Nimbus.Deadline");
    assert!(msg.contains("ran longer than its 1000ms timeout"), "{msg}");
    assert!(!msg.contains("platform"), "{msg}");
}

/// A fault file works unchanged with `bootstrap` on Lambda (`NIMBUS_FAULTS` naming it): the invocation rule
/// answers in the event source's shape, and the injection is logged with the Lambda request id.
#[tokio::test]
async fn a_fault_file_works_unchanged_with_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("teapot.toml");
    std::fs::write(
        &file,
        "[faults]\nseed = 3\n[[faults.rule]]\nname = \"teapot\"\ntarget = \"invocation\"\nkind = \"respond\"\nstatus = 418\nbody = \"from the plan\"\n",
    )
    .unwrap();
    let rt = Runtime::start("http-echo", &[("NIMBUS_FAULTS", file.to_str().unwrap())]).await;
    let event = json!({
        "version": "2.0",
        "rawPath": "/x",
        "rawQueryString": "",
        "headers": {"host": "abcdefg.lambda-url.us-east-1.on.aws"},
        "requestContext": {"http": {"method": "GET", "path": "/x"},
                           "domainName": "abcdefg.lambda-url.us-east-1.on.aws", "timeEpoch": 1},
        "isBase64Encoded": false
    });
    let resp = rt.invoke(event).await.json();
    assert_eq!(resp["statusCode"], 418, "{resp}");
    assert_eq!(resp["body"], "from the plan");
    assert_eq!(resp["headers"]["x-nimbus-fault"], "teapot");
    let logs = rt.wait_for_log(&["fault injected", "teapot"]).await;
    assert!(
        logs.iter()
            .any(|l| l.contains("fault injected") && l.contains("\"seed\":3")),
        "{logs:?}"
    );
}
