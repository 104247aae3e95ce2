//! The `nimbus` binary, run as a user would run it.

use nimbus_tests::components::{CONFIG_GET, ECHO, HELLO};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn nimbus() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nimbus"));
    c.env("NIMBUS_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run nimbus");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "nimbus panicked: {stderr}");
    out
}

fn write_manifest(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("nimbus.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn invoke_round_trips_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.echo]\ncomponent = \"{ECHO}\"\n"),
    );
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"hello": "event", "n": [1, 2]}"#).unwrap();
    let out = run(nimbus()
        .args(["invoke", "echo", "--manifest"])
        .arg(&m)
        .arg("--event")
        .arg(&event));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["echo"], serde_json::json!({"hello": "event", "n": [1, 2]}));
    assert_eq!(v["source"], "direct");

    let out = run(nimbus()
        .args([
            "invoke",
            "echo",
            "--source",
            "sqs",
            "--data",
            r#"{"x":1}"#,
            "--manifest",
        ])
        .arg(&m));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"], "sqs");
}

#[test]
fn invoke_reports_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.echo]\ncomponent = \"{ECHO}\"\n"),
    );
    let cases: &[(&[&str], &str)] = &[
        (&["invoke", "echo", "--data", "{not json"], "not valid JSON"),
        (&["invoke", "echo"], "--event FILE or --data JSON"),
        (&["invoke", "nope", "--data", "{}"], "no function `nope`"),
        (
            &["invoke", "echo", "--event", "/nonexistent/event.json"],
            "cannot read event file",
        ),
    ];
    for (args, needle) in cases {
        let out = run(nimbus().args(*args).arg("--manifest").arg(&m));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    }
}

#[test]
fn invoke_runs_http_functions_too() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    let out = run(nimbus()
        .args(["invoke", "hello", "--path", "/hello?name=cli", "--manifest"])
        .arg(&m));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, cli!\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP 200"), "{err}");
    // The guest's log line went to stderr as JSON, leaving stdout clean.
    assert!(err.contains(r#""msg":"saying hello to cli""#), "{err}");
}

#[test]
fn malformed_manifests_fail_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!("manifest_version = 1\n[function.echo]\ncomponent = \"{ECHO}\"\nmemory = \"lots\"\n"),
            ":4: key `function.echo.memory`",
        ),
        (
            format!("manifest_version = 1\n[function.echo]\ncomponent = \"{ECHO}\"\ntimeuot = \"1s\"\n"),
            "unknown field `timeuot`",
        ),
        ("manifest_version = 1\n[function.echo\n".to_string(), "nimbus.toml:2"),
        ("this is not toml".to_string(), "nimbus.toml:1"),
    ];
    for (text, needle) in cases {
        let m = write_manifest(dir.path(), &text);
        let out = run(nimbus().args(["invoke", "echo", "--data", "{}", "--manifest"]).arg(&m));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains(needle) && err.contains("nimbus.toml"),
            "expected {needle:?} in {err}"
        );
    }
    let out = run(nimbus().args(["serve", "--manifest", "/nonexistent/nimbus.toml"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest at /nonexistent/nimbus.toml"));
}

#[test]
fn host_environment_is_invisible_to_guests() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!(
            "manifest_version = 1\n[function.cfg]\ncomponent = \"{CONFIG_GET}\"\nroutes = [\"GET /c\"]\n\
             [function.cfg.config]\nregion = {{ env = \"NIMBUS_TEST_REGION\" }}\n"
        ),
    );
    for key in ["region", "AWS_SECRET_ACCESS_KEY", "NIMBUS_TEST_REGION"] {
        let out = run(nimbus()
            .args(["invoke", "cfg", "--path"])
            .arg(format!("/c?key={key}"))
            .arg("--manifest")
            .arg(&m)
            .env("AWS_SECRET_ACCESS_KEY", "do-not-leak")
            .env("NIMBUS_TEST_REGION", "ap-south-1"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("do-not-leak"), "secret leaked: {stdout}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["env"], serde_json::json!([]));
        assert_eq!(v["all"], serde_json::json!([["region", "ap-south-1"]]));
        let expected = if key == "region" {
            serde_json::json!("ap-south-1")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(v["value"], expected, "{key}");
    }
}

/// Starts `nimbus serve` on a free port and returns the child and its base URL.
fn start_serve(manifest: &Path) -> (std::process::Child, String) {
    start_serve_with(manifest, &mut nimbus(), &[])
}

/// [`start_serve`] with a prepared command (directory, environment) and more `serve` flags.
fn start_serve_with(manifest: &Path, cmd: &mut Command, flags: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    let (child, url, _output) = start_serve_logged(manifest, cmd, flags);
    (child, url)
}

/// Everything a child process wrote to one stream so far.
type Collected = std::sync::Arc<std::sync::Mutex<String>>;

/// What `nimbus serve` wrote, per stream.
struct Logged {
    stdout: Collected,
    stderr: Collected,
    /// The threads draining the two streams (they end with the process).
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Logged {
    /// Waits until the exited process's streams are read to the end; its stdout.
    fn finished_stdout(self) -> String {
        for r in self.readers {
            let _ = r.join();
        }
        self.stdout.lock().unwrap().clone()
    }

    /// Both streams.
    fn all(&self) -> String {
        format!("{}{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }
}

/// Starts `nimbus serve`, keeping all it writes (both streams are drained,
/// so a chatty log level can never block it on a full pipe).
fn start_serve_logged(
    manifest: &Path,
    cmd: &mut Command,
    flags: &[&std::ffi::OsStr],
) -> (std::process::Child, String, Logged) {
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(manifest)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = Logged {
        stdout: Collected::default(),
        stderr: Collected::default(),
        readers: Vec::new(),
    };
    let keep = output.stdout.clone();
    let stdout = child.stdout.take().unwrap();
    output.readers.push(std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut out = keep.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    }));
    let keep = output.stderr.clone();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    output.readers.push(std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.split_whitespace().next().unwrap_or_default().to_string());
            }
            let mut out = keep.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    }));
    let url = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("nimbus serve did not start");
    (child, url, output)
}

fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    use std::io::Write;
    write!(s, "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").unwrap();
    read_response(s)
}

/// Reads a whole `connection: close` response: its status and (de-chunked) body.
fn read_response(mut s: std::net::TcpStream) -> (u16, String) {
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    (status, if chunked { dechunk(body) } else { body.to_string() })
}

/// The payload of a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn serve_answers_and_shuts_down_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    let (mut child, url, output) = start_serve_logged(&m, &mut nimbus(), &[]);
    let (status, body) = http_get(&format!("{url}/hello?name=serve"));
    assert_eq!(status, 200);
    assert!(body.contains("Hello, serve!"), "{body}");
    assert_eq!(http_get(&format!("{url}/missing")).0, 404);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    assert!(status.success(), "serve exited with {status}");
    let stdout = output.finished_stdout();
    // Access log and guest log, one JSON object per line.
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(
        stdout.contains(r#""msg":"request""#) && stdout.contains(r#""status":404"#),
        "{stdout}"
    );
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn compile_then_serve_uses_the_precompiled_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("hello.wasm");
    std::fs::copy(HELLO, &wasm).unwrap();
    let m = write_manifest(
        dir.path(),
        "manifest_version = 1\n[function.hello]\ncomponent = \"hello.wasm\"\nprecompiled = \"hello.cwasm.lz4\"\nroutes = [\"GET /hello\"]\n",
    );
    let out = run(nimbus().args(["compile", "--manifest"]).arg(&m));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("hello.cwasm.lz4").exists());
    let (mut child, url) = start_serve(&m);
    assert_eq!(http_get(&format!("{url}/hello")).0, 200);
    let _ = child.kill();
    let _ = child.wait();

    // --wasm compiles a single file; a non-component is a clear error.
    let out = run(nimbus()
        .args(["compile", "--wasm"])
        .arg(&wasm)
        .arg("-o")
        .arg(dir.path().join("x.lz4")));
    assert!(out.status.success());
    std::fs::write(dir.path().join("bad.wasm"), b"nope").unwrap();
    let out = run(nimbus().args(["compile", "--wasm"]).arg(dir.path().join("bad.wasm")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("compilation failed"));
}

/// `nimbus new` → `nimbus build` → `nimbus invoke`: the scaffold builds and runs.
#[test]
fn new_scaffolds_a_function_that_builds_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (name, event) in [("my-func", false), ("my-events", true)] {
        let mut cmd = nimbus();
        cmd.args(["new", name, "--dir"]).arg(dir.path());
        if event {
            cmd.arg("--event");
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let root = dir.path().join(name);
        // Share compiled dependencies with the test guests to keep this fast.
        let target = Path::new(HELLO).ancestors().nth(3).unwrap().to_path_buf();
        let out = run(nimbus().arg("build").arg(&root).env("CARGO_TARGET_DIR", &target));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let built = String::from_utf8_lossy(&out.stdout).to_string();
        let wasm = built.split(" (").next().unwrap().trim().to_string();
        assert!(wasm.ends_with(".wasm") && Path::new(&wasm).exists(), "{built}");
        // Point the scaffolded manifest at where the shared target dir put the component.
        let manifest = std::fs::read_to_string(root.join("nimbus.toml")).unwrap();
        let crate_file = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
        std::fs::write(root.join("nimbus.toml"), manifest.replace(&crate_file, &wasm)).unwrap();
        let mut invoke = nimbus();
        invoke.current_dir(&root).args(["invoke", name]);
        if event {
            invoke.args(["--data", r#"{"k": "v"}"#]);
        }
        let out = run(&mut invoke);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        if event {
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["received"]["k"],
                "v"
            );
        } else {
            assert_eq!(stdout, format!("Hello from {name}!\n"));
        }
    }
    let out = run(nimbus().args(["new", "Bad_Name", "--dir"]).arg(dir.path()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kebab-case"));
}

/// Stops a `nimbus serve` child started by [`start_serve`].
fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A `nimbus` command run in `dir` with no AWS settings of its own (the test's `.env` provides them).
fn nimbus_in(dir: &Path) -> Command {
    let mut c = nimbus();
    c.current_dir(dir);
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "NIMBUS_SSM_OVERRIDES",
    ] {
        c.env_remove(var);
    }
    c
}

fn guest_value(url: &str, key: &str) -> serde_json::Value {
    let (status, body) = http_get(&format!("{url}/c?key={key}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["value"].clone()
}

#[test]
fn serve_reads_ssm_from_the_endpoint_a_dotenv_file_names() {
    let moto = nimbus_tests::moto::shared();
    let name = format!("/nimbus-cli-test/{}/db-url", std::process::id());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ssm = moto.ssm().await;
        let kind = aws_sdk_ssm::types::ParameterType::SecureString;
        nimbus_tests::moto::put_parameter(&ssm, &name, "postgres://from-moto", kind).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!(
            "manifest_version = 1\n[function.cfg]\ncomponent = \"{CONFIG_GET}\"\nroutes = [\"GET /c\"]\n\
             [function.cfg.config]\ndb = {{ ssm = \"{name}\" }}\n\
             who = {{ env = \"NIMBUS_TEST_DOTENV\" }}\nonly = {{ env = \"NIMBUS_TEST_DOTENV_ONLY\" }}\n"
        ),
    );
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "AWS_ENDPOINT_URL={}\nAWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nAWS_REGION=us-east-1\n\
             NIMBUS_TEST_DOTENV=from-file\nNIMBUS_TEST_DOTENV_ONLY=file-only\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let (child, url) = start_serve_with(&m, nimbus_in(dir.path()).env("NIMBUS_TEST_DOTENV", "from-env"), &[]);
    let db = guest_value(&url, "db");
    let who = guest_value(&url, "who");
    let only = guest_value(&url, "only");
    stop(child);
    assert_eq!(
        db, "postgres://from-moto",
        "SecureString from moto, endpoint and credentials from .env"
    );
    assert_eq!(who, "from-env", "variables already set win over .env");
    assert_eq!(only, "file-only");
}

#[test]
fn serve_resolves_ssm_from_an_overrides_file_without_aws() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!(
            "manifest_version = 1\n[function.cfg]\ncomponent = \"{CONFIG_GET}\"\nroutes = [\"GET /c\"]\n\
             [function.cfg.config]\ndb = {{ ssm = \"/shop/db-url\" }}\nhost = {{ ssm_path = \"/shop/db\" }}\n\
             token = {{ oos = \"shop-token\" }}\nfc = {{ oos_path = \"/fc\" }}\n"
        ),
    );
    // One file answers SSM and OOS names alike.
    std::fs::write(
        dir.path().join("ssm.json"),
        r#"{"/shop/db-url": "postgres://override", "/shop/db/primary": "db-1", "shop-token": "t-1", "/fc/zone": "z"}"#,
    )
    .unwrap();
    // An endpoint nothing listens on: any AWS call would fail boot.
    let env_file = dir.path().join("local.env");
    std::fs::write(
        &env_file,
        "NIMBUS_SSM_OVERRIDES=ssm.json\nAWS_ENDPOINT_URL=http://127.0.0.1:9\nAWS_ACCESS_KEY_ID=x\nAWS_SECRET_ACCESS_KEY=x\n",
    )
    .unwrap();
    let (child, url) = start_serve_with(
        &m,
        &mut nimbus_in(dir.path()),
        &["--env-file".as_ref(), env_file.as_os_str()],
    );
    let via_env = (guest_value(&url, "db"), guest_value(&url, "host.primary"));
    stop(child);
    assert_eq!(via_env.0, "postgres://override");
    assert_eq!(via_env.1, "db-1");

    let (child, url) = start_serve_with(
        &m,
        &mut nimbus_in(dir.path()),
        &["--ssm-overrides".as_ref(), "ssm.json".as_ref()],
    );
    let via_flag = (
        guest_value(&url, "db"),
        guest_value(&url, "token"),
        guest_value(&url, "fc.zone"),
    );
    stop(child);
    assert_eq!(via_flag.0, "postgres://override");
    assert_eq!(via_flag.1, "t-1", "oos keys too");
    assert_eq!(via_flag.2, "z");

    // A missing required parameter names the overrides file.
    std::fs::write(
        dir.path().join("ssm.json"),
        r#"{"/shop/db/primary": "db-1", "shop-token": "t-1", "/fc/zone": "z"}"#,
    )
    .unwrap();
    let out = run(nimbus_in(dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ssm-overrides",
            "ssm.json",
            "--manifest",
        ])
        .arg(&m));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/shop/db-url") && stderr.contains("ssm.json") && stderr.contains("`db`"),
        "{stderr}"
    );
}

#[test]
fn secret_values_never_reach_the_logs_even_at_trace_level() {
    let moto = nimbus_tests::moto::shared();
    let name = format!("/nimbus-cli-test/{}/api-key", std::process::id());
    const SECRET: &str = "sk-live-7f3c9a1e5b";
    const FILE_SECRET: &str = "file-secret-0d4e8b";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ssm = moto.ssm().await;
        let kind = aws_sdk_ssm::types::ParameterType::SecureString;
        nimbus_tests::moto::put_parameter(&ssm, &name, SECRET, kind).await;
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), FILE_SECRET).unwrap();
    let m = write_manifest(
        dir.path(),
        &format!(
            "manifest_version = 1\n[function.cfg]\ncomponent = \"{CONFIG_GET}\"\nroutes = [\"GET /c\"]\n\
             config_refresh = \"200ms\"\n[function.cfg.config]\n\
             key = {{ ssm = \"{name}\", secret = true }}\ntoken = {{ file = \"token\", secret = true }}\n"
        ),
    );
    let (child, url, output) = start_serve_logged(
        &m,
        nimbus_in(dir.path())
            .env("NIMBUS_LOG", "trace")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1"),
        &[],
    );
    // The guest reads both (and may do what it likes with them); boot,
    // invocations and a few refreshes log at trace level meanwhile.
    assert_eq!(guest_value(&url, "key"), SECRET);
    assert_eq!(guest_value(&url, "token"), FILE_SECRET);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(guest_value(&url, "key"), SECRET);
    stop(child);
    let output = output.all();
    assert!(output.lines().count() > 20, "trace level logs a lot:\n{output}");
    assert!(output.contains(&name), "parameter names may be logged:\n{output}");
    for secret in [SECRET, FILE_SECRET] {
        assert!(!output.contains(secret), "a secret value reached the logs");
    }
}

#[test]
fn invoke_reads_dotenv_and_exports_its_spans_in_the_given_trace() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(nimbus_tests::otlp_receiver::OtlpReceiver::start());
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!(
            "manifest_version = 1\napp = {{ name = \"cli-app\" }}\n\
             [function.cfg]\ncomponent = \"{CONFIG_GET}\"\nroutes = [\"GET /c\"]\n\
             [function.cfg.config]\nwho = {{ env = \"NIMBUS_TEST_INVOKE_WHO\" }}\n\
             db = {{ ssm = \"/app/db\" }}\n"
        ),
    );
    std::fs::write(dir.path().join("ssm.toml"), "\"/app/db\" = \"local-db\"\n").unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "NIMBUS_TEST_INVOKE_WHO=from-dotenv\nNIMBUS_SSM_OVERRIDES=ssm.toml\nOTEL_EXPORTER_OTLP_ENDPOINT={}\n",
            receiver.endpoint()
        ),
    )
    .unwrap();
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let invoke = |key: &str| {
        let out = run(nimbus_in(dir.path())
            .args(["invoke", "cfg", "--traceparent", tp, "--path"])
            .arg(format!("/c?key={key}"))
            .arg("--manifest")
            .arg(&m));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["value"].clone()
    };
    assert_eq!(invoke("who"), "from-dotenv");
    assert_eq!(invoke("db"), "local-db");
    let spans = rt.block_on(receiver.wait_for(Duration::from_secs(30), |s| {
        s.iter().filter(|s| s.name == "cfg").count() >= 2
    }));
    let invocations: Vec<_> = spans.iter().filter(|s| s.name == "cfg").collect();
    for s in &invocations {
        assert_eq!(s.trace_id, "0af7651916cd43dd8448eb211c80319c", "{s:?}");
        assert_eq!(s.parent_span_id, "b7ad6b7169203331");
        // The app is the service namespace; the service keeps its own name (the manifest's directory).
        assert_eq!(s.resource["service.namespace"], "cli-app", "{s:?}");
        let dir_name = dir.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(s.resource["service.name"], dir_name, "{s:?}");
    }
    assert!(spans.iter().any(|s| s.name == "nimbus.init"));

    let out = run(nimbus_in(dir.path())
        .args(["invoke", "cfg", "--traceparent", "00-nope", "--manifest"])
        .arg(&m));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a W3C traceparent"));
}
/// A request with a body; returns the status and the (de-chunked) body.
fn http_post(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    use std::io::Write;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    read_response(s)
}

#[test]
fn serve_accepts_websockets_lets_any_function_send_and_closes_them_on_sigterm() {
    use tokio_tungstenite::tungstenite::{self, Message};
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!(
            "manifest_version = 1\n[function.chat]\ncomponent = \"{}\"\nwebsocket = {{ path = \"/chat\" }}\n\
             [function.quiet]\ncomponent = \"{}\"\n[function.notify]\ncomponent = \"{}\"\n",
            nimbus_tests::components::WS_ECHO,
            nimbus_tests::components::WS_ECHO,
            nimbus_tests::components::WS_NOTIFY,
        ),
    );
    let (mut child, url, output) = start_serve_logged(&m, &mut nimbus(), &[]);
    let host = url.strip_prefix("http://").unwrap().to_string();
    let printed = output.all();
    assert!(printed.contains(&format!("WS      ws://{host}/chat")), "{printed}");
    assert!(printed.contains("(not served: give it a `websocket.path`"), "{printed}");

    let stream = std::net::TcpStream::connect(&host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut ws, resp) = tungstenite::client(format!("ws://{host}/chat"), stream).expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("whoami")).unwrap();
    let id = loop {
        if let Message::Text(t) = ws.read().unwrap() {
            break t.as_str().to_owned();
        }
    };
    // An event function reaches the client through the gateway.
    let event = format!(r#"{{"to": ["{id}"], "text": "from an event function"}}"#);
    let (status, body) = http_post(&format!("{url}/2015-03-31/functions/notify/invocations"), &event, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""ok":1"#), "{body}");
    assert_eq!(ws.read().unwrap(), Message::text("from an event function"));

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let close = loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => break frame,
            Ok(_) => continue,
            Err(e) => panic!("no close frame before the connection ended: {e}"),
        }
    };
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1001, "server shutting down")
    );
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert!(status.success(), "serve exited with {status}");
    let stdout = output.finished_stdout();
    assert!(
        stdout.contains(&format!("disconnect {id} code=Some(1001) reason=server shutting down")),
        "{stdout}"
    );
    assert!(stdout.contains(r#""msg":"websocket closed""#), "{stdout}");
}

/// A directory with the sha-task component precompiled (so each of many boots is fast) and a manifest whose
/// short timeout forces many runs.
fn sha_task_app(timeout: &str, yield_margin: &str, max_attempts: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    precompiled_sha_task_app(&format!(
        "manifest_version = 1\n[function.sha-task]\ncomponent = \"sha.wasm\"\nprecompiled = \"sha.cwasm.lz4\"\n\
         timeout = \"{timeout}\"\ntask = {{ yield_margin = \"{yield_margin}\", max_attempts = {max_attempts} }}\n"
    ))
}

/// A directory holding the sha-task component as `sha.wasm`, `manifest` (which names it, and `sha.cwasm.lz4`
/// as its precompiled artifact), and that artifact made by `nimbus compile`.
fn precompiled_sha_task_app(manifest: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(nimbus_tests::components::SHA_TASK, dir.path().join("sha.wasm")).unwrap();
    let m = write_manifest(dir.path(), manifest);
    let out = run(nimbus().args(["compile", "--manifest"]).arg(&m));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (dir, m)
}

fn task_status(url: &str, function: &str, id: &str) -> serde_json::Value {
    let (status, body) = http_get(&format!("{url}/tasks/{function}/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn task_serve_runs_a_posted_task_to_the_exact_result_and_cli_reads_its_status() {
    let (dir, m) = sha_task_app("500ms", "200ms", 3);
    let state = dir.path().join("state");
    let (child, url, output) = start_serve_logged(&m, &mut nimbus(), &["--state-dir".as_ref(), state.as_os_str()]);
    let (status, body) = http_post(&format!("{url}/tasks/sha-task"), r#"{"mib": 64, "seed": 5}"#, &[]);
    assert_eq!(status, 202, "{body}");
    let started: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = started["task_id"].as_str().unwrap().to_owned();
    assert_eq!(started["status_url"], format!("/tasks/sha-task/{id}"));
    let until = std::time::Instant::now() + Duration::from_secs(90);
    let done = loop {
        let s = task_status(&url, "sha-task", &id);
        if s["status"] == "done" || s["status"] == "failed" {
            break s;
        }
        assert!(std::time::Instant::now() < until, "not done: {s}\n{}", output.all());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["result"]["sha256"],
        nimbus_tests::native::sha_chain(64, 5),
        "{done}"
    );
    assert_eq!(done["progress"], "64/64 MiB");
    stop(child);

    // `nimbus task status` reads the same store.
    let out = run(nimbus().args(["task", "status", &id, "--state-dir"]).arg(&state));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["status"], "done");
    assert_eq!(cli["result"], done["result"]);
    let out = run(nimbus().args(["task", "status", "nope", "--state-dir"]).arg(&state));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task"));
}

/// The root `nimbus.toml`'s `sha-task` function exactly as shipped — its `timeout`, its `task` settings and the
/// app's `defaults` — with only the component paths pointed at the test build (precompiled in the directory).
/// Reading the real file means a change to the shipped settings is tested here.
fn shipped_sha_task_app() -> (tempfile::TempDir, std::path::PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nimbus.toml");
    let mut shipped: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let mut function = shipped["function"]["sha-task"].as_table().unwrap().clone();
    assert!(
        function.contains_key("task"),
        "the shipped sha-task has task settings: {function:?}"
    );
    function.insert("component".into(), "sha.wasm".into());
    function.insert("precompiled".into(), "sha.cwasm.lz4".into());
    let mut manifest = toml::Table::new();
    manifest.insert("manifest_version".into(), 1.into());
    if let Some(defaults) = shipped.remove("defaults") {
        manifest.insert("defaults".into(), defaults);
    }
    manifest.insert(
        "function".into(),
        toml::Table::from_iter([("sha-task".to_owned(), function.into())]).into(),
    );
    precompiled_sha_task_app(&toml::to_string(&manifest).unwrap())
}

/// A task of the kill test: its id, its input's seed, the highest `seq` and `attempts` seen, and whether it
/// is done.
struct KillTestTask {
    id: String,
    seed: u64,
    seq: u64,
    attempts: u64,
    done: bool,
}

/// SIGKILL `nimbus serve` at random points while tasks run, with the shipped example's settings
/// (`max_attempts = 3`), restarting it on the same state directory each time: every task finishes `done` with
/// the exact result, so no run killed after committing was held against its task, and no committed checkpoint
/// is lost (a task's `seq` never goes backwards across restarts).
///
/// The kill schedule is a crash pattern a real host can have: it crashes at random moments, but not faster
/// than it gets work done. Most kills come at a random moment after every unfinished task has committed a new
/// checkpoint since the restart; every fourth comes at an arbitrary moment after the restart, which may be
/// before a task's run has committed anything. Such a run legitimately counts as a failed attempt; two of them
/// never come in a row, so a correct host never reaches `max_attempts = 3`.
#[test]
fn task_sigkill_at_random_points_with_shipped_settings_loses_no_commit_and_results_are_exact() {
    const KILLS: usize = 20;
    /// Tasks kept running at once; a finished one is checked and replaced, so every kill hits work in flight
    /// however fast the machine is.
    const IN_FLIGHT: usize = 3;
    /// MiB per task: several runs of the shipped 2 s timeout each, so most kills cut a run short.
    const MIB: u64 = 192;
    let began = std::time::Instant::now();
    let (dir, m) = shipped_sha_task_app();
    let state = dir.path().join("state");
    let flags = ["--state-dir".as_ref(), state.as_os_str()];
    // A seed printed so a failure can be replayed (NIMBUS_TEST_SEED); the kill points come from it.
    let seed = std::env::var("NIMBUS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill-point seed: {seed} (replay with NIMBUS_TEST_SEED={seed})");
    let mut rng = seed | 1;
    let mut next = move |lo: u64, hi: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        lo + rng % (hi - lo)
    };

    let mut tasks: Vec<KillTestTask> = Vec::new();
    // Reads every unfinished task's status: no `seq` goes backwards, nothing fails, a finished result is exact.
    let check = |url: &str, tasks: &mut [KillTestTask]| {
        for t in tasks.iter_mut().filter(|t| !t.done) {
            let s = task_status(url, "sha-task", &t.id);
            let seq = s["seq"].as_u64().unwrap();
            assert!(
                seq >= t.seq,
                "task {}: seq went back from {} to {seq}: {s}",
                t.id,
                t.seq
            );
            t.seq = seq;
            t.attempts = t.attempts.max(s["attempts"].as_u64().unwrap());
            assert_ne!(s["status"], "failed", "seed {seed}: {s}");
            if s["status"] == "done" {
                assert_eq!(
                    s["result"]["sha256"],
                    nimbus_tests::native::sha_chain(MIB, t.seed),
                    "{s}"
                );
                t.done = true;
            }
        }
    };
    // Keeps IN_FLIGHT tasks unfinished by starting new ones.
    let top_up = |url: &str, tasks: &mut Vec<KillTestTask>| {
        while tasks.iter().filter(|t| !t.done).count() < IN_FLIGHT {
            let seed = tasks.len() as u64 + 1;
            let (status, reply) = http_post(
                &format!("{url}/tasks/sha-task"),
                &format!(r#"{{"mib": {MIB}, "seed": {seed}}}"#),
                &[],
            );
            assert_eq!(status, 202, "{reply}");
            let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
            tasks.push(KillTestTask {
                id: v["task_id"].as_str().unwrap().to_owned(),
                seed,
                seq: 0,
                attempts: 0,
                done: false,
            });
        }
    };

    for kill in 1..=KILLS {
        let (mut child, url, output) = start_serve_logged(&m, &mut nimbus(), &flags);
        check(&url, &mut tasks);
        top_up(&url, &mut tasks);
        if kill % 4 == 0 {
            // Anywhere: while the dead runs' leases run out, mid-run, mid-commit, between runs.
            std::thread::sleep(Duration::from_millis(next(0, 2500)));
        } else {
            // After every unfinished task committed in this life of the server, at a random point of its run.
            let since: Vec<u64> = tasks.iter().map(|t| t.seq).collect();
            let until = std::time::Instant::now() + Duration::from_secs(60);
            while tasks.iter().zip(&since).any(|(t, &s)| !t.done && t.seq <= s) {
                assert!(
                    std::time::Instant::now() < until,
                    "seed {seed}: no progress after restart {kill}:\n{}",
                    output.all()
                );
                std::thread::sleep(Duration::from_millis(50));
                check(&url, &mut tasks);
            }
            std::thread::sleep(Duration::from_millis(next(0, 1000)));
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
    }

    let killed = began.elapsed();
    let (child, url, output) = start_serve_logged(&m, &mut nimbus(), &flags);
    let until = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        check(&url, &mut tasks);
        if tasks.iter().all(|t| t.done) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "seed {seed}: tasks did not finish:\n{}",
            output.all()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    // The store (read by the CLI) holds every exact result; report how the tasks fared.
    let mut counts = Vec::new();
    for t in &tasks {
        let out = run(nimbus().args(["task", "status", &t.id, "--state-dir"]).arg(&state));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["status"], "done", "{s}");
        assert!(s["seq"].as_u64().unwrap() >= t.seq);
        assert_eq!(
            s["result"]["sha256"],
            nimbus_tests::native::sha_chain(MIB, t.seed),
            "{s}"
        );
        counts.push(format!("{} runs, at most {} attempts", s["runs"], t.attempts));
    }
    eprintln!(
        "{KILLS} kills in {killed:.0?}, {} tasks of {MIB} MiB all done after {:.0?}: {}",
        tasks.len(),
        began.elapsed(),
        counts.join("; ")
    );
}

#[test]
fn serve_refuses_bad_listener_limits_at_start_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    let out = run(nimbus().args(["serve", "--max-connections", "0", "--manifest"]).arg(&m));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-connections") && stderr.contains("1..=1000000"),
        "{stderr}"
    );
    let out = run(nimbus()
        .env("NIMBUS_HEADER_READ_TIMEOUT", "forever")
        .args(["serve", "--manifest"])
        .arg(&m));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--header-read-timeout") && stderr.contains("not a duration"),
        "{stderr}"
    );
}

/// A child process killed (and reaped) when dropped, so a failing test leaves no server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `nimbus` run by `bash` under an open-file limit as `ulimit` sets it (`-S -n N`: the soft limit only, as
/// a default login has it; `-n N`: soft and hard), like [`nimbus`] otherwise.
fn nimbus_under_ulimit(ulimit: &str) -> Command {
    let mut c = Command::new("bash");
    c.env("NIMBUS_LOG", "warn").args([
        "-c",
        &format!("ulimit {ulimit} && exec \"$@\""),
        "bash",
        env!("CARGO_BIN_EXE_nimbus"),
    ]);
    c
}

/// The address `nimbus serve` printed.
fn serve_addr(url: &str) -> std::net::SocketAddr {
    url.strip_prefix("http://").unwrap().parse().unwrap()
}

/// The loopback address `127.0.{a}.{b}` (clients play several addresses against per-address bounds).
fn loopback(a: u8, b: u8) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, a, b])
}

/// Raises this test process's own open-file limit for the many client sockets it opens (`need`).
fn enough_open_files(need: u64) {
    let limit = nimbus_platforms::listener::raise_open_file_limit().unwrap_or(0);
    assert!(
        limit >= need,
        "this test opens {need} sockets; the open-file limit is {limit} (raise the hard limit: ulimit -Hn)"
    );
}

/// Opens `per_address` connections from each address of `from`, fifty at a time, each sending half a
/// request line and nothing more. A connect that does not complete in 5 s (the server stopped accepting,
/// its backlog is full) is given up on.
async fn slow_clients(
    addr: std::net::SocketAddr,
    from: &[std::net::IpAddr],
    per_address: usize,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut out = Vec::with_capacity(from.len() * per_address);
    for &ip in from {
        for batch in 0..per_address.div_ceil(50) {
            let n = 50.min(per_address - batch * 50);
            let connects = (0..n).map(|_| async move {
                let mut s = tokio::time::timeout(Duration::from_secs(5), nimbus_tests::connect_from(ip, addr))
                    .await
                    .ok()?
                    .ok()?;
                s.write_all(b"GET /hel").await.ok()?;
                Some(s)
            });
            out.extend(futures_util::future::join_all(connects).await.into_iter().flatten());
        }
    }
    out
}

/// What the server did with slow clients so far: how many it answered (a refusal, by status), and how many
/// it holds open without a word (nothing to read within a second).
async fn slow_client_states(clients: &[tokio::net::TcpStream]) -> (std::collections::BTreeMap<u16, usize>, usize) {
    let states = clients.iter().map(|c| async move {
        let mut buf = [0u8; 512];
        let read = async {
            loop {
                c.readable().await?;
                match c.try_read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(1), read).await {
            Err(_) => None,
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                Some(text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
            }
            Ok(Err(_)) => Some(0),
        }
    });
    let mut answered = std::collections::BTreeMap::new();
    let mut held = 0;
    for state in futures_util::future::join_all(states).await {
        match state {
            None => held += 1,
            Some(status) => *answered.entry(status).or_insert(0) += 1,
        }
    }
    (answered, held)
}

/// `GET {path}` from `from` over a new connection, retried every 100 ms while the server refuses it (503)
/// or does not answer within 5 s, until `deadline`. The status it ended with and how long it took.
async fn get_until_served(
    from: std::net::IpAddr,
    addr: std::net::SocketAddr,
    path: &str,
    deadline: std::time::Instant,
) -> (u16, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    loop {
        let attempt = async {
            let mut s = nimbus_tests::connect_from(from, addr).await.ok()?;
            let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.ok()?;
            String::from_utf8_lossy(&out)
                .split_whitespace()
                .nth(1)?
                .parse::<u16>()
                .ok()
        };
        let status = tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .ok()
            .flatten();
        match status {
            Some(503) | None if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return (other.unwrap_or(0), started.elapsed()),
        }
    }
}

#[test]
fn serve_answers_at_once_while_a_thousand_slow_clients_hold_connections_with_the_shipped_limits() {
    const SLOW: usize = 1200;
    enough_open_files(SLOW as u64 + 200);
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    // The soft limit of a default Linux login (1024); the hard one is left as it is.
    let (child, url, _output) = start_serve_logged(&m, &mut nimbus_under_ulimit("-S -n 1024"), &[]);
    let _serve = KillOnDrop(child);
    let addr = serve_addr(&url);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let started = std::time::Instant::now();
        let slow = slow_clients(addr, &[loopback(0, 1)], SLOW).await;
        let opened = started.elapsed();
        // A normal client from another address, while the slow ones are held.
        let (status, took) = get_until_served(loopback(0, 2), addr, "/hello", started + Duration::from_secs(60)).await;
        let (answered, held) = slow_client_states(&slow).await;
        eprintln!(
            "{} slow connections opened in {opened:?}; answered {answered:?}, {held} held; /hello: {status} \
             after {took:?}",
            slow.len()
        );
        assert_eq!(status, 200, "the normal request was not served");
        assert!(
            took < Duration::from_secs(10),
            "the normal request waited {took:?}, as long as the header timeout"
        );
        // One address holds at most its share (max_connections_per_ip = 256); the rest were answered 429
        // (unless opening them took so long that held ones timed out and made room meanwhile).
        assert!(held > 0 && held <= 256, "{held} held");
        if opened < Duration::from_secs(8) {
            assert_eq!(
                answered.get(&429).copied().unwrap_or(0) + held,
                slow.len(),
                "{answered:?}"
            );
        }
    });
}

#[test]
fn serve_under_a_low_descriptor_limit_serves_a_normal_request_within_the_header_timeout_of_a_flood() {
    const PER_ADDRESS: usize = 200;
    const ADDRESSES: u8 = 6;
    enough_open_files(PER_ADDRESS as u64 * ADDRESSES as u64 + 200);
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    // Soft and hard limit 1024: the connection bound comes down to fit (768), so accept never runs out.
    // A short header timeout keeps the test short (given as the environment variable, which the flag
    // reads too).
    let timeout = Duration::from_secs(5);
    let mut cmd = nimbus_under_ulimit("-n 1024");
    cmd.env("NIMBUS_HEADER_READ_TIMEOUT", "5s");
    let (child, url, output) = start_serve_logged(&m, &mut cmd, &[]);
    let _serve = KillOnDrop(child);
    let addr = serve_addr(&url);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let started = std::time::Instant::now();
        // From six addresses, each under its own bound: the global bound is what they meet.
        let from: Vec<_> = (1..=ADDRESSES).map(|b| loopback(1, b)).collect();
        let slow = slow_clients(addr, &from, PER_ADDRESS).await;
        let opened = started.elapsed();
        let (status, took) = get_until_served(
            loopback(0, 3),
            addr,
            "/hello",
            started + timeout + Duration::from_secs(30),
        )
        .await;
        let (answered, held) = slow_client_states(&slow).await;
        eprintln!(
            "{} slow connections opened in {opened:?}; answered {answered:?}, {held} still held; /hello: \
             {status} after {took:?} (header timeout {timeout:?})",
            slow.len()
        );
        assert_eq!(status, 200, "the normal request was not served");
        assert!(
            started.elapsed() < opened + timeout + Duration::from_secs(10),
            "served {:?} after the flood began",
            started.elapsed()
        );
        // The excess was refused at once with 503, not left hanging (if the flood came faster than the
        // held connections timed out).
        if opened < timeout {
            assert!(answered.get(&503).copied().unwrap_or(0) > 0, "{answered:?}");
        }
    });
    // The bound came down to fit the descriptors, and said so.
    let printed = output.all();
    assert!(printed.contains("serving at most 768 connections"), "{printed}");
}

/// The resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn serve_gives_back_the_memory_of_a_thousand_slow_clients_once_they_leave() {
    const PER_ADDRESS: usize = 250;
    enough_open_files(4 * PER_ADDRESS as u64 + 200);
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    let (child, url, _output) = start_serve_logged(&m, &mut nimbus(), &["--no-access-log".as_ref()]);
    let serve = KillOnDrop(child);
    let addr = serve_addr(&url);
    let pid = serve.0.id();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let served = |deadline| get_until_served(loopback(0, 2), addr, "/hello", deadline);
        // The baseline is taken after ordinary requests: what serving keeps (instances, caches, the
        // runtime's threads) is in it.
        for _ in 0..50 {
            assert_eq!(served(std::time::Instant::now()).await.0, 200);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let baseline = rss_kib(pid);
        // A thousand slow clients from four addresses: under both connection bounds, so all are held.
        let from: Vec<_> = (1..=4).map(|b| loopback(3, b)).collect();
        let slow = slow_clients(addr, &from, PER_ADDRESS).await;
        assert_eq!(served(std::time::Instant::now() + Duration::from_secs(30)).await.0, 200);
        let peak = rss_kib(pid);
        let (answered, held) = slow_client_states(&slow).await;
        assert_eq!(held, slow.len(), "all held: {answered:?}");
        drop(slow);
        // The server sees them go, frees their state and gives the pages back.
        let grown = peak.saturating_sub(baseline);
        let allowed = baseline + (grown / 4).max(4 * 1024);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut after = rss_kib(pid);
        while after > allowed && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            after = rss_kib(pid);
        }
        eprintln!(
            "RSS: {baseline} KiB before, {peak} KiB with {held} slow connections ({} KiB each), {after} KiB \
             after they left",
            grown / held.max(1) as u64
        );
        assert!(
            after <= allowed,
            "RSS {after} KiB, {} KiB above the baseline",
            after.saturating_sub(baseline)
        );
    });
}

/// What `NIMBUS_LOG` must say for the engine's settings line (README, "Settings (environment)").
const ENGINE_LOG: &str = "warn,nimbus_core::engine=debug";

/// The value of `name=…` in a compact log line.
fn log_field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// A `nimbus serve` of `manifest` with `env` set and the engine's settings line on, after one answered
/// `GET /hello`: that line, and the process's stdout so far.
fn serve_engine_settings(manifest: &Path, env: &[(&str, &str)]) -> (String, String) {
    let mut cmd = nimbus();
    cmd.env("NIMBUS_LOG", ENGINE_LOG).envs(env.iter().copied());
    let (child, url, output) = start_serve_logged(manifest, &mut cmd, &[]);
    let _serve = KillOnDrop(child);
    let (status, body) = http_get(&format!("{url}/hello?name=settings"));
    assert_eq!(status, 200, "{body}");
    // The access-log and metric lines follow the answer through a pipe.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !output.stdout.lock().unwrap().contains(r#""msg":"request""#) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = output.stderr.lock().unwrap().clone();
    let line = stderr
        .lines()
        .find(|l| l.contains("engine settings"))
        .unwrap_or_else(|| panic!("no engine settings line: {stderr}"))
        .to_owned();
    let stdout = output.stdout.lock().unwrap().clone();
    (line, stdout)
}

/// Each engine setting, and the metrics settings, change what `nimbus serve` runs: before, `serve` built its
/// engine from the defaults whatever the environment said.
#[test]
fn serve_honours_every_engine_and_metrics_setting() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    // The defaults: the pool fits the function's `concurrency` (64), no metric lines.
    let (line, stdout) = serve_engine_settings(&m, &[]);
    for (field, value) in [
        ("pool_instances", "64"),
        ("pooling", "true"),
        ("epoch_tick_ms", "1"),
        ("keep_resident", "4194304"),
        ("memory_cow", "false"),
        (
            "pagemap_scan",
            if nimbus_core::engine::PAGEMAP_SCAN_DEFAULT {
                "true"
            } else {
                "false"
            },
        ),
    ] {
        assert_eq!(log_field(&line, field), value, "{field} by default: {line}");
    }
    assert!(!stdout.contains("CloudWatchMetrics"), "{stdout}");

    let (line, stdout) = serve_engine_settings(
        &m,
        &[
            ("NIMBUS_POOL_INSTANCES", "100"),
            ("NIMBUS_EPOCH_TICK_MS", "5"),
            ("NIMBUS_KEEP_RESIDENT", "65536"),
            ("NIMBUS_MEMORY_COW", "1"),
            (
                "NIMBUS_PAGEMAP_SCAN",
                if nimbus_core::engine::PAGEMAP_SCAN_DEFAULT {
                    "0"
                } else {
                    "1"
                },
            ),
            ("NIMBUS_METRICS", "emf"),
            ("NIMBUS_METRICS_NAMESPACE", "SettingsTest"),
        ],
    );
    for (field, value) in [
        ("pool_instances", "100"),
        ("pooling", "true"),
        ("epoch_tick_ms", "5"),
        ("keep_resident", "65536"),
        ("memory_cow", "true"),
        (
            "pagemap_scan",
            if nimbus_core::engine::PAGEMAP_SCAN_DEFAULT {
                "false"
            } else {
                "true"
            },
        ),
    ] {
        assert_eq!(log_field(&line, field), value, "{field} as set: {line}");
    }
    assert!(stdout.contains(r#""Namespace":"SettingsTest""#), "{stdout}");

    // NIMBUS_POOLING=0 turns the pool off; a NIMBUS_POOL_INSTANCES below what the manifest needs is raised.
    let (line, _) = serve_engine_settings(&m, &[("NIMBUS_POOLING", "0"), ("NIMBUS_POOL_INSTANCES", "8")]);
    assert_eq!(log_field(&line, "pooling"), "false", "{line}");
    assert_eq!(log_field(&line, "pool_instances"), "64", "{line}");
}

/// The OpenTelemetry settings reach `nimbus serve`'s span export: the collector, the service name and the
/// compression.
#[test]
fn serve_exports_spans_as_the_opentelemetry_variables_say() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(nimbus_tests::otlp_receiver::OtlpReceiver::start());
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    let mut cmd = nimbus();
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "settings-test")
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
    let (child, url) = start_serve_with(&m, &mut cmd, &[]);
    let _serve = KillOnDrop(child);
    assert_eq!(http_get(&format!("{url}/hello?name=otel")).0, 200);
    let spans = rt.block_on(receiver.wait_for(Duration::from_secs(60), |s| s.iter().any(|s| s.name == "hello")));
    let span = spans.iter().find(|s| s.name == "hello").unwrap();
    assert_eq!(span.resource["service.name"], "settings-test", "{span:?}");
    assert!(receiver.gzipped("/v1/traces") > 0, "the spans came uncompressed");
}

/// `nimbus invoke` builds its engine from the same settings (before, from the defaults), and warns once about
/// a `NIMBUS_*` variable no setting has, naming the one it resembles.
#[test]
fn invoke_honours_the_engine_settings_and_warns_about_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.echo]\ncomponent = \"{ECHO}\"\n"),
    );
    let out = run(nimbus()
        .env("NIMBUS_LOG", ENGINE_LOG)
        .env("NIMBUS_POOL_INSTANCES", "100")
        .env("NIMBUS_EPOCH_TICK_MS", "7")
        .env("NIMBUS_KEEP_RESIDNET", "1")
        .args(["invoke", "echo", "--data", "{}", "--manifest"])
        .arg(&m));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("engine settings"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(log_field(line, "pool_instances"), "100", "{line}");
    assert_eq!(log_field(line, "epoch_tick_ms"), "7", "{line}");
    let unknown: Vec<&str> = stderr.lines().filter(|l| l.contains("NIMBUS_KEEP_RESIDNET")).collect();
    assert_eq!(unknown.len(), 1, "{stderr}");
    assert!(
        unknown[0].contains("WARN") && unknown[0].contains("NIMBUS_KEEP_RESIDENT"),
        "{stderr}"
    );
}

/// A bad value for any setting stops `nimbus serve` and `nimbus invoke` before they boot, naming the variable
/// and the value; before, `serve` and `invoke` ignored the engine settings whatever they held.
#[test]
fn serve_and_invoke_refuse_a_bad_setting_naming_the_variable() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!(
            "manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n\
             [function.echo]\ncomponent = \"{ECHO}\"\n"
        ),
    );
    let not_utf8 = std::ffi::OsStr::from_bytes(b"64\xff");
    let cases: [(&str, &std::ffi::OsStr, &str); 4] = [
        ("NIMBUS_EPOCH_TICK_MS", "soon".as_ref(), "\"soon\""),
        ("NIMBUS_POOL_INSTANCES", "-3".as_ref(), "\"-3\""),
        ("NIMBUS_OTEL_FLUSH_TIMEOUT_MS", "1s".as_ref(), "\"1s\""),
        ("NIMBUS_KEEP_RESIDENT", not_utf8, "UTF-8"),
    ];
    for (var, value, says) in cases {
        let mut serve = nimbus()
            .env(var, value)
            .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
            .arg(&m)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = serve.stderr.take().unwrap();
        let status = wait_with_timeout(&mut serve, Duration::from_secs(60));
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        assert!(!status.success(), "{var}: serve must not start");
        assert!(text.contains(var) && text.contains(says), "{var}: {text}");
        assert!(!text.contains("listening on"), "{text}");

        let out = run(nimbus()
            .env(var, value)
            .args(["invoke", "echo", "--data", "{}", "--manifest"])
            .arg(&m));
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}: invoke must not run");
        assert!(text.contains(var) && text.contains(says), "{var}: {text}");
        assert!(out.stdout.is_empty(), "{var}: nothing was invoked");
    }
}

/// The shipped `dependency-fails` experiment run as the README says, against the shipped `nimbus.toml`: the
/// quote upstream fails for 10 s, its breaker opens (the function degrades instead of failing), probes and
/// closes; the run meets its targets, and the report is written as JSON, HTML and the host's log.
#[test]
fn chaos_runs_the_shipped_experiment_and_the_breaker_opens_degrades_and_recovers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        Path::new(nimbus_tests::components::QUOTE).exists(),
        "the guests are built"
    );
    let out = tempfile::tempdir().unwrap();
    let o = run(nimbus()
        .arg("chaos")
        .arg(root.join("examples/chaos/dependency-fails.toml"))
        .arg("--out")
        .arg(out.path()));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("PASSED"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["seed"], 18);
    let transitions: Vec<(String, String)> = report["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["from"].as_str().unwrap().to_owned(),
                b["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        transitions.first(),
        Some(&("closed".to_owned(), "open".to_owned())),
        "{transitions:?}"
    );
    assert_eq!(
        transitions.last(),
        Some(&("half_open".to_owned(), "closed".to_owned())),
        "{transitions:?}"
    );
    let opened = report["breakers"][0]["t_s"].as_f64().unwrap();
    assert!(
        (5.0..15.0).contains(&opened),
        "opened at {opened}s, inside the fault window"
    );
    let phases = report["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["before faults", "during upstream-down", "after faults"]);
    assert_eq!(phases[0]["errors"], 0);
    assert!(
        phases[1]["error_rate"].as_f64().unwrap() < 0.5,
        "degraded, not failing: {}",
        phases[1]
    );
    assert_eq!(report["recovery_s"], 0.0);
    let page = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(
        page.contains("<svg") && page.contains("breaker-open"),
        "the page draws the open breaker"
    );
    let log = std::fs::read_to_string(out.path().join("host.log")).unwrap();
    assert!(log.contains("\"fault injected\"") && log.contains("\"circuit breaker transition\""));
}

/// A target missed: the report says which, and `nimbus chaos` exits 1 (a CI gate); a bad experiment is
/// refused before anything runs.
#[test]
fn chaos_exits_1_when_a_target_is_missed_and_refuses_a_bad_experiment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let experiment = dir.path().join("broken-hello.toml");
    std::fs::write(
        &experiment,
        format!(
            r#"name = "hello always fails"
[target]
manifest = "{}"
path = "/hello"
[load]
rate = 20
duration = "2s"
[faults]
seed = 1
[[faults.rule]]
function = "hello"
target = "invocation"
kind = "error"
[sla]
error_rate = 0.01
p99 = "5s"
"#,
            root.join("nimbus.toml").display()
        ),
    )
    .unwrap();
    let o = run(nimbus()
        .arg("chaos")
        .arg(&experiment)
        .arg("--out")
        .arg(dir.path().join("out")));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("MISS error_rate") && stdout.contains("ok   p99"),
        "{stdout}"
    );
    assert!(stderr.contains("SLA missed: error_rate 100.00%"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], false);

    std::fs::write(
        &experiment,
        "[target]\nurl = \"http://127.0.0.1:9\"\n[load]\nrate = -1\nduration = \"1s\"\n",
    )
    .unwrap();
    let o = run(nimbus().arg("chaos").arg(&experiment));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("load.rate = -1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Level 5 of the ladder: resident memory over the memory size's threshold makes the host stop taking work,
/// write a fault snapshot and exit 75 (so the platform replaces it). A 1 MiB memory size is crossed at once.
#[test]
fn memory_pressure_stops_the_host_with_a_fault_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    let out = run(Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_nimbus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(&m)
        .env("NIMBUS_LOG", "warn")
        .env("NIMBUS_MEMORY_LIMIT", "1MiB"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stdout}\n{stderr}");
    let snapshot: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["msg"] == "fault snapshot")
        .unwrap_or_else(|| panic!("no snapshot in {stdout}"));
    assert_eq!(snapshot["level"], 5);
    assert_eq!(snapshot["memory_limit_bytes"], 1 << 20);
    assert!(
        snapshot["reason"].as_str().unwrap().contains("resident memory"),
        "{snapshot}"
    );
    assert_eq!(snapshot["levels"]["hello"], 0);
    let bad = run(nimbus()
        .args(["serve", "--manifest"])
        .arg(&m)
        .env("NIMBUS_MEMORY_PRESSURE", "2"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NIMBUS_MEMORY_PRESSURE"));
}
