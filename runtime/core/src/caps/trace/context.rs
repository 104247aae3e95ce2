//! [`TraceContext`]: the one trace context an invocation carries, whatever dialect the platform spoke,
//! and every way one is made (W3C, X-Ray, any request's headers, a new root).

use super::headers::{CLOUD_TRACE_HEADER, parse_cloud_trace_context, parse_traceparent, single_traceparent};
use super::headers::{FC_HEADER, TRACEPARENT, TRACESTATE, XRAY_HEADER, combine_tracestate, parse_fc_span_context};
use super::xray::{parse_xray, xray_root_hex};
use std::fmt::Write as _;

/// A W3C trace context (`traceparent` and optional `tracestate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `00-<trace-id>-<parent-id>-<flags>`.
    pub traceparent: String,
    /// Vendor state, passed through untouched.
    pub tracestate: Option<String>,
    /// The AWS X-Ray header this context came from (`Root=…;Parent=…;Sampled=…`),
    /// kept verbatim: the guest sees it as `_X_AMZN_TRACE_ID`, as on Lambda.
    pub xray: Option<String>,
}

impl TraceContext {
    /// Uses the caller's `traceparent` if it is valid W3C (and its
    /// `tracestate` if that is valid too), else starts a new sampled trace:
    /// bad input never fails an invocation.
    pub fn from_w3c(traceparent: Option<&str>, tracestate: Option<&str>) -> TraceContext {
        TraceContext::from_headers(|name| match name {
            TRACEPARENT => traceparent.map(str::as_bytes),
            TRACESTATE => tracestate.map(str::as_bytes),
            _ => None,
        })
    }

    /// A new sampled root trace with random ids.
    pub fn new_root() -> TraceContext {
        let mut s = String::with_capacity(55);
        let trace = fastrand::u128(1..);
        let span = fastrand::u64(1..);
        let _ = write!(s, "00-{trace:032x}-{span:016x}-01");
        TraceContext {
            traceparent: s,
            tracestate: None,
            xray: None,
        }
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or("")
    }

    /// Converts an X-Ray header to W3C: the root's 32 hex digits become the
    /// trace id, `Parent` the parent span id (a fresh one if absent),
    /// `Sampled=1` the sampled flag. The header itself is kept in
    /// [`TraceContext::xray`]. A malformed header starts a new root trace
    /// (bad input never fails an invocation) but is still passed on verbatim.
    pub fn from_xray(header: &str) -> TraceContext {
        let header = header.trim();
        let mut ctx = match parse_xray(header) {
            Some(x) => {
                let (time, id) = xray_root_hex(x.root).unwrap_or_default();
                let mut tp = String::with_capacity(55);
                let _ = write!(tp, "00-{}{}-", time.to_ascii_lowercase(), id.to_ascii_lowercase());
                match x.parent {
                    Some(p) => tp.push_str(&p.to_ascii_lowercase()),
                    None => {
                        let _ = write!(tp, "{:016x}", fastrand::u64(1..));
                    }
                }
                tp.push_str(if x.sampled == Some(true) { "-01" } else { "-00" });
                debug_assert!(is_valid_traceparent(&tp));
                TraceContext {
                    traceparent: tp,
                    tracestate: None,
                    xray: None,
                }
            }
            None => TraceContext::new_root(),
        };
        if !header.is_empty() {
            ctx.xray = Some(header.to_owned());
        }
        ctx
    }

    /// Bridges whatever trace header a request carries into one W3C
    /// context. Order: exactly one valid W3C `traceparent` (with its
    /// `tracestate` lines combined, if valid); else an X-Ray header (kept
    /// verbatim as [`TraceContext::xray`]); else a Function Compute span
    /// context; else exactly one valid Google Cloud `X-Cloud-Trace-Context`
    /// (several lines are refused, as for `traceparent`); else a new root trace. `lines` yields every field line of a
    /// header, by its lowercase name, in the order received: an adapter must
    /// hand over all of them, so that `tracestate` lines can be combined and
    /// a repeated `traceparent` refused.
    pub fn from_headers<'a, L>(lines: impl Fn(&str) -> L) -> TraceContext
    where
        L: IntoIterator<Item = &'a [u8]>,
    {
        if let Some(parsed) = single_traceparent(lines(TRACEPARENT)) {
            return TraceContext {
                traceparent: parsed.to_header(),
                tracestate: combine_tracestate(lines(TRACESTATE)),
                xray: None,
            };
        }
        // The other dialects are single-valued: the first line is the one read.
        let get = |name: &str| lines(name).into_iter().next().and_then(|v| std::str::from_utf8(v).ok());
        if let Some(xray) = get(XRAY_HEADER).filter(|x| !x.trim().is_empty()) {
            return TraceContext::from_xray(xray);
        }
        if let Some(fc) = get(FC_HEADER) {
            match parse_fc_span_context(fc) {
                Some(fc) => return TraceContext::bridged(&fc.trace_id, &fc.span_id, fc.sampled),
                None => tracing::debug!(header = fc, "ignoring an invalid Function Compute span context"),
            }
        }
        let mut cloud = lines(CLOUD_TRACE_HEADER).into_iter();
        if let Some(line) = cloud.next() {
            let parsed = match cloud.next() {
                Some(_) => None,
                None => std::str::from_utf8(line).ok().and_then(parse_cloud_trace_context),
            };
            match parsed {
                Some(c) => return TraceContext::bridged(&c.trace_id, &c.span_id, c.sampled),
                None => {
                    tracing::debug!(header = %String::from_utf8_lossy(line), "ignoring an invalid or repeated X-Cloud-Trace-Context")
                }
            }
        }
        TraceContext::new_root()
    }

    /// A context with W3C ids another dialect's header carried (already checked: hex, not zero).
    fn bridged(trace_id: &str, span_id: &str, sampled: bool) -> TraceContext {
        let mut traceparent = String::with_capacity(55);
        let flags = if sampled { "01" } else { "00" };
        let _ = write!(traceparent, "00-{trace_id}-{span_id}-{flags}");
        debug_assert!(is_valid_traceparent(&traceparent));
        TraceContext {
            traceparent,
            tracestate: None,
            xray: None,
        }
    }
}

/// Whether `tp` is a `traceparent` a W3C receiver accepts.
pub(crate) fn is_valid_traceparent(tp: &str) -> bool {
    parse_traceparent(tp).is_some()
}
