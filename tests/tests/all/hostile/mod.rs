//! The hostile-input suite: guests and clients that attack the host, and what each attack gets — a clear
//! refusal or the failure of that one invocation, never a crash, a leak or a way out of the sandbox.
//! `cargo test -p nimbus-tests --test all hostile::` runs all of it.
//!
//! - [`escapes`]: a guest reaching for the host's files, `/proc`, environment and credentials, raw sockets
//!   and DNS, config keys and key-value buckets it did not declare, and a circuit breaker's backup origin
//!   pointed at the metadata service or loopback;
//! - [`outbound`]: the outbound allow-list under every spelling of the metadata and loopback addresses
//!   (numeric forms, IPv4-mapped IPv6, `fd00:ec2::254`), DNS answers that point inside, and redirects;
//! - [`abuse`]: resource abuse — stack overflow, a 1 GiB allocation, hoarded host handles, an outbound
//!   fork-bomb, a response that never ends;
//! - [`failures`]: traps, endless loops, memory bombs, huge bodies and floods, each failing alone;
//! - [`listener`]: slow-loris clients, idle and flooding connections, malformed requests at the gateway.
//!
//! The parsers of untrusted input are fuzzed besides (`fuzz/`, `scripts/fuzz`).

mod abuse;
mod escapes;
mod failures;
mod listener;
mod outbound;

use nimbus_core::{BootOptions, Host};
use nimbus_platforms::local::Gateway;
use nimbus_tests::{Logs, gateway, get};
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// The `hostile` guest's host: one function answering every path, allowed to call any loopback port (the
/// tests' own servers), with one config key and one key-value bucket declared.
fn host() -> (Arc<Host>, Logs) {
    static HOST: OnceLock<(Arc<Host>, Logs)> = OnceLock::new();
    crate::boot_once(&HOST, || {
        let kv = std::env::temp_dir().join(format!("nimbus-hostile-kv-{}", std::process::id()));
        let kv = nimbus_kv::Embedded::open(kv).expect("an embedded key-value store");
        let text = r#"
manifest_version = 1
app = { name = "hostile" }

[function.hostile]
component = "{HOSTILE}"
routes = ["/{*rest}"]
timeout = "3s"
memory = "64MiB"
allowed_outbound_hosts = ["http://127.0.0.1:*"]
keyvalue = ["mine"]

[function.hostile.config]
greeting = { value = "hello" }
"#;
        let opts = BootOptions {
            keyvalue: Some(Arc::new(kv)),
            ..BootOptions::default()
        };
        (text.to_owned(), opts)
    })
}

/// A gateway on this test's runtime in front of [`host`].
async fn hostile_gateway() -> (Gateway, Logs) {
    let (host, logs) = host();
    (gateway(host, logs.clone()).await, logs)
}

/// The guest's report of the attack at `path` (its answer, which must be a 200 with JSON).
async fn attack(gw: &Gateway, path: &str) -> Value {
    let r = get(gw.addr(), path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Asserts the host still serves: the guest answers an unknown attack with its usual report.
async fn still_serving(gw: &Gateway) {
    let v = attack(gw, "/nothing").await;
    assert_eq!(v["error"], "no attack at /nothing", "{v}");
}
