//! The embedded backend: everything in one local directory, so `nimbus serve` runs durable tasks without AWS.
//!
//! ```text
//! <root>/objects/<key>            checkpoint objects (key = tasks/{task}/{seq}/{writer})
//! <root>/tasks/<task-id>.json     task records
//! <root>/idempotency/<sha256>     task id started with that idempotency key
//! <root>/queue/<msg-id>.json      continuation messages with their visibility deadline and current claim
//! <root>/tmp/                     staging for atomic writes
//! ```
//!
//! Every write goes to a temp file, is fsynced, renamed (or hard-linked, for create-if-absent) into place, and
//! the directory is fsynced, so a killed process leaves either the old or the new version, never half of one.
//! The queue is on disk too: a host killed mid-run leaves its message claimed, and a restarted host on the same
//! directory receives it again once the claim's visibility deadline passes.
//!
//! Conditional writes and queue claims are serialised by in-process locks. Two host *processes* sharing one
//! directory are not supported (they could both claim a message); one process with many concurrent runs is.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock, fresh_id};
use crate::store::{Backend, BoxFuture, Condition, Continuation, Created, Received, StoreError, TaskRecord};

/// A [`Backend`] on a local directory. Cheap to clone; clones share locks.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

struct Inner {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    /// One lock per task so conditional updates of a task are read-check-write atomic.
    task_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Serialises idempotent creates (index check + record write).
    create_lock: Mutex<()>,
    /// Serialises queue claims, acks and visibility changes.
    queue_lock: Mutex<()>,
    /// Enqueue counter, orders messages enqueued within the same millisecond.
    enqueued: AtomicU64,
}

/// A queued message as stored on disk.
#[derive(Debug, Serialize, Deserialize)]
struct QueueEntry {
    message: Continuation,
    visible_at_ms: u64,
    /// The current claim; a receipt names it, so a stale receipt cannot delete a redelivered message.
    claim: Option<String>,
    receives: u32,
}

impl Embedded {
    /// Opens (creating if needed) a store in `root`, using the system clock.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::with_clock(root, Arc::new(SystemClock))
    }

    /// Opens a store whose visibility deadlines follow `clock` (use the same clock as the [`crate::Durable`]).
    pub fn with_clock(root: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["objects", "tasks", "idempotency", "queue", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| io_err("open", &dir, e))?;
        }
        // Staged files a killed process never renamed into place are garbage; one process owns the directory.
        if let Ok(entries) = fs::read_dir(root.join("tmp")) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                clock,
                task_locks: Mutex::new(HashMap::new()),
                create_lock: Mutex::new(()),
                queue_lock: Mutex::new(()),
                enqueued: AtomicU64::new(0),
            }),
        })
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Runs blocking file work off the async runtime.
    fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, StoreError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&inner))
                .await
                .map_err(|e| StoreError::Backend {
                    op,
                    detail: format!("blocking task failed: {e}"),
                })?
        })
    }
}

impl Backend for Embedded {
    fn put_object<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = key.to_owned();
        self.blocking("put_object", move |inner| {
            let path = inner.object_path("put_object", &key)?;
            inner.write_atomic("put_object", &path, &bytes)
        })
    }

    fn get_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let key = key.to_owned();
        self.blocking("get_object", move |inner| {
            let path = inner.object_path("get_object", &key)?;
            read_opt("get_object", &path)
        })
    }

    fn delete_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = key.to_owned();
        self.blocking("delete_object", move |inner| {
            let path = inner.object_path("delete_object", &key)?;
            remove_opt("delete_object", &path)
        })
    }

    fn get_task<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        let id = task_id.to_owned();
        self.blocking("get_task", move |inner| inner.read_task("get_task", &id))
    }

    fn create_task<'a>(&'a self, record: &'a TaskRecord) -> BoxFuture<'a, Result<Created, StoreError>> {
        let record = record.clone();
        self.blocking("create_task", move |inner| inner.create_task(record))
    }

    fn update_task<'a>(
        &'a self,
        record: &'a TaskRecord,
        condition: &'a Condition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (record, condition) = (record.clone(), condition.clone());
        self.blocking("update_task", move |inner| {
            let lock = inner.task_lock(&record.task_id);
            let _guard = lock_ignoring_poison(&lock);
            match inner.read_task("update_task", &record.task_id)? {
                Some(stored) if condition.holds(&stored) => {
                    let path = inner.task_path("update_task", &record.task_id)?;
                    inner.write_atomic("update_task", &path, &to_json(&record)?)
                }
                _ => Err(StoreError::ConditionFailed),
            }
        })
    }

    fn enqueue<'a>(&'a self, message: &'a Continuation, delay_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        let message = message.clone();
        self.blocking("enqueue", move |inner| {
            let now = inner.clock.now_ms();
            // Names sort by enqueue time, then by enqueue order within this process, so receive is first-in
            // first-out among visible messages.
            let n = inner.enqueued.fetch_add(1, Ordering::Relaxed);
            let id = format!("{now:016x}-{n:016x}-{}", fresh_id());
            let entry = QueueEntry {
                message,
                visible_at_ms: now + delay_ms,
                claim: None,
                receives: 0,
            };
            let path = inner.root.join("queue").join(format!("{id}.json"));
            inner.write_atomic("enqueue", &path, &to_json(&entry)?)
        })
    }

    fn receive(&self, visibility_ms: u64) -> BoxFuture<'_, Result<Option<Received>, StoreError>> {
        self.blocking("receive", move |inner| inner.receive(visibility_ms))
    }

    fn ack<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let receipt = receipt.to_owned();
        self.blocking("ack", move |inner| {
            let (path, claim) = inner.parse_receipt("ack", &receipt)?;
            let _guard = lock_ignoring_poison(&inner.queue_lock);
            match read_entry("ack", &path)? {
                // Like SQS, acking with a stale receipt succeeds but leaves the redelivered message alone.
                Some(entry) if entry.claim.as_deref() == Some(claim) => {
                    remove_opt("ack", &path)?;
                    sync_dir("ack", path.parent())
                }
                _ => Ok(()),
            }
        })
    }

    fn change_visibility<'a>(&'a self, receipt: &'a str, visibility_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        let receipt = receipt.to_owned();
        self.blocking("change_visibility", move |inner| {
            let (path, claim) = inner.parse_receipt("change_visibility", &receipt)?;
            let _guard = lock_ignoring_poison(&inner.queue_lock);
            match read_entry("change_visibility", &path)? {
                Some(mut entry) if entry.claim.as_deref() == Some(claim) => {
                    entry.visible_at_ms = inner.clock.now_ms() + visibility_ms;
                    inner.write_atomic("change_visibility", &path, &to_json(&entry)?)
                }
                _ => Ok(()),
            }
        })
    }
}

impl Inner {
    fn task_lock(&self, task_id: &str) -> Arc<Mutex<()>> {
        let mut locks = lock_ignoring_poison(&self.task_locks);
        // Now and then drop the locks nobody holds (only the map has a reference), so a long-lived `serve` does
        // not keep one per task forever. A lock in use has a clone outside the map and is kept.
        if locks.len() >= 1024 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(task_id.to_owned()).or_default().clone()
    }

    fn task_path(&self, op: &'static str, task_id: &str) -> Result<PathBuf, StoreError> {
        if !valid_segment(task_id) {
            return Err(StoreError::Invalid {
                op,
                what: "task id",
                value: task_id.to_owned(),
            });
        }
        Ok(self.root.join("tasks").join(format!("{task_id}.json")))
    }

    /// Maps an object key to a path under `objects/`, refusing anything that could escape it.
    fn object_path(&self, op: &'static str, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty() || !key.split('/').all(valid_segment) {
            return Err(StoreError::Invalid {
                op,
                what: "object key",
                value: key.to_owned(),
            });
        }
        Ok(self.root.join("objects").join(key))
    }

    fn read_task(&self, op: &'static str, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let path = self.task_path(op, task_id)?;
        match read_opt(op, &path)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    what: format!("task record {}", path.display()),
                    detail: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    fn create_task(&self, mut record: TaskRecord) -> Result<Created, StoreError> {
        let _guard = lock_ignoring_poison(&self.create_lock);
        if let Some(key) = &record.idempotency_key {
            // The index entry is created first and exclusively, so two starts with one key agree on one id even
            // if a crash separates the index from the record: a retry then finishes creating that record.
            let digest: String = Sha256::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let index = self.root.join("idempotency").join(digest);
            if !self.create_exclusive("create_task", &index, record.task_id.as_bytes())? {
                let bytes = read_opt("create_task", &index)?.ok_or_else(|| StoreError::Backend {
                    op: "create_task",
                    detail: format!("idempotency index {} vanished while creating", index.display()),
                })?;
                let existing = String::from_utf8(bytes).map_err(|e| StoreError::Corrupt {
                    what: format!("idempotency index {}", index.display()),
                    detail: e.to_string(),
                })?;
                if let Some(found) = self.read_task("create_task", &existing)? {
                    return Ok(Created::Existing(Box::new(found)));
                }
                record.task_id = existing;
                let path = self.task_path("create_task", &record.task_id)?;
                self.create_exclusive("create_task", &path, &to_json(&record)?)?;
                return Ok(Created::Existing(Box::new(record)));
            }
        }
        let path = self.task_path("create_task", &record.task_id)?;
        if self.create_exclusive("create_task", &path, &to_json(&record)?)? {
            Ok(Created::New)
        } else {
            match self.read_task("create_task", &record.task_id)? {
                Some(found) => Ok(Created::Existing(Box::new(found))),
                None => Err(StoreError::Backend {
                    op: "create_task",
                    detail: "record vanished while creating".into(),
                }),
            }
        }
    }

    fn receive(&self, visibility_ms: u64) -> Result<Option<Received>, StoreError> {
        let dir = self.root.join("queue");
        let _guard = lock_ignoring_poison(&self.queue_lock);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(|e| io_err("receive", &dir, e))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".json"))
            .collect();
        names.sort();
        let now = self.clock.now_ms();
        for name in names {
            let path = dir.join(&name);
            let mut entry = match read_entry("receive", &path) {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(e @ StoreError::Corrupt { .. }) => {
                    // A corrupt message cannot name its task; keep it for inspection and skip it.
                    tracing::warn!(error = %e, "skipping unreadable continuation message");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if entry.visible_at_ms > now {
                continue;
            }
            let claim = fresh_id();
            entry.claim = Some(claim.clone());
            entry.visible_at_ms = now + visibility_ms;
            entry.receives += 1;
            self.write_atomic("receive", &path, &to_json(&entry)?)?;
            let id = name.trim_end_matches(".json");
            return Ok(Some(Received {
                message: entry.message,
                receipt: format!("{id}/{claim}"),
            }));
        }
        Ok(None)
    }

    fn parse_receipt<'r>(&self, op: &'static str, receipt: &'r str) -> Result<(PathBuf, &'r str), StoreError> {
        match receipt.split_once('/') {
            Some((id, claim)) if valid_segment(id) && valid_segment(claim) => {
                Ok((self.root.join("queue").join(format!("{id}.json")), claim))
            }
            _ => Err(StoreError::Invalid {
                op,
                what: "receipt",
                value: receipt.to_owned(),
            }),
        }
    }

    /// Writes `bytes` to a fresh temp file and fsyncs it.
    fn stage(&self, op: &'static str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        let tmp = self.root.join("tmp").join(fresh_id());
        let mut file = fs::File::create(&tmp).map_err(|e| io_err(op, &tmp, e))?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(op, &tmp, e)
        })?;
        Ok(tmp)
    }

    /// Replaces `path` atomically: stage, rename over, fsync the directory.
    fn write_atomic(&self, op: &'static str, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err(op, parent, e))?;
        }
        let tmp = self.stage(op, bytes)?;
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(op, path, e));
        }
        sync_dir(op, path.parent())
    }

    /// Creates `path` with `bytes` only if it does not exist (hard link of a staged file); false if it existed.
    fn create_exclusive(&self, op: &'static str, path: &Path, bytes: &[u8]) -> Result<bool, StoreError> {
        let tmp = self.stage(op, bytes)?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => sync_dir(op, path.parent()).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err(op, path, e)),
        }
    }
}

/// Ids, claims and key segments: ASCII alphanumerics, `-`, `_`, `.`, never `.`/`..`, at most 200 bytes.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn read_entry(op: &'static str, path: &Path) -> Result<Option<QueueEntry>, StoreError> {
    match read_opt(op, path)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                what: format!("queue message {}", path.display()),
                detail: e.to_string(),
            }),
        None => Ok(None),
    }
}

fn read_opt(op: &'static str, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(op, path, e)),
    }
}

fn remove_opt(op: &'static str, path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(op, path, e)),
    }
}

/// Fsyncs a directory so a rename or unlink in it survives a crash.
fn sync_dir(op: &'static str, dir: Option<&Path>) -> Result<(), StoreError> {
    match dir {
        Some(dir) => fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(op, dir, e)),
        None => Ok(()),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend {
        op: "serialize",
        detail: e.to_string(),
    })
}

/// I/O errors that may go away on their own are transient; the rest (permissions, disk full) are not.
fn io_err(op: &'static str, path: &Path, source: io::Error) -> StoreError {
    match source.kind() {
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => StoreError::Transient {
            op,
            detail: format!("{}: {source}", path.display()),
        },
        _ => StoreError::Io {
            op,
            path: path.display().to_string(),
            source,
        },
    }
}

/// A panic while holding one of these locks cannot leave files half-written (writes are atomic renames), so a
/// poisoned lock is still safe to use.
fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
