//! Trace headers from every dialect Nimbus meets, bridged into one W3C
//! context ([`TraceContext::from_headers`]).
//!
//! - W3C Trace Context (`traceparent`, `tracestate`), validated as the
//!   specification says a receiver must: lowercase hex, no all-zero ids,
//!   version `ff` refused, a future version parsed by its first four fields;
//!   a bad `tracestate` is dropped while the `traceparent` is kept.
//! - AWS X-Ray (`X-Amzn-Trace-Id`, Lambda's `Lambda-Runtime-Trace-Id`):
//!   [`crate::caps::trace`].
//! - Alibaba Cloud Function Compute's OpenTracing (Jaeger) span context,
//!   `x-fc-tracing-opentracing-span-context: {trace-id}:{span-id}:{parent-id}:{flags}`.
//!
//! Malformed input never fails an invocation and never logs above `debug`:
//! a client sending garbage on every request must not flood the logs.

use crate::invocation::TraceContext;
use std::fmt::Write as _;

/// The W3C header carrying the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor state.
pub const TRACESTATE: &str = "tracestate";
/// The header AWS load balancers, API Gateway and X-Ray SDKs use.
pub const XRAY_HEADER: &str = "x-amzn-trace-id";
/// The header Alibaba Cloud Function Compute passes to custom runtimes.
pub const FC_HEADER: &str = "x-fc-tracing-opentracing-span-context";

/// A valid W3C `traceparent`, split into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent<'a> {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: &'a str,
    /// 16 lowercase hex digits, not all zero.
    pub parent_id: &'a str,
    /// The trace flags byte (bit 0: sampled).
    pub flags: u8,
}

impl Traceparent<'_> {
    /// The header value in version `00`, the version Nimbus sends.
    pub fn to_header(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

/// Parses a `traceparent` header as W3C Trace Context requires of a receiver.
pub fn parse_traceparent(header: &str) -> Option<Traceparent<'_>> {
    let h = header.trim_matches(|c| c == ' ' || c == '\t');
    let b = h.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = &h[0..2];
    if !is_lower_hex(version) || version == "ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may append
    // fields after a dash, which this receiver ignores.
    if (version == "00" && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let (trace_id, parent_id, flags) = (&h[3..35], &h[36..52], &h[53..55]);
    if !is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags) {
        return None;
    }
    if all_zero(trace_id) || all_zero(parent_id) {
        return None;
    }
    Some(Traceparent {
        trace_id,
        parent_id,
        flags: u8::from_str_radix(flags, 16).ok()?,
    })
}

/// Most list members a `tracestate` may have.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Checks a `tracestate` header: comma-separated `key=value` members, at
/// most 32, keys unique and well-formed, values printable without `,` or
/// `=`. Empty members are allowed and dropped. Returns the header with
/// optional whitespace normalised, or `None` if it must not be propagated.
pub fn normalize_tracestate(header: &str) -> Option<String> {
    let mut out = String::with_capacity(header.len());
    let mut keys: Vec<&str> = Vec::new();
    for member in header.split(',') {
        let member = member.trim_matches(|c| c == ' ' || c == '\t');
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_tracestate_key(key) || !valid_tracestate_value(value) || keys.contains(&key) {
            return None;
        }
        keys.push(key);
        if keys.len() > MAX_TRACESTATE_MEMBERS {
            return None;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(member);
    }
    (!out.is_empty()).then_some(out)
}

/// `lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`, or the
/// multi-tenant `tenant@system` form.
fn valid_tracestate_key(key: &str) -> bool {
    fn tail_ok(s: &str) -> bool {
        s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/".contains(&c))
    }
    match key.split_once('@') {
        None => (1..=256).contains(&key.len()) && key.as_bytes()[0].is_ascii_lowercase() && tail_ok(&key[1..]),
        Some((tenant, system)) => {
            (1..=241).contains(&tenant.len())
                && (tenant.as_bytes()[0].is_ascii_lowercase() || tenant.as_bytes()[0].is_ascii_digit())
                && tail_ok(&tenant[1..])
                && (1..=14).contains(&system.len())
                && system.as_bytes()[0].is_ascii_lowercase()
                && tail_ok(&system[1..])
        }
    }
}

/// `0*255(chr) nblk-chr`: printable ASCII except `,` and `=`, not ending in a space.
fn valid_tracestate_value(value: &str) -> bool {
    (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && !value.ends_with(' ')
}

/// A Function Compute (Jaeger) span context, converted to W3C ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcSpanContext {
    /// 32 lowercase hex digits (a 64-bit Jaeger id is left-padded with zeros).
    pub trace_id: String,
    /// 16 lowercase hex digits: the span that called us.
    pub span_id: String,
    /// Jaeger's sampled flag.
    pub sampled: bool,
}

/// Parses `{trace-id}:{span-id}:{parent-span-id}:{flags}` (hex ids, leading
/// zeros optional; flags in hex, bit 0 = sampled).
pub fn parse_fc_span_context(header: &str) -> Option<FcSpanContext> {
    let mut parts = header.trim().split(':');
    let (trace, span, _parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let hex_id = |s: &str, max: usize| {
        let ok = (1..=max).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_hexdigit()) && !all_zero(s);
        ok.then(|| format!("{:0>max$}", s.to_ascii_lowercase()))
    };
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(FcSpanContext {
        trace_id: hex_id(trace, 32)?,
        span_id: hex_id(span, 16)?,
        sampled: flags & 1 == 1,
    })
}

impl TraceContext {
    /// Bridges whatever trace header a request carries into one W3C
    /// context. Order: a valid W3C `traceparent` (with its `tracestate`, if
    /// valid); else an X-Ray header (kept verbatim as [`TraceContext::xray`]);
    /// else a Function Compute span context; else a new root trace.
    /// `get` looks a header up by its lowercase name.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> TraceContext {
        if let Some(tp) = get(TRACEPARENT) {
            match parse_traceparent(tp) {
                Some(parsed) => {
                    return TraceContext {
                        traceparent: parsed.to_header(),
                        tracestate: get(TRACESTATE).and_then(normalize_tracestate),
                        xray: None,
                    };
                }
                None => tracing::debug!(traceparent = tp, "ignoring an invalid traceparent"),
            }
        }
        if let Some(xray) = get(XRAY_HEADER).filter(|x| !x.trim().is_empty()) {
            return TraceContext::from_xray(xray);
        }
        if let Some(fc) = get(FC_HEADER) {
            match parse_fc_span_context(fc) {
                Some(fc) => {
                    let mut traceparent = String::with_capacity(55);
                    let flags = if fc.sampled { "01" } else { "00" };
                    let _ = write!(traceparent, "00-{}-{}-{flags}", fc.trace_id, fc.span_id);
                    return TraceContext {
                        traceparent,
                        tracestate: None,
                        xray: None,
                    };
                }
                None => tracing::debug!(header = fc, "ignoring an invalid Function Compute span context"),
            }
        }
        TraceContext::new_root()
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn all_zero(s: &str) -> bool {
    s.bytes().all(|c| c == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the W3C Trace Context recommendation, §3.2.
    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn w3c_examples_parse() {
        let tp = parse_traceparent(W3C_EXAMPLE).unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id, "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        let unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert_eq!(unsampled.flags, 0);
        // A future version is parsed by its first four fields and sent on as 00.
        let future =
            parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like")
                .unwrap();
        assert_eq!(future.to_header(), W3C_EXAMPLE);
    }

    #[test]
    fn w3c_invalid_traceparents_are_refused() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff, non-hex version
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // uppercase is not allowed
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            // bad lengths
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            // version 00 with a suffix, future version with a bad separator
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.extra",
            // wrong separators, non-hex
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tracestate_is_validated_and_normalised() {
        // The recommendation's examples.
        assert_eq!(
            normalize_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(
            normalize_tracestate(" congo=t61rcWkgMzE , , rojo=00f067aa0ba902b7\t").as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        assert_eq!(
            normalize_tracestate("fw529a3039@dt=ZmlyZXdhbGw").as_deref(),
            Some("fw529a3039@dt=ZmlyZXdhbGw")
        );
        let many = (0..32).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
        assert!(normalize_tracestate(&many).is_some());
        let too_many = format!("{many},k32=v");
        for bad in [
            too_many.as_str(),
            "Rojo=1",        // uppercase key
            "1rojo=1",       // a key starting with a digit must be tenant@system
            "rojo",          // no value
            "rojo=",         // empty value
            "rojo=a,rojo=b", // duplicate key
            "rojo=a=b",      // '=' in the value
            "a@Sys=1",       // uppercase system id
        ] {
            assert_eq!(normalize_tracestate(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_tracestate("rojo=caf\u{e9}"), None, "non-ASCII value");
        assert_eq!(normalize_tracestate(""), None);
    }

    #[test]
    fn function_compute_span_context_converts() {
        let fc = parse_fc_span_context("1f2e3d4c5b6a7988:a1b2c3d4e5f60718:0:1").unwrap();
        assert_eq!(fc.trace_id, "00000000000000001f2e3d4c5b6a7988");
        assert_eq!(fc.span_id, "a1b2c3d4e5f60718");
        assert!(fc.sampled);
        let fc = parse_fc_span_context("4BF92F3577B34DA6A3CE929D0E0E4736:f067aa0ba902b7:0:0").unwrap();
        assert_eq!(fc.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(fc.span_id, "00f067aa0ba902b7");
        assert!(!fc.sampled);
        for bad in [
            "",
            "a:b:c",
            "0:a1:0:1",
            "1f2e:0:0:1",
            "zz:a1:0:1",
            "1f2e:a1:0:x",
            "1:2:3:4:5",
        ] {
            assert_eq!(parse_fc_span_context(bad), None, "{bad:?}");
        }
    }

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn bridging_prefers_w3c_then_xray_then_fc() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let fc = "1f2e3d4c5b6a7988:a1b2c3d4e5f60718:0:1";
        let t = TraceContext::from_headers(headers(&[
            ("traceparent", W3C_EXAMPLE),
            ("tracestate", "rojo=1"),
            ("x-amzn-trace-id", xray),
            (FC_HEADER, fc),
        ]));
        assert_eq!(t.traceparent, W3C_EXAMPLE);
        assert_eq!(t.tracestate.as_deref(), Some("rojo=1"));
        // An invalid traceparent falls through to X-Ray, then to FC.
        let t = TraceContext::from_headers(headers(&[("traceparent", "00-bad"), ("x-amzn-trace-id", xray)]));
        assert_eq!(t.traceparent, "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01");
        assert_eq!(t.xray.as_deref(), Some(xray));
        let t = TraceContext::from_headers(headers(&[(FC_HEADER, fc)]));
        assert_eq!(t.traceparent, "00-00000000000000001f2e3d4c5b6a7988-a1b2c3d4e5f60718-01");
        // A bad tracestate is dropped, the traceparent kept.
        let t = TraceContext::from_headers(headers(&[("traceparent", W3C_EXAMPLE), ("tracestate", "A=1")]));
        assert_eq!(t.traceparent, W3C_EXAMPLE);
        assert_eq!(t.tracestate, None);
        // Nothing usable: a new, valid root.
        let t = TraceContext::from_headers(headers(&[(FC_HEADER, "junk"), ("traceparent", "junk")]));
        assert!(parse_traceparent(&t.traceparent).is_some());
    }
}
