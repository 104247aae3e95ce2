//! What only `bootstrap` on Cloud Run / Knative Serving reads: the variables the platform sets in the
//! container (its runtime contract): `PORT`, `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION`.

use super::SettingsError;
use super::vars::Vars;

/// The variables of Cloud Run / Knative's container contract; [`Vars`] keeps them beside the `NIMBUS_*`
/// ones.
pub(super) const VARIABLES: [&str; 4] = ["PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"];

/// The port Cloud Run and Knative use when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 8080;

/// Cloud Run / Knative's settings; `None`: unset (or blank).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnativeSettings {
    /// `PORT`: the port to listen on, on every address (default [`DEFAULT_PORT`]).
    pub port: Option<u16>,
    /// `K_SERVICE`: the service's name, the function name telemetry reports (`faas.name`).
    pub service: Option<String>,
    /// `K_REVISION`: the revision serving (`faas.version`).
    pub revision: Option<String>,
    /// `K_CONFIGURATION`: the configuration that made the revision.
    pub configuration: Option<String>,
}

impl KnativeSettings {
    pub(super) fn read(vars: &Vars) -> Result<KnativeSettings, SettingsError> {
        const NAME: &str = "a name";
        Ok(KnativeSettings {
            port: vars.port("PORT")?,
            service: vars.non_empty("K_SERVICE", NAME)?,
            revision: vars.non_empty("K_REVISION", NAME)?,
            configuration: vars.non_empty("K_CONFIGURATION", NAME)?,
        })
    }

    /// The port to listen on: `PORT`, else [`DEFAULT_PORT`].
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }
}
