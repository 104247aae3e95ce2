//! The host's last few invocation errors, kept for the fault snapshot that level 5 of the degradation ladder
//! writes before the host exits ([`crate::degrade::pressure`]): what was going wrong just before the
//! environment was replaced. Only failures pay for it (one short lock); refusals by the ladder itself are
//! not kept (a burst of load shedding would push out every real error).

use crate::error::InvokeError;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many errors are kept.
pub const KEEP: usize = 16;
/// The longest message kept, in bytes (cut at a character boundary).
const MESSAGE_MAX: usize = 512;

/// One invocation error.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentError {
    /// When it ended.
    pub at: SystemTime,
    /// The function.
    pub function: String,
    /// The invocation's request id.
    pub request_id: String,
    /// `Nimbus.Trap`, `Nimbus.Deadline`, … ([`InvokeError::error_type`]).
    pub error_type: &'static str,
    /// What the error says, at most 512 bytes.
    pub message: String,
}

/// The last [`KEEP`] errors, oldest first.
#[derive(Default)]
pub(super) struct RecentErrors(Mutex<VecDeque<RecentError>>);

impl RecentErrors {
    /// Keeps `error` of `request_id`, dropping the oldest beyond [`KEEP`].
    pub(super) fn remember(&self, function: &str, request_id: &str, error: &InvokeError) {
        if matches!(error, InvokeError::Degraded { .. }) {
            return;
        }
        let mut message = error.to_string();
        if message.len() > MESSAGE_MAX {
            let mut cut = MESSAGE_MAX;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let entry = RecentError {
            at: SystemTime::now(),
            function: function.to_owned(),
            request_id: request_id.to_owned(),
            error_type: error.error_type(),
            message,
        };
        let mut kept = match self.0.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        if kept.len() == KEEP {
            kept.pop_front();
        }
        kept.push_back(entry);
    }

    /// The errors kept, oldest first.
    pub(super) fn list(&self) -> Vec<RecentError> {
        match self.0.lock() {
            Ok(k) => k.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_sixteen_with_bounded_messages_and_not_the_ladders_refusals() {
        let kept = RecentErrors::default();
        for i in 0..20 {
            kept.remember("f", &format!("r{i}"), &InvokeError::Trap("é".repeat(400)));
        }
        kept.remember(
            "f",
            "shed",
            &InvokeError::Degraded {
                level: 2,
                reason: "busy".into(),
                retry_after: std::time::Duration::from_secs(1),
            },
        );
        let list = kept.list();
        assert_eq!(list.len(), KEEP);
        assert_eq!(list[0].request_id, "r4");
        assert_eq!(list[KEEP - 1].request_id, "r19");
        assert_eq!(list[0].error_type, "Nimbus.Trap");
        assert!(list[0].message.len() <= MESSAGE_MAX, "{}", list[0].message.len());
    }
}
