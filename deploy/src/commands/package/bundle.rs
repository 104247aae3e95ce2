//! One function's files, the same for every target: its component, the precompiled artifact for the
//! package's architecture, the files its `file = ...` config keys read, and `nimbus.toml` rewritten to hold
//! just that function with paths into the package.

use super::files::{Entry, Staging};
use super::{Package, Platform};
use crate::commands::compile::Compiler;
use crate::commands::description;
use anyhow::{Context as _, bail};
use nimbus_core::manifest::{ConfigSource, FunctionSpec};
use nimbus_core::{Kind, Manifest};
use std::path::Path;

/// A function ready to lay out.
pub struct Bundle<'m> {
    /// The function as the source manifest declares it.
    pub spec: &'m FunctionSpec,
    /// Read from the component's exports.
    pub kind: Kind,
    /// Its files, `nimbus.toml` included, `bootstrap` not.
    pub files: Vec<Entry>,
}

impl Bundle<'_> {
    /// The function's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its files and `bootstrap`: a self-contained package.
    pub fn with_bootstrap(&self, package: &Package) -> Vec<Entry> {
        let mut all = self.files.clone();
        all.push(package.bootstrap.clone());
        all
    }
}

/// Bundles the named functions (all when none is named), in manifest order.
pub fn collect<'m>(
    manifest: &'m Manifest,
    manifest_path: &Path,
    names: &[String],
    target: Platform,
    package: &Package,
    staging: &Staging,
) -> anyhow::Result<Vec<Bundle<'m>>> {
    let source =
        std::fs::read_to_string(manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let doc: toml::Table = source.parse().context("the manifest is not TOML")?;
    let compiler = Compiler::new(Some(package.arch))?;
    let scratch = staging.scratch()?;
    let mut bundles = Vec::new();
    for f in &manifest.functions {
        if !names.is_empty() && !names.contains(&f.name) {
            continue;
        }
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
        target.check_kind(&f.name, kind)?;
        bundles.push(bundle(f, kind, wasm, &doc, &compiler, &scratch)?);
    }
    if bundles.is_empty() {
        bail!("{} declares no function", manifest_path.display());
    }
    Ok(bundles)
}

fn bundle<'m>(
    f: &'m FunctionSpec,
    kind: Kind,
    wasm: Vec<u8>,
    doc: &toml::Table,
    compiler: &Compiler,
    scratch: &Path,
) -> anyhow::Result<Bundle<'m>> {
    let wasm_name = format!("{}.wasm", f.name);
    let art_name = format!("{}.cwasm.lz4", f.name);
    let art_path = scratch.join(&art_name);
    compiler.compile(Some(&f.name), &f.component, &art_path)?;
    let artifact = std::fs::read(&art_path).with_context(|| format!("cannot read {}", art_path.display()))?;
    let mut files = vec![
        Entry::file(wasm_name.clone(), wasm),
        Entry::file(art_name.clone(), artifact),
    ];
    let mut section = function_section(doc, &f.name)?;
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
            files.push(Entry::file(inside, bytes));
        }
    }
    let text = packaged_manifest(doc, &f.name, section)?;
    check_manifest(&text, &files, &scratch.join(format!("check-{}", f.name)))?;
    files.push(Entry::file("nimbus.toml", text.into_bytes()));
    Ok(Bundle { spec: f, kind, files })
}

/// `function.<name>` of the source manifest, as a table to rewrite.
fn function_section(doc: &toml::Table, name: &str) -> anyhow::Result<toml::Table> {
    doc.get("function")
        .and_then(|f| f.get(name))
        .and_then(|s| s.as_table())
        .cloned()
        .with_context(|| format!("function `{name}` has no [function.{name}] table"))
}

/// The package's manifest: the source's top-level settings and this one function; the same bytes for
/// every target.
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
        "# Generated by `nimbus package` for function `{name}`.\n{body}"
    ))
}

/// Loads the packaged manifest from a directory laid out like the package.
fn check_manifest(text: &str, files: &[Entry], dir: &Path) -> anyhow::Result<()> {
    super::files::write_tree(dir, files)?;
    Manifest::parse(text, &dir.join("nimbus.toml"), dir)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("the packaged manifest does not load (a bug in `nimbus package`): {e}"))
}
