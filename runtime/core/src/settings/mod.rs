//! Settings: the one reader of the environment. Every `NIMBUS_*` and `OTEL_*` variable the host and its
//! entry points (`bootstrap`, `nimbus serve`, `nimbus invoke` and the other `nimbus` commands) act on is
//! parsed here, once, at start, into one typed [`Settings`]; nothing else reads them.
//!
//! - A bad value (unparsable, out of range, not UTF-8) is a [`SettingsError`] naming the variable, its value
//!   and what it should be: the process stops at start instead of running with the value ignored. The
//!   OpenTelemetry variables keep the SDK's documented leniency (see [`telemetry`]).
//! - A `NIMBUS_*` variable that no setting has (a typo, a setting from another version) stops nothing: it is
//!   warned about once, with the setting its name resembles ([`Settings::warn`]).
//! - Each entry point builds its [`BootOptions`] from the same settings ([`Settings::boot_options`]) and then
//!   applies its own overrides (`bootstrap`: one invocation at a time), so a setting means the same thing
//!   wherever the host runs.
//!
//! README.md, "Settings (environment)", lists every variable, its default and who honours it.

pub mod azure;
mod boot;
pub mod engine;
pub mod fc;
pub mod knative;
pub mod lambda;
pub mod listener;
pub mod local;
pub mod oos;
pub mod platform;
pub mod telemetry;
mod vars;

pub use azure::AzureSettings;
pub use engine::EngineSettings;
pub use fc::FcSettings;
pub use knative::KnativeSettings;
pub use lambda::{LambdaSettings, TaskStoreSettings};
pub use listener::ListenerSettings;
pub use local::LocalSettings;
pub use oos::OosSettings;
pub use platform::{NoPlatform, PlatformChoice, PlatformKind, PlatformSettings, UnknownPlatform};
pub use telemetry::{Endpoint, MetricsSetting, TelemetrySettings};

#[cfg(doc)]
use crate::BootOptions;
use crate::manifest::{ConfigSource, Manifest};
use std::borrow::Cow;
use std::ffi::OsString;
use std::path::PathBuf;
use vars::Vars;

/// The host's log filter when `NIMBUS_LOG` is unset: `info`, without the engine's own chatter.
pub const DEFAULT_LOG_FILTER: &str = "info,wasmtime=warn,cranelift=warn";

/// Why the settings could not be read: one variable's value is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The value does not parse, or is out of range.
    #[error("bad value {value:?} for {name}: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: Cow<'static, str>,
    },
    /// The value is not UTF-8.
    #[error("{name} is not valid UTF-8 (its value reads {value:?}): expected {expected}")]
    NotUnicode {
        /// The variable.
        name: &'static str,
        /// Its value, with the bytes that are not UTF-8 replaced.
        value: String,
        /// What it should be.
        expected: Cow<'static, str>,
    },
}

impl SettingsError {
    /// The variable at fault.
    pub fn name(&self) -> &'static str {
        match self {
            SettingsError::Invalid { name, .. } | SettingsError::NotUnicode { name, .. } => name,
        }
    }
}

/// Every setting of the environment, parsed once (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `NIMBUS_LOG`: the host's log filter, `tracing` directives such as `warn,nimbus_core=debug` (default
    /// [`DEFAULT_LOG_FILTER`]); see [`Settings::log_filter`].
    pub log: Option<String>,
    /// `NIMBUS_MANIFEST`: the manifest (`bootstrap`: default `$LAMBDA_TASK_ROOT/nimbus.toml`, then
    /// `/opt/nimbus.toml`; `nimbus`: the `--manifest` flag wins, default `nimbus.toml`).
    pub manifest: Option<PathBuf>,
    /// The engine.
    pub engine: EngineSettings,
    /// Span and metric export, and invocation metrics.
    pub telemetry: TelemetrySettings,
    /// The listener's limits (`nimbus serve`).
    pub listener: ListenerSettings,
    /// What only `bootstrap` (AWS Lambda) reads.
    pub lambda: LambdaSettings,
    /// What only `bootstrap` on Alibaba Cloud Function Compute reads.
    pub fc: FcSettings,
    /// What only the `nimbus` CLI reads.
    pub local: LocalSettings,
    /// What only `bootstrap` on Cloud Run / Knative reads.
    pub knative: KnativeSettings,
    /// Which platform `bootstrap` serves.
    pub platform: PlatformSettings,
    /// Where `oos` / `oos_path` config keys are fetched from, and with which credentials.
    pub oos: OosSettings,
    /// What only the Azure Functions custom handler reads.
    pub azure: AzureSettings,
    /// `NIMBUS_FAULTS`: a fault plan (inline TOML or JSON, or a file) that replaces the manifest's
    /// `[faults]`.
    pub faults: Option<crate::faults::FaultPlan>,
    /// `NIMBUS_FAULTS_PARAMETER`: an SSM parameter holding a fault plan, fetched at boot and refreshed with
    /// the config (`bootstrap` on AWS); it replaces `NIMBUS_FAULTS` and the manifest's `[faults]`.
    pub faults_parameter: Option<String>,
    /// When the memory-pressure watchdog stops the host (level 5 of the ladder): `NIMBUS_MEMORY_LIMIT`, else
    /// the platform's memory size (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `FC_FUNCTION_MEMORY_SIZE`), and
    /// `NIMBUS_MEMORY_PRESSURE` (default 0.9; 0: off). `None`: no memory size known, or off.
    pub pressure: Option<crate::degrade::pressure::PressureSettings>,
    /// `NIMBUS_*` variables no setting has, each with the setting its name is closest to.
    unknown: Vec<(String, Option<&'static str>)>,
    /// OpenTelemetry values ignored as the SDK ignores them, each saying why.
    ignored: Vec<String>,
}

/// The memory-pressure watchdog's settings ([`Settings::pressure`]).
fn pressure(vars: &Vars) -> Result<Option<crate::degrade::pressure::PressureSettings>, SettingsError> {
    let fraction = vars
        .parse_with(
            "NIMBUS_MEMORY_PRESSURE",
            "a fraction from 0 (off) to 1, e.g. 0.9",
            |v| match v.trim().parse::<f64>() {
                Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
                _ => Err(Cow::Borrowed("a fraction from 0 (off) to 1, e.g. 0.9")),
            },
        )?
        .unwrap_or(0.9);
    let explicit = vars.parse_with("NIMBUS_MEMORY_LIMIT", "a size, e.g. 512MiB", |v| {
        crate::manifest::ByteSize::parse(v)
            .map(|b| b.0)
            .map_err(|e| Cow::Owned(format!("a size, e.g. 512MiB ({e})")))
    })?;
    let mut limit = explicit;
    for name in vars::MEMORY_VARIABLES {
        if limit.is_none() {
            // The platform sets these; a value that is not a number is the platform's problem, not a stop.
            limit = vars
                .text(name, "megabytes")?
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|mb| mb << 20);
        }
    }
    Ok(limit
        .filter(|l| *l > 0 && fraction > 0.0)
        .map(|limit| crate::degrade::pressure::PressureSettings { limit, fraction }))
}

impl Settings {
    /// The settings of this process's environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_vars(std::env::vars_os())
    }

    /// The settings of the environment `env` lists (name, value), e.g. a test's.
    pub fn from_vars<K: Into<OsString>, V: Into<OsString>>(
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Settings, SettingsError> {
        let vars = Vars::new(env.into_iter().map(|(k, v)| (k.into(), v.into())));
        let log = vars.parse_with(
            "NIMBUS_LOG",
            "a log filter such as `info` or `warn,nimbus_core=debug`",
            |v| {
                tracing_subscriber::EnvFilter::builder()
                    .parse(v)
                    .map(|_| v.to_owned())
                    .map_err(|e| Cow::Owned(format!("a log filter such as `info` or `warn,nimbus_core=debug` ({e})")))
            },
        )?;
        let settings = Settings {
            log,
            manifest: vars.path("NIMBUS_MANIFEST"),
            engine: EngineSettings::read(&vars)?,
            telemetry: telemetry::read(&vars)?,
            listener: ListenerSettings::read(&vars)?,
            lambda: LambdaSettings::read(&vars)?,
            fc: FcSettings::read(&vars)?,
            local: LocalSettings::read(&vars)?,
            knative: KnativeSettings::read(&vars)?,
            platform: PlatformSettings::read(&vars)?,
            oos: OosSettings::read(&vars)?,
            azure: AzureSettings::read(&vars)?,
            faults: vars.parse_with("NIMBUS_FAULTS", "a fault plan: inline TOML or JSON, or a file", |v| {
                crate::faults::FaultPlan::from_setting(v).map_err(Cow::Owned)
            })?,
            faults_parameter: vars.non_empty("NIMBUS_FAULTS_PARAMETER", "an SSM parameter name")?,
            pressure: pressure(&vars)?,
            unknown: Vec::new(),
            ignored: Vec::new(),
        };
        let (unknown, ignored) = vars.finish();
        Ok(Settings {
            unknown,
            ignored,
            ..settings
        })
    }

    /// The host's log filter: `NIMBUS_LOG`, else [`DEFAULT_LOG_FILTER`].
    pub fn log_filter(&self) -> tracing_subscriber::EnvFilter {
        // `NIMBUS_LOG` was checked when it was read; the default parses.
        let directives = self.log.as_deref().unwrap_or(DEFAULT_LOG_FILTER);
        tracing_subscriber::EnvFilter::builder()
            .parse(directives)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER))
    }

    /// The `NIMBUS_*` variables set that no setting has, and that `manifest` does not read as config
    /// values either (`config.key = { env = "NIMBUS_…" }`).
    pub fn unknown<'a>(&'a self, manifest: Option<&'a Manifest>) -> impl Iterator<Item = &'a str> {
        self.unknown_with_hints(manifest).map(|(name, _)| name)
    }

    fn unknown_with_hints<'a>(
        &'a self,
        manifest: Option<&'a Manifest>,
    ) -> impl Iterator<Item = (&'a str, Option<&'static str>)> {
        let declared = move |name: &str| {
            manifest.is_some_and(|m| {
                m.functions
                    .iter()
                    .flat_map(|f| f.config.values())
                    .any(|k| matches!(&k.source, ConfigSource::Env(n) if n == name))
            })
        };
        self.unknown
            .iter()
            .filter(move |(name, _)| !declared(name))
            .map(|(name, like)| (name.as_str(), *like))
    }

    /// Logs one warning per unknown `NIMBUS_*` variable ([`Settings::unknown`]) and per OpenTelemetry value
    /// ignored. Entry points call it once, when logging is set up and the manifest is loaded.
    pub fn warn(&self, manifest: Option<&Manifest>) {
        for (name, like) in self.unknown_with_hints(manifest) {
            match like {
                Some(like) => tracing::warn!("{name} is not a Nimbus setting and is ignored (did you mean {like}?)"),
                None => tracing::warn!("{name} is not a Nimbus setting and is ignored"),
            }
        }
        for why in &self.ignored {
            tracing::warn!("{why}");
        }
    }
}

#[cfg(test)]
mod tests;
