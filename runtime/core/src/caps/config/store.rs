//! What a guest's `wasi:config/store` calls read: the seam [`crate::caps::Intercept::config`] wraps, and
//! the host's implementation of it, a function's values at one instant ([`ConfigValues`]).

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

/// The reads of `wasi:config/store`, one invocation's view of its function's configuration.
pub trait ConfigStore: Send + Sync + 'static {
    /// The value of `key`, if declared and set.
    fn get(&self, key: &str) -> Result<Option<String>, ConfigError>;

    /// Every declared key that has a value.
    fn get_all(&self) -> Result<Vec<(String, String)>, ConfigError>;
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

impl ConfigStore for ConfigValues {
    fn get(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.0.get(key).cloned())
    }

    fn get_all(&self) -> Result<Vec<(String, String)>, ConfigError> {
        Ok(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_all_lists_the_keys_in_order_whatever_order_they_came_in() {
        let values: ConfigValues = [("zone", "z"), ("api_url", "a"), ("mode", "m")].into_iter().collect();
        let keys: Vec<String> = values.get_all().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["api_url", "mode", "zone"]);
        assert_eq!(values.get("mode").unwrap().as_deref(), Some("m"));
    }
}
