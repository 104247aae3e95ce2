//! `nimbus compile`: precompile components into lz4 artifacts.

use super::human_size;
use crate::progress::Step;
use anyhow::{Context as _, bail};
use nimbus_core::Settings;
use nimbus_core::artifact::{self, Target};
use nimbus_core::engine::{self, Engine};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `nimbus compile` options.
#[derive(clap::Args)]
pub struct Args {
    /// Functions to compile (default: all in the manifest).
    functions: Vec<String>,
    /// The manifest [default: nimbus.toml] [env: NIMBUS_MANIFEST].
    #[arg(long, short)]
    manifest: Option<PathBuf>,
    /// Compile this one `.wasm` instead of the manifest's functions.
    #[arg(long, conflicts_with = "functions")]
    wasm: Option<PathBuf>,
    /// Output path with --wasm (default: beside it, `.cwasm.lz4`).
    #[arg(long, short, requires = "wasm")]
    output: Option<PathBuf>,
    /// Cross-compile for another machine: `x86_64` or `arm64` (baseline CPU
    /// features of that architecture). Default: this machine, with its CPU features.
    #[arg(long, value_parser = parse_arch)]
    arch: Option<Target>,
}

/// Parses `--arch`.
pub fn parse_arch(s: &str) -> Result<Target, String> {
    Target::parse(s).ok_or_else(|| format!("unknown architecture {s:?}: use x86_64 or arm64"))
}

/// Compiles each function's component to its `precompiled` path (or `<component>.cwasm.lz4`).
pub fn run(args: Args, settings: &Settings) -> anyhow::Result<()> {
    let compiler = Compiler::new(args.arch)?;
    if let Some(wasm) = &args.wasm {
        let out = args.output.clone().unwrap_or_else(|| default_output(wasm));
        return compiler.compile(Some("component"), wasm, &out).map(drop);
    }
    let manifest_path = super::manifest_path(args.manifest.as_deref(), settings);
    let manifest = super::load_manifest(&manifest_path)?;
    for name in &args.functions {
        if manifest.function(name).is_none() {
            bail!("no function `{name}` in {}", manifest_path.display());
        }
    }
    for f in &manifest.functions {
        if !args.functions.is_empty() && !args.functions.contains(&f.name) {
            continue;
        }
        let out = f.precompiled.clone().unwrap_or_else(|| default_output(&f.component));
        compiler.compile(Some(&f.name), &f.component, &out)?;
        if f.precompiled.is_none() {
            eprintln!(
                "  note: add `precompiled = \"{}\"` to [function.{}] so the host uses it",
                out.display(),
                f.name
            );
        }
    }
    Ok(())
}

fn default_output(wasm: &Path) -> PathBuf {
    wasm.with_extension("cwasm.lz4")
}

/// A compiling engine for one target.
pub struct Compiler {
    engine: Engine,
    /// `arch-os` written into artifact headers.
    arch_os: String,
}

impl Compiler {
    /// An engine for `target` (`None`: this machine).
    pub fn new(target: Option<Target>) -> anyhow::Result<Compiler> {
        Ok(Compiler {
            engine: engine::compiler(target)?,
            arch_os: target.map_or_else(artifact::host_target, |t| t.arch_os().to_owned()),
        })
    }

    /// Compiles `wasm` to an artifact at `out`; returns its size. Progress
    /// lines name `label` when given.
    pub fn compile(&self, label: Option<&str>, wasm: &Path, out: &Path) -> anyhow::Result<u64> {
        let name = label.unwrap_or("component");
        let bytes = std::fs::read(wasm).with_context(|| format!("{name}: cannot read {}", wasm.display()))?;
        let step = Step::start(format!(
            "compiling {name} ({}) for {}",
            human_size(bytes.len() as u64),
            self.arch_os
        ));
        let t = Instant::now();
        let art = artifact::precompile_for(&self.engine, &self.arch_os, &bytes)
            .with_context(|| format!("{name}: {}", wasm.display()))?;
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, &art).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
        step.finish(format!(
            "compiled {name}: {} -> {} ({}) in {} ms",
            human_size(bytes.len() as u64),
            out.display(),
            human_size(art.len() as u64),
            t.elapsed().as_millis()
        ));
        Ok(art.len() as u64)
    }
}
