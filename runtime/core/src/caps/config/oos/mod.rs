//! Where `oos` / `oos_path` config keys come from: Alibaba Cloud's OOS Parameter Store (Function Compute's
//! counterpart of SSM), or the local overrides file standing in for it.
//!
//! There is no maintained Rust SDK for OOS, so this is a small client of its own: the V3 signature
//! (`ACS3-HMAC-SHA256`, [`sign`], tested on the documentation's worked example), the four calls it needs
//! ([`api`]) and one HTTP/1.1 connection per fetch ([`client`]), signed with the platform's temporary
//! credentials ([`OosCredentials`]).
//!
//! OOS keeps plain and secret (KMS-encrypted) parameters apart, each with its own API, and a manifest does
//! not say which kind a name is:
//! - by name, `GetParameters` (at most 10 names a call) first; every name it does not return is asked of
//!   `GetSecretParameters` with `WithDecryption=true`; what neither returns does not exist. The names
//!   asked again are "not returned", not `InvalidParameters` as printed: the API reference's own sample
//!   shows an element of that list as a JSON text, so its exact shape is not relied on;
//! - by path, `GetParametersByPath` and `GetSecretParametersByPath` (`Recursive`, `WithDecryption`, every
//!   page by `NextToken`), merged. Both are always asked: a path usually holds both kinds.
//!
//! Caching, refresh, defaults and the required-key rule are the SSM keys' ([`super::cache`]): a provider
//! only answers one [`Fetched`].

mod api;
mod client;
mod credentials;
mod sign;

pub use client::OosError;
pub use credentials::{AccessKey, OosCredentials};

use super::fetched::Fetched;
use super::overrides;
use crate::settings::OosSettings;
use api::{BATCH, Call};
use client::{Client, Session};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A bound on the pages of one path, so a server that keeps answering a `NextToken` cannot keep a
/// fetch going (10 parameters a page: 10 000 parameters).
const MAX_PAGES: usize = 1000;

/// Where a manifest's `oos` and `oos_path` keys are read from. Cheap to clone.
#[derive(Clone)]
pub struct OosProvider(Arc<Backend>);

enum Backend {
    Oos(Client),
    Overrides(PathBuf),
}

impl Default for OosProvider {
    /// OOS with no region and no credentials: every fetch fails, saying what to set.
    fn default() -> OosProvider {
        OosProvider::new(&OosSettings::default())
    }
}

impl fmt::Debug for OosProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl OosProvider {
    /// OOS as these settings (region or endpoint, starting credentials) describe it.
    pub fn new(settings: &OosSettings) -> OosProvider {
        OosProvider(Arc::new(Backend::Oos(Client::new(settings))))
    }

    /// The local overrides file (the SSM one's format: a map of parameter name to value) instead of OOS.
    /// The file is checked now and read again at each refresh.
    pub fn overrides_file(path: impl Into<PathBuf>) -> Result<OosProvider, overrides::OverridesError> {
        let path = path.into();
        overrides::load(&path)?;
        Ok(OosProvider(Arc::new(Backend::Overrides(path))))
    }

    /// The credentials OOS calls are signed with, to replace when the platform hands over new ones
    /// (`None` for an overrides file).
    pub fn credentials(&self) -> Option<&OosCredentials> {
        match &*self.0 {
            Backend::Oos(c) => Some(c.credentials()),
            Backend::Overrides(_) => None,
        }
    }

    /// Where values come from, for messages.
    pub fn describe(&self) -> String {
        match &*self.0 {
            Backend::Oos(c) => format!("OOS Parameter Store ({})", c.describe()),
            Backend::Overrides(p) => format!("the overrides file {}", p.display()),
        }
    }

    /// Fetches parameters by name and every parameter under each path, bounded in time. Never fails as a
    /// whole: failures are reported per batch or path in [`Fetched::failed`].
    pub(super) async fn fetch(&self, names: &[String], paths: &[String]) -> Fetched {
        let fetch = async {
            match &*self.0 {
                Backend::Overrides(file) => Fetched::from_overrides(file, names, paths),
                Backend::Oos(client) => match client.session().await {
                    Ok(mut session) => fetch_from(&mut session, names, paths).await,
                    Err(e) => Fetched::all_failed(names, paths, e.to_string()),
                },
            }
        };
        Fetched::bounded(names, paths, fetch).await
    }
}

async fn fetch_from(session: &mut Session, names: &[String], paths: &[String]) -> Fetched {
    let mut out = Fetched::default();
    for batch in names.chunks(BATCH) {
        by_name(session, batch, &mut out).await;
    }
    for path in paths {
        match by_path(session, path).await {
            Ok(found) => {
                out.paths.insert(path.clone(), found);
            }
            Err(e) => out.fail(vec![path.clone()], e.to_string()),
        }
    }
    out
}

/// Plain parameters first, then the names not found among the secret ones.
async fn by_name(session: &mut Session, batch: &[String], out: &mut Fetched) {
    let mut found = BTreeMap::new();
    let mut rest = batch.to_vec();
    for secret in [false, true] {
        if rest.is_empty() {
            break;
        }
        let answer = match session.call(&Call::ByName { secret, names: &rest }).await {
            Ok(a) => a,
            Err(e) => {
                out.fail(rest, e.to_string());
                break;
            }
        };
        for (name, value) in answer.values() {
            if rest.iter().any(|n| n == name) {
                found.insert(name.to_string(), value.to_string());
            }
        }
        rest.retain(|n| !found.contains_key(n));
    }
    for name in batch {
        match found.remove(name) {
            Some(v) => {
                out.values.insert(name.clone(), v);
            }
            None if out.failed.iter().any(|f| f.parameters.contains(name)) => {}
            None => {
                out.missing.insert(name.clone());
            }
        }
    }
}

/// Every parameter under `path` (which ends in `/`), plain and secret.
async fn by_path(session: &mut Session, path: &str) -> Result<Vec<(String, String)>, OosError> {
    // OOS names a path without its trailing `/` (`/shop/db` holds `/shop/db/host`).
    let oos_path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let mut found = Vec::new();
    for secret in [false, true] {
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let call = Call::ByPath {
                secret,
                path: oos_path,
                next_token: token.as_deref(),
            };
            let answer = session.call(&call).await?;
            found.extend(
                answer
                    .values()
                    .filter(|(name, _)| name.starts_with(path))
                    .map(|(n, v)| (n.to_string(), v.to_string())),
            );
            match answer.next() {
                Some(t) if token.as_deref() != Some(t) => token = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(found)
}
