//! `config`: declared configuration through the standard `wasi:config/store`.
//!
//! The manifest declares every key a function may read and where its value
//! comes from: a literal, a host environment variable, a file (resolved once
//! at boot), or a parameter store — AWS SSM Parameter Store, or Alibaba Cloud's OOS
//! Parameter Store on Function Compute — (fetched at boot, then refreshed every
//! `config_refresh` in the background). The guest sees exactly the declared
//! keys — not the host's environment, not credentials, not other functions'
//! keys, not other parameters.
//!
//! - `ssm.rs`: fetching from SSM (batched, retried, bounded) or an overrides file;
//! - `oos/`: fetching from OOS (its own small signed client) or an overrides file;
//! - `fetched.rs`: what one fetch found, whichever the store;
//! - `overrides.rs`: the overrides file format;
//! - `cache.rs`: the swappable snapshot invocations read, and its refresh task;
//! - `store.rs`: what the guest's reads go through ([`ConfigStore`], the seam
//!   [`super::Intercept::config`] wraps) and the snapshot that implements it.

mod cache;
mod fetched;
mod oos;
mod overrides;
mod ssm;
mod store;

pub use cache::{ConfigShared, ConfigVersion};
pub use oos::{AccessKey, OosCredentials, OosError, OosProvider};
pub use overrides::OverridesError;
pub use ssm::SsmProvider;
pub use store::{ConfigError, ConfigStore, ConfigValues};

use super::intercept::Interceptor;
use super::{Boot, Capability, Grants, View, ViewFn, ViewOf};
use crate::bindings::config as wit;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::{ConfigSource, FunctionSpec};
use crate::state::HostState;
use cache::{Param, Providers, RemoteKey, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::Linker;

/// The `config` capability (`wasi:config/store`).
pub struct Config;

/// A function's config: its values (and their refresh), and what wraps an invocation's reads.
pub struct ConfigFunction {
    values: ConfigShared,
    function: Arc<str>,
    intercept: Interceptor,
}

/// What one invocation reads: the snapshot current when it was prepared (a refresh never changes the
/// values under a running invocation), through the interceptor.
pub struct ConfigCtx(Arc<dyn ConfigStore>);

impl ConfigFunction {
    /// Which snapshot of the function's config is current ([`ConfigVersion`]).
    pub fn version(&self) -> ConfigVersion {
        self.values.version()
    }
}

impl Capability for Config {
    const NAME: &'static str = "config";
    type Shared = ConfigFunction;
    type Ctx = ConfigCtx;

    fn link(linker: &mut Linker<HostState>, view: ViewFn<ConfigCtx>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, ViewOf<ConfigCtx>>(linker, view)
    }

    async fn configure(spec: &FunctionSpec, boot: &Boot) -> Result<ConfigFunction, BootError> {
        let mut fixed = BTreeMap::new();
        let mut remote = Vec::new();
        for (key, decl) in &spec.config {
            let err = |message: String| BootError::Config {
                function: spec.name.clone(),
                key: key.clone(),
                message,
            };
            let value = match &decl.source {
                ConfigSource::Ssm(name) => {
                    remote.push(RemoteKey::new(key, Store::Ssm, Param::Name(name.clone()), decl));
                    continue;
                }
                ConfigSource::SsmPath(path) => {
                    remote.push(RemoteKey::new(key, Store::Ssm, Param::Path(path.clone()), decl));
                    continue;
                }
                ConfigSource::Oos(name) => {
                    remote.push(RemoteKey::new(key, Store::Oos, Param::Name(name.clone()), decl));
                    continue;
                }
                ConfigSource::OosPath(path) => {
                    remote.push(RemoteKey::new(key, Store::Oos, Param::Path(path.clone()), decl));
                    continue;
                }
                ConfigSource::Value(v) => Some(v.clone()),
                ConfigSource::Env(name) => std::env::var(name).ok(),
                ConfigSource::File(path) => match tokio::fs::read_to_string(path).await {
                    Ok(mut s) => {
                        if s.ends_with('\n') {
                            s.pop();
                            if s.ends_with('\r') {
                                s.pop();
                            }
                        }
                        Some(s)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(err(format!("cannot read {}: {e}", path.display()))),
                },
            };
            match value.or_else(|| decl.default.clone()) {
                Some(v) => {
                    fixed.insert(key.clone(), v);
                }
                None if decl.required => {
                    let what = match &decl.source {
                        ConfigSource::Env(n) => format!("environment variable {n} is not set"),
                        ConfigSource::File(p) => format!("file {} does not exist", p.display()),
                        ConfigSource::Value(_)
                        | ConfigSource::Ssm(_)
                        | ConfigSource::SsmPath(_)
                        | ConfigSource::Oos(_)
                        | ConfigSource::OosPath(_) => "no value".into(),
                    };
                    return Err(err(format!(
                        "{what} and the key has no default (set `required = false` to allow)"
                    )));
                }
                None => {}
            }
        }
        let providers = Providers {
            ssm: boot.ssm.clone(),
            oos: boot.oos.clone(),
        };
        let values = ConfigShared::boot(&spec.name, fixed, remote, providers, spec.config_refresh, boot).await?;
        Ok(ConfigFunction {
            values,
            function: Arc::from(spec.name.as_str()),
            intercept: boot.intercept.clone(),
        })
    }

    fn prepare(shared: &ConfigFunction, _inv: &Arc<Invocation>, _grants: &mut Grants) -> ConfigCtx {
        ConfigCtx(shared.intercept.config(&shared.function, shared.values.current()))
    }
}

fn wit_error(e: ConfigError) -> wit::Error {
    match e {
        ConfigError::Upstream(m) => wit::Error::Upstream(m),
        ConfigError::Io(m) => wit::Error::Io(m),
    }
}

impl wit::Host for View<'_, ConfigCtx> {
    async fn get(&mut self, key: String) -> Result<Option<String>, wit::Error> {
        self.ctx.0.get(&key).await.map_err(wit_error)
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, wit::Error> {
        self.ctx.0.get_all().await.map_err(wit_error)
    }
}
