//! The same component everywhere (issue 17, item 5): one HTTP function and one event function are packaged
//! with the real `nimbus package` for every target, the component and its precompiled artifact are checked to
//! be the same bytes in every package, and each package's own `bootstrap` then serves the same logical request
//! under its platform's client: the Lambda Runtime API emulator, a Function Compute 3.0 client, a Cloud Run /
//! Knative front end, an Azure Functions host — and `nimbus serve` beside them. What the guest sees (the
//! request, its config, its trace) must be the same on all five.
//!
//! Event payloads: Lambda, Function Compute, Azure (a queue message) and `nimbus serve` hand the guest the bytes
//! sent, as they are; Cloud Run / Knative hands it the CloudEvent (its attributes and `data`), whose `data` is
//! the same JSON.

use nimbus_tests::components::{EVENT_ECHO, HTTP_ECHO};
use nimbus_tests::lambda_emulator::{InvokeOptions, LambdaEmulator};
use nimbus_tests::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use nimbus_tests::process::{Process, free_port};
use nimbus_tests::{Reply, header_values, request, sha256};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const MANIFEST: &str = r#"
manifest_version = 1
app = { name = "everywhere" }
defaults = { timeout = "30s" }

[function.web]
component = "{HTTP_ECHO}"
routes = ["POST /orders/{id}"]
[function.web.config]
greeting = { value = "hello from the manifest" }
region = { env = "EVERYWHERE_REGION" }

[function.events]
component = "{EVENT_ECHO}"
[function.events.config]
greeting = { value = "hello from the manifest" }
region = { env = "EVERYWHERE_REGION" }
"#;

/// The env config value every platform's process is given.
const REGION: &str = "region-from-the-environment";

/// The caller's W3C trace context, sent to every platform (as `traceparent`, or in the platform's own header).
const TRACE_ID: &str = "5a9e0c1d2b3f4a5b6c7d8e9f0a1b2c3d";
const CALLER_SPAN: &str = "1f2e3d4c5b6a7988";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

/// The same trace as Lambda hands it over (`Lambda-Runtime-Trace-Id`, X-Ray's format).
fn xray() -> String {
    format!(
        "Root=1-{}-{};Parent={CALLER_SPAN};Sampled=1",
        &TRACE_ID[..8],
        &TRACE_ID[8..]
    )
}

/// The same trace as Cloud Run's legacy header: `TRACE/SPAN_DECIMAL;o=1`.
fn x_cloud_trace_context() -> String {
    let span = u64::from_str_radix(CALLER_SPAN, 16).unwrap();
    format!("{TRACE_ID}/{span};o=1")
}

/// The logical HTTP request every platform gets.
const METHOD: &str = "POST";
const PATH: &str = "/orders/42";
const QUERY: &str = "color=black&size=2";
const HEADER: (&str, &str) = ("x-everywhere", "same on every platform");
const BODY: &str = r#"{"id":1005,"quantity":2}"#;

/// The event every platform delivers (compact JSON with sorted keys, so serde writes it back byte for byte).
const EVENT: &str = r#"{"note":"same bytes everywhere","order":42}"#;

/// The functions, each packaged for every target, unpacked as each platform would unpack it.
struct Packaged {
    /// The source directory (the manifest `nimbus serve` runs).
    src: PathBuf,
    /// Per function, per platform (`lambda`, `fc`, `knative`, `azure`): the directory its `bootstrap` is in.
    roots: BTreeMap<&'static str, BTreeMap<&'static str, PathBuf>>,
}

const FUNCTIONS: [&str; 2] = ["web", "events"];

fn packaged() -> &'static Packaged {
    static P: OnceLock<Packaged> = OnceLock::new();
    P.get_or_init(|| {
        // Under the target dir, cleared at the start of each run (a static's temp dir would never be removed).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("everywhere");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = MANIFEST
            .replace("{HTTP_ECHO}", HTTP_ECHO)
            .replace("{EVENT_ECHO}", EVENT_ECHO);
        std::fs::write(dir.join("nimbus.toml"), text).unwrap();
        let base = nimbus_tests::oci::base_image(&dir.join("base"));
        let dist = dir.join("dist");
        for target in ["lambda", "fc", "container", "azure"] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_nimbus"));
            cmd.env("NIMBUS_LOG", "warn")
                .args(["package", "--target", target, "--manifest"])
                .arg(dir.join("nimbus.toml"))
                .args(["--bootstrap", env!("CARGO_BIN_EXE_bootstrap")])
                .arg("--out")
                .arg(&dist)
                .args(FUNCTIONS);
            if target == "container" {
                cmd.args(["--base", &base]);
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "nimbus package --target {target}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let unpacked = dir.join("unpacked");
        let mut roots = BTreeMap::new();
        for f in FUNCTIONS {
            let mut by_platform = BTreeMap::new();
            for (platform, zip) in [("lambda", "lambda-x86_64"), ("fc", "fc-x86_64")] {
                let into = unpacked.join(platform).join(f);
                let file = std::fs::File::open(dist.join(format!("{zip}/{f}.zip"))).unwrap();
                // Unix modes kept: the bootstrap stays executable, as Lambda and Function Compute unpack it.
                zip::ZipArchive::new(file).unwrap().extract(&into).unwrap();
                by_platform.insert(platform, into);
            }
            // The image Knative would run, unpacked as a container runtime unpacks it: the package is `/app`.
            let bundle = unpacked.join("knative").join(f);
            nimbus_tests::oci::unpack(&dist.join(format!("container-x86_64/{f}")), "latest", &bundle);
            by_platform.insert("knative", bundle.join("rootfs/app"));
            by_platform.insert("azure", dist.join(format!("azure-x86_64/{f}")));
            roots.insert(f, by_platform);
        }
        Packaged { src: dir, roots }
    })
}

/// The SHA-256 of a packaged file.
fn file_sha(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Checks that every package of `function` holds the source component, and the same precompiled artifact,
/// `bootstrap` and manifest, byte for byte.
fn assert_same_bytes(function: &str, source_component: &str) {
    let roots = &packaged().roots[function];
    let component = format!("{function}.wasm");
    let artifact = format!("{function}.cwasm.lz4");
    for name in [component.as_str(), artifact.as_str(), "bootstrap", "nimbus.toml"] {
        let shas: BTreeMap<&str, String> = roots.iter().map(|(p, root)| (*p, file_sha(&root.join(name)))).collect();
        let first = shas.values().next().unwrap();
        assert!(
            shas.values().all(|s| s == first),
            "{function}/{name} differs: {shas:#?}"
        );
    }
    assert_eq!(
        file_sha(&roots["lambda"].join(&component)),
        file_sha(Path::new(source_component)),
        "{function}: the packaged component is the one built"
    );
    let manifest = std::fs::read_to_string(roots["lambda"].join("nimbus.toml")).unwrap();
    assert!(
        manifest.contains(&format!("precompiled = \"{artifact}\"")),
        "the artifact is what bootstrap loads: {manifest}"
    );
}

/// The environment every platform's process gets besides its own: the env config value and the collector.
fn common_env(otlp: &OtlpReceiver) -> Vec<(&'static str, String)> {
    vec![
        ("EVERYWHERE_REGION", REGION.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
        ("NIMBUS_LOG", "info".to_owned()),
    ]
}

/// Starts `program` with `env` and waits (up to 120 s on a slow machine) for its `listening` line.
async fn start_listening(program: &Path, args: &[&str], env: &[(&str, String)]) -> Process {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = Process::start(program, args, &env);
    let ready = p.stderr_line("listening", Duration::from_secs(120)).await;
    assert!(
        ready.is_some(),
        "{} never listened: {:?}",
        program.display(),
        p.stderr()
    );
    p
}

/// Every platform serving one function, started once.
struct Servers {
    lambda: (LambdaEmulator, Process),
    fc: (SocketAddr, Process),
    knative: (SocketAddr, Process),
    azure: (SocketAddr, Process),
    serve: (SocketAddr, Process),
}

impl Servers {
    /// Starts each package's `bootstrap` for `function` as its platform would, and `nimbus serve` on the source
    /// manifest.
    async fn start(function: &str, otlp: &OtlpReceiver) -> Servers {
        let roots = &packaged().roots[function];
        let bootstrap = |p: &str| roots[p].join("bootstrap");
        let env = common_env(otlp);
        let with = |extra: &[(&'static str, String)]| {
            let mut all = env.clone();
            all.extend_from_slice(extra);
            all
        };

        let emu = LambdaEmulator::start().await;
        let lambda_env = with(&[
            ("AWS_LAMBDA_RUNTIME_API", emu.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("LAMBDA_TASK_ROOT", roots["lambda"].display().to_string()),
        ]);
        let lambda_env: Vec<(&str, &str)> = lambda_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let lambda = Process::start(&bootstrap("lambda"), &[], &lambda_env);

        // The others find their manifest next to their executable, where the package put it.
        let port = free_port();
        let fc_env = with(&[
            ("FC_FUNCTION_NAME", function.to_owned()),
            ("FC_CUSTOM_LISTEN_PORT", port.to_string()),
            ("FC_REGION", "cn-hangzhou".to_owned()),
        ]);
        let fc = (loopback(port), start_listening(&bootstrap("fc"), &[], &fc_env).await);

        let port = free_port();
        let kn_env = with(&[
            ("PORT", port.to_string()),
            ("K_SERVICE", function.to_owned()),
            ("K_REVISION", format!("{function}-00001-abc")),
            ("K_CONFIGURATION", function.to_owned()),
        ]);
        let knative = (
            loopback(port),
            start_listening(&bootstrap("knative"), &[], &kn_env).await,
        );

        let port = free_port();
        let az_env = with(&[("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())]);
        let azure = (loopback(port), start_listening(&bootstrap("azure"), &[], &az_env).await);

        let manifest = packaged().src.join("nimbus.toml");
        let manifest = manifest.to_str().unwrap();
        let serve = start_listening(
            Path::new(env!("CARGO_BIN_EXE_nimbus")),
            &["serve", "--listen", "127.0.0.1:0", "--manifest", manifest],
            &env,
        )
        .await;
        let line = serve
            .stderr_line("listening on ", Duration::from_secs(5))
            .await
            .unwrap();
        let url = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let addr = url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();

        Servers {
            lambda: (emu, lambda),
            fc,
            knative,
            azure,
            serve: (addr, serve),
        }
    }

    /// Sends SIGTERM to the Knative service, as Cloud Run does when it scales in: it exits 0.
    async fn stop_knative(&mut self) {
        self.knative.1.sigterm();
        let code = self.knative.1.exit_code(Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "{:?}", self.knative.1.stderr());
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Lambda's invoke options: the caller's trace as X-Ray's header, and a wait long enough for a cold start on
/// a slow machine.
fn lambda_options() -> InvokeOptions {
    InvokeOptions {
        trace_id: Some(xray()),
        wait: Duration::from_secs(120),
        ..InvokeOptions::default()
    }
}

fn ok_json(platform: &str, r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{platform}: {}", r.text());
    r.json()
}

/// What the guest saw of the request, reduced to what must be the same everywhere, and the parent span id
/// it was given (the invocation's own span, different on each platform).
fn seen_request(echo: &Value) -> (Value, String) {
    let (trace, parent) = trace_of(echo);
    let view = json!({
        "method": echo["method"],
        "path": echo["path"],
        "query": echo["query"],
        "header": header_values(echo, HEADER.0),
        "body_hex": echo["body_hex"],
        "config": config_of(echo),
        "trace": trace,
    });
    (view, parent)
}

/// `(trace id and flags, parent span id)` of the guest's `traceparent`.
fn trace_of(report: &Value) -> (String, String) {
    let tp = report["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent: {report}"));
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    (format!("{}-{}", parts[1], parts[3]), parts[2].to_owned())
}

/// The config the guest must see everywhere: the manifest's literal value and the environment's.
fn expected_config() -> Value {
    json!({"greeting": "hello from the manifest", "region": REGION})
}

/// The config values a guest reported (`config::all()`'s pairs, whose order is not specified), by key.
fn config_of(report: &Value) -> Value {
    let pairs = report["config"]
        .as_array()
        .unwrap_or_else(|| panic!("no config: {report}"));
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().to_owned(), kv[1].clone()))
        .collect();
    assert_eq!(map.len(), pairs.len(), "each key once: {report}");
    Value::Object(map)
}

/// Waits for the invocation spans whose ids the guests saw as their parents, and checks that each is a child of
/// the caller's span in the caller's trace.
async fn assert_children_of_the_caller(otlp: &OtlpReceiver, parents: &BTreeMap<&str, String>) {
    let spans = otlp
        .wait_for(Duration::from_secs(60), |s| {
            parents.values().all(|p| s.iter().any(|span| &span.span_id == p))
        })
        .await;
    for (platform, parent) in parents {
        let span: &ReceivedSpan = spans
            .iter()
            .find(|s| &s.span_id == parent)
            .unwrap_or_else(|| panic!("{platform}: no span {parent} exported: {spans:#?}"));
        assert_eq!(span.trace_id, TRACE_ID, "{platform}: {span:?}");
        assert_eq!(
            span.parent_span_id, CALLER_SPAN,
            "{platform}: the guest's parent is the invocation span, a child of the caller's: {span:?}"
        );
    }
    let distinct: std::collections::BTreeSet<&String> = parents.values().collect();
    assert_eq!(distinct.len(), parents.len(), "one invocation span each: {parents:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_http_request_reaches_the_same_component_the_same_way_on_every_platform() {
    assert_same_bytes("web", HTTP_ECHO);
    let otlp = OtlpReceiver::start().await;
    let mut s = Servers::start("web", &otlp).await;
    let tp = traceparent();
    let url_path = format!("{PATH}?{QUERY}");
    let mut seen: BTreeMap<&str, Value> = BTreeMap::new();

    // Lambda: an API Gateway HTTP API (v2) event; the trace comes in Lambda's header.
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": PATH, "rawQueryString": QUERY,
        "headers": {"host": "api.example.com", "content-type": "application/json", HEADER.0: HEADER.1,
                    "traceparent": tp},
        "requestContext": {"http": {"method": METHOD, "path": PATH, "protocol": "HTTP/1.1",
                                    "sourceIp": "198.51.100.7", "userAgent": "test"},
                           "stage": "$default", "domainName": "api.example.com", "requestId": "r",
                           "apiId": "api", "accountId": "123456789012", "routeKey": "$default",
                           "time": "26/Nov/2026:10:00:00 +0000", "timeEpoch": 1},
        "body": BODY, "isBase64Encoded": false
    });
    let resp = s.lambda.0.invoke_with(event.to_string(), lambda_options()).await.json();
    assert_eq!(resp["statusCode"], 200, "lambda: {resp}");
    seen.insert("lambda", serde_json::from_str(resp["body"].as_str().unwrap()).unwrap());

    // Function Compute 3.0: its documented header set on /http-invoke, with the caller's headers.
    let mut headers = nimbus_tests::fc::headers("/http-invoke", "fc-everywhere-1");
    headers.retain(|(n, _)| n != "traceparent" && n != "content-type");
    headers.extend([
        ("traceparent".to_owned(), tp.clone()),
        ("content-type".to_owned(), "application/json".to_owned()),
        (HEADER.0.to_owned(), HEADER.1.to_owned()),
    ]);
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let r = request(s.fc.0, METHOD, &url_path, Some(BODY.as_bytes()), &h).await;
    assert_eq!(r.headers.get("x-fc-status").map(|v| v.as_bytes()), Some(&b"200"[..]));
    seen.insert("fc", ok_json("fc", &r));

    // Cloud Run / Knative: the request as the front end forwards it.
    let h = [
        ("content-type", "application/json"),
        HEADER,
        ("traceparent", tp.as_str()),
    ];
    let r = request(s.knative.0, METHOD, &url_path, Some(BODY.as_bytes()), &h).await;
    seen.insert("knative", ok_json("knative", &r));

    // Azure: payload mode, the request in Data.req and the response in Outputs.res.
    let payload = nimbus_tests::azure::http_payload(
        "web",
        METHOD,
        &format!("https://everywhere.azurewebsites.net{url_path}"),
        BODY,
        json!({"Content-Type": ["application/json"], "x-everywhere": [HEADER.1], "traceparent": [tp],
               "x-functions-key": ["the-function-key"]}),
    );
    let r = request(
        s.azure.0,
        "POST",
        "/web",
        Some(payload.to_string().as_bytes()),
        &[
            ("content-type", "application/json"),
            ("x-azure-functions-invocationid", "6b2a7e0c-1d3f-4e5a-9b8c-7d6e5f4a3b2c"),
        ],
    )
    .await;
    let res = ok_json("azure", &r)["Outputs"]["res"].clone();
    assert_eq!(res["statusCode"], 200, "azure: {res}");
    seen.insert("azure", serde_json::from_str(res["body"].as_str().unwrap()).unwrap());

    // `nimbus serve`: the manifest's route.
    let h = [
        ("content-type", "application/json"),
        HEADER,
        ("traceparent", tp.as_str()),
    ];
    let r = request(s.serve.0, METHOD, &url_path, Some(BODY.as_bytes()), &h).await;
    seen.insert("serve", ok_json("serve", &r));

    let expected = json!({
        "method": METHOD, "path": PATH, "query": QUERY, "header": [HEADER.1],
        "body_hex": hex(BODY.as_bytes()), "config": expected_config(), "trace": format!("{TRACE_ID}-01"),
    });
    let mut parents = BTreeMap::new();
    for (platform, echo) in &seen {
        let (view, parent) = seen_request(echo);
        assert_eq!(view, expected, "{platform} gave the guest another request: {echo}");
        assert_ne!(
            parent, CALLER_SPAN,
            "{platform}: the guest's parent is the invocation's span"
        );
        parents.insert(*platform, parent);
    }
    assert_eq!(seen.len(), 5);
    assert_children_of_the_caller(&otlp, &parents).await;
    s.stop_knative().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_reaches_the_same_component_with_the_same_bytes_on_every_platform() {
    assert_same_bytes("events", EVENT_ECHO);
    let otlp = OtlpReceiver::start().await;
    let mut s = Servers::start("events", &otlp).await;
    let tp = traceparent();
    let mut seen: BTreeMap<&str, Value> = BTreeMap::new();

    // Lambda: a direct invocation with the event as its payload.
    seen.insert("lambda", s.lambda.0.invoke_with(EVENT, lambda_options()).await.json());

    // Function Compute: /invoke with the raw body.
    let mut headers = nimbus_tests::fc::headers("/invoke", "fc-everywhere-2");
    headers.retain(|(n, _)| n != "traceparent");
    headers.push(("traceparent".to_owned(), tp.clone()));
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let r = request(s.fc.0, "POST", "/invoke", Some(EVENT.as_bytes()), &h).await;
    seen.insert("fc", ok_json("fc", &r));

    // Knative: a binary-mode CloudEvent, the trace in Cloud Run's legacy header.
    let xctc = x_cloud_trace_context();
    let h = [
        ("ce-specversion", "1.0"),
        ("ce-type", "com.example.order.created"),
        ("ce-source", "//everywhere/orders"),
        ("ce-id", "order-42"),
        ("content-type", "application/json"),
        ("x-cloud-trace-context", xctc.as_str()),
    ];
    let r = request(s.knative.0, "POST", "/", Some(EVENT.as_bytes()), &h).await;
    seen.insert("knative", ok_json("knative", &r));

    // Azure: a Storage queue message, {Data, Metadata}; the handler answers {Outputs, Logs, ReturnValue}.
    let payload = json!({
        "Data": {"order": EVENT},
        "Metadata": {"DequeueCount": 1, "PopReceipt": "AgAAAAMAAAAAAAAAAgtnj8x+1QE=", "Id": "800ae4b3",
                     "sys": {"MethodName": "events", "UtcNow": "2026-01-01T00:00:00Z", "RandGuid": "g"}},
    });
    let r = request(
        s.azure.0,
        "POST",
        "/events",
        Some(payload.to_string().as_bytes()),
        &[
            ("content-type", "application/json"),
            ("x-azure-functions-invocationid", "6b2a7e0c-1d3f-4e5a-9b8c-7d6e5f4a3b2d"),
            ("traceparent", tp.as_str()),
        ],
    )
    .await;
    seen.insert("azure", ok_json("azure", &r)["ReturnValue"].clone());

    // `nimbus serve`: the Lambda Invoke API.
    let r = request(
        s.serve.0,
        "POST",
        "/2015-03-31/functions/events/invocations",
        Some(EVENT.as_bytes()),
        &[("traceparent", tp.as_str())],
    )
    .await;
    seen.insert("serve", ok_json("serve", &r));

    let mut parents = BTreeMap::new();
    for (platform, report) in &seen {
        assert_eq!(config_of(report), expected_config(), "{platform}: {report}");
        let (trace, parent) = trace_of(report);
        assert_eq!(trace, format!("{TRACE_ID}-01"), "{platform}: {report}");
        assert_ne!(parent, CALLER_SPAN, "{platform}");
        parents.insert(*platform, parent);
        let payload = unhex(report["payload_hex"].as_str().unwrap());
        if *platform == "knative" {
            // The one platform that wraps: the guest gets the CloudEvent, whose data is the event.
            let envelope: Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(
                envelope["data"],
                serde_json::from_str::<Value>(EVENT).unwrap(),
                "{envelope}"
            );
            assert_eq!(envelope["data"].to_string(), EVENT, "the data's JSON, byte for byte");
            assert_eq!(
                (&envelope["type"], &envelope["source"], &envelope["id"]),
                (
                    &json!("com.example.order.created"),
                    &json!("//everywhere/orders"),
                    &json!("order-42")
                )
            );
        } else {
            assert_eq!(
                String::from_utf8_lossy(&payload),
                EVENT,
                "{platform}: the bytes sent, as they are"
            );
        }
    }
    let sources: BTreeMap<&str, &str> = seen.iter().map(|(p, r)| (*p, r["source"].as_str().unwrap())).collect();
    assert_eq!(
        sources,
        BTreeMap::from([
            ("azure", "sqs"),
            ("fc", "direct"),
            ("knative", "other"),
            ("lambda", "direct"),
            ("serve", "direct"),
        ]),
        "each platform names where the event came from"
    );
    assert_children_of_the_caller(&otlp, &parents).await;
    s.stop_knative().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
