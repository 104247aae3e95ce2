//! The boot options every entry point starts from.

use super::Settings;
use crate::caps::config::OosProvider;
use crate::engine::EngineOptions;
use crate::error::BootError;
use crate::host::BootOptions;
use crate::metrics::MetricsFormat;
use crate::telemetry::{Platform, Telemetry};

impl Settings {
    /// The boot options these settings describe for a host on `platform`: the engine, metrics, span
    /// export and where `oos` config keys are fetched from. The entry point adds what is its own (which functions, where logs go, the key-value store,
    /// `bootstrap`'s one invocation at a time) on top.
    ///
    /// Starts the exporters' threads when export is on. A span endpoint the exporter cannot use leaves span
    /// export off with a warning (tracing must never take the host down); OTLP metrics that cannot be set up
    /// fail, since `NIMBUS_METRICS=otlp` asked for them.
    pub fn boot_options(&self, platform: &Platform) -> Result<BootOptions, BootError> {
        Ok(BootOptions {
            engine: self.engine.apply(EngineOptions::default()),
            metrics: MetricsFormat::from_settings(&self.telemetry, platform)?,
            telemetry: Telemetry::from_settings(&self.telemetry, platform),
            oos: OosProvider::new(&self.oos),
            faults: self.faults.clone(),
            faults_parameter: self.faults_parameter.clone(),
            pressure: self.pressure,
            ..BootOptions::default()
        })
    }
}
