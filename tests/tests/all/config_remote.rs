//! What the remote config source tests share (SSM in `config_ssm.rs`, OOS in `config_oos.rs`): one
//! `config_get` function booted behind the local gateway, and reading what the guest sees.

use nimbus_core::{BootError, BootOptions, Host};
use nimbus_tests::{get, manifest};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A manifest with one HTTP `config_get` function at `GET /config` and these config lines.
pub fn config_manifest(refresh: &str, keys: &str) -> nimbus_core::Manifest {
    manifest(&format!(
        "manifest_version = 1\n[function.cfg]\ncomponent = \"{{CONFIG_GET}}\"\nroutes = [\"GET /config\"]\n\
         config_refresh = \"{refresh}\"\n[function.cfg.config]\n{keys}\n"
    ))
}

/// Everything the guest sees through `get-all`.
pub async fn guest_config(addr: SocketAddr) -> BTreeMap<String, String> {
    let v = get(addr, "/config?key=unused").await.json();
    v["all"]
        .as_array()
        .unwrap_or_else(|| panic!("no `all` in {v}"))
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().into(), kv[1].as_str().unwrap().into()))
        .collect()
}

/// Polls until the guest sees `key == want` (a refresh is asynchronous); returns what it saw last.
pub async fn wait_for(addr: SocketAddr, key: &str, want: &str, limit: Duration) -> Option<String> {
    let start = Instant::now();
    loop {
        let seen = guest_config(addr).await.get(key).cloned();
        if seen.as_deref() == Some(want) || start.elapsed() > limit {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Boots `m` with `opts` behind the local gateway.
pub async fn boot(
    m: nimbus_core::Manifest,
    opts: BootOptions,
) -> (std::sync::Arc<Host>, nimbus_platforms::local::Gateway) {
    let (host, logs) = nimbus_tests::boot_manifest(m, opts).await;
    let gw = nimbus_tests::gateway(host.clone(), logs).await;
    (host, gw)
}

/// The error booting `m` with `opts` fails with.
pub async fn boot_error(m: nimbus_core::Manifest, opts: BootOptions) -> BootError {
    match Host::boot(m, opts).await {
        Err(e) => e,
        Ok(_) => panic!("boot must fail"),
    }
}
