//! The embedded store: one file per key under `{dir}`, laid out as [`crate::layout`] describes (hex names,
//! or hashed names with the key inside for long keys), written to a temp file and renamed into place, so a
//! reader never sees half a value. One process per directory (as the embedded task store): a lock serializes
//! writers, which makes `increment` atomic.
//!
//! Failures carry the file involved for the host's log; [`KvError::guest_message`] keeps it from guests.

use crate::layout::{self, HEADER, KeyFile, Listed};
use crate::{BoxFuture, Keys, KvError, KvStore, MAX_KEY, PAGE, add_to_counter, check_key, check_value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

/// Files under a directory.
#[derive(Debug, Clone)]
pub struct Embedded {
    dir: Arc<PathBuf>,
    /// Serializes writes (and read-modify-writes) in this process.
    write: Arc<Mutex<u64>>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> KvError {
    KvError::Backend(format!("{what} {}: {e}", path.display()))
}

fn corrupt(path: &Path, e: layout::Corrupt) -> KvError {
    KvError::Backend(format!("{} is not a key-value entry: {e}", path.display()))
}

impl Embedded {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Embedded, KvError> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| io("create", &dir, e))?;
        Ok(Embedded {
            dir: Arc::new(dir),
            write: Arc::new(Mutex::new(0)),
        })
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.dir.join(layout::bucket_dir(bucket))
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let file = KeyFile::of(key);
        let path = self.bucket_dir(bucket).join(file.name());
        match tokio::fs::read(&path).await {
            Ok(contents) => file.decode(key, contents).map(Some).map_err(|e| corrupt(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    /// Writes under the write lock (the caller holds it).
    async fn write_locked(&self, counter: &mut u64, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let dir = self.bucket_dir(bucket);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io("create", &dir, e))?;
        let file = KeyFile::of(key);
        let path = dir.join(file.name());
        *counter += 1;
        let tmp = self.dir.join("tmp").join(format!("{}-{counter}", std::process::id()));
        tokio::fs::write(&tmp, file.encode(key, value))
            .await
            .map_err(|e| io("write", &tmp, e))?;
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io("rename", &path, e));
        }
        Ok(())
    }

    /// The key a hashed file holds, reading no more than its header and the longest key; `None` if the file
    /// is gone (deleted since its directory was read).
    async fn stored_key(path: &Path) -> Result<Option<String>, KvError> {
        let file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", path, e)),
        };
        let mut head = Vec::with_capacity(HEADER + MAX_KEY);
        file.take((HEADER + MAX_KEY) as u64)
            .read_to_end(&mut head)
            .await
            .map_err(|e| io("read", path, e))?;
        layout::stored_key(&head)
            .map(|key| Some(key.to_owned()))
            .map_err(|e| corrupt(path, e))
    }
}

impl KvStore for Embedded {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        Box::pin(async move {
            check_key(key)?;
            self.read(bucket, key).await
        })
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            check_key(key)?;
            check_value(&value)?;
            let mut counter = self.write.lock().await;
            self.write_locked(&mut counter, bucket, key, &value).await
        })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            check_key(key)?;
            let _guard = self.write.lock().await;
            let path = self.bucket_dir(bucket).join(KeyFile::of(key).name());
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io("delete", &path, e)),
            }
        })
    }

    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<u64>) -> BoxFuture<'a, Result<Keys, KvError>> {
        Box::pin(async move {
            let dir = self.bucket_dir(bucket);
            let mut keys = Vec::new();
            match tokio::fs::read_dir(&dir).await {
                Ok(mut entries) => {
                    while let Some(entry) = entries.next_entry().await.map_err(|e| io("list", &dir, e))? {
                        let Some(name) = entry.file_name().to_str().map(layout::listed) else {
                            continue;
                        };
                        match name {
                            Listed::Key(key) => keys.push(key),
                            Listed::Hashed => keys.extend(Self::stored_key(&entry.path()).await?),
                            Listed::Other => {}
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("list", &dir, e)),
            }
            keys.sort();
            Ok(page(keys, cursor))
        })
    }

    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: u64) -> BoxFuture<'a, Result<u64, KvError>> {
        Box::pin(async move {
            check_key(key)?;
            let mut counter = self.write.lock().await;
            let current = self.read(bucket, key).await?;
            let next = add_to_counter(current.as_deref(), delta)?;
            self.write_locked(&mut counter, bucket, key, next.to_string().as_bytes())
                .await?;
            Ok(next)
        })
    }
}

/// The page of sorted `keys` starting at offset `cursor`.
pub(crate) fn page(keys: Vec<String>, cursor: Option<u64>) -> Keys {
    let start = usize::try_from(cursor.unwrap_or(0))
        .unwrap_or(usize::MAX)
        .min(keys.len());
    let end = (start + PAGE).min(keys.len());
    let next = (end < keys.len()).then_some(end as u64);
    Keys {
        keys: keys.into_iter().skip(start).take(end - start).collect(),
        cursor: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_keys_counters_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Embedded::open(dir.path()).unwrap();
        assert_eq!(kv.get("b", "k").await.unwrap(), None);
        kv.set("b", "k", b"v".to_vec()).await.unwrap();
        kv.set("b", "../../etc/passwd", b"x".to_vec()).await.unwrap();
        kv.set("other", "k", b"o".to_vec()).await.unwrap();
        assert_eq!(kv.get("b", "k").await.unwrap().as_deref(), Some(&b"v"[..]));
        let keys = kv.list_keys("b", None).await.unwrap();
        assert_eq!(keys.keys, ["../../etc/passwd", "k"]);
        assert_eq!(keys.cursor, None);
        kv.delete("b", "k").await.unwrap();
        kv.delete("b", "never").await.unwrap();
        assert_eq!(kv.get("b", "k").await.unwrap(), None);
        assert_eq!(kv.increment("c", "n", 5).await.unwrap(), 5);
        assert_eq!(kv.increment("c", "n", 2).await.unwrap(), 7);
        assert_eq!(kv.get("c", "n").await.unwrap().as_deref(), Some(&b"7"[..]));
        assert!(matches!(
            kv.increment("b", "../../etc/passwd", 1).await,
            Err(KvError::Invalid(_))
        ));
        assert!(matches!(
            kv.set("b", "k", vec![0; crate::MAX_VALUE + 1]).await,
            Err(KvError::Invalid(_))
        ));
        assert!(matches!(
            kv.get("b", &"k".repeat(crate::MAX_KEY + 1)).await,
            Err(KvError::Invalid(_))
        ));
        // An empty key is refused before it could name the bucket's directory (and the bucket is untouched).
        for result in [
            kv.get("b", "").await.map(drop),
            kv.set("b", "", b"v".to_vec()).await,
            kv.delete("b", "").await,
            kv.increment("b", "", 1).await.map(drop),
        ] {
            assert!(
                matches!(&result, Err(KvError::Invalid(m)) if m.contains("empty")),
                "{result:?}"
            );
        }
        assert_eq!(kv.list_keys("b", None).await.unwrap().keys, ["../../etc/passwd"]);
        // A second handle on the same directory sees the same data.
        let again = Embedded::open(dir.path()).unwrap();
        assert_eq!(again.get("other", "k").await.unwrap().as_deref(), Some(&b"o"[..]));
    }

    #[tokio::test]
    async fn concurrent_increments_are_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Embedded::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let kv = kv.clone();
                tokio::spawn(async move { kv.increment("c", "n", 1).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(kv.get("c", "n").await.unwrap().as_deref(), Some(&b"20"[..]));
    }

    /// Keys of every documented length and of any characters, as DynamoDB takes them.
    fn awkward_keys() -> Vec<String> {
        let mut keys: Vec<String> = [127, 128, 200, 255, 256, 1024].iter().map(|&n| "k".repeat(n)).collect();
        keys.extend(
            [
                "a/b/c",
                "..",
                "../../etc/passwd",
                "%2F%00%",
                "nul\0inside",
                "ключ/🔑",
                " leading space",
                "UPPER",
                "upper",
            ]
            .map(String::from),
        );
        keys.push("é".repeat(512)); // 1 KiB of two-byte characters
        keys.push(format!("{}/../{}", "x".repeat(500), "y".repeat(500)));
        keys
    }

    #[tokio::test]
    async fn keys_up_to_the_limit_of_any_characters_round_trip_and_list_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Embedded::open(dir.path()).unwrap();
        let keys = awkward_keys();
        for (i, key) in keys.iter().enumerate() {
            kv.set("b", key, format!("value {i}").into_bytes()).await.unwrap();
        }
        for (i, key) in keys.iter().enumerate() {
            let value = kv.get("b", key).await.unwrap();
            assert_eq!(value, Some(format!("value {i}").into_bytes()), "{key:?}");
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(kv.list_keys("b", None).await.unwrap().keys, sorted);
        let long = "k".repeat(1024);
        kv.set("c", &long, Vec::new()).await.unwrap();
        kv.delete("c", &long).await.unwrap();
        assert_eq!(kv.increment("c", &long, 3).await.unwrap(), 3);
        assert_eq!(kv.increment("c", &long, 4).await.unwrap(), 7);
        assert_eq!(kv.list_keys("c", None).await.unwrap().keys, [long]);
        kv.delete("b", &keys[5]).await.unwrap();
        assert_eq!(kv.get("b", &keys[5]).await.unwrap(), None);
        assert_eq!(kv.list_keys("b", None).await.unwrap().keys.len(), keys.len() - 1);
        // Nothing escaped the store's directory, and nothing is left staged.
        let top: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(top.len(), 3, "b, c and tmp: {top:?}");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // A bucket name too long for a hex directory name works too.
        let bucket = "b".repeat(200);
        kv.set(&bucket, "k", b"v".to_vec()).await.unwrap();
        assert_eq!(kv.get(&bucket, "k").await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(kv.list_keys(&bucket, None).await.unwrap().keys, ["k"]);
        // One byte over the limit is refused, saying why.
        let over = "k".repeat(crate::MAX_KEY + 1);
        assert_eq!(
            kv.set("b", &over, Vec::new()).await,
            Err(KvError::Invalid("key of 1025 bytes exceeds the 1024-byte limit".into()))
        );
    }

    #[tokio::test]
    async fn short_keys_keep_the_hex_layout_of_existing_state_directories() {
        let dir = tempfile::tempdir().unwrap();
        // What earlier versions wrote: `b-{hex(bucket)}/{hex(key)}` holding the bare value.
        std::fs::create_dir_all(dir.path().join("b-726f6f6d73")).unwrap();
        std::fs::write(dir.path().join("b-726f6f6d73/6d656d6265722f61"), b"ann").unwrap();
        let kv = Embedded::open(dir.path()).unwrap();
        assert_eq!(kv.get("rooms", "member/a").await.unwrap().as_deref(), Some(&b"ann"[..]));
        assert_eq!(kv.list_keys("rooms", None).await.unwrap().keys, ["member/a"]);
        kv.set("rooms", "member/a", b"bob".to_vec()).await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("b-726f6f6d73/6d656d6265722f61")).unwrap(),
            b"bob"
        );
    }

    #[tokio::test]
    async fn io_failures_name_the_file_for_the_host_but_not_for_a_guest() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Embedded::open(dir.path()).unwrap();
        let root = dir.path().to_str().unwrap();
        for key in ["short", &"long".repeat(100)] {
            kv.set("b", key, b"v".to_vec()).await.unwrap();
            // The key's file replaced by a directory: reads and writes fail (even for root).
            let file = dir.path().join(layout::bucket_dir("b")).join(KeyFile::of(key).name());
            std::fs::remove_file(&file).unwrap();
            std::fs::create_dir(&file).unwrap();
            for e in [
                kv.get("b", key).await.unwrap_err(),
                kv.set("b", key, b"w".to_vec()).await.unwrap_err(),
                kv.increment("b", key, 1).await.unwrap_err(),
            ] {
                assert!(matches!(&e, KvError::Backend(detail) if detail.contains(root)), "{e:?}");
                assert!(!e.guest_message().contains(root), "{}", e.guest_message());
                assert!(!e.guest_message().contains("/"), "{}", e.guest_message());
            }
            std::fs::remove_dir(&file).unwrap();
        }
        // A hashed file that does not hold its key is refused, not misread.
        let key = "k".repeat(300);
        let file = dir.path().join(layout::bucket_dir("b")).join(KeyFile::of(&key).name());
        std::fs::write(&file, b"NKV1").unwrap();
        let e = kv.get("b", &key).await.unwrap_err();
        assert!(
            matches!(&e, KvError::Backend(detail) if detail.contains("not a key-value entry")),
            "{e:?}"
        );
        assert!(kv.list_keys("b", None).await.is_err());
    }

    #[test]
    fn pages_follow_the_cursor() {
        let keys: Vec<String> = (0..2500).map(|i| format!("{i:05}")).collect();
        let first = page(keys.clone(), None);
        assert_eq!((first.keys.len(), first.cursor), (1000, Some(1000)));
        let last = page(keys, Some(2000));
        assert_eq!((last.keys.len(), last.cursor), (500, None));
    }
}
