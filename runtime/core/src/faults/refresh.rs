//! The fault plan held in an SSM parameter (`NIMBUS_FAULTS_PARAMETER`), so an experiment can be switched on
//! and off in production without a redeploy: fetched at boot, then again every `config_refresh` (the
//! shortest of the manifest's functions, default 5 minutes), through the same provider as `ssm` config keys
//! (AWS, or the overrides file of `nimbus serve --ssm-overrides`).
//!
//! What the parameter holds: a plan (TOML or JSON, as `NIMBUS_FAULTS`); empty, `off`, or no parameter at all
//! switches injection off. A fetch that fails at boot stops the boot (the experiment the operator asked for
//! cannot be told apart from none); later, a failed fetch or a plan that does not parse keeps the running
//! plan and logs a warning once per change.

use super::active::Faults;
use super::plan::{FaultPlan, draw_seed};
use crate::caps::config::SsmProvider;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// What the parameter's value asks for: a plan, or injection off.
pub fn plan_of(name: &str, value: Option<&str>) -> Result<Option<FaultPlan>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
        Some(v) => FaultPlan::parse(v, &format!("SSM parameter {name}"), draw_seed)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// Fetches the plan of parameter `name` now.
pub async fn fetch(ssm: &SsmProvider, name: &str) -> Result<Option<FaultPlan>, String> {
    let value = ssm.parameter(name).await.map_err(|e| {
        format!(
            "cannot fetch the fault plan parameter {name} from {}: {e}",
            ssm.describe()
        )
    })?;
    plan_of(name, value.as_deref())
}

/// Refetches parameter `name` every `every` and replaces `faults`' plan when it changed; stops once `faults`
/// is gone (with its host).
pub fn spawn(
    faults: Weak<Faults>,
    ssm: SsmProvider,
    name: String,
    every: Duration,
) -> Option<tokio::task::AbortHandle> {
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let task = rt.spawn(async move {
        let mut last_error: Option<String> = None;
        loop {
            tokio::time::sleep(every).await;
            let fetched = fetch(&ssm, &name).await;
            let Some(faults) = faults.upgrade() else { break };
            match fetched {
                Ok(plan) => {
                    last_error = None;
                    replace(&faults, plan);
                }
                Err(e) => {
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!(parameter = %name, "fault plan not refreshed, the running one stays: {e}");
                    }
                    last_error = Some(e);
                }
            }
        }
    });
    Some(task.abort_handle())
}

/// Replaces the plan, logging a switch on or off.
fn replace(faults: &Arc<Faults>, plan: Option<FaultPlan>) {
    let was_on = faults.plan().is_some();
    if plan.is_none() && was_on {
        tracing::info!("fault plan switched off");
    }
    faults.replace(plan);
}
