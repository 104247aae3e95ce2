//! The `bootstrap` executable every package carries: where it is found, and the checks that it can run on
//! the target platform (ELF machine, glibc version, static or not).

use super::Platform;
use anyhow::bail;
use nimbus_core::artifact::Target;
use std::path::{Path, PathBuf};

/// Highest glibc on `provided.al2023` (Amazon Linux 2023 ships 2.34).
const LAMBDA_GLIBC: (u32, u32) = (2, 34);
/// Highest glibc on Function Compute's `custom.debian12` runtime (Debian 12 ships 2.36).
const FC_GLIBC: (u32, u32) = (2, 36);

/// The bootstrap to package: `--bootstrap`, else the one `scripts/build-bootstrap` built for `arch`, else
/// (for this machine's architecture) the one beside `nimbus`.
pub fn find(arch: Target, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
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

/// Refuses a bootstrap that cannot run on `platform`'s `arch`: wrong ELF machine, or linked against a newer
/// glibc than the platform's runtime has (Lambda, Function Compute; an image or Azure app brings its own).
pub fn check(bytes: &[u8], arch: Target, platform: Platform, path: &Path) -> anyhow::Result<()> {
    // ELF64 little-endian; e_machine at offset 18.
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
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
    let limit = match platform {
        Platform::Lambda => Some((LAMBDA_GLIBC, "provided.al2023")),
        Platform::Fc => Some((FC_GLIBC, "Function Compute's custom.debian12")),
        Platform::Container | Platform::Azure => None,
    };
    if let Some(((max_major, max_minor), runtime)) = limit
        && let Some((major, minor)) = max_glibc(bytes)
        && (major, minor) > (max_major, max_minor)
    {
        bail!(
            "{} needs glibc {major}.{minor}, but {runtime} has {max_major}.{max_minor}: build it on an older \
             system or with `cargo zigbuild --target {}.{max_major}.{max_minor}`",
            path.display(),
            arch.triple()
        );
    }
    Ok(())
}

/// Whether an ELF executable names a program interpreter (`PT_INTERP`): it is dynamically linked and needs
/// the interpreter and its libraries (glibc) in the filesystem it runs in.
pub fn is_dynamic(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 8]| u64::from_le_bytes(b) as usize)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return false;
    };
    (0..phnum).any(|i| {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            == Some(PT_INTERP)
    })
}

/// The newest `GLIBC_x.y` symbol version an executable references.
pub fn max_glibc(bytes: &[u8]) -> Option<(u32, u32)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u8) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18] = machine;
        elf
    }

    #[test]
    fn glibc_scan_finds_the_newest_version() {
        let bytes = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0xGLIBC_PRIVATE\0GLIBC_2.9";
        assert_eq!(max_glibc(bytes), Some((2, 34)));
        assert_eq!(max_glibc(b"nothing here"), None);
    }

    #[test]
    fn wrong_architecture_is_refused() {
        let x86 = elf(62);
        assert!(check(&x86, Target::X86_64, Platform::Lambda, Path::new("b")).is_ok());
        let err = check(&x86, Target::Aarch64, Platform::Lambda, Path::new("b")).unwrap_err();
        assert!(err.to_string().contains("not built for arm64"), "{err}");
        assert!(check(b"#!/bin/sh", Target::X86_64, Platform::Lambda, Path::new("b")).is_err());
    }

    #[test]
    fn each_platform_has_its_glibc_limit() {
        let mut needs_2_36 = elf(62);
        needs_2_36.extend_from_slice(b"\0GLIBC_2.36\0");
        let err = check(&needs_2_36, Target::X86_64, Platform::Lambda, Path::new("b")).unwrap_err();
        assert!(err.to_string().contains("provided.al2023 has 2.34"), "{err}");
        assert!(check(&needs_2_36, Target::X86_64, Platform::Fc, Path::new("b")).is_ok());
        needs_2_36.extend_from_slice(b"\0GLIBC_2.38\0");
        let err = check(&needs_2_36, Target::X86_64, Platform::Fc, Path::new("b")).unwrap_err();
        assert!(err.to_string().contains("custom.debian12 has 2.36"), "{err}");
        assert!(check(&needs_2_36, Target::X86_64, Platform::Container, Path::new("b")).is_ok());
    }

    #[test]
    fn a_program_interpreter_means_dynamically_linked() {
        // One program header at offset 64, 56 bytes long.
        let mut bytes = elf(62);
        bytes[32] = 64;
        bytes[54] = 56;
        bytes[56] = 1;
        bytes.extend_from_slice(&[0u8; 56]);
        bytes[64] = 1; // PT_LOAD
        assert!(!is_dynamic(&bytes));
        bytes[64] = 3; // PT_INTERP
        assert!(is_dynamic(&bytes));
        // Truncated or absurd headers are no interpreter, never a panic.
        bytes[56] = 200;
        assert!(is_dynamic(&bytes));
        assert!(!is_dynamic(&bytes[..60]));
        assert!(!is_dynamic(b"\x7fELF"));
        assert!(is_dynamic(&std::fs::read(std::env::current_exe().unwrap()).unwrap()));
    }
}
