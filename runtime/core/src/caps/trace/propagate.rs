//! `propagate`: span ids of an invocation and the trace headers the host
//! puts on a guest's outgoing HTTP requests.
//!
//! Every invocation has a span of its own ([`SpanIds`]), child of the
//! caller's span (the incoming `traceparent` parent id, or X-Ray `Parent`).
//! The guest sees that span as the parent in `invocation.trace().traceparent`,
//! and each outgoing request gets a client span of its own: the host writes
//! `traceparent` (and `tracestate`, and on AWS `X-Amzn-Trace-Id`) naming it.
//! The host's headers replace any the guest set, so the ids the callee sees
//! always match the spans the host exports. Propagation never depends on
//! exporting: it works with telemetry off.

use super::TraceContext;
use super::headers::XRAY_HEADER;
use crate::invocation::Invocation;
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The innermost open guest span of one invocation (0: none). The trace capability moves it as guest
/// spans open and end; `outbound` reads it to parent the client span of each request. Handed to both in
/// [`crate::caps::Grants`].
#[derive(Clone, Debug, Default)]
pub struct SpanCursor(Arc<AtomicU64>);

impl SpanCursor {
    pub(super) fn set(&self, span_id: u64) {
        self.0.store(span_id, Ordering::Relaxed);
    }

    /// The innermost open guest span's id, or 0.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Starts the client span of an outgoing request made under `inv`: writes its trace headers
/// ([`inject`]) and returns `(span id, parent span id)`, the parent being the innermost open guest span
/// or else the invocation span.
pub fn client_span(headers: &mut HeaderMap, inv: &Invocation, cursor: &SpanCursor) -> (u64, u64) {
    let span_id = new_span_id();
    inject(headers, inv, span_id);
    let parent = match cursor.get() {
        0 => inv.span.span_id,
        guest => guest,
    };
    (span_id, parent)
}

/// The invocation span's ids, and fresh ids for the spans under it, are nimbus-telemetry's.
pub use crate::telemetry::{SpanIds, new_span_id};

/// `SpanIds::child_of`: the ids type is nimbus-telemetry's, the W3C grammar that reads the caller's span is
/// here ([`parse_traceparent`]).
pub trait ChildOf {
    /// A new span, child of the span named by `traceparent` (a new root if it is malformed).
    fn child_of(traceparent: &str) -> Self;
}

impl ChildOf for SpanIds {
    fn child_of(traceparent: &str) -> SpanIds {
        SpanIds::child(parse_traceparent(traceparent))
    }
}

/// `(trace id, parent id, flags)` of a `traceparent` a W3C receiver accepts
/// (the grammar lives in [`super::headers::parse_traceparent`]).
pub fn parse_traceparent(tp: &str) -> Option<(u128, u64, u8)> {
    let tp = super::headers::parse_traceparent(tp)?;
    let trace = u128::from_str_radix(tp.trace_id, 16).ok()?;
    let parent = u64::from_str_radix(tp.parent_id, 16).ok()?;
    Some((trace, parent, tp.flags))
}

/// Writes the trace headers for an outgoing request made under `inv` by the
/// client span `span_id`, replacing any the guest set. `X-Amzn-Trace-Id` is
/// added only when the invocation came with an X-Ray header.
pub fn inject(headers: &mut HeaderMap, inv: &Invocation, span_id: u64) {
    let ids = &inv.span;
    if let Ok(v) = HeaderValue::from_str(&ids.traceparent_for(span_id)) {
        headers.insert("traceparent", v);
    }
    let trace: &TraceContext = &inv.trace;
    match trace.tracestate.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        Some(v) => {
            headers.insert("tracestate", v);
        }
        None => {
            headers.remove("tracestate");
        }
    }
    if trace.xray.is_some()
        && let Ok(v) = HeaderValue::from_str(&ids.xray_for(span_id))
    {
        headers.insert(XRAY_HEADER, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_invocation_span_is_a_child_of_the_caller() {
        let ids = SpanIds::child_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(ids.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ids.parent_id, 0x00f067aa0ba902b7);
        assert_ne!(ids.span_id, ids.parent_id);
        assert!(ids.sampled());
        let tp = ids.traceparent_for(0xabc);
        assert_eq!(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01");
        assert!(!SpanIds::child_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").sampled());
        let root = SpanIds::child_of("garbage");
        assert_ne!(root.trace_id, 0);
        assert_eq!(root.parent_id, 0);
    }

    #[test]
    fn xray_header_round_trips_through_the_parser() {
        let h = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let ids = SpanIds::child_of(&TraceContext::from_xray(h).traceparent);
        let out = ids.xray_for(0x1234);
        assert_eq!(
            out,
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000001234;Sampled=1"
        );
        let back = super::super::xray::parse_xray(&out).unwrap();
        assert_eq!(back.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(back.sampled, Some(true));
    }

    #[test]
    fn injection_replaces_the_guests_headers() {
        let h = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
        let inv = Arc::new(Invocation::new(
            Arc::from("shop"),
            Arc::from("f"),
            Duration::from_secs(1),
            None,
            TraceContext::from_xray(h),
        ));
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("00-guest-guest-01"));
        headers.insert("tracestate", HeaderValue::from_static("guest=1"));
        inject(&mut headers, &inv, 0x42);
        assert_eq!(
            headers["traceparent"],
            "00-5759e988bd862e3fe1be46a994272793-0000000000000042-00"
        );
        assert!(headers.get("tracestate").is_none());
        assert_eq!(
            headers[XRAY_HEADER],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000042;Sampled=0"
        );
        // W3C only: no X-Ray header, tracestate passed through.
        let trace = TraceContext::from_w3c(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("congo=t61rcWkgMzE"),
        );
        let inv = Invocation::new(Arc::from("shop"), Arc::from("f"), Duration::from_secs(1), None, trace);
        let mut headers = HeaderMap::new();
        inject(&mut headers, &inv, 7);
        assert_eq!(headers["tracestate"], "congo=t61rcWkgMzE");
        assert!(headers.get(XRAY_HEADER).is_none());
    }
}
