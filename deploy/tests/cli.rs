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
    let mut child = nimbus()
        .args(["serve", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("nimbus serve did not start");
    (child, url)
}

fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    use std::io::Write;
    write!(s, "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_and_shuts_down_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_manifest(
        dir.path(),
        &format!("manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /hello\"]\n"),
    );
    let (mut child, url) = start_serve(&m);
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
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
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
