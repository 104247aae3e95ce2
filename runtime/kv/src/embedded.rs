//! The embedded store: one file per key under `{dir}/{hex(bucket)}/{hex(key)}`, written to a temp file
//! and renamed into place, so a reader never sees half a value. One process per directory (as the embedded
//! task store): a lock serializes writers, which makes `increment` atomic.

use crate::{BoxFuture, Keys, KvError, KvStore, PAGE, add_to_counter, check_key, check_value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Files under a directory.
#[derive(Debug, Clone)]
pub struct Embedded {
    dir: Arc<PathBuf>,
    /// Serializes writes (and read-modify-writes) in this process.
    write: Arc<Mutex<u64>>,
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn io(what: &str, path: &Path, e: std::io::Error) -> KvError {
    KvError::Backend(format!("{what} {}: {e}", path.display()))
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

    fn path(&self, bucket: &str, key: &str) -> PathBuf {
        // Buckets and keys are hex-encoded: any string is a safe file name, and no `..` escapes the dir.
        self.dir.join(format!("b-{}", hex(bucket))).join(hex(key))
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let path = self.path(bucket, key);
        match tokio::fs::read(&path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    /// Writes under the write lock (the caller holds it).
    async fn write_locked(&self, counter: &mut u64, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let path = self.path(bucket, key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("create", parent, e))?;
        }
        *counter += 1;
        let tmp = self.dir.join("tmp").join(format!("{}-{counter}", std::process::id()));
        tokio::fs::write(&tmp, value).await.map_err(|e| io("write", &tmp, e))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| io("rename", &path, e))
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
            let path = self.path(bucket, key);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io("delete", &path, e)),
            }
        })
    }

    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<u64>) -> BoxFuture<'a, Result<Keys, KvError>> {
        Box::pin(async move {
            let dir = self.dir.join(format!("b-{}", hex(bucket)));
            let mut keys = Vec::new();
            match tokio::fs::read_dir(&dir).await {
                Ok(mut entries) => {
                    while let Some(entry) = entries.next_entry().await.map_err(|e| io("list", &dir, e))? {
                        if let Some(key) = entry.file_name().to_str().and_then(unhex) {
                            keys.push(key);
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

    #[test]
    fn pages_follow_the_cursor() {
        let keys: Vec<String> = (0..2500).map(|i| format!("{i:05}")).collect();
        let first = page(keys.clone(), None);
        assert_eq!((first.keys.len(), first.cursor), (1000, Some(1000)));
        let last = page(keys, Some(2000));
        assert_eq!((last.keys.len(), last.cursor), (500, None));
    }
}
