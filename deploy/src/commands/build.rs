//! `nimbus build`: compile a function crate to a wasm32-wasip2 component.

use super::human_size;
use anyhow::{Context as _, bail};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every Nimbus guest is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// `nimbus build` options.
#[derive(clap::Args)]
pub struct Args {
    /// The crate or workspace directory.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Build without optimisations (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
}

/// Runs cargo for the wasm target and lists the components it produced.
pub fn run(args: Args) -> anyhow::Result<()> {
    let wasm = build(&args.path, !args.debug)?;
    if wasm.is_empty() {
        bail!("cargo built no .wasm component: is the crate a `cdylib` or a binary?");
    }
    for w in wasm {
        let size = std::fs::metadata(&w).map(|m| m.len()).unwrap_or(0);
        println!("{} ({})", w.display(), human_size(size));
    }
    Ok(())
}

/// Builds the crate at `dir`; returns the `.wasm` files produced.
pub fn build(dir: &Path, release: bool) -> anyhow::Result<Vec<PathBuf>> {
    ensure_target()?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir)
        .args(["build", "--target", TARGET, "--message-format=json-render-diagnostics"]);
    if release {
        cmd.arg("--release");
    }
    // Cargo prints its own progress and diagnostics on stderr.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo (is Rust installed?)")?;
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] == "compiler-artifact"
                && let Some(files) = msg["filenames"].as_array()
            {
                out.extend(
                    files
                        .iter()
                        .filter_map(|f| f.as_str())
                        .filter(|f| f.ends_with(".wasm"))
                        .map(PathBuf::from),
                );
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed in {}", dir.display());
    }
    Ok(out)
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
pub fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET) => Ok(()),
        Ok(_) => {
            eprintln!("installing the {TARGET} target with rustup");
            let s = Command::new("rustup").args(["target", "add", TARGET]).status()?;
            if !s.success() {
                bail!("`rustup target add {TARGET}` failed");
            }
            Ok(())
        }
        // No rustup: trust that the toolchain has the target; cargo will say if not.
        Err(_) => Ok(()),
    }
}
