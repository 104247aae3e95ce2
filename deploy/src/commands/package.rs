//! `nimbus package --target lambda`: deployment zips for AWS Lambda's
//! custom runtime (`provided.al2023`).
//!
//! For each function, in `<out>/lambda-<arch>/`:
//! - `<function>.zip`: self-contained — `bootstrap`, `nimbus.toml`, the
//!   component and its precompiled artifact for that architecture;
//! - `<function>-code.zip`: the same without `bootstrap`, for use with
//! - `nimbus-runtime.zip`: a runtime layer holding only `bootstrap` (Lambda
//!   runs `/opt/bootstrap` when the function package has none);
//! - `<function>.json`: the function's deployment description
//!   ([`super::description`]), which the Terraform modules read.
//!
//! The packaged manifest keeps only that function, with paths rewritten to
//! the package's files, and is checked by loading it as `bootstrap` will.
//! Zips are reproducible: fixed timestamps, sorted entries.

use super::compile::{Compiler, parse_arch};
use super::description::{self, Description, PackageFile};
use super::human_size;
use anyhow::{Context as _, bail};
use nimbus_core::artifact::Target;
use nimbus_core::manifest::ConfigSource;
use nimbus_core::{Manifest, Settings};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// Highest glibc on `provided.al2023` (Amazon Linux 2023 ships 2.34).
const LAMBDA_GLIBC: (u32, u32) = (2, 34);

/// `nimbus package` options.
#[derive(clap::Args)]
pub struct Args {
    /// Functions to package (default: all in the manifest).
    functions: Vec<String>,
    /// Where the package runs. Only `lambda` for now.
    #[arg(long, default_value = "lambda", value_parser = ["lambda"])]
    target: String,
    /// The Lambda architecture: `x86_64` or `arm64`.
    #[arg(long, default_value = "x86_64", value_parser = parse_arch)]
    arch: Target,
    /// The manifest [default: nimbus.toml] [env: NIMBUS_MANIFEST].
    #[arg(long, short)]
    manifest: Option<PathBuf>,
    /// Output directory; zips go to `<out>/lambda-<arch>/`.
    #[arg(long, short, default_value = "dist")]
    out: PathBuf,
    /// The `bootstrap` executable to package (default: this checkout's
    /// `target/<triple>/release/bootstrap` from `scripts/build-bootstrap`,
    /// else, for this machine's architecture, the one beside `nimbus`).
    #[arg(long)]
    bootstrap: Option<PathBuf>,
}

/// A file to put in a zip: its name inside, its bytes, executable or not.
struct Entry {
    name: String,
    bytes: Vec<u8>,
    executable: bool,
}

/// Builds the zips.
pub fn run(args: Args, settings: &Settings) -> anyhow::Result<()> {
    let manifest_path = super::manifest_path(args.manifest.as_deref(), settings);
    let manifest = super::load_manifest(&manifest_path)?;
    let source =
        std::fs::read_to_string(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let doc: toml::Table = source.parse().context("the manifest is not TOML")?;
    for name in &args.functions {
        if manifest.function(name).is_none() {
            bail!("no function `{name}` in {}", manifest_path.display());
        }
    }
    let bootstrap_path = find_bootstrap(args.arch, args.bootstrap.as_deref())?;
    let bootstrap = std::fs::read(&bootstrap_path)
        .with_context(|| format!("cannot read bootstrap {}", bootstrap_path.display()))?;
    check_bootstrap(&bootstrap, args.arch, &bootstrap_path)?;

    let out = args.out.join(format!("lambda-{}", args.arch.lambda_name()));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let compiler = Compiler::new(Some(args.arch))?;
    let staging = tempfile::tempdir().context("cannot create a staging directory")?;

    let mut made = Vec::new();
    let layer = out.join("nimbus-runtime.zip");
    let boot_entry = Entry {
        name: "bootstrap".into(),
        bytes: bootstrap,
        executable: true,
    };
    write_zip(&layer, std::slice::from_ref(&boot_entry))?;
    let layer_file = PackageFile::read(&layer)?;
    made.push(layer);

    for f in &manifest.functions {
        if !args.functions.is_empty() && !args.functions.contains(&f.name) {
            continue;
        }
        let wasm_name = format!("{}.wasm", f.name);
        let art_name = format!("{}.cwasm.lz4", f.name);
        let art_path = staging.path().join(&art_name);
        let wasm = std::fs::read(&f.component)
            .with_context(|| format!("{}: cannot read {}", f.name, f.component.display()))?;
        let kind = description::component_kind(&wasm)
            .with_context(|| format!("{}: {}", f.name, f.component.display()))?
            .with_context(|| {
                format!(
                    "{}: {} exports none of wasi:http/incoming-handler, nimbus:function/events, \
                     nimbus:function/task or nimbus:function/websocket",
                    f.name,
                    f.component.display()
                )
            })?;
        compiler.compile(Some(&f.name), &f.component, &art_path)?;
        let mut files = vec![
            Entry {
                name: wasm_name.clone(),
                bytes: wasm,
                executable: false,
            },
            Entry {
                name: art_name.clone(),
                bytes: std::fs::read(&art_path)?,
                executable: false,
            },
        ];
        let mut section = function_section(&doc, &f.name)?;
        section.insert("component".into(), wasm_name.into());
        section.insert("precompiled".into(), art_name.into());
        for (key, decl) in &f.config {
            if let ConfigSource::File(path) = &decl.source {
                // The package is the function's whole filesystem: bring the file along.
                let inside = format!("config/{key}");
                let bytes = std::fs::read(path).with_context(|| {
                    format!(
                        "{}: config key `{key}` reads {}, which cannot be read",
                        f.name,
                        path.display()
                    )
                })?;
                if let Some(toml::Value::Table(config)) = section.get_mut("config")
                    && let Some(toml::Value::Table(k)) = config.get_mut(key.as_str())
                {
                    k.insert("file".into(), inside.clone().into());
                }
                files.push(Entry {
                    name: inside,
                    bytes,
                    executable: false,
                });
            }
        }
        let text = packaged_manifest(&doc, &f.name, section)?;
        check_manifest(&text, &files, staging.path())?;
        files.push(Entry {
            name: "nimbus.toml".into(),
            bytes: text.into_bytes(),
            executable: false,
        });

        let thin = out.join(format!("{}-code.zip", f.name));
        write_zip(&thin, &files)?;
        files.push(Entry {
            name: boot_entry.name.clone(),
            bytes: boot_entry.bytes.clone(),
            executable: true,
        });
        let full = out.join(format!("{}.zip", f.name));
        write_zip(&full, &files)?;
        let described = out.join(format!("{}.json", f.name));
        Description::new(&description::Inputs {
            app: &manifest.app_name,
            function: f,
            kind,
            architecture: args.arch.lambda_name(),
            zip: &PackageFile::read(&full)?,
            code_zip: &PackageFile::read(&thin)?,
            layer_zip: &layer_file,
        })?
        .write(&described)?;
        made.extend([thin, full, described]);
    }

    made.sort();
    eprintln!("packaged for Lambda provided.al2023 ({}):", args.arch.lambda_name());
    for path in &made {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!("{:>10}  {}", human_size(size), path.display());
    }
    Ok(())
}

/// `function.<name>` of the source manifest, as a table to rewrite.
fn function_section(doc: &toml::Table, name: &str) -> anyhow::Result<toml::Table> {
    doc.get("function")
        .and_then(|f| f.get(name))
        .and_then(|s| s.as_table())
        .cloned()
        .with_context(|| format!("function `{name}` has no [function.{name}] table"))
}

/// The package's manifest: the source's top-level settings and this one function.
fn packaged_manifest(doc: &toml::Table, name: &str, section: toml::Table) -> anyhow::Result<String> {
    let mut out = toml::Table::new();
    for key in ["manifest_version", "app", "defaults"] {
        if let Some(v) = doc.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut functions = toml::Table::new();
    functions.insert(name.into(), toml::Value::Table(section));
    out.insert("function".into(), toml::Value::Table(functions));
    let body = toml::to_string(&out).context("cannot write the packaged manifest")?;
    Ok(format!(
        "# Generated by `nimbus package --target lambda` for function `{name}`.\n{body}"
    ))
}

/// Loads the packaged manifest from a directory laid out like the package.
fn check_manifest(text: &str, files: &[Entry], staging: &Path) -> anyhow::Result<()> {
    let dir = staging.join("check");
    std::fs::create_dir_all(dir.join("config"))?;
    for f in files {
        std::fs::write(dir.join(&f.name), &f.bytes)?;
    }
    Manifest::parse(text, &dir.join("nimbus.toml"), &dir)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("the packaged manifest does not load (a bug in `nimbus package`): {e}"))
}

/// The bootstrap to package; see [`Args::bootstrap`].
fn find_bootstrap(arch: Target, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--bootstrap {}: no such file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    // The purpose-built one first (stripped, from `scripts/build-bootstrap`),
    // then the one installed beside `nimbus`.
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let built = checkout.join("target").join(arch.triple()).join("release/bootstrap");
    if built.is_file() {
        return Ok(built);
    }
    let mut tried = vec![built];
    if Target::host() == Some(arch)
        && let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let beside = dir.join("bootstrap");
        if beside.is_file() {
            return Ok(beside);
        }
        tried.push(beside);
    }
    bail!(
        "no bootstrap for {} (looked at {}). Build it with `scripts/build-bootstrap {}` in the Nimbus checkout, \
         or pass --bootstrap PATH",
        arch.lambda_name(),
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        arch.lambda_name()
    )
}

/// Refuses a bootstrap that cannot run on Lambda's `arch`: wrong ELF machine,
/// or linked against a newer glibc than Amazon Linux 2023 has.
fn check_bootstrap(bytes: &[u8], arch: Target, path: &Path) -> anyhow::Result<()> {
    // ELF64 little-endian; e_machine at offset 18.
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        bail!("{} is not a Linux executable", path.display());
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    let expected = match arch {
        Target::X86_64 => 62,
        Target::Aarch64 => 183,
    };
    if machine != expected {
        bail!(
            "{} is not built for {} (ELF machine {machine}); build it with `scripts/build-bootstrap {}`",
            path.display(),
            arch.lambda_name(),
            arch.lambda_name()
        );
    }
    if let Some((major, minor)) = max_glibc(bytes)
        && (major, minor) > LAMBDA_GLIBC
    {
        bail!(
            "{} needs glibc {major}.{minor}, but provided.al2023 has {}.{}: build it on an older system or with \
             `cargo zigbuild --target {}.2.34`",
            path.display(),
            LAMBDA_GLIBC.0,
            LAMBDA_GLIBC.1,
            arch.triple()
        );
    }
    Ok(())
}

/// The newest `GLIBC_x.y` symbol version an executable references.
fn max_glibc(bytes: &[u8]) -> Option<(u32, u32)> {
    let needle = b"GLIBC_";
    let mut best: Option<(u32, u32)> = None;
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(needle.len()).position(|w| w == needle) {
        let start = i + pos + needle.len();
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'.'))
            .map_or(bytes.len(), |e| start + e);
        let text = std::str::from_utf8(&bytes[start..end]).unwrap_or("");
        let mut parts = text.split('.').map(|p| p.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            best = best.max(Some((major, minor)));
        }
        i = end.max(start);
    }
    best
}

/// Writes a zip with deflated, sorted entries and fixed timestamps.
fn write_zip(path: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    let tmp = path.with_extension("zip.tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for e in sorted {
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(if e.executable { 0o755 } else { 0o644 });
        zip.start_file(e.name.as_str(), opts)
            .with_context(|| format!("{}: {}", path.display(), e.name))?;
        zip.write_all(&e.bytes)?;
    }
    zip.finish()
        .with_context(|| format!("cannot finish {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_scan_finds_the_newest_version() {
        let bytes = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0xGLIBC_PRIVATE\0GLIBC_2.9";
        assert_eq!(max_glibc(bytes), Some((2, 34)));
        assert_eq!(max_glibc(b"nothing here"), None);
    }

    #[test]
    fn wrong_architecture_is_refused() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18] = 62;
        assert!(check_bootstrap(&elf, Target::X86_64, Path::new("b")).is_ok());
        let err = check_bootstrap(&elf, Target::Aarch64, Path::new("b")).unwrap_err();
        assert!(err.to_string().contains("not built for arm64"), "{err}");
        assert!(check_bootstrap(b"#!/bin/sh", Target::X86_64, Path::new("b")).is_err());
    }
}
