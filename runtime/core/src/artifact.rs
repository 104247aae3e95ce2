//! Component artifacts: a `.wasm` compiled at boot, or a precompiled,
//! lz4-compressed artifact made by `nimbus compile` that boots in
//! milliseconds.
//!
//! Artifact layout: `MAGIC`, a little-endian `u16` format version, a `u32`
//! header length, a JSON [`Header`], then one lz4 block of wasmtime's
//! serialized component. The header pins the wasmtime version, the target
//! and the Nimbus code settings, and carries the code's length and CRC-32; a
//! mismatch, a bad checksum or a truncated file makes the host fall back to
//! compiling the `.wasm` with a warning — never a crash. CPU features are
//! left to wasmtime's own check at load: an artifact compiled for an
//! architecture's baseline (`nimbus package`) loads on every machine of that
//! architecture, one compiled with this host's features (`nimbus compile`)
//! only where those features exist. (An lz4 *block* rather than a frame: the
//! frame decoder took 4 ms for a 350 KB artifact, the block decoder 0.3 ms.)

use crate::error::BootError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every Nimbus artifact.
pub const MAGIC: &[u8; 8] = b"NIMBUS\0A";
/// The layout version written by this build.
pub const FORMAT_VERSION: u16 = 3;
/// The wasmtime version this build links (a test checks it against the workspace's pinned version, so an
/// upgrade cannot leave it behind).
pub const WASMTIME_VERSION: &str = "50.0.1";

/// What an artifact was built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// wasmtime version that compiled it.
    pub wasmtime: String,
    /// `arch-os` it runs on.
    pub target: String,
    /// The Nimbus code settings it was compiled with ([`crate::engine::CODE_SETTINGS`]).
    pub engine: String,
    /// Size of the `.wasm` it was compiled from.
    pub source_len: u64,
    /// CRC-32 of that `.wasm`: tells a stale artifact from a fresh one when
    /// file times cannot (an unzipped package has arbitrary ones).
    pub source_crc32: u32,
    /// Size of the uncompressed code.
    pub code_len: u64,
    /// CRC-32 of the uncompressed code: catches corruption (not tampering).
    pub code_crc32: u32,
}

/// Why an artifact cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Not a Nimbus artifact, or truncated.
    #[error("not a Nimbus artifact (bad magic or truncated header)")]
    NotAnArtifact,
    /// Made by an incompatible build.
    #[error("artifact built for {theirs}, this host is {ours}")]
    Incompatible {
        /// The artifact's header, summarised.
        theirs: String,
        /// This host, summarised.
        ours: String,
    },
    /// The compressed body is damaged.
    #[error("artifact is corrupt: {0}")]
    Corrupt(String),
    /// wasmtime refused it.
    #[error("wasmtime rejected the artifact: {0}")]
    Rejected(String),
    /// Compiling the component failed.
    #[error("compilation failed: {0}")]
    Compile(String),
}

/// The host's `arch-os`.
pub fn host_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// A machine artifacts can be compiled for (Linux: Lambda and every FaaS
/// platform Nimbus targets run it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// x86_64 Linux.
    X86_64,
    /// 64-bit ARM Linux (Graviton).
    Aarch64,
}

impl Target {
    /// Parses `x86_64`/`amd64` or `arm64`/`aarch64`.
    pub fn parse(arch: &str) -> Option<Target> {
        match arch.trim().to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => Some(Target::X86_64),
            "arm64" | "aarch64" => Some(Target::Aarch64),
            _ => None,
        }
    }

    /// The Rust / LLVM target triple (glibc Linux).
    pub fn triple(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64-unknown-linux-gnu",
            Target::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Lambda's name for the architecture.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64",
            Target::Aarch64 => "arm64",
        }
    }

    /// The `arch-os` recorded in artifact headers (what [`host_target`] says on that machine).
    pub fn arch_os(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64-linux",
            Target::Aarch64 => "aarch64-linux",
        }
    }

    /// The machine this process runs on, if it is one of the targets.
    pub fn host() -> Option<Target> {
        match (std::env::consts::ARCH, std::env::consts::OS) {
            ("x86_64", "linux") => Some(Target::X86_64),
            ("aarch64", "linux") => Some(Target::Aarch64),
            _ => None,
        }
    }
}

/// Compiles a `.wasm` component into artifact bytes for this host.
pub fn precompile(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>, ArtifactError> {
    precompile_for(engine, &host_target(), wasm)
}

/// Compiles a `.wasm` component into artifact bytes with an engine built
/// for `target` (`arch-os`, see [`Target::arch_os`]); the engine need not
/// be for this host.
pub fn precompile_for(engine: &Engine, target: &str, wasm: &[u8]) -> Result<Vec<u8>, ArtifactError> {
    let code = engine
        .precompile_component(wasm)
        .map_err(|e| ArtifactError::Compile(format!("{e:#}")))?;
    let header = Header {
        wasmtime: WASMTIME_VERSION.into(),
        target: target.into(),
        engine: crate::engine::CODE_SETTINGS.into(),
        source_len: wasm.len() as u64,
        source_crc32: crc32fast::hash(wasm),
        code_len: 0,
        code_crc32: 0,
    };
    Ok(pack(header, &code))
}

/// Lays out an artifact: `header` (its code length and checksum set from `code`) and `code`, compressed.
pub fn pack(mut header: Header, code: &[u8]) -> Vec<u8> {
    header.code_len = code.len() as u64;
    header.code_crc32 = crc32fast::hash(code);
    // A struct of strings and integers always serializes.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(code.len() / 2);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&lz4_flex::block::compress(code));
    out
}

/// Splits artifact bytes into header and compressed body.
pub fn read_header(bytes: &[u8]) -> Result<(Header, &[u8]), ArtifactError> {
    if bytes.len() < 14 || &bytes[..8] != MAGIC {
        return Err(ArtifactError::NotAnArtifact);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(ArtifactError::Incompatible {
            theirs: format!("artifact format {version}"),
            ours: format!("artifact format {FORMAT_VERSION}"),
        });
    }
    let len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    let header = bytes.get(14..14 + len).ok_or(ArtifactError::NotAnArtifact)?;
    let header: Header = serde_json::from_slice(header).map_err(|_| ArtifactError::NotAnArtifact)?;
    Ok((header, &bytes[14 + len..]))
}

/// An artifact read, decompressed and checksummed, not yet tied to an engine.
///
/// Unpacking needs no engine, so boot does it on another thread while the
/// engine is being built.
pub struct Unpacked {
    header: Header,
    code: Vec<u8>,
}

/// Decompresses and verifies artifact bytes.
pub fn unpack(bytes: &[u8]) -> Result<Unpacked, ArtifactError> {
    let (header, body) = read_header(bytes)?;
    let len = usize::try_from(header.code_len).map_err(|_| ArtifactError::Corrupt("code too large".into()))?;
    if len > 4 << 30 {
        return Err(ArtifactError::Corrupt(format!("implausible code size {len}")));
    }
    let code = lz4_flex::block::decompress(body, len).map_err(|e| ArtifactError::Corrupt(e.to_string()))?;
    if code.len() != len || crc32fast::hash(&code) != header.code_crc32 {
        return Err(ArtifactError::Corrupt("checksum mismatch".into()));
    }
    Ok(Unpacked { header, code })
}

/// Reads and unpacks an artifact file; refuses one whose `.wasm` changed since.
pub fn unpack_file(artifact: &Path, wasm: &Path) -> Result<Unpacked, String> {
    let bytes = std::fs::read(artifact).map_err(|e| format!("cannot read {}: {e}", artifact.display()))?;
    let unpacked = unpack(&bytes).map_err(|e| e.to_string())?;
    check_fresh(artifact, wasm, &unpacked.header)?;
    Ok(unpacked)
}

/// Checks an unpacked artifact against `engine` and turns it into a component.
pub fn deserialize(engine: &Engine, unpacked: &Unpacked) -> Result<Component, ArtifactError> {
    let header = &unpacked.header;
    let ours = Header {
        wasmtime: WASMTIME_VERSION.into(),
        target: host_target(),
        engine: crate::engine::CODE_SETTINGS.into(),
        ..header.clone()
    };
    if *header != ours {
        return Err(ArtifactError::Incompatible {
            theirs: format!(
                "wasmtime {} on {} (settings {})",
                header.wasmtime, header.target, header.engine
            ),
            ours: format!(
                "wasmtime {} on {} (settings {})",
                ours.wasmtime, ours.target, ours.engine
            ),
        });
    }
    // SAFETY: the bytes are wasmtime's own serialization of a component (the
    // header matched this host and the CRC-32 verified them), and wasmtime
    // re-checks version, settings and CPU features while deserializing.
    unsafe { Component::deserialize(engine, &unpacked.code) }.map_err(|e| ArtifactError::Rejected(format!("{e:#}")))
}

/// Checks and loads artifact bytes into a component for `engine`.
pub fn load_precompiled(engine: &Engine, bytes: &[u8]) -> Result<Component, ArtifactError> {
    deserialize(engine, &unpack(bytes)?)
}

/// How a function's code was obtained at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedFrom {
    /// From the precompiled artifact.
    Precompiled,
    /// Compiled from the `.wasm` (no artifact configured).
    Compiled,
    /// The artifact could not be used; compiled from the `.wasm` instead.
    FellBack(String),
}

/// Whether the `.wasm` beside an artifact is still the one it was compiled
/// from. Cheap checks first: a different size is stale; a `.wasm` no newer
/// than the artifact is fresh. Only a same-size, newer `.wasm` (a rebuild, or
/// files unpacked in arbitrary order) is read and checksummed. Without a
/// `.wasm` beside it the artifact is all there is.
fn check_fresh(artifact: &Path, wasm: &Path, header: &Header) -> Result<(), String> {
    let Ok(meta) = std::fs::metadata(wasm) else {
        return Ok(());
    };
    let stale = || format!("{} changed since the artifact was compiled", wasm.display());
    if meta.len() != header.source_len {
        return Err(stale());
    }
    let newer = match (meta.modified(), std::fs::metadata(artifact).and_then(|m| m.modified())) {
        (Ok(w), Ok(a)) => w > a,
        _ => true,
    };
    if newer {
        let bytes = std::fs::read(wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
        if crc32fast::hash(&bytes) != header.source_crc32 {
            return Err(stale());
        }
    }
    Ok(())
}

/// Loads a function's component: the artifact if usable, else the `.wasm`.
/// `precompiled` is the artifact's path and the result of [`unpack_file`] on it.
pub fn load(
    engine: &Engine,
    function: &str,
    wasm: &Path,
    precompiled: Option<(&Path, Result<Unpacked, String>)>,
) -> Result<(Component, LoadedFrom), BootError> {
    let mut from = LoadedFrom::Compiled;
    if let Some((path, unpacked)) = precompiled {
        let attempt = unpacked.and_then(|u| deserialize(engine, &u).map_err(|e| e.to_string()));
        match attempt {
            Ok(c) => return Ok((c, LoadedFrom::Precompiled)),
            Err(reason) => {
                tracing::warn!(
                    function,
                    artifact = %path.display(),
                    "precompiled artifact not usable ({reason}); compiling {} instead — run `nimbus compile` to refresh it",
                    wasm.display()
                );
                from = LoadedFrom::FellBack(reason);
            }
        }
    }
    let bytes = std::fs::read(wasm).map_err(|e| BootError::Artifact {
        function: function.into(),
        path: wasm.to_path_buf(),
        message: match &from {
            LoadedFrom::FellBack(r) => format!("{e} (and the precompiled artifact was not usable: {r})"),
            _ => e.to_string(),
        },
    })?;
    if Engine::detect_precompiled(&bytes).is_some() || bytes.starts_with(MAGIC) {
        return Err(BootError::Artifact {
            function: function.into(),
            path: wasm.to_path_buf(),
            message:
                "this is a precompiled artifact; name it with `precompiled = ...` and point `component` at the .wasm"
                    .into(),
        });
    }
    let component = Component::new(engine, &bytes).map_err(|e| BootError::Artifact {
        function: function.into(),
        path: wasm.to_path_buf(),
        message: format!("not a valid WebAssembly component: {e:#}"),
    })?;
    Ok((component, from))
}
