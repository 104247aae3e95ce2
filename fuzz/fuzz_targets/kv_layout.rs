//! The embedded key-value store's file layout (`nimbus_kv::layout`): bucket and key names come from guests
//! (a bucket from the manifest, a key from any `wasi:keyvalue` call), so every name must be a safe file name,
//! and what a file holds must decode back to what was written, or be refused as corrupt.
//!
//! Input: line 1 is the bucket, line 2 the key (both lossily UTF-8), the rest is a value and, as is, the
//! contents of a file found in a bucket's directory; the input as a whole is also a directory entry's name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_kv::layout::{self, HEADER, HEX_KEY_MAX, KeyFile, Listed};

/// A name the store may create in a directory: one path component, no NUL, not `.` or `..`, at most 255
/// bytes (the usual file-name limit), and not empty (which would name the directory itself).
fn assert_safe(name: &str, what: &str) {
    assert!(!name.is_empty(), "{what}: empty name");
    assert!(name.len() <= 255, "{what}: {} bytes", name.len());
    assert!(!name.contains(['/', '\0']), "{what}: {name:?}");
    assert!(name != "." && name != "..", "{what}: {name:?}");
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let bucket = String::from_utf8_lossy(parts.next().unwrap_or(b""));
    let key = String::from_utf8_lossy(parts.next().unwrap_or(b""));
    let rest = parts.next().unwrap_or(b"");

    if !bucket.is_empty() {
        let dir = layout::bucket_dir(&bucket);
        assert_safe(&dir, "bucket directory");
        assert!(dir.starts_with("b-"));
    }

    // The store refuses empty keys and keys over 1 KiB before they reach the layout (`check_key`).
    if nimbus_kv::check_key(&key).is_ok() {
        let file = KeyFile::of(&key);
        assert_safe(file.name(), "key file");
        // Listing a bucket finds the key again: by its name, or inside a hashed file.
        let stored = file.encode(&key, rest);
        match layout::listed(file.name()) {
            Listed::Key(k) => {
                assert!(key.len() <= HEX_KEY_MAX);
                assert_eq!(k, key);
            }
            Listed::Hashed => {
                assert!(key.len() > HEX_KEY_MAX);
                assert_eq!(layout::stored_key(&stored), Ok(key.as_ref()));
            }
            Listed::Other => panic!("{:?} is not listed as a key", file.name()),
        }
        assert_eq!(file.decode(&key, stored).as_deref(), Ok(rest), "round trip of {key:?}");
        // Foreign contents: a hashed file that does not carry this key is refused, never misread.
        if let Ok(value) = file.decode(&key, rest.to_vec())
            && matches!(file, KeyFile::Hashed(_))
        {
            assert_eq!(layout::stored_key(rest), Ok(key.as_ref()));
            assert_eq!(value, &rest[HEADER + key.len()..]);
        }
    }

    // Any contents, as a hashed file found on disk.
    if let Ok(k) = layout::stored_key(rest) {
        assert!(HEADER + k.len() <= rest.len());
    }
    // Any directory entry: a key read from a hex name is the key the store would have named so.
    if let Ok(name) = std::str::from_utf8(data)
        && let Listed::Key(k) = layout::listed(name)
        && name.len() <= 255
        && !k.is_empty()
    {
        assert_eq!(KeyFile::of(&k).name(), name);
    }
});
