//! What the Azure Functions custom handler adapter reads: the port the Functions host forwards invocations
//! to.

use super::SettingsError;
use super::vars::Vars;

/// The variable the Functions host sets to the port it sends invocations to.
pub const PORT_VARIABLE: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// The custom handler's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureSettings {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`: the loopback port to serve on (the Functions host always sets it;
    /// `None`: unset or blank, and the adapter refuses to start).
    pub port: Option<u16>,
}

impl AzureSettings {
    pub(super) fn read(vars: &Vars) -> Result<AzureSettings, SettingsError> {
        Ok(AzureSettings {
            port: vars.port(PORT_VARIABLE)?,
        })
    }
}
