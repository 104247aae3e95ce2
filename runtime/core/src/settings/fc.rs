//! What only the Function Compute adapter reads: the variables Function Compute sets for a custom runtime.

use super::SettingsError;
use super::vars::Vars;

/// The port a custom runtime listens on when `FC_CUSTOM_LISTEN_PORT` is unset (Function Compute's default).
pub const DEFAULT_LISTEN_PORT: u16 = 9000;

/// Function Compute's variables; `None`: unset or blank.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FcSettings {
    /// `FC_CUSTOM_LISTEN_PORT`: the port to listen on (default [`DEFAULT_LISTEN_PORT`]).
    pub listen_port: Option<u16>,
    /// `FC_FUNCTION_NAME`: the function's name in Function Compute (its telemetry `faas.name`).
    pub function_name: Option<String>,
}

impl FcSettings {
    /// The port to listen on.
    pub fn port(&self) -> u16 {
        self.listen_port.unwrap_or(DEFAULT_LISTEN_PORT)
    }

    pub(super) fn read(vars: &Vars) -> Result<FcSettings, SettingsError> {
        Ok(FcSettings {
            listen_port: vars.port("FC_CUSTOM_LISTEN_PORT")?,
            function_name: vars.non_empty("FC_FUNCTION_NAME", "a function name")?,
        })
    }
}
