//! Configuration declared in `nimbus.toml`, read through `wasi:config/store`.
//!
//! Only declared keys exist; the host's environment is never visible.
//!
//! ```no_run
//! let greeting = nimbus_sdk::config::get("greeting")?.unwrap_or_else(|| "hello".into());
//! let retries: u32 = nimbus_sdk::config::parse("retries")?.unwrap_or(3);
//! // `hosts = { ssm = "/shop/hosts" }`, an SSM StringList "a.example,b.example":
//! let hosts: Vec<String> = nimbus_sdk::config::get_list("hosts")?;
//! // `db = { ssm_path = "/shop/db/" }`: keys `db.host`, `db.replica.port`, ...
//! let db = nimbus_sdk::config::get_prefix("db")?;
//! let host = db.get("host").map(String::as_str).unwrap_or("localhost");
//! # Ok::<(), nimbus_sdk::config::Error>(())
//! ```

use crate::wit::wasi::config::store;
use std::collections::BTreeMap;
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

/// The value of `key` split on `,` (an SSM StringList arrives as its
/// comma-separated text), items trimmed, empty items dropped; empty if the key
/// has no value.
///
/// ```no_run
/// // hosts = { ssm = "/shop/hosts" }   # StringList "a.example, b.example"
/// let hosts = nimbus_sdk::config::get_list("hosts")?;   // ["a.example", "b.example"]
/// # Ok::<(), nimbus_sdk::config::Error>(())
/// ```
pub fn get_list(key: &str) -> Result<Vec<String>, Error> {
    Ok(get(key)?.map(|v| split_list(&v)).unwrap_or_default())
}

/// Every key under `prefix.` with the prefix removed: what an `ssm_path` key
/// gives the guest, as a map.
///
/// ```no_run
/// // db = { ssm_path = "/shop/db/" }   # /shop/db/host, /shop/db/replica/port
/// let db = nimbus_sdk::config::get_prefix("db")?;      // {"host": .., "replica.port": ..}
/// # Ok::<(), nimbus_sdk::config::Error>(())
/// ```
pub fn get_prefix(prefix: &str) -> Result<BTreeMap<String, String>, Error> {
    Ok(under_prefix(all()?, prefix))
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn under_prefix(all: Vec<(String, String)>, prefix: &str) -> BTreeMap<String, String> {
    let dotted = format!("{prefix}.");
    all.into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&dotted)?.to_owned(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(split_list("a, b,,c "), ["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn prefixes_strip_the_key_and_its_dot() {
        let all = vec![
            ("db.host".to_string(), "h".to_string()),
            ("db.replica.port".to_string(), "1".to_string()),
            ("dbx.host".to_string(), "no".to_string()),
            ("db".to_string(), "no".to_string()),
        ];
        let got = under_prefix(all, "db");
        assert_eq!(got.len(), 2);
        assert_eq!(got["host"], "h");
        assert_eq!(got["replica.port"], "1");
    }
}
