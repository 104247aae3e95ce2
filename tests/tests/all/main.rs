//! End-to-end tests of the host and the local gateway, in one binary (linking
//! wasmtime once). Most tests share one booted host so components compile once.

mod artifact;
mod breakers;
mod concurrency;
mod config;
mod config_oos;
mod config_remote;
mod config_ssm;
mod degrade;
mod durable;
mod events;
mod faults;
mod hostile;
mod http;
mod intercept;
mod keyvalue;
mod log_tap;
mod metrics;
mod reuse;
mod shared_path;
mod trace_export;
pub mod websocket;
mod wit;
mod ws_gateway;

use nimbus_core::{BootOptions, Host};
use nimbus_tests::Logs;
use std::sync::{Arc, OnceLock};

/// Contents of the file-sourced config value.
pub const TOKEN: &str = "file-secret-42";

/// The manifest every shared test runs against.
fn shared_manifest(token_file: &str) -> String {
    format!(
        r#"
manifest_version = 1
app = {{ name = "shop" }}
defaults = {{ timeout = "10s" }}

[function.hello]
component = "{{HELLO}}"
routes = ["GET /hello"]

[function.upload]
component = "{{HELLO}}"
routes = ["POST /upload"]
max_request_body = "64KiB"

[function.proxy-hello]
component = "{{PROXY_HELLO}}"
routes = ["GET /proxy"]

[function.std-env]
component = "{{STD_ENV}}"
routes = ["GET /std"]

[function.trap]
component = "{{TRAP}}"
routes = ["ANY /trap"]

[function.spin]
component = "{{SPIN}}"
routes = ["GET /spin"]
timeout = "500ms"

[function.oom]
component = "{{OOM}}"
routes = ["GET /oom"]
memory = "32MiB"

[function.huge]
component = "{{HUGE_BODY}}"
routes = ["GET /huge"]
max_response_body = "1MiB"

[function.config-get]
component = "{{CONFIG_GET}}"
routes = ["GET /config"]

[function.config-get.config]
greeting = {{ value = "hi from the manifest" }}
path = {{ env = "PATH" }}
region = {{ env = "NIMBUS_TEST_SURELY_UNSET", default = "eu-west-1" }}
optional = {{ env = "NIMBUS_TEST_SURELY_UNSET", required = false }}
token = {{ file = "{token_file}" }}

[function.no-response]
component = "{{NO_RESPONSE}}"
routes = ["GET /silent"]

[function.context]
component = "{{CONTEXT}}"
routes = ["GET /context"]

[function.echo]
component = "{{ECHO}}"

[function.event-check]
component = "{{EVENT_CHECK}}"

# One at a time: the instance returns to the idle list only once the guest
# has finished, which may be just after the caller has its response.
[function.warm]
component = "{{WARM_COUNTER}}"
reuse = true
timeout = "1s"
concurrency = 1

[function.warm-pool]
component = "{{WARM_COUNTER}}"
reuse = true
concurrency = 3

[function.warm-twice]
component = "{{WARM_COUNTER}}"
reuse = 2
concurrency = 1

[function.warm-fresh]
component = "{{WARM_COUNTER}}"

[function.warm-events]
component = "{{WARM_EVENTS}}"
reuse = true
"#
    )
}

/// The shared host and its captured log lines, booted once for the whole binary.
pub fn shared() -> (Arc<Host>, Logs) {
    static HOST: OnceLock<(Arc<Host>, Logs)> = OnceLock::new();
    boot_once(&HOST, || {
        let token = std::env::temp_dir().join(format!("nimbus-test-token-{}", std::process::id()));
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        (shared_manifest(&token.display().to_string()), BootOptions::default())
    })
}

/// The host `cell` holds, booted from the manifest and options `make` returns the first time (on a runtime
/// of its own: each test has its own runtime, the host outlives them all).
pub fn boot_once(
    cell: &'static OnceLock<(Arc<Host>, Logs)>,
    make: impl FnOnce() -> (String, BootOptions),
) -> (Arc<Host>, Logs) {
    cell.get_or_init(|| {
        let (text, opts) = make();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(nimbus_tests::boot_with(&text, opts))
        })
        .join()
        .unwrap()
    })
    .clone()
}

/// A gateway on this test's runtime, serving the shared host.
pub async fn shared_gateway() -> (nimbus_platforms::local::Gateway, Logs) {
    let (host, logs) = shared();
    (nimbus_tests::gateway(host, logs.clone()).await, logs)
}
