//! What only the `nimbus` CLI reads: the fallbacks of its flags (`--listen`, `--state-dir`,
//! `--ssm-overrides`, `nimbus new --sdk-path`). A flag given on the command line wins over its variable.

use super::SettingsError;
use super::vars::Vars;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The CLI's settings; `None`: the flag's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSettings {
    /// `NIMBUS_LISTEN`: the address `nimbus serve` listens on (`--listen`, default `127.0.0.1:3000`).
    pub listen: Option<SocketAddr>,
    /// `NIMBUS_STATE_DIR`: the state directory of `nimbus serve` and `nimbus task` (`--state-dir`, default
    /// `.nimbus/state` beside the manifest).
    pub state_dir: Option<PathBuf>,
    /// `NIMBUS_SSM_OVERRIDES`: the SSM overrides file of `nimbus serve` and `nimbus invoke`
    /// (`--ssm-overrides`).
    pub ssm_overrides: Option<PathBuf>,
    /// `NIMBUS_SDK_PATH`: the `nimbus-sdk` crate `nimbus new` points new functions at (`--sdk-path`).
    pub sdk_path: Option<PathBuf>,
}

impl LocalSettings {
    pub(super) fn read(vars: &Vars) -> Result<LocalSettings, SettingsError> {
        Ok(LocalSettings {
            listen: vars.parse::<SocketAddr>("NIMBUS_LISTEN", "an address and port, e.g. 127.0.0.1:3000")?,
            state_dir: vars.path("NIMBUS_STATE_DIR"),
            ssm_overrides: vars.path("NIMBUS_SSM_OVERRIDES"),
            sdk_path: vars.path("NIMBUS_SDK_PATH"),
        })
    }
}
