//! Files of a package: entries, reproducible zips, and the staging directory a run writes into.

use anyhow::Context as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// A file to package: its path inside the package (`/`-separated), its bytes, executable or not.
#[derive(Clone)]
pub struct Entry {
    pub name: String,
    pub bytes: Vec<u8>,
    pub executable: bool,
}

impl Entry {
    /// A data file (mode 0644).
    pub fn file(name: impl Into<String>, bytes: Vec<u8>) -> Entry {
        Entry {
            name: name.into(),
            bytes,
            executable: false,
        }
    }

    /// An executable (mode 0755).
    pub fn executable(name: impl Into<String>, bytes: Vec<u8>) -> Entry {
        Entry {
            name: name.into(),
            bytes,
            executable: true,
        }
    }

    /// The Unix mode packages give it.
    pub fn mode(&self) -> u32 {
        if self.executable { 0o755 } else { 0o644 }
    }
}

/// Entries sorted by name: every layout lists them in this order, so output is reproducible.
pub fn sorted(entries: &[Entry]) -> Vec<&Entry> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
}

/// Writes a zip with deflated, sorted entries and fixed timestamps.
pub fn write_zip(path: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    for e in sorted(entries) {
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(e.mode());
        zip.start_file(e.name.as_str(), opts)
            .with_context(|| format!("{}: {}", path.display(), e.name))?;
        zip.write_all(&e.bytes)?;
    }
    zip.finish()
        .with_context(|| format!("cannot finish {}", path.display()))?;
    Ok(())
}

/// Writes entries as files under `dir`, with their modes.
pub fn write_tree(dir: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for e in sorted(entries) {
        let path = dir.join(&e.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &e.bytes).with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode()))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    Ok(())
}

/// Writes a text file.
pub fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The size of a file, or the total of a directory's files.
pub fn size(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

/// A run's output, written under a hidden temporary directory in `<out>` and moved to `<out>/<name>/` by
/// [`Staging::commit`]; dropped uncommitted, it is removed and `<out>/<name>/` is untouched.
pub struct Staging {
    dir: tempfile::TempDir,
    target: PathBuf,
}

impl Staging {
    /// Stages output for `<out>/<name>/`.
    pub fn new(out: &Path, name: &str) -> anyhow::Result<Staging> {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(out)
            .with_context(|| format!("cannot create a staging directory in {}", out.display()))?;
        Ok(Staging {
            dir,
            target: out.join(name),
        })
    }

    /// Where to write a file or directory that ends up as `<out>/<name>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A scratch directory that is never moved into place.
    pub fn scratch(&self) -> anyhow::Result<PathBuf> {
        let dir = self.dir.path().join(".scratch");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Moves each staged file and directory to `<out>/<name>/`, replacing one of the same name, and returns
    /// their final paths, sorted. Other files already there are kept.
    pub fn commit(self) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(&self.target).with_context(|| format!("cannot create {}", self.target.display()))?;
        let mut made = Vec::new();
        let entries =
            std::fs::read_dir(self.dir.path()).with_context(|| format!("cannot read {}", self.dir.path().display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if name == ".scratch" {
                continue;
            }
            let to = self.target.join(&name);
            if to.is_dir() {
                std::fs::remove_dir_all(&to).with_context(|| format!("cannot replace {}", to.display()))?;
            }
            std::fs::rename(entry.path(), &to).with_context(|| format!("cannot write {}", to.display()))?;
            made.push(to);
        }
        made.sort();
        Ok(made)
    }
}
