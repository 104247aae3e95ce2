//! Fault rules on the invocation itself ([`crate::faults`], `target = "invocation"`), applied before the guest
//! runs, as AWS FIS does around a whole Lambda invocation: a delay, CPU burnt, a lower memory limit (kept for
//! [`super::invoke`]'s admission), or the invocation ended at once — failed, trapped, or answered with a fixed
//! HTTP response. A task run ended this way is dropped without a commit, as if its environment had crashed:
//! it is delivered again once its lease passes.

use super::{Function, Host};
use crate::error::InvokeError;
use crate::exports::Kind;
use crate::faults::{Family, Fault, InvocationFaults, Target};
use crate::invocation::Outcome;
use http_body_util::BodyExt;
use std::time::{Duration, Instant};

impl Host {
    /// Applies the invocation rule that fires on this invocation, if one does: `Some` ends the invocation
    /// with that result; `None` lets it go on (after any delay).
    pub(super) async fn invocation_fault(
        &self,
        f: &Function,
        faults: &InvocationFaults,
    ) -> Option<Result<Outcome, InvokeError>> {
        let firing = faults.fire(Family::Invocation, |t| *t == Target::Invocation)?;
        faults.record(&firing, None, None);
        let deadline = faults.invocation().deadline;
        let rule = firing.rule.name.clone();
        match &firing.rule.fault {
            Fault::Latency(_) => {
                // Past the deadline the guest is stopped at once, as a slow platform would leave it.
                let until = Instant::now() + faults.latency(&firing);
                tokio::time::sleep_until(until.min(deadline).into()).await;
                None
            }
            Fault::CpuBurn(d) => {
                burn(*d.min(&deadline.saturating_duration_since(Instant::now())));
                None
            }
            Fault::Memory(bytes) => {
                faults.lower_memory(*bytes);
                None
            }
            Fault::Trap => Some(Err(InvokeError::Trap(format!(
                "fault injected by rule `{rule}`: the guest trapped before it ran"
            )))),
            Fault::Respond { status, body } if f.kind == Kind::Http => {
                let body = bytes::Bytes::from(body.clone());
                let res = http::Response::builder()
                    .status(*status)
                    .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header("x-nimbus-fault", rule.as_str())
                    .body(
                        http_body_util::Full::new(body)
                            .map_err(|never: std::convert::Infallible| -> crate::HttpError { match never {} })
                            .boxed_unsync(),
                    );
                Some(
                    res.map(Outcome::Http)
                        .map_err(|e| InvokeError::internal_from("an injected response", e)),
                )
            }
            // An error, or a fixed response for a function that does not answer HTTP.
            _ => Some(Err(InvokeError::Injected { rule })),
        }
    }
}

/// Keeps a core busy for `d`, as a noisy neighbour or a runaway loop would. On the multi-threaded runtime the
/// worker hands its other tasks to another thread first, so only this invocation waits.
fn burn(d: Duration) {
    let spin = || {
        let end = Instant::now() + d;
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    };
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(spin),
        _ => spin(),
    }
}
