//! How the embedded store lays keys out on disk: one directory per bucket, one file per key.
//!
//! ```text
//! {dir}/b-{hex(bucket)}/{hex(key)}          keys up to 127 bytes: the file holds the bare value
//! {dir}/b-{hex(bucket)}/h-{sha256(key)}     longer keys: the file holds a header with the key, then the value
//! {dir}/tmp/                                staging for atomic writes
//! ```
//!
//! Hex names make any key a safe file name (no `/`, `..`, NUL or case folding) and keep listing cheap: the
//! directory entry is the key. A name is at most 255 bytes on common file systems, so a key whose hex would
//! be longer (128 bytes and up) is named by its SHA-256 instead and carries itself inside the file, where
//! listing reads it back. Short keys keep the layout of earlier versions, so existing state directories are
//! read as they are. A bucket name that is too long for a hex name is hashed the same way.
//!
//! Public so the fuzz target `kv_layout` can check it: bucket and key names come from guests.

use sha2::{Digest, Sha256};

/// Longest key stored under its hex spelling: 254 hex digits fit the usual 255-byte file-name limit.
pub const HEX_KEY_MAX: usize = 127;
/// Prefix of hashed names; `-` is not a hex digit, so they never collide with hex names.
const HASHED: &str = "h-";
/// First bytes of a file that holds its key: magic, then the key's length (u16, little endian).
const MAGIC: &[u8; 4] = b"NKV1";
/// Bytes before the key in a hashed file.
pub const HEADER: usize = MAGIC.len() + 2;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex digits only: what [`hex`] writes.
fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) || !is_hex(s) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn hashed(s: &str) -> String {
    format!("{HASHED}{}", hex(&Sha256::digest(s.as_bytes())))
}

/// The directory name of `bucket`.
pub fn bucket_dir(bucket: &str) -> String {
    // "b-" and the hex must fit 255 bytes too.
    if bucket.len() < HEX_KEY_MAX {
        format!("b-{}", hex(bucket.as_bytes()))
    } else {
        format!("b-{}", hashed(bucket))
    }
}

/// The file that holds a key, and how its contents are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFile {
    /// `hex(key)`, holding the bare value.
    Hex(String),
    /// `h-{sha256(key)}`, holding `NKV1`, the key's length and the key, then the value.
    Hashed(String),
}

/// A hashed file that does not hold what its name promises (truncated, foreign, or another key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Corrupt(&'static str);

impl KeyFile {
    /// The file of `key`.
    pub fn of(key: &str) -> KeyFile {
        if key.len() <= HEX_KEY_MAX {
            KeyFile::Hex(hex(key.as_bytes()))
        } else {
            KeyFile::Hashed(hashed(key))
        }
    }

    /// The file's name in its bucket's directory.
    pub fn name(&self) -> &str {
        match self {
            KeyFile::Hex(name) | KeyFile::Hashed(name) => name,
        }
    }

    /// The file's contents for `key` set to `value`.
    pub fn encode(&self, key: &str, value: &[u8]) -> Vec<u8> {
        match self {
            KeyFile::Hex(_) => value.to_vec(),
            KeyFile::Hashed(_) => {
                // Keys are checked against MAX_KEY (1 KiB) before they get here.
                let len = u16::try_from(key.len()).unwrap_or(u16::MAX);
                let mut out = Vec::with_capacity(HEADER + key.len() + value.len());
                out.extend_from_slice(MAGIC);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(value);
                out
            }
        }
    }

    /// The value of `key` in the file's `contents`.
    pub fn decode(&self, key: &str, mut contents: Vec<u8>) -> Result<Vec<u8>, Corrupt> {
        match self {
            KeyFile::Hex(_) => Ok(contents),
            KeyFile::Hashed(_) => {
                let stored = stored_key(&contents)?;
                if stored != key {
                    return Err(Corrupt("the file holds another key"));
                }
                Ok(contents.split_off(HEADER + key.len()))
            }
        }
    }
}

/// What a directory entry of a bucket holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A key named by its hex spelling.
    Key(String),
    /// A hashed file: its key is inside ([`stored_key`]).
    Hashed,
    /// Not a key (a stray file).
    Other,
}

/// Classifies a directory entry's name.
pub fn listed(name: &str) -> Listed {
    if let Some(key) = unhex(name) {
        return Listed::Key(key);
    }
    match name.strip_prefix(HASHED) {
        Some(digest) if digest.len() == 64 && is_hex(digest) => Listed::Hashed,
        _ => Listed::Other,
    }
}

/// The key a hashed file's `contents` (at least its first [`HEADER`] + 1 KiB bytes) carries.
pub fn stored_key(contents: &[u8]) -> Result<&str, Corrupt> {
    let header = contents.get(..HEADER).ok_or(Corrupt("shorter than its header"))?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(Corrupt("no key header"));
    }
    let len = usize::from(u16::from_le_bytes([header[4], header[5]]));
    let key = contents.get(HEADER..HEADER + len).ok_or(Corrupt("truncated key"))?;
    std::str::from_utf8(key).map_err(|_| Corrupt("the key is not UTF-8"))
}
