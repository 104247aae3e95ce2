//! OCI image layouts (the format `skopeo`, `umoci`, `podman` and `crane` read as `oci:DIR:TAG`): writing one
//! with content-addressed blobs, reproducibly, and reading a base image from another.
//!
//! Types come from `oci-spec`; blobs are hashed with `sha2` and layers written with `tar` + `flate2`
//! (`ocidir` would do the same but links OpenSSL). Reproducible: layer entries are sorted with fixed
//! owners and times, the gzip header carries no time or name, and JSON documents are written with sorted
//! keys, so the same inputs give the same digests.

use super::files::{Entry, sorted};
use anyhow::{Context as _, bail};
use nimbus_core::artifact::Target;
use oci_spec::image::{
    Arch, Descriptor, Digest, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType, Os,
    Platform, PlatformBuilder,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

/// The annotation naming an image in a layout's `index.json` (the `TAG` of `oci:DIR:TAG`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The OCI name of an architecture.
pub fn arch(target: Target) -> Arch {
    match target {
        Target::X86_64 => Arch::Amd64,
        Target::Aarch64 => Arch::ARM64,
    }
}

/// A layout being written.
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Creates the layout's `oci-layout` file and blob directory at `root`.
    pub fn create(root: &Path) -> anyhow::Result<Layout> {
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("cannot create {}", blobs.display()))?;
        std::fs::write(root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .with_context(|| format!("cannot write {}", root.join("oci-layout").display()))?;
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    /// Stores a blob; returns its descriptor.
    pub fn blob(&self, media_type: MediaType, bytes: &[u8]) -> anyhow::Result<Descriptor> {
        let hex = hex(&Sha256::digest(bytes));
        let path = self.root.join("blobs/sha256").join(&hex);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Descriptor::new(media_type, bytes.len() as u64, digest(&hex)?))
    }

    /// Stores a JSON document with sorted keys.
    pub fn json(&self, media_type: MediaType, doc: &impl Serialize) -> anyhow::Result<Descriptor> {
        self.blob(media_type, &canonical_json(doc)?)
    }

    /// Writes `index.json` naming one image manifest, tagged `tag`, for `platform`.
    pub fn finish(self, mut manifest: Descriptor, tag: &str, platform: Platform) -> anyhow::Result<()> {
        manifest.set_annotations(Some(HashMap::from([(REF_NAME.to_owned(), tag.to_owned())])));
        manifest.set_platform(Some(platform));
        let index: ImageIndex = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![manifest])
            .build()
            .context("cannot build the image index")?;
        let path = self.root.join("index.json");
        std::fs::write(&path, canonical_json(&index)?).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The platform of an image for `target`.
pub fn platform(target: Target) -> anyhow::Result<Platform> {
    PlatformBuilder::default()
        .architecture(arch(target))
        .os(Os::Linux)
        .build()
        .context("cannot describe the image platform")
}

/// A gzipped tar layer holding `entries` under `dir/`; returns the compressed bytes and the layer's
/// `diff_id` (the digest of the uncompressed tar).
pub fn layer(dir: &str, entries: &[Entry]) -> anyhow::Result<(Vec<u8>, String)> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let mut dirs: Vec<String> = vec![format!("{dir}/")];
    for e in entries {
        let mut parent = Path::new(&e.name).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(format!("{dir}/{}/", p.display()));
            parent = p.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, d, std::io::empty())
            .with_context(|| format!("cannot add {d} to the layer"))?;
    }
    for e in sorted(entries) {
        let mut h = header(tar::EntryType::Regular, e.mode(), e.bytes.len() as u64);
        let path = format!("{dir}/{}", e.name);
        tar.append_data(&mut h, &path, e.bytes.as_slice())
            .with_context(|| format!("cannot add {path} to the layer"))?;
    }
    let tar = tar.into_inner().context("cannot finish the layer")?;
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&tar)));
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    Ok((gz.finish().context("cannot compress the layer")?, diff_id))
}

/// A tar header owned by root, dated the epoch.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// A base image read from a layout: its manifest and config, and where its blobs are.
pub struct Base {
    dir: PathBuf,
    /// The base's image manifest (its layers go below the package's).
    pub manifest: ImageManifest,
    /// The base's image config (environment, user, ... kept; entrypoint and command replaced).
    pub config: ImageConfiguration,
}

impl Base {
    /// Opens `DIR[:TAG]` and picks the image for `target` (from a multi-platform index if need be).
    pub fn open(spec: &str, target: Target) -> anyhow::Result<Base> {
        let (dir, tag) = match spec.rsplit_once(':') {
            Some((dir, tag)) if !tag.is_empty() && !tag.contains('/') && !dir.is_empty() => (dir, Some(tag)),
            _ => (spec, None),
        };
        let dir = PathBuf::from(dir);
        let index: ImageIndex = read_json(&dir.join("index.json"))
            .with_context(|| format!("--base {spec}: {} is no OCI image layout", dir.display()))?;
        fn tagged(d: &Descriptor) -> Option<&str> {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .map(String::as_str)
        }
        let chosen = match tag {
            Some(tag) => index.manifests().iter().find(|d| tagged(d) == Some(tag)),
            None if index.manifests().len() == 1 => index.manifests().first(),
            None => None,
        };
        let Some(chosen) = chosen else {
            let tags: Vec<&str> = index.manifests().iter().filter_map(tagged).collect();
            bail!(
                "--base {spec}: no image {} in {} (its tags: {})",
                tag.map_or_else(
                    || "chosen (name one with DIR:TAG)".to_owned(),
                    |t| format!("tagged `{t}`")
                ),
                dir.display(),
                tags.join(", ")
            );
        };
        let manifest_desc = if *chosen.media_type() == MediaType::ImageIndex {
            let nested: ImageIndex = read_json(&blob_path(&dir, chosen)?)?;
            nested
                .manifests()
                .iter()
                .find(|d| {
                    d.platform()
                        .as_ref()
                        .is_some_and(|p| *p.architecture() == arch(target) && *p.os() == Os::Linux)
                })
                .cloned()
                .with_context(|| format!("--base {spec}: the image has no linux/{} variant", arch(target)))?
        } else {
            chosen.clone()
        };
        let manifest: ImageManifest = read_json(&blob_path(&dir, &manifest_desc)?)?;
        let config: ImageConfiguration = read_json(&blob_path(&dir, manifest.config())?)?;
        if *config.architecture() != arch(target) || *config.os() != Os::Linux {
            bail!(
                "--base {spec} is an image for {}/{}, not linux/{}",
                config.os(),
                config.architecture(),
                arch(target)
            );
        }
        Ok(Base { dir, manifest, config })
    }

    /// Copies the base's layers into `layout`, checking each against its digest; returns their descriptors.
    pub fn copy_layers(&self, layout: &Layout) -> anyhow::Result<Vec<Descriptor>> {
        let mut layers = Vec::new();
        for d in self.manifest.layers() {
            let path = blob_path(&self.dir, d)?;
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read base layer {}", path.display()))?;
            let copied = layout.blob(d.media_type().clone(), &bytes)?;
            if copied.digest() != d.digest() {
                bail!("base layer {} does not match its digest {}", path.display(), d.digest());
            }
            layers.push(d.clone());
        }
        Ok(layers)
    }
}

/// Where a descriptor's blob is in a layout (sha256 only, as every OCI tool writes).
fn blob_path(dir: &Path, d: &Descriptor) -> anyhow::Result<PathBuf> {
    let hex = d
        .as_digest_sha256()
        .with_context(|| format!("{}: only sha256 blobs are supported", d.digest()))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not what an OCI layout holds", path.display()))
}

fn digest(hex: &str) -> anyhow::Result<Digest> {
    Digest::from_str(&format!("sha256:{hex}")).context("bad digest")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted at every level (maps in `oci-spec` types are `HashMap`s).
pub fn canonical_json(doc: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    let value = serde_json::to_value(doc).context("cannot encode an OCI document")?;
    serde_json::to_vec(&sort(value)).context("cannot encode an OCI document")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_reproducible_and_list_parents_first() {
        let entries = [
            Entry::file("config/token", b"t".to_vec()),
            Entry::executable("bootstrap", b"#!".to_vec()),
        ];
        let (a, diff_a) = layer("app", &entries).unwrap();
        let reversed = [entries[1].clone(), entries[0].clone()];
        let (b, diff_b) = layer("app", &reversed).unwrap();
        assert_eq!((a.clone(), diff_a), (b, diff_b), "same files, same bytes");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
        let listed: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("app/".to_owned(), 0o755, 0),
                ("app/config/".to_owned(), 0o755, 0),
                ("app/bootstrap".to_owned(), 0o755, 0),
                ("app/config/token".to_owned(), 0o644, 0),
            ]
        );
    }

    #[test]
    fn json_keys_are_sorted_at_every_level() {
        let doc = serde_json::json!({"b": 1, "a": {"z": [{"y": 1, "x": 2}], "c": 3}});
        assert_eq!(
            String::from_utf8(canonical_json(&doc).unwrap()).unwrap(),
            r#"{"a":{"c":3,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }
}
