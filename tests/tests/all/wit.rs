//! The WASI packages vendored in `guest-sdk/wit/deps` must be exactly the ones
//! the host links, or guests would be built against interfaces the host does
//! not implement.

use std::path::{Path, PathBuf};

fn crate_dir(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cargo metadata: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    let pkg = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .expect("package in metadata");
    Path::new(pkg["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn vendored_wasi_wit_matches_the_linked_crates() {
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/wit/deps");
    let http = crate_dir("wasmtime-wasi-http").join("wit/deps");
    for pkg in ["cli", "clocks", "filesystem", "http", "io", "random", "sockets"] {
        let ours = std::fs::read_to_string(deps.join(pkg).join(format!("{pkg}.wit"))).unwrap();
        let theirs = std::fs::read_to_string(http.join(format!("{pkg}.wit"))).unwrap();
        assert!(
            ours == theirs,
            "guest-sdk/wit/deps/{pkg} differs from wasmtime-wasi-http's copy: re-vendor it"
        );
    }
    let keyvalue = crate_dir("wasmtime-wasi-keyvalue").join("wit/deps/keyvalue");
    for file in ["store.wit", "atomic.wit", "batch.wit", "watch.wit", "world.wit"] {
        let ours = std::fs::read_to_string(deps.join("keyvalue").join(file)).unwrap();
        let theirs = std::fs::read_to_string(keyvalue.join(file)).unwrap();
        assert!(
            ours == theirs,
            "guest-sdk/wit/deps/keyvalue/{file} differs from wasmtime-wasi-keyvalue's copy"
        );
    }
    let config = crate_dir("wasmtime-wasi-config").join("wit/deps/config");
    for file in ["store.wit", "world.wit"] {
        let ours = std::fs::read_to_string(deps.join("config").join(file)).unwrap();
        let theirs = std::fs::read_to_string(config.join(file)).unwrap();
        assert!(
            ours == theirs,
            "guest-sdk/wit/deps/config/{file} differs from wasmtime-wasi-config's copy"
        );
    }
}
