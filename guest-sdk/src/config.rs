//! Configuration declared in `nimbus.toml`, read through `wasi:config/store`.
//!
//! Only declared keys exist; the host's environment is never visible.
//!
//! ```no_run
//! let greeting = nimbus_sdk::config::get("greeting")?.unwrap_or_else(|| "hello".into());
//! let retries: u32 = nimbus_sdk::config::parse("retries")?.unwrap_or(3);
//! # Ok::<(), nimbus_sdk::config::Error>(())
//! ```

use crate::wit::wasi::config::store;
use std::fmt;

/// Why a config read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host could not provide the value (e.g. its backing store failed).
    Host(String),
    /// A required key is not declared or has no value.
    Missing(String),
    /// The value could not be parsed as the requested type.
    Invalid {
        /// The key.
        key: String,
        /// The parse error.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Host(m) => write!(f, "config store error: {m}"),
            Error::Missing(k) => write!(f, "config key `{k}` is not set (declare it in nimbus.toml)"),
            Error::Invalid { key, message } => write!(f, "config key `{key}` has an invalid value: {message}"),
        }
    }
}

impl std::error::Error for Error {}

fn host_err(e: store::Error) -> Error {
    match e {
        store::Error::Upstream(m) | store::Error::Io(m) => Error::Host(m),
    }
}

/// The value of `key`, or `None` if it is not declared or has no value.
pub fn get(key: &str) -> Result<Option<String>, Error> {
    store::get(key).map_err(host_err)
}

/// The value of `key`; an error if it is missing.
pub fn require(key: &str) -> Result<String, Error> {
    get(key)?.ok_or_else(|| Error::Missing(key.to_owned()))
}

/// The value of `key` parsed with [`std::str::FromStr`].
pub fn parse<T: std::str::FromStr>(key: &str) -> Result<Option<T>, Error>
where
    T::Err: fmt::Display,
{
    match get(key)? {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e: T::Err| Error::Invalid {
            key: key.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// Every declared key and its value.
pub fn all() -> Result<Vec<(String, String)>, Error> {
    store::get_all().map_err(host_err)
}
