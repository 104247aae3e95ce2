//! What `nimbus serve` and `nimbus invoke` share to stand in for the cloud
//! locally: an environment file and a parameter overrides file (for SSM and OOS keys).

use nimbus_core::caps::config::{OosProvider, SsmProvider};
use nimbus_core::{Manifest, Settings};
use std::path::PathBuf;

/// The local-environment flags of `serve` and `invoke`.
#[derive(clap::Args)]
pub struct LocalEnv {
    /// Environment file loaded before boot (default: `.env` in the current
    /// directory, if there is one). Variables already set win.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Resolve `ssm` / `ssm_path` (and `oos` / `oos_path`) config keys from
    /// this TOML or JSON map of parameter name to value instead of SSM (and
    /// OOS): no cloud call is made [env: NIMBUS_SSM_OVERRIDES, which a `.env`
    /// file may set].
    #[arg(long, value_name = "FILE")]
    ssm_overrides: Option<PathBuf>,
}

impl LocalEnv {
    /// Loads `--env-file`, else `./.env` if it exists, into the process
    /// environment without replacing variables that are already set; the file
    /// loaded, if any. It must run before the async runtime starts (setting
    /// variables is only sound while no other thread reads the environment)
    /// and before the settings are read, so the file may set them too.
    pub fn load_env_file(&self) -> anyhow::Result<Option<PathBuf>> {
        let (path, must_exist) = match &self.env_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(".env"), false),
        };
        if !must_exist && !path.is_file() {
            return Ok(None);
        }
        dotenvy::from_path(&path)
            .map_err(|e| anyhow::anyhow!("cannot load environment file {}: {e}", path.display()))?;
        Ok(Some(path))
    }

    /// Where the manifest's SSM keys are read from ([`nimbus_core::BootOptions::ssm`]): the overrides
    /// file, if one is given (the flag, else `NIMBUS_SSM_OVERRIDES`); otherwise AWS as the environment
    /// configures it (`AWS_ENDPOINT_URL`, `AWS_REGION`, ...).
    pub fn ssm_provider(&self, manifest: &Manifest, settings: &Settings) -> anyhow::Result<SsmProvider> {
        let Some(f) = self.overrides_file(settings) else {
            return Ok(SsmProvider::default());
        };
        let provider = SsmProvider::overrides_file(f)?;
        if manifest.uses_ssm() {
            eprintln!("ssm config keys: read from {}", provider.describe());
        }
        Ok(provider)
    }

    /// Where the manifest's OOS keys are read from ([`nimbus_core::BootOptions::oos`]): the same overrides
    /// file, if one is given (one file answers every parameter name, SSM's or OOS's); `None`: OOS as the
    /// settings describe it (`FC_REGION` or `ALIBABA_CLOUD_REGION_ID`, `NIMBUS_OOS_ENDPOINT`, the
    /// `ALIBABA_CLOUD_*` credentials).
    pub fn oos_provider(&self, manifest: &Manifest, settings: &Settings) -> anyhow::Result<Option<OosProvider>> {
        let Some(f) = self.overrides_file(settings) else {
            return Ok(None);
        };
        let provider = OosProvider::overrides_file(f)?;
        if manifest.uses_oos() {
            eprintln!("oos config keys: read from {}", provider.describe());
        }
        Ok(Some(provider))
    }

    /// The overrides file: the flag, else `NIMBUS_SSM_OVERRIDES`.
    fn overrides_file(&self, settings: &Settings) -> Option<PathBuf> {
        self.ssm_overrides
            .clone()
            .or_else(|| settings.local.ssm_overrides.clone())
    }
}
