//! What one fetch of remote parameters (SSM or OOS Parameter Store, or the overrides file standing in for
//! them) found: values by name, paths, the names that do not exist and what failed. Both providers fill
//! the same [`Fetched`], so the cache's boot, refresh and required-key rules are one code for both.

use super::overrides;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// Bound on one whole fetch (every batch and path of a function), at boot and
/// at each refresh: boot must not hang on an unreachable endpoint.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The result of one fetch.
#[derive(Debug, Default)]
pub(super) struct Fetched {
    /// Parameter name (as requested) to value.
    pub values: HashMap<String, String>,
    /// Requested names that do not exist.
    pub missing: HashSet<String>,
    /// Path to the (full name, value) of every parameter under it.
    pub paths: HashMap<String, Vec<(String, String)>>,
    /// Names and paths that could not be fetched, with why.
    pub failed: Vec<Failure>,
}

/// Parameters (names or paths) whose fetch failed together.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    /// The names or paths.
    pub parameters: Vec<String>,
    /// The error, with its causes.
    pub error: String,
}

/// What one fetch says about one name or path.
pub(super) enum Lookup<'a, T> {
    /// Found.
    Found(T),
    /// The parameter does not exist.
    Missing,
    /// The fetch failed.
    Failed(&'a str),
}

impl Fetched {
    /// What `fetch` found, or, past [`FETCH_TIMEOUT`], every name and path failed.
    pub(super) async fn bounded(names: &[String], paths: &[String], fetch: impl Future<Output = Fetched>) -> Fetched {
        match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
            Ok(f) => f,
            Err(_) => Fetched::all_failed(names, paths, format!("timed out after {}s", FETCH_TIMEOUT.as_secs())),
        }
    }

    pub(super) fn fail(&mut self, parameters: Vec<String>, error: String) {
        self.failed.push(Failure { parameters, error });
    }

    pub(super) fn all_failed(names: &[String], paths: &[String], error: String) -> Fetched {
        let mut f = Fetched::default();
        f.fail(names.iter().chain(paths).cloned().collect(), error);
        f
    }

    /// Resolves names and paths from the overrides file, read now; a file that cannot be used fails them all.
    pub(super) fn from_overrides(file: &Path, names: &[String], paths: &[String]) -> Fetched {
        match overrides::load(file) {
            Ok(map) => Fetched::from_map(&map, names, paths),
            Err(e) => Fetched::all_failed(names, paths, e.to_string()),
        }
    }

    /// Resolves names and paths from a name-to-value map (paths by prefix).
    fn from_map(map: &std::collections::BTreeMap<String, String>, names: &[String], paths: &[String]) -> Fetched {
        let mut f = Fetched::default();
        for name in names {
            match map.get(name) {
                Some(v) => {
                    f.values.insert(name.clone(), v.clone());
                }
                None => {
                    f.missing.insert(name.clone());
                }
            }
        }
        for path in paths {
            let under = map
                .range(path.clone()..)
                .take_while(|(k, _)| k.starts_with(path.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            f.paths.insert(path.clone(), under);
        }
        f
    }

    fn failure(&self, parameter: &str) -> Option<&str> {
        self.failed
            .iter()
            .find(|f| f.parameters.iter().any(|p| p == parameter))
            .map(|f| f.error.as_str())
    }

    /// One parameter's value.
    pub fn name(&self, name: &str) -> Lookup<'_, &str> {
        if let Some(v) = self.values.get(name) {
            Lookup::Found(v)
        } else if let Some(e) = self.failure(name) {
            Lookup::Failed(e)
        } else {
            Lookup::Missing
        }
    }

    /// Every parameter under a path.
    pub fn path(&self, path: &str) -> Lookup<'_, &[(String, String)]> {
        if let Some(v) = self.paths.get(path) {
            Lookup::Found(v)
        } else if let Some(e) = self.failure(path) {
            Lookup::Failed(e)
        } else {
            Lookup::Missing
        }
    }
}

/// The guest key for a parameter under a path key: key `db`, path `/shop/db/`,
/// name `/shop/db/replica/host` give `db.replica.host`. `None` for the path itself.
pub(super) fn path_key(key: &str, path: &str, name: &str) -> Option<String> {
    let rest = name.strip_prefix(path)?.trim_matches('/');
    (!rest.is_empty()).then(|| format!("{key}.{}", rest.replace('/', ".")))
}
