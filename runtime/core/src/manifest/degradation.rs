//! `[function.NAME.degradation]`: the function's degradation ladder ([`crate::degrade`]).
//!
//! ```toml
//! [function.api.degradation]
//! max_in_flight = 48      # level 2: more invocations at once are shed (503, Retry-After) instead of queued
//! rate_limit = 200        # level 2: invocations admitted per second
//! cascade = 2             # level 4: this many open breakers make the whole function answer 503
//! probe_every = "1s"      # level 4: one invocation runs this often, to probe recovery
//! retry_after = "1s"      # the Retry-After of a refused invocation
//! ```

use super::units::{Count, Dur};
use crate::degrade::LadderSpec;
use serde::Deserialize;

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDegradation {
    max_in_flight: Option<Count>,
    rate_limit: Option<f64>,
    cascade: Option<Count>,
    probe_every: Option<Dur>,
    retry_after: Option<Dur>,
}

/// Validates the section; errors are (key under `prefix`, message).
pub(super) fn resolve(raw: &RawDegradation, has_breakers: bool, prefix: &str) -> Result<LadderSpec, (String, String)> {
    let key = |k: &str| format!("{prefix}.degradation.{k}");
    let d = LadderSpec::default();
    if raw.max_in_flight.is_some_and(|c| c.0 == 0) {
        return Err((key("max_in_flight"), "must be at least 1".into()));
    }
    if let Some(r) = raw.rate_limit
        && !(r > 0.0 && r.is_finite())
    {
        return Err((key("rate_limit"), format!("{r} is not a rate over 0")));
    }
    if let Some(c) = raw.cascade {
        if c.0 == 0 {
            return Err((key("cascade"), "must be at least 1".into()));
        }
        if !has_breakers {
            return Err((
                key("cascade"),
                "counts open circuit breakers: give the function a `breaker` section".into(),
            ));
        }
    }
    let positive = |k: &str, v: Option<Dur>, default| match v {
        None => Ok(default),
        Some(Dur(d)) if !d.is_zero() => Ok(d),
        Some(_) => Err((key(k), "must be over 0".to_owned())),
    };
    Ok(LadderSpec {
        max_in_flight: raw.max_in_flight.map(|c| c.0),
        rate_limit: raw.rate_limit,
        cascade: raw.cascade.map(|c| c.0),
        probe_every: positive("probe_every", raw.probe_every, d.probe_every)?,
        retry_after: positive("retry_after", raw.retry_after, d.retry_after)?,
    })
}
