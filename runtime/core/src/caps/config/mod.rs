//! `config`: declared configuration through the standard `wasi:config/store`.
//!
//! The manifest declares every key a function may read and where its value
//! comes from: a literal, a host environment variable, a file (resolved once
//! at boot), or SSM Parameter Store (fetched at boot, then refreshed every
//! `config_refresh` in the background). The guest sees exactly the declared
//! keys — not the host's environment, not credentials, not other functions'
//! keys, not other parameters.
//!
//! - `ssm.rs`: fetching from SSM (batched, retried, bounded) or an overrides file;
//! - `overrides.rs`: the overrides file format;
//! - `cache.rs`: the swappable snapshot invocations read, and its refresh task.

mod cache;
mod overrides;
mod ssm;

pub use cache::ConfigShared;
pub use overrides::OverridesError;
pub use ssm::SsmProvider;

use super::{Boot, Capability};
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::{ConfigSource, FunctionSpec};
use crate::state::HostState;
use cache::{Param, RemoteKey};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// The `config` capability.
pub struct Config;

impl Capability for Config {
    const NAME: &'static str = "config";
    type Shared = ConfigShared;
    type State = Arc<WasiConfigVariables>;

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, |s: &mut HostState| WasiConfig::from(&*s.config))
    }

    async fn configure(spec: &FunctionSpec, boot: &Boot) -> Result<Self::Shared, BootError> {
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
                    remote.push(RemoteKey::new(key, Param::Name(name.clone()), decl));
                    continue;
                }
                ConfigSource::SsmPath(path) => {
                    remote.push(RemoteKey::new(key, Param::Path(path.clone()), decl));
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
                        ConfigSource::Value(_) | ConfigSource::Ssm(_) | ConfigSource::SsmPath(_) => "no value".into(),
                    };
                    return Err(err(format!(
                        "{what} and the key has no default (set `required = false` to allow)"
                    )));
                }
                None => {}
            }
        }
        ConfigShared::boot(&spec.name, fixed, remote, boot.ssm.clone(), spec.config_refresh, boot).await
    }

    fn prepare(shared: &Self::Shared, _inv: &Arc<Invocation>) -> Self::State {
        shared.current()
    }
}
