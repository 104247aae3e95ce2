//! `nimbus compile`: precompile components into lz4 artifacts.

use super::human_size;
use crate::progress::Step;
use anyhow::{Context as _, bail};
use nimbus_core::artifact;
use nimbus_core::engine::{EngineOptions, NimbusEngine};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `nimbus compile` options.
#[derive(clap::Args)]
pub struct Args {
    /// Functions to compile (default: all in the manifest).
    functions: Vec<String>,
    /// The manifest.
    #[arg(long, short, default_value = "nimbus.toml", env = "NIMBUS_MANIFEST")]
    manifest: PathBuf,
    /// Compile this one `.wasm` instead of the manifest's functions.
    #[arg(long, conflicts_with = "functions")]
    wasm: Option<PathBuf>,
    /// Output path with --wasm (default: beside it, `.cwasm.lz4`).
    #[arg(long, short, requires = "wasm")]
    output: Option<PathBuf>,
}

/// Compiles each function's component to its `precompiled` path (or `<component>.cwasm.lz4`).
pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = NimbusEngine::new(&EngineOptions {
        pool_instances: 1,
        pooling: true,
        ..EngineOptions::default()
    })?;
    if let Some(wasm) = &args.wasm {
        let out = args.output.clone().unwrap_or_else(|| default_output(wasm));
        return compile_one(engine.engine(), "component", wasm, &out);
    }
    let manifest = super::load_manifest(&args.manifest)?;
    for name in &args.functions {
        if manifest.function(name).is_none() {
            bail!("no function `{name}` in {}", args.manifest.display());
        }
    }
    for f in &manifest.functions {
        if !args.functions.is_empty() && !args.functions.contains(&f.name) {
            continue;
        }
        let out = f.precompiled.clone().unwrap_or_else(|| default_output(&f.component));
        compile_one(engine.engine(), &f.name, &f.component, &out)?;
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

fn compile_one(engine: &nimbus_core::engine::Engine, name: &str, wasm: &Path, out: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(wasm).with_context(|| format!("{name}: cannot read {}", wasm.display()))?;
    let step = Step::start(format!("compiling {name} ({})", human_size(bytes.len() as u64)));
    let t = Instant::now();
    let art = artifact::precompile(engine, &bytes).with_context(|| format!("{name}: {}", wasm.display()))?;
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
    Ok(())
}
