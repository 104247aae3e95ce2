//! What a guest's `wasi:config/store` calls read: the seam [`crate::caps::Intercept::config`] wraps, and
//! the host's implementation of it, a function's values at one instant ([`ConfigValues`]).

use futures_util::future::BoxFuture;
use std::collections::BTreeMap;

/// Why a config read failed, as `wasi:config` reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The source of the values failed.
    #[error("upstream: {0}")]
    Upstream(String),
    /// An I/O error reading the values.
    #[error("io: {0}")]
    Io(String),
}

/// The reads of `wasi:config/store`, one invocation's view of its function's configuration. Async, although
/// the host's own reads are from memory, so that what wraps them may wait (injected latency) without
/// blocking the thread.
pub trait ConfigStore: Send + Sync + 'static {
    /// The value of `key`, if declared and set.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, ConfigError>>;

    /// Every declared key that has a value.
    fn get_all(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ConfigError>>;
}

/// A function's config values at one instant (a snapshot a refresh replaces whole): what invocations read
/// unless an interceptor wraps it. Ordered by key, so `get-all` lists them in the same order on every host
/// and platform (a function has a handful of keys: a lookup costs no more than hashing would).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigValues(BTreeMap<String, String>);

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ConfigValues {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> ConfigValues {
        ConfigValues(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl ConfigValues {
    /// The value of `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every key and value, ordered by key.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl ConfigStore for ConfigValues {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, ConfigError>> {
        Box::pin(std::future::ready(Ok(self.value(key).map(str::to_owned))))
    }

    fn get_all(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ConfigError>> {
        Box::pin(std::future::ready(Ok(self.entries())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_all_lists_the_keys_in_order_whatever_order_they_came_in() {
        let values: ConfigValues = [("zone", "z"), ("api_url", "a"), ("mode", "m")].into_iter().collect();
        let keys: Vec<String> = values.entries().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["api_url", "mode", "zone"]);
        assert_eq!(values.value("mode"), Some("m"));
    }
}
