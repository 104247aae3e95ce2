//! `nimbus package --target fc|container|azure`: the layouts each platform takes, checked file by file, the
//! container image checked by real OCI tools (`skopeo`, `umoci`; `scripts/setup` installs them), and the
//! refusals that must leave no half-written output behind.

use nimbus_tests::oci::{base_image, tool};
use nimbus_tests::sha256;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const MANIFEST: &str = r#"
manifest_version = 1
app = { name = "pkg-suite" }
defaults = { timeout = "30s" }

[function.hello]
component = "{HTTP_ECHO}"
routes = ["GET /hello/{name}"]
timeout = "20s"
memory = "200MiB"
concurrency = 8

[function.api]
component = "{HTTP_ECHO}"
routes = ["GET /items/{id}", "POST /items"]

[function.echo]
component = "{ECHO}"
[function.echo.config]
token = { file = "token.txt" }
key = { env = "ECHO_KEY" }

[function.sha-task]
component = "{SHA_TASK}"
"#;

/// The app packaged for every target once per test binary.
struct Packaged {
    /// The source directory (manifest, token.txt).
    src: PathBuf,
    /// `<out>` of `nimbus package`.
    dist: PathBuf,
    /// The base image layout the container target stacked its layer on (`<dir>:<tag>`).
    base: String,
}

const FUNCTIONS: [&str; 3] = ["hello", "api", "echo"];

fn packaged() -> &'static Packaged {
    static P: OnceLock<Packaged> = OnceLock::new();
    P.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("platform-packages");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_manifest(&dir);
        let base = base_image(&dir.join("base"));
        let dist = dir.join("dist");
        for target in ["lambda", "fc", "container", "azure"] {
            let mut cmd = package(&dir, target, &dist);
            cmd.args(FUNCTIONS);
            if target == "container" {
                cmd.args(["--base", &base]);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{target}: {}", stderr(&out));
        }
        Packaged { src: dir, dist, base }
    })
}

fn write_manifest(dir: &Path) {
    let mut text = MANIFEST.to_owned();
    for (stem, path) in nimbus_tests::components::ALL {
        text = text.replace(&format!("{{{}}}", stem.to_uppercase()), path);
    }
    std::fs::write(dir.join("nimbus.toml"), text).unwrap();
    std::fs::write(dir.join("token.txt"), "file-token\n").unwrap();
}

/// `nimbus package --target T` of the manifest in `dir`, with this build's bootstrap.
fn package(dir: &Path, target: &str, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nimbus"));
    c.env("NIMBUS_LOG", "warn")
        .args(["package", "--target", target, "--manifest"])
        .arg(dir.join("nimbus.toml"))
        .args(["--bootstrap", env!("CARGO_BIN_EXE_bootstrap")])
        .arg("--out")
        .arg(out);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A zip's entries: name → (Unix mode, bytes).
fn zip_files(zip: &Path) -> BTreeMap<String, (Option<u32>, Vec<u8>)> {
    use std::io::Read as _;
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display()))).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            (f.name().unwrap().to_string(), (f.unix_mode().map(|m| m & 0o777), bytes))
        })
        .collect()
}

/// Every file under `dir`, by path relative to it, with the SHA-256 of its bytes (short to print on failure).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, sha256(&std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// YAML read by an independent parser (PyYAML from the test venv, else the system's), as JSON.
fn yaml(path: &Path) -> Value {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("moto-venv/bin/python");
    let python = if venv.is_file() { venv } else { PathBuf::from("python3") };
    let out = Command::new(&python)
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup", python.display()));
    assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The files every target packages for `function`, as the Lambda zip holds them (bootstrap included): the
/// reference the other layouts are compared with byte for byte.
fn lambda_files(function: &str) -> BTreeMap<String, (Option<u32>, Vec<u8>)> {
    zip_files(&packaged().dist.join(format!("lambda-x86_64/{function}.zip")))
}

/// A zip's entries by name, with the SHA-256 of their bytes, as [`tree`] gives them.
fn without_modes(files: BTreeMap<String, (Option<u32>, Vec<u8>)>) -> BTreeMap<String, String> {
    files.into_iter().map(|(k, (_, v))| (k, sha256(&v))).collect()
}

#[test]
fn fc_zips_hold_bootstrap_at_the_root_with_the_lambda_bytes() {
    let dist = &packaged().dist;
    for f in FUNCTIONS {
        let files = zip_files(&dist.join(format!("fc-x86_64/{f}.zip")));
        assert_eq!(files["bootstrap"].0, Some(0o755), "{f}: bootstrap is executable");
        assert!(
            files
                .iter()
                .filter(|(n, _)| *n != "bootstrap")
                .all(|(_, (m, _))| *m == Some(0o644))
        );
        assert_eq!(
            files["bootstrap"].1,
            std::fs::read(env!("CARGO_BIN_EXE_bootstrap")).unwrap(),
            "the bootstrap passed in"
        );
        // Same architecture, same bytes: artifact, component, manifest and bootstrap are the Lambda package's.
        assert_eq!(without_modes(files), without_modes(lambda_files(f)), "{f}");
    }
    let echo = zip_files(&dist.join("fc-x86_64/echo.zip"));
    let names: Vec<&str> = echo.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "bootstrap",
            "config/token",
            "echo.cwasm.lz4",
            "echo.wasm",
            "nimbus.toml"
        ]
    );
    assert_eq!(echo["config/token"].1, b"file-token\n");
    let manifest = String::from_utf8(echo["nimbus.toml"].1.clone()).unwrap();
    assert!(manifest.contains("component = \"echo.wasm\""), "{manifest}");
    assert!(manifest.contains("precompiled = \"echo.cwasm.lz4\""), "{manifest}");
    assert!(manifest.contains("file = \"config/token\""), "{manifest}");
    assert!(
        !manifest.contains("[function.hello]"),
        "one function per package: {manifest}"
    );
}

#[test]
fn fc_s_yaml_declares_each_function_for_serverless_devs() {
    let s = yaml(&packaged().dist.join("fc-x86_64/s.yaml"));
    assert_eq!(s["edition"], "3.0.0");
    assert_eq!(s["name"], "pkg-suite");
    let resources = s["resources"].as_object().unwrap();
    assert_eq!(resources.keys().collect::<Vec<_>>(), ["api", "echo", "hello"]);
    let hello = &s["resources"]["hello"];
    assert_eq!(hello["component"], "fc3");
    let props = &hello["props"];
    assert_eq!(props["functionName"], "hello");
    assert_eq!(props["code"], "./hello.zip");
    assert_eq!(props["runtime"], "custom.debian12");
    assert_eq!(
        props["customRuntimeConfig"],
        json!({"command": ["/code/bootstrap"], "port": 9000})
    );
    // 200 MiB for the instance plus the host's 128, rounded up to FC's 64 MB steps.
    assert_eq!(props["memorySize"], 384);
    assert_eq!(props["timeout"], 20);
    assert_eq!(props["instanceConcurrency"], 8);
    assert_eq!(props["instanceLifecycleConfig"]["preStop"]["handler"], "bootstrap");
    assert_eq!(
        props["triggers"],
        json!([{"triggerName": "http", "triggerType": "http", "qualifier": "LATEST",
                "triggerConfig": {"authType": "anonymous", "disableURLInternet": false, "methods": ["GET"]}}])
    );
    let api = &s["resources"]["api"]["props"];
    assert_eq!(api["triggers"][0]["triggerConfig"]["methods"], json!(["GET", "POST"]));
    assert_eq!(api["memorySize"], 256);
    assert_eq!(api["timeout"], 30);
    // An event function gets no trigger: the user chooses one (timer, OSS, MNS, ...).
    let echo = &s["resources"]["echo"]["props"];
    assert!(echo.get("triggers").is_none(), "{echo}");
    assert_eq!(echo["environmentVariables"], Value::Null, "{echo}");
}

/// The image layout read by skopeo and unpacked by umoci: the base's layer below, the package's files in
/// `/app` byte for byte, and the config the platforms need.
#[test]
fn container_layout_is_an_image_skopeo_and_umoci_read() {
    let p = packaged();
    let layout = p.dist.join("container-x86_64/hello");
    let reference = format!("oci:{}:latest", layout.display());
    let inspect: Value = serde_json::from_slice(&tool("skopeo", &["inspect", &reference]).stdout).unwrap();
    assert_eq!(
        (&inspect["Architecture"], &inspect["Os"]),
        (&json!("amd64"), &json!("linux"))
    );
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        2,
        "the base's layer and ours: {inspect}"
    );
    let config: Value = serde_json::from_slice(&tool("skopeo", &["inspect", "--config", &reference]).stdout).unwrap();
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], json!(["/app/bootstrap"]));
    assert_eq!(
        c["Cmd"],
        Value::Null,
        "the base's command would become bootstrap's arguments"
    );
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(
        c["Env"],
        json!(["PATH=/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"]),
        "the base's environment is kept, nothing added"
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    let bundle = tempfile::tempdir().unwrap();
    let into = bundle.path().join("b");
    nimbus_tests::oci::unpack(&layout, "latest", &into);
    let rootfs = into.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/base-marker")).unwrap(),
        "from the base\n"
    );
    assert_eq!(tree(&rootfs.join("app")), without_modes(lambda_files("hello")));
    assert_eq!(mode(&rootfs.join("app/bootstrap")), 0o755);
    assert_eq!(mode(&rootfs.join("app/nimbus.toml")), 0o644);
    // umoci's runtime config carries the image's entrypoint and ports.
    let runtime = json_file(&into.join("config.json"));
    assert_eq!(runtime["process"]["args"], json!(["/app/bootstrap"]));
    assert_eq!(runtime["process"]["cwd"], "/app");
}

#[test]
fn container_output_is_reproducible() {
    let p = packaged();
    let again = tempfile::tempdir().unwrap();
    let out = package(&p.src, "container", again.path())
        .args(["hello", "--base", &p.base])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(&again.path().join("container-x86_64/hello")),
        tree(&p.dist.join("container-x86_64/hello")),
        "two runs write the same blobs and index"
    );
    let index = json_file(&p.dist.join("container-x86_64/hello/index.json"));
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert_eq!(
        index["manifests"][0]["platform"],
        json!({"architecture": "amd64", "os": "linux"})
    );
}

#[test]
fn knative_service_yaml_takes_the_manifests_limits() {
    let svc = yaml(&packaged().dist.join("container-x86_64/hello.service.yaml"));
    assert_eq!(svc["apiVersion"], "serving.knative.dev/v1");
    assert_eq!(svc["kind"], "Service");
    assert_eq!(svc["metadata"]["name"], "hello");
    let spec = &svc["spec"]["template"]["spec"];
    assert_eq!(spec["containerConcurrency"], 8);
    assert_eq!(spec["timeoutSeconds"], 20);
    let container = &spec["containers"][0];
    assert!(container["image"].as_str().unwrap().contains("hello"), "{container}");
    assert_eq!(container["ports"], json!([{"containerPort": 8080}]));
    assert_eq!(container["resources"]["limits"]["memory"], "328Mi");
    // The event function's declared variable is listed for the user to set, not given an empty value.
    let echo = std::fs::read_to_string(packaged().dist.join("container-x86_64/echo.service.yaml")).unwrap();
    assert!(echo.contains("ECHO_KEY"), "{echo}");
    assert_eq!(
        yaml(&packaged().dist.join("container-x86_64/echo.service.yaml"))["spec"]["template"]["spec"]["containers"][0]
            ["env"],
        Value::Null
    );
}

#[test]
fn azure_app_has_host_json_a_function_folder_and_the_executable() {
    let dist = &packaged().dist;
    let app = dist.join("azure-x86_64/hello");
    let host = json_file(&app.join("host.json"));
    assert_eq!(
        host,
        json!({
            "version": "2.0",
            "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
            "customHandler": {
                "description": {"defaultExecutablePath": "bootstrap"},
                "enableProxyingHttpRequest": true
            },
            "extensions": {"http": {"routePrefix": ""}}
        })
    );
    assert_eq!(
        json_file(&app.join("hello/function.json")),
        json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous",
             "methods": ["get"], "route": "hello/{name}"},
            {"type": "http", "direction": "out", "name": "res"}
        ]})
    );
    assert_eq!(mode(&app.join("bootstrap")), 0o755);
    // Several routes are one catch-all trigger; the host routes within the function as under `nimbus serve`.
    let api = json_file(&dist.join("azure-x86_64/api/api/function.json"));
    assert_eq!(api["bindings"][0]["route"], "{*path}");
    assert_eq!(api["bindings"][0]["methods"], json!(["get", "post"]));
    // An event function: a queue trigger on a queue named after it, no HTTP anywhere.
    let echo = dist.join("azure-x86_64/echo");
    assert_eq!(
        json_file(&echo.join("echo/function.json")),
        json!({"bindings": [{"type": "queueTrigger", "direction": "in", "name": "event", "queueName": "echo",
                             "connection": "AzureWebJobsStorage"}]})
    );
    let echo_host = json_file(&echo.join("host.json"));
    assert!(
        echo_host["customHandler"].get("enableProxyingHttpRequest").is_none(),
        "{echo_host}"
    );
    assert!(echo_host.get("extensions").is_none(), "{echo_host}");

    // The root holds the Lambda package's files byte for byte; the zip holds the folder as is.
    for f in FUNCTIONS {
        let app = dist.join(format!("azure-x86_64/{f}"));
        let mut files = tree(&app);
        files.remove("host.json");
        files.remove(&format!("{f}/function.json"));
        assert_eq!(files, without_modes(lambda_files(f)), "{f}");
        let zipped = zip_files(&dist.join(format!("azure-x86_64/{f}.zip")));
        assert_eq!(zipped["bootstrap"].0, Some(0o755));
        assert_eq!(without_modes(zipped), tree(&app), "{f}");
    }
}

/// Nothing is written when the command is refused up front, and a failure part-way leaves the earlier
/// output as it was, with no staging directory behind.
#[test]
fn refusals_are_clear_and_leave_no_partial_output() {
    let p = packaged();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("dist");

    let out = package(&p.src, "gcp", &out_dir).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("invalid value 'gcp'") && err.contains("container"),
        "{err}"
    );

    let out = package(&p.src, "fc", &out_dir)
        .args(["--arch", "arm64", "echo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Function Compute") && err.contains("x86_64"), "{err}");
    let out = package(&p.src, "azure", &out_dir)
        .args(["--arch", "arm64", "echo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("x86_64"), "{}", stderr(&out));
    let out = package(&p.src, "fc", &out_dir)
        .args(["echo", "--base", &p.base])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--base"), "{}", stderr(&out));
    assert!(!out_dir.exists(), "nothing written for a refused command");

    // A dynamically linked bootstrap in an image without a base could never start: refused, naming the fix.
    let out = package(&p.src, "container", &out_dir).arg("echo").output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("dynamically linked") && err.contains("--base"), "{err}");
    assert!(!out_dir.join("container-x86_64").exists(), "{err}");

    // Durable tasks run only on AWS: packaging one elsewhere is refused.
    let out = package(&p.src, "fc", &out_dir).arg("sha-task").output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("sha-task") && err.contains("task"), "{err}");

    // A good run, then one that fails on its second function: the first run's files are intact.
    let out = package(&p.src, "fc", &out_dir).arg("echo").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let before = tree(&out_dir);
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    write_manifest(&broken);
    std::fs::remove_file(broken.join("token.txt")).unwrap();
    let out = package(&broken, "fc", &out_dir)
        .args(["hello", "echo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("token.txt"), "{}", stderr(&out));
    assert_eq!(tree(&out_dir), before, "a failed run changes nothing");
    let entries: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["fc-x86_64"], "no staging directory left behind");
}
