//! Key-value buckets (`wasi:keyvalue`): small state shared by every invocation of every function of the
//! app — a WebSocket room's members, a counter, a cache. Values are bytes; `*_json` helpers encode with
//! `serde_json`.
//!
//! A function opens only the buckets `nimbus.toml` declares for it (`keyvalue = ["rooms"]`). The store is
//! DynamoDB on AWS and an embedded one under `nimbus serve`; keys are at most 1 KiB, values 350 KiB.
//!
//! ```no_run
//! use nimbus_sdk::kv::Bucket;
//!
//! fn join(room: &str, connection_id: &str) -> Result<u64, nimbus_sdk::kv::Error> {
//!     let rooms = Bucket::open("rooms")?;
//!     rooms.set(&format!("{room}/{connection_id}"), b"")?;
//!     rooms.increment(&format!("{room}#joins"), 1)
//! }
//! # fn main() {}
//! ```

use crate::wit::wasi::keyvalue::{atomics, batch, store};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a key-value call failed: `NoSuchStore` (no store configured), `AccessDenied` (the bucket is not
/// declared for this function), or `Other` with the store's message: which limit a key or value broke, or
/// that the store failed on the host (its detail, such as file paths, stays in the host's log).
pub use store::Error;

/// A key and its value.
pub type Entry = (String, Vec<u8>);

/// An open bucket.
pub struct Bucket(store::Bucket);

impl Bucket {
    /// Opens the bucket `name` (declared in the function's `keyvalue` list).
    pub fn open(name: &str) -> Result<Bucket, Error> {
        store::open(name).map(Bucket)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.0.get(key)
    }

    /// The value of `key` decoded from JSON, if set.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.0.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Other(format!("{key} is not the JSON expected: {e}"))),
        }
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.0.set(key, value)
    }

    /// Sets `key` to `value` encoded as JSON.
    pub fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Other(e.to_string()))?;
        self.0.set(key, &bytes)
    }

    /// Removes `key` (no error if it is absent).
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        self.0.delete(key)
    }

    /// Whether `key` is set.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        self.0.exists(key)
    }

    /// Every key of the bucket, sorted (all pages).
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.0.list_keys(cursor)?;
            all.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Keys starting with `prefix`, sorted.
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, Error> {
        Ok(self.keys()?.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    /// Adds `delta` to the counter at `key` (absent: 0) atomically; returns the new value.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        atomics::increment(&self.0, key, delta)
    }

    /// The values of `keys`, in order (`None` for unset ones).
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, Error> {
        batch::get_many(&self.0, keys)
    }

    /// Removes `keys`.
    pub fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        batch::delete_many(&self.0, keys)
    }
}
