//! What the Azure Functions custom handler adapter reads: the port the Functions host forwards invocations
//! to.

use super::SettingsError;
use super::vars::Vars;
use std::borrow::Cow;

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
        const PORT: &str = "a TCP port from 1 to 65535";
        let port = vars
            .parse_with(PORT_VARIABLE, PORT, |v| match v.trim() {
                "" => Ok(None),
                v => match v.parse::<u16>() {
                    Ok(p) if p > 0 => Ok(Some(p)),
                    _ => Err(Cow::Borrowed(PORT)),
                },
            })?
            .flatten();
        Ok(AzureSettings { port })
    }
}
