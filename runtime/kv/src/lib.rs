//! Key-value stores for `wasi:keyvalue`: small state shared by every invocation of an app, such as a
//! WebSocket connection registry, a room's members or a counter.
//!
//! A [`KvStore`] holds named buckets of `key → bytes`. Two implementations behave alike, limits included,
//! so a function tested under `nimbus serve` behaves the same on AWS:
//! - [`Embedded`]: files under a directory (`nimbus serve`);
//! - `Dynamo` (feature `aws`): one DynamoDB table, partition key `bucket`, sort key `key`.
//!
//! `increment` keeps the counter as decimal text (what `wasmtime-wasi-keyvalue` does), so `get` reads it
//! as `b"42"`.

#[cfg(feature = "aws")]
pub mod dynamo;
mod embedded;
pub mod layout;

pub use embedded::Embedded;

/// (`futures`' own) A boxed future, so [`KvStore`] stays object-safe.
pub use futures_util::future::BoxFuture;

/// Longest key, in bytes (DynamoDB's sort key limit).
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes (under DynamoDB's 400 KB item limit, with room for the keys).
pub const MAX_VALUE: usize = 350 * 1024;
/// Keys per `list_keys` page.
pub const PAGE: usize = 1000;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key or value breaks a limit, or a counter holds something other than a number. The message is
    /// about the caller's own input and may be shown to a guest.
    #[error("{0}")]
    Invalid(String),
    /// The store failed (I/O, AWS). The detail names host files or AWS resources: it is for the host's log,
    /// never for a guest ([`KvError::guest_message`]).
    #[error("key-value store: {0}")]
    Backend(String),
}

impl KvError {
    /// What a guest may be told: an [`KvError::Invalid`] message as it is, and of a store failure only that it
    /// happened, since its detail (file paths, AWS errors) belongs to the host.
    pub fn guest_message(&self) -> String {
        match self {
            KvError::Invalid(message) => message.clone(),
            KvError::Backend(_) => "key-value store: the operation failed on the host (see its log)".into(),
        }
    }
}

/// One page of keys and where the next starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Keys in this page, sorted.
    pub keys: Vec<String>,
    /// The cursor of the next page; `None` on the last.
    pub cursor: Option<u64>,
}

/// A key-value store with named buckets.
pub trait KvStore: Send + Sync + 'static {
    /// The value of `key`, if set.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>>;
    /// Sets `key` to `value`.
    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), KvError>>;
    /// Removes `key` (no error if absent).
    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), KvError>>;
    /// A page of the bucket's keys, sorted, starting at `cursor` (an offset; `None`: the first page).
    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<u64>) -> BoxFuture<'a, Result<Keys, KvError>>;
    /// Adds `delta` to the counter at `key` (absent counts as 0) atomically; the new value.
    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: u64) -> BoxFuture<'a, Result<u64, KvError>>;
}

/// Checks a key: not empty (DynamoDB cannot store an empty sort key, and the embedded store's file would be
/// its bucket's directory), and at most [`MAX_KEY`] bytes.
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::Invalid("a key cannot be empty".into()));
    }
    if key.len() > MAX_KEY {
        return Err(KvError::Invalid(format!(
            "key of {} bytes exceeds the {MAX_KEY}-byte limit",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a value against [`MAX_VALUE`].
pub fn check_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE {
        return Err(KvError::Invalid(format!(
            "value of {} bytes exceeds the {MAX_VALUE}-byte limit",
            value.len()
        )));
    }
    Ok(())
}

/// `current + delta` for a counter stored as decimal text (absent: 0).
pub fn add_to_counter(current: Option<&[u8]>, delta: u64) -> Result<u64, KvError> {
    let now = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| KvError::Invalid("the value is not a counter (decimal text)".into()))?,
    };
    now.checked_add(delta)
        .ok_or_else(|| KvError::Invalid("the counter would overflow u64".into()))
}
