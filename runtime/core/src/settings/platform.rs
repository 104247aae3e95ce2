//! Which FaaS platform `bootstrap` serves: `--platform` or `NIMBUS_PLATFORM` when given, else the one whose
//! own variables are set. Each platform sets variables no other sets: Lambda `AWS_LAMBDA_RUNTIME_API`,
//! Function Compute `FC_FUNCTION_NAME` / `FC_CUSTOM_LISTEN_PORT`, Azure Functions
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, Cloud Run and Knative `K_SERVICE`. `PORT` alone names no platform (too
//! many set it), so it is never the reason for a choice.

use super::SettingsError;
use super::vars::Vars;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Whether `name` is a variable that marks a platform ([`PlatformKind::markers`]); [`Vars`] keeps those
/// beside the `NIMBUS_*` ones (the region and credentials variables are [`super::oos`]'s).
pub(super) fn is_platform_variable(name: &str) -> bool {
    PlatformKind::ALL.iter().any(|p| p.markers().contains(&name))
}

/// A FaaS platform `bootstrap` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformKind {
    /// AWS Lambda, as a custom runtime (`provided.al2023`).
    Lambda,
    /// Alibaba Cloud Function Compute 3.0, as a custom runtime.
    FunctionCompute,
    /// Google Cloud Run or Knative Serving.
    Knative,
    /// An Azure Functions custom handler.
    Azure,
}

impl PlatformKind {
    /// Every platform, in detection order.
    pub const ALL: [PlatformKind; 4] = [
        PlatformKind::Lambda,
        PlatformKind::FunctionCompute,
        PlatformKind::Azure,
        PlatformKind::Knative,
    ];

    /// The name `--platform` and `NIMBUS_PLATFORM` take.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformKind::Lambda => "lambda",
            PlatformKind::FunctionCompute => "fc",
            PlatformKind::Knative => "knative",
            PlatformKind::Azure => "azure",
        }
    }

    /// The platform's own name, for messages.
    pub fn title(self) -> &'static str {
        match self {
            PlatformKind::Lambda => "AWS Lambda",
            PlatformKind::FunctionCompute => "Alibaba Cloud Function Compute",
            PlatformKind::Knative => "Cloud Run / Knative",
            PlatformKind::Azure => "Azure Functions (custom handler)",
        }
    }

    /// The variables that mark an environment as this platform's.
    pub fn markers(self) -> &'static [&'static str] {
        match self {
            PlatformKind::Lambda => &["AWS_LAMBDA_RUNTIME_API"],
            PlatformKind::FunctionCompute => &["FC_FUNCTION_NAME", "FC_CUSTOM_LISTEN_PORT"],
            PlatformKind::Knative => &["K_SERVICE"],
            PlatformKind::Azure => &["FUNCTIONS_CUSTOMHANDLER_PORT"],
        }
    }
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `--platform` and `NIMBUS_PLATFORM` accept.
pub const PLATFORM_NAMES: &str = "lambda, fc, knative or azure";

impl FromStr for PlatformKind {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<PlatformKind, UnknownPlatform> {
        let s = s.trim();
        PlatformKind::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPlatform(s.to_owned()))
    }
}

/// A platform name `bootstrap` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform {0:?}: expected {PLATFORM_NAMES}")]
pub struct UnknownPlatform(pub String);

/// The platform settings: the one asked for, and which platforms' variables are set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformSettings {
    /// `NIMBUS_PLATFORM`: the platform to serve, whatever the environment looks like (`--platform` wins).
    pub asked: Option<PlatformKind>,
    /// The platform variables set (not blank), in [`PlatformKind::ALL`] order.
    pub markers: Vec<&'static str>,
}

/// The platform `bootstrap` serves, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformChoice {
    /// The platform.
    pub kind: PlatformKind,
    /// Why: the flag, `NIMBUS_PLATFORM`, or the variable that marked the environment.
    pub reason: String,
}

/// No platform was asked for and none is recognisable from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not running on AWS Lambda or another platform bootstrap knows: none of AWS_LAMBDA_RUNTIME_API (AWS Lambda), \
     FC_FUNCTION_NAME or FC_CUSTOM_LISTEN_PORT (Function Compute), FUNCTIONS_CUSTOMHANDLER_PORT (Azure Functions), \
     K_SERVICE (Cloud Run / Knative) is set; pass --platform ({PLATFORM_NAMES}), or use `nimbus serve` locally"
)]
pub struct NoPlatform;

impl PlatformSettings {
    pub(super) fn read(vars: &Vars) -> Result<PlatformSettings, SettingsError> {
        // Blank is unset, as for the other names the environment gives.
        let asked = vars
            .parse_with("NIMBUS_PLATFORM", PLATFORM_NAMES, |v| match v.trim() {
                "" => Ok(None),
                v => v
                    .parse::<PlatformKind>()
                    .map(Some)
                    .map_err(|_| Cow::Borrowed(PLATFORM_NAMES)),
            })?
            .flatten();
        // Only whether it is set counts: its value is the adapter's to read (and to reject).
        let markers = PlatformKind::ALL
            .iter()
            .flat_map(|p| p.markers().iter().copied())
            .filter(|name| vars.is_set(name))
            .collect();
        Ok(PlatformSettings { asked, markers })
    }

    /// The platform to serve: `flag` (`--platform`), else `NIMBUS_PLATFORM`, else the first platform (in
    /// [`PlatformKind::ALL`] order) one of whose variables is set.
    pub fn choose(&self, flag: Option<PlatformKind>) -> Result<PlatformChoice, NoPlatform> {
        if let Some(kind) = flag {
            return Ok(PlatformChoice {
                kind,
                reason: format!("--platform {kind}"),
            });
        }
        if let Some(kind) = self.asked {
            return Ok(PlatformChoice {
                kind,
                reason: format!("NIMBUS_PLATFORM={kind}"),
            });
        }
        PlatformKind::ALL
            .into_iter()
            .find_map(|kind| {
                let marker = kind.markers().iter().find(|m| self.markers.contains(m))?;
                let others: Vec<&str> = self
                    .markers
                    .iter()
                    .copied()
                    .filter(|m| !kind.markers().contains(m))
                    .collect();
                let reason = match others.as_slice() {
                    [] => format!("{marker} is set"),
                    _ => format!("{marker} is set (and so is {}; --platform decides)", others.join(", ")),
                };
                Some(PlatformChoice { kind, reason })
            })
            .ok_or(NoPlatform)
    }
}
