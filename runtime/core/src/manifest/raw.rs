//! Stage 1: the TOML as written. These types mirror the file exactly (`deny_unknown_fields` everywhere) and
//! keep each value's span, so later stages can point at the line. Nothing is inferred or defaulted here
//! beyond "absent"; sizes, durations and counts are already typed ([`super::units`]).

use super::Reuse;
use super::error::Problem;
use super::units::{ByteSize, Count, Dur};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub(super) manifest_version: Spanned<Count>,
    #[serde(default)]
    pub(super) app: Option<RawApp>,
    #[serde(default)]
    pub(super) defaults: RawLimits,
    #[serde(default)]
    pub(super) function: BTreeMap<String, Spanned<RawFunction>>,
    /// `[faults]`: a fault-injection experiment ([`crate::faults`]).
    #[serde(default)]
    pub(super) faults: Option<Spanned<crate::faults::plan::RawFaults>>,
}

/// `app = { name = "shop" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: String,
}

/// The limits `[defaults]` sets and each function may override.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) memory: Option<Spanned<ByteSize>>,
    pub(super) timeout: Option<Spanned<Dur>>,
    pub(super) concurrency: Option<Spanned<Count>>,
    pub(super) outbound_concurrency: Option<Spanned<Count>>,
    pub(super) max_request_body: Option<Spanned<ByteSize>>,
    pub(super) max_response_body: Option<Spanned<ByteSize>>,
}

/// `[function.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFunction {
    pub(super) component: String,
    pub(super) precompiled: Option<String>,
    #[serde(default)]
    pub(super) routes: Vec<Spanned<String>>,
    pub(super) memory: Option<Spanned<ByteSize>>,
    pub(super) timeout: Option<Spanned<Dur>>,
    pub(super) concurrency: Option<Spanned<Count>>,
    pub(super) outbound_concurrency: Option<Spanned<Count>>,
    pub(super) max_request_body: Option<Spanned<ByteSize>>,
    pub(super) max_response_body: Option<Spanned<ByteSize>>,
    #[serde(default)]
    pub(super) config: BTreeMap<String, Spanned<RawConfigKey>>,
    #[serde(default)]
    pub(super) allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) reuse: Reuse,
    pub(super) config_refresh: Option<Spanned<Dur>>,
    pub(super) task: Option<Spanned<RawTask>>,
    #[serde(default)]
    pub(super) keyvalue: Vec<Spanned<String>>,
    pub(super) websocket: Option<Spanned<RawWebSocket>>,
    pub(super) breaker: Option<Spanned<super::breaker::RawBreaker>>,
    pub(super) degradation: Option<Spanned<super::degradation::RawDegradation>>,
}

impl RawFunction {
    /// The function's own limit keys, which override `[defaults]`.
    pub(super) fn limits(&self) -> RawLimits {
        RawLimits {
            memory: self.memory.clone(),
            timeout: self.timeout.clone(),
            concurrency: self.concurrency.clone(),
            outbound_concurrency: self.outbound_concurrency.clone(),
            max_request_body: self.max_request_body.clone(),
            max_response_body: self.max_response_body.clone(),
        }
    }
}

/// `task = { ... }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    pub(super) max_checkpoint: Option<Spanned<ByteSize>>,
    pub(super) yield_margin: Option<Spanned<Dur>>,
    pub(super) max_attempts: Option<Spanned<Count>>,
}

/// One `[function.NAME.config]` key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfigKey {
    pub(super) value: Option<String>,
    pub(super) env: Option<String>,
    pub(super) file: Option<String>,
    pub(super) ssm: Option<String>,
    pub(super) ssm_path: Option<String>,
    pub(super) oos: Option<String>,
    pub(super) oos_path: Option<String>,
    pub(super) default: Option<String>,
    pub(super) required: Option<bool>,
    pub(super) secret: Option<bool>,
}

/// `[function.NAME.websocket]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebSocket {
    pub(super) path: Option<Spanned<String>>,
    pub(super) route_selection: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) routes: Vec<Spanned<String>>,
    pub(super) allowed_origins: Option<Vec<Spanned<String>>>,
    pub(super) max_message: Option<Spanned<ByteSize>>,
    pub(super) max_frame: Option<Spanned<ByteSize>>,
    pub(super) idle_timeout: Option<Spanned<Dur>>,
    pub(super) max_lifetime: Option<Spanned<Dur>>,
    pub(super) heartbeat: Option<Spanned<Dur>>,
    pub(super) max_connections_per_ip: Option<Spanned<Count>>,
    pub(super) messages_per_second: Option<Spanned<Count>>,
    pub(super) send_queue: Option<Spanned<Count>>,
    #[serde(default)]
    pub(super) subprotocols: Vec<Spanned<String>>,
}

/// Reads the TOML into the raw types: syntax errors, unknown keys and values of the wrong type or unit
/// stop here, with the key path serde saw.
pub(super) fn read(text: &str) -> Result<RawManifest, Problem> {
    let de = toml::de::Deserializer::parse(text)
        .map_err(|e| Problem::from_reader(e.span(), None, e.message().to_string()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        // Spanned<T> shows up as a private segment; it means nothing to a user.
        let path = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        let path = path.replace("$__serde_spanned_private_value", "");
        let inner = e.into_inner();
        let key = (path != "." && !path.is_empty()).then_some(path);
        Problem::from_reader(inner.span(), key, inner.message().to_string())
    })
}

impl<'de> Deserialize<'de> for Reuse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Reuse;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or the number of invocations an instance may serve (at least 1)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Reuse, E> {
                Ok(if v {
                    Reuse::Warm { max_uses: None }
                } else {
                    Reuse::Fresh
                })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Reuse, E> {
                match u32::try_from(v) {
                    Ok(0) | Err(_) => Err(E::custom(format!(
                        "reuse = {v} is out of range: use false, true, or 1..={}",
                        u32::MAX
                    ))),
                    Ok(1) => Ok(Reuse::Fresh),
                    Ok(n) => Ok(Reuse::Warm { max_uses: Some(n) }),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Reuse, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}
