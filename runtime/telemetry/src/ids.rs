//! Span ids: one invocation's place in its trace ([`SpanIds`]) and fresh ids for the spans under it.
//!
//! The ids are the host's own, made whether or not anything is exported, so trace propagation (nimbus-core's
//! `caps::trace::propagate`, which also parses the caller's `traceparent`) never depends on export, and the ids a
//! callee sees are always those of the spans exported.

use std::fmt::Write as _;
use std::time::SystemTime;

/// One invocation's place in its trace: its own span and its caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    /// The W3C trace id (never zero).
    pub trace_id: u128,
    /// The invocation span's id (never zero).
    pub span_id: u64,
    /// The caller's span id: the incoming `traceparent` parent id.
    pub parent_id: u64,
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// When the invocation started (wall clock, for exported spans).
    pub started: SystemTime,
}

impl SpanIds {
    /// A new span, started now, child of the caller's span `caller` (its trace id, its span id and the trace
    /// flags, as a valid `traceparent` gives them); without one, the root span of a new sampled trace.
    pub fn child(caller: Option<(u128, u64, u8)>) -> SpanIds {
        let (trace_id, parent_id, flags) = caller.unwrap_or_else(|| (fastrand::u128(1..), 0, 1));
        SpanIds {
            trace_id,
            span_id: new_span_id(),
            parent_id,
            flags,
            started: SystemTime::now(),
        }
    }

    /// Whether the trace is sampled (exported spans follow the caller's decision).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// `traceparent` naming `span_id` as the parent, in this trace.
    pub fn traceparent_for(&self, span_id: u64) -> String {
        let mut s = String::with_capacity(55);
        let _ = write!(s, "00-{:032x}-{span_id:016x}-{:02x}", self.trace_id, self.flags);
        s
    }

    /// An X-Ray header naming `span_id` as the parent segment, in this trace.
    pub fn xray_for(&self, span_id: u64) -> String {
        let hex = format!("{:032x}", self.trace_id);
        format!(
            "Root=1-{}-{};Parent={span_id:016x};Sampled={}",
            &hex[..8],
            &hex[8..],
            u8::from(self.sampled())
        )
    }
}

/// A fresh, non-zero span id.
pub fn new_span_id() -> u64 {
    fastrand::u64(1..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_keeps_the_callers_trace_and_a_root_starts_a_sampled_one() {
        let caller = (0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0);
        let ids = SpanIds::child(Some(caller));
        assert_eq!((ids.trace_id, ids.parent_id, ids.flags), caller);
        assert_ne!(ids.span_id, 0);
        assert!(!ids.sampled());
        let root = SpanIds::child(None);
        assert_ne!(root.trace_id, 0);
        assert_eq!(root.parent_id, 0);
        assert!(root.sampled());
    }
}
