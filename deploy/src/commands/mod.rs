//! One module per `nimbus` subcommand.

pub mod build;
pub mod chaos;
pub mod compile;
pub mod description;
pub mod invoke;
pub mod local_env;
pub mod new;
pub mod package;
pub mod serve;
pub mod task;

use anyhow::Context as _;
use nimbus_core::{Manifest, Settings};
use std::path::{Path, PathBuf};

/// The manifest a command works on: its `--manifest`, else `NIMBUS_MANIFEST`, else `nimbus.toml`.
pub fn manifest_path(flag: Option<&Path>, settings: &Settings) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| settings.manifest.clone())
        .unwrap_or_else(|| PathBuf::from("nimbus.toml"))
}

/// Loads a manifest with a hint when it is missing.
pub fn load_manifest(path: &Path) -> anyhow::Result<Manifest> {
    if !path.exists() {
        anyhow::bail!(
            "no manifest at {} (pass --manifest PATH, or create one with `nimbus new NAME`)",
            path.display()
        );
    }
    Manifest::load(path)
        .map_err(anyhow::Error::from)
        .context("invalid manifest")
}

/// The default `service.name` of a local host: the manifest's directory (the app's name, `[app] name`, is
/// the `service.namespace`).
pub fn service_name(manifest: &Path) -> String {
    manifest
        .canonicalize()
        .ok()
        .and_then(|p| p.parent()?.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "nimbus".into())
}

/// `1.2 MiB`, `340 KiB`, `12 B`.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.0} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}
