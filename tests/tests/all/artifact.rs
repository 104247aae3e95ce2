//! Precompiled artifacts: loaded when compatible, a clear fallback when not.

use nimbus_core::artifact::{self, LoadedFrom};
use nimbus_core::engine::{EngineOptions, NimbusEngine};
use nimbus_core::{BootError, BootOptions, Host};
use nimbus_tests::components::HELLO;
use std::path::Path;

fn manifest_with(dir: &Path, precompiled: &Path) -> nimbus_core::Manifest {
    let text = format!(
        "manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nprecompiled = \"{}\"\nroutes = [\"GET /hello\"]\n",
        precompiled.display()
    );
    nimbus_core::Manifest::parse(&text, &dir.join("nimbus.toml"), dir).unwrap()
}

fn compile_to(path: &Path) {
    let engine = NimbusEngine::new(&EngineOptions {
        pool_instances: 1,
        ..Default::default()
    })
    .unwrap();
    let bytes = artifact::precompile(engine.engine(), &std::fs::read(HELLO).unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompiled_artifact_is_used_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("hello.cwasm.lz4");
    compile_to(&art);
    let raw = std::fs::metadata(HELLO).unwrap().len();
    assert!(std::fs::metadata(&art).unwrap().len() > 0);
    let host = Host::boot(manifest_with(dir.path(), &art), BootOptions::default())
        .await
        .unwrap();
    let f = host.function("hello").unwrap();
    assert_eq!(f.loaded_from, LoadedFrom::Precompiled, "raw wasm is {raw} bytes");
    let (_, logs) = nimbus_tests::boot("manifest_version = 1\n").await;
    let gw = nimbus_tests::gateway(host, logs).await;
    assert_eq!(nimbus_tests::get(gw.addr(), "/hello").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_foreign_artifacts_fall_back_to_the_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("hello.cwasm.lz4");
    compile_to(&art);
    let good = std::fs::read(&art).unwrap();

    // Truncated, flipped bytes, wrong magic, another engine's header, missing file.
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n / 2] ^= 0xff;
    let mut foreign = good.clone();
    let ours = artifact::WASMTIME_VERSION.as_bytes();
    let at = good
        .windows(ours.len())
        .position(|w| w == ours)
        .expect("version in header");
    foreign[at..at + 2].copy_from_slice(b"99");
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("truncated", Some(good[..good.len() / 3].to_vec())),
        ("flipped", Some(flipped)),
        ("magic", Some(b"not an artifact at all".to_vec())),
        ("foreign", Some(foreign)),
        ("missing", None),
    ];
    for (what, bytes) in cases {
        match &bytes {
            Some(b) => std::fs::write(&art, b).unwrap(),
            None => {
                let _ = std::fs::remove_file(&art);
            }
        }
        let host = Host::boot(manifest_with(dir.path(), &art), BootOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: boot failed instead of falling back: {e}"));
        let f = host.function("hello").unwrap();
        assert!(
            matches!(f.loaded_from, LoadedFrom::FellBack(_)),
            "{what}: {:?}",
            f.loaded_from
        );
    }
}

/// The wasmtime version artifacts are stamped with is the one the workspace pins (an upgrade that forgot
/// the constant would stamp new code with the old version, or accept old code as new).
#[test]
fn artifacts_are_stamped_with_the_linked_wasmtime_version() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
    let pinned = manifest
        .lines()
        .find_map(|l| l.strip_prefix("wasmtime = { version = \"="))
        .and_then(|rest| rest.split('"').next())
        .expect("the workspace pins wasmtime as `wasmtime = { version = \"=X.Y.Z\", ... }`");
    assert_eq!(artifact::WASMTIME_VERSION, pinned);
}

/// Code serialized by the previous engine (wasmtime 48.0.2's CLI compiled `(component)`; the fixture is that
/// `.cwasm`), even inside an artifact whose header claims this engine, is refused by wasmtime's own check and
/// the `.wasm` is compiled instead: it is never loaded.
#[test]
fn code_from_an_older_wasmtime_is_refused_even_under_a_current_header() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("empty.wasm");
    let source = wat::parse_str("(component)").unwrap();
    std::fs::write(&wasm, &source).unwrap();
    let engine = NimbusEngine::new(&EngineOptions {
        pool_instances: 1,
        ..Default::default()
    })
    .unwrap();
    let current = artifact::precompile(engine.engine(), &source).unwrap();
    let (header, _) = artifact::read_header(&current).unwrap();
    let old = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/artifacts/empty-component.wasmtime-48.0.2.cwasm"
    ))
    .unwrap();
    let art = dir.path().join("empty.cwasm.lz4");
    std::fs::write(&art, artifact::pack(header, &old)).unwrap();
    let unpacked = artifact::unpack_file(&art, &wasm);
    assert!(unpacked.is_ok(), "the container is sound: only the code is foreign");
    let (_, from) = artifact::load(engine.engine(), "empty", &wasm, Some((&art, unpacked))).unwrap();
    match from {
        LoadedFrom::FellBack(reason) => assert!(reason.contains("wasmtime rejected"), "{reason}"),
        other => panic!("old code must not load: {other:?}"),
    }
    // The current engine's own code under the same header loads.
    std::fs::write(&art, &current).unwrap();
    let unpacked = artifact::unpack_file(&art, &wasm);
    let (_, from) = artifact::load(engine.engine(), "empty", &wasm, Some((&art, unpacked))).unwrap();
    assert_eq!(from, LoadedFrom::Precompiled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_components_are_boot_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wasm");
    for (what, bytes) in [
        ("garbage", b"\0asm garbage".to_vec()),
        ("core module", b"\0asm\x01\0\0\0".to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&bad, &bytes).unwrap();
        let text = format!(
            "manifest_version = 1\n[function.bad]\ncomponent = \"{}\"\n",
            bad.display()
        );
        let m = nimbus_core::Manifest::parse(&text, Path::new("t.toml"), dir.path()).unwrap();
        match Host::boot(m, BootOptions::default()).await {
            Err(BootError::Artifact { function, message, .. }) => {
                assert_eq!(function, "bad");
                assert!(
                    message.contains("not a valid WebAssembly component"),
                    "{what}: {message}"
                );
            }
            Err(e) => panic!("{what}: unexpected error {e}"),
            Ok(_) => panic!("{what}: boot must fail"),
        }
    }
    let text = "manifest_version = 1\n[function.gone]\ncomponent = \"/nonexistent/x.wasm\"\n";
    let m = nimbus_core::Manifest::parse(text, Path::new("t.toml"), dir.path()).unwrap();
    let e = Host::boot(m, BootOptions::default())
        .await
        .err()
        .expect("boot must fail");
    assert!(e.to_string().contains("/nonexistent/x.wasm"), "{e}");
}
