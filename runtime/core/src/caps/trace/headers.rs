//! Trace headers from every dialect Nimbus meets, bridged into one W3C
//! context ([`super::TraceContext::from_headers`]).
//!
//! - W3C Trace Context (`traceparent`, `tracestate`), validated as the
//!   specification and its conformance suite (`w3c/trace-context`, `test/`)
//!   say a receiver must: lowercase hex, no all-zero ids, version `ff`
//!   refused, a future version parsed by its first four fields, more than one
//!   `traceparent` refused (the trace restarts); repeated `tracestate` lines
//!   combined into one list, a duplicated key kept once, and a bad
//!   `tracestate` dropped whole while the `traceparent` is kept.
//! - AWS X-Ray (`X-Amzn-Trace-Id`, Lambda's `Lambda-Runtime-Trace-Id`):
//!   [`super::xray`].
//! - Alibaba Cloud Function Compute's OpenTracing (Jaeger) span context,
//!   `x-fc-tracing-opentracing-span-context: {trace-id}:{span-id}:{parent-id}:{flags}`.
//! - Google Cloud's legacy `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS` (Cloud Run, App Engine,
//!   Google's load balancers): [`parse_cloud_trace_context`].
//!
//! Malformed input never fails an invocation and never logs above `debug`:
//! a client sending garbage on every request must not flood the logs.

#[cfg(test)]
use super::TraceContext;

/// The W3C header carrying the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor state.
pub const TRACESTATE: &str = "tracestate";
/// The header AWS load balancers, API Gateway and X-Ray SDKs use.
pub const XRAY_HEADER: &str = "x-amzn-trace-id";
/// The header Alibaba Cloud Function Compute passes to custom runtimes.
pub const FC_HEADER: &str = "x-fc-tracing-opentracing-span-context";
/// The header Google Cloud (Cloud Run, App Engine, its load balancers) sets beside `traceparent`.
pub const CLOUD_TRACE_HEADER: &str = "x-cloud-trace-context";

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

/// The trace flags this receiver knows: `sampled` (Level 1) and
/// `random-trace-id` (Level 2). The others are reserved, and the
/// recommendation says a vendor MUST set them to zero.
const KNOWN_TRACE_FLAGS: u8 = 0b11;

/// Parses a `traceparent` header as W3C Trace Context requires of a receiver.
/// Reserved trace flags are cleared. A comma anywhere means the value is
/// several `traceparent` lines combined (RFC 9110 §5.3), which is refused.
pub fn parse_traceparent(header: &str) -> Option<Traceparent<'_>> {
    let h = header.trim_matches(|c| c == ' ' || c == '\t');
    let b = h.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' || b.contains(&b',') {
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
        flags: u8::from_str_radix(flags, 16).ok()? & KNOWN_TRACE_FLAGS,
    })
}

/// The one valid `traceparent` among a request's field lines. Several lines
/// are refused like an invalid one (the conformance suite expects a new
/// trace then), and so is a line that is not text; both are logged at
/// `debug` only.
pub(super) fn single_traceparent<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<Traceparent<'a>> {
    let mut lines = lines.into_iter();
    let (line, extra) = (lines.next()?, lines.next());
    if extra.is_some() {
        tracing::debug!("ignoring a repeated traceparent");
        return None;
    }
    let parsed = std::str::from_utf8(line).ok().and_then(parse_traceparent);
    if parsed.is_none() {
        tracing::debug!(traceparent = %String::from_utf8_lossy(line), "ignoring an invalid traceparent");
    }
    parsed
}

/// Most list members a `tracestate` may have.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Combines a request's `tracestate` field lines, in order, into one list
/// (RFC 9110 §5.3) and checks it as the W3C conformance suite expects:
/// `key=value` members, at most 32, keys and values well-formed. Empty
/// members and the optional whitespace around members are dropped; of a
/// duplicated key only the first (left-most, most recent) member is kept.
/// Returns the list, or `None` if it is empty or any member is invalid
/// (the suite expects the whole `tracestate` dropped then, not only the bad
/// member).
pub fn combine_tracestate<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    let mut out = String::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut members = 0;
    for line in lines {
        for member in std::str::from_utf8(line).ok()?.split(',') {
            let member = member.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            members += 1;
            if !valid_tracestate_key(key) || !valid_tracestate_value(value) || members > MAX_TRACESTATE_MEMBERS {
                return None;
            }
            if keys.contains(&key) {
                continue;
            }
            keys.push(key);
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(member);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`:
/// Level 2's key grammar, the one the conformance suite tests. It accepts
/// every key Level 1 did (a simple key, or `tenant@system`) and also an `@`
/// anywhere after the first character (`foo@`, `a@b@c`, a system id longer
/// than 14 characters).
fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    (1..=256).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/@".contains(&c))
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

/// A Google Cloud trace context (`X-Cloud-Trace-Context`), converted to W3C ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudTraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits: the decimal span id of the header, the span that called us.
    pub span_id: String,
    /// Whether `o=` had bit 0 (`TRACE_TRUE`) set; an absent `o=` is not sampled, as Google's
    /// OpenTelemetry propagators read it.
    pub sampled: bool,
}

/// Parses `TRACE_ID/SPAN_ID[;o=OPTIONS]`: a 32-digit hex trace id (either case), a decimal span id that
/// fits 64 bits, and an optional decimal options field whose bit 0 means sampled. Spaces and tabs around
/// the value are allowed; anything else (spaces inside, a missing slash or span id, zero ids, an id out
/// of range, a comma from combined lines, unknown parameters) refuses the whole header.
pub fn parse_cloud_trace_context(header: &str) -> Option<CloudTraceContext> {
    let h = header.trim_matches(|c| c == ' ' || c == '\t');
    let (ids, options) = match h.split_once(';') {
        Some((ids, options)) => (ids, Some(options)),
        None => (h, None),
    };
    let (trace, span) = ids.split_once('/')?;
    if trace.len() != 32 || !trace.bytes().all(|c| c.is_ascii_hexdigit()) || all_zero(trace) {
        return None;
    }
    // `u64::from_str` accepts a leading `+`: only digits are a decimal span id here.
    if span.is_empty() || span.len() > 20 || !span.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let span: u64 = span.parse().ok().filter(|s| *s != 0)?;
    let sampled = match options {
        None => false,
        Some(o) => {
            let flags = o.strip_prefix("o=")?;
            if flags.is_empty() || flags.len() > 3 || !flags.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            flags.parse::<u16>().ok()? & 1 == 1
        }
    };
    Some(CloudTraceContext {
        trace_id: trace.to_ascii_lowercase(),
        span_id: format!("{span:016x}"),
        sampled,
    })
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
        // Level 2's random-trace-id flag is kept; reserved flags are cleared.
        let random = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02").unwrap();
        assert_eq!(random.flags, 0b10);
        let reserved = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fd").unwrap();
        assert_eq!(reserved.flags, 0b01);
        assert!(reserved.to_header().ends_with("-01"));
        // Optional whitespace around the value.
        assert!(parse_traceparent(&format!(" \t{W3C_EXAMPLE}\t ")).is_some());
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
            // several lines combined into one value (RFC 9110 §5.3)
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, 00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x,cc-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    /// `tracestate` field lines, combined and checked.
    fn tracestate(lines: &[&str]) -> Option<String> {
        combine_tracestate(lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn tracestate_examples_are_kept_with_whitespace_and_empty_members_dropped() {
        // The recommendation's examples.
        assert_eq!(
            tracestate(&["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]).as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(
            tracestate(&["fw529a3039@dt=ZmlyZXdhbGw"]).as_deref(),
            Some("fw529a3039@dt=ZmlyZXdhbGw")
        );
        // Spaces and tabs around members are optional whitespace; empty
        // members (an empty header too) are allowed and skipped.
        assert_eq!(
            tracestate(&[" congo=t61rcWkgMzE \t, ,\t\t, rojo=00f067aa0ba902b7\t"]).as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        assert_eq!(tracestate(&[""]), None);
        assert_eq!(tracestate(&[" , \t,"]), None);
        assert_eq!(tracestate(&[]), None);
        // A value keeps its leading spaces; trailing ones are whitespace.
        assert_eq!(tracestate(&["acme=  x y  "]).as_deref(), Some("acme=  x y"));
    }

    #[test]
    fn tracestate_lines_are_combined_in_order() {
        assert_eq!(
            tracestate(&["acme=1,rojo=2", "congo=3", "zeta=4 , umbra=5"]).as_deref(),
            Some("acme=1,rojo=2,congo=3,zeta=4,umbra=5")
        );
        // Empty lines anywhere are harmless.
        assert_eq!(
            tracestate(&["", "acme=1", " ", "rojo=2", ""]).as_deref(),
            Some("acme=1,rojo=2")
        );
        // The limit is on the combined list: 32 members over three lines pass, 33 do not.
        let member = |i: usize| format!("m{i:02}={i}");
        let line = |r: std::ops::Range<usize>| r.map(member).collect::<Vec<_>>().join(",");
        let (a, b, c) = (line(0..15), line(15..30), line(30..32));
        let combined = tracestate(&[&a, &b, &c]).unwrap();
        assert_eq!(combined.split(',').count(), 32);
        assert!(
            combined.starts_with("m00=0,m01=1,") && combined.ends_with(",m31=31"),
            "{combined}"
        );
        let c33 = line(30..33);
        assert_eq!(tracestate(&[&a, &b, &c33]), None, "33 members are refused whole");
        // A bad member on any line drops the whole list.
        assert_eq!(tracestate(&["acme=1", "Rojo=2"]), None);
    }

    #[test]
    fn tracestate_duplicated_keys_keep_the_first_member() {
        assert_eq!(tracestate(&["acme=1,acme=1"]).as_deref(), Some("acme=1"));
        assert_eq!(
            tracestate(&["acme=new,rojo=2,acme=old"]).as_deref(),
            Some("acme=new,rojo=2")
        );
        assert_eq!(
            tracestate(&["acme=new", "rojo=2", "acme=old"]).as_deref(),
            Some("acme=new,rojo=2")
        );
        // The 32-member limit counts members as received, duplicates included.
        let same = vec!["acme=1"; 33];
        assert_eq!(tracestate(&same), None);
    }

    #[test]
    fn tracestate_keys_follow_the_level_2_grammar() {
        // `@` may appear anywhere after the first character; a key may start with a digit.
        for key in [
            "acme@",
            "acme@@vendor",
            "t1@t2@t3",
            "7vendor",
            "0@x",
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/@",
        ] {
            let header = format!("{key}=v,rojo=2");
            assert_eq!(tracestate(&[&header]).as_deref(), Some(header.as_str()), "{key:?}");
        }
        // Up to 256 characters in all, however the `@`s split it (Level 1
        // capped the tenant id at 241 and the system id at 14).
        for key in [
            "k".repeat(256),
            format!("{}@{}", "t".repeat(250), "s".repeat(5)),
            format!("x@{}", "s".repeat(200)),
        ] {
            assert!(key.len() <= 256);
            let header = format!("rojo=1,{key}=v");
            assert_eq!(tracestate(&[&header]).as_deref(), Some(header.as_str()), "{key:?}");
        }
        // A bad key drops the whole list, valid members beside it included.
        for bad in [
            "@acme".to_owned(),
            "Acme".to_owned(),
            "ac me".to_owned(),
            "acme.corp".to_owned(),
            "_acme".to_owned(),
            "acme\u{e9}".to_owned(),
            "k".repeat(257),
            format!("{}@s", "t".repeat(255)),
            String::new(),
        ] {
            let header = format!("rojo=1,{bad}=v,congo=2");
            assert_eq!(tracestate(&[&header]), None, "{bad:?}");
        }
    }

    #[test]
    fn tracestate_values_are_printable_ascii_without_comma_or_equals() {
        let printable: String = (0x20u8..=0x7e)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect();
        let header = format!("acme={printable}");
        assert_eq!(tracestate(&[&header]).as_deref(), Some(header.as_str()));
        let longest = format!("acme={}", "v".repeat(256));
        assert_eq!(tracestate(&[&longest]).as_deref(), Some(longest.as_str()));
        // A bad value drops the whole list, valid members beside it included.
        for bad in [
            "acme=,rojo=2",
            "rojo=2,acme",
            "rojo=2,acme=a=b",
            "rojo=2,acme=tab\tinside",
            "rojo=2,acme=caf\u{e9}",
        ] {
            assert_eq!(tracestate(&[bad]), None, "{bad:?}");
        }
        let too_long = format!("rojo=2,acme={}", "v".repeat(257));
        assert_eq!(tracestate(&[&too_long]), None);
        // A line that is not text (an obs-text byte) drops the list too.
        assert_eq!(
            combine_tracestate([b"rojo=2".as_slice(), b"acme=\xff".as_slice()]),
            None
        );
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

    #[test]
    fn cloud_trace_context_converts() {
        // The documentation's example form, `TRACE_ID/SPAN_ID;o=TRACE_TRUE`.
        let c = parse_cloud_trace_context("105445aa7843bc8bf206b12000100000/1;o=1").unwrap();
        assert_eq!(c.trace_id, "105445aa7843bc8bf206b12000100000");
        assert_eq!(c.span_id, "0000000000000001");
        assert!(c.sampled);
        // The span id is decimal: 12345678901234567890 is 0xab54a98ceb1f0ad2.
        let c = parse_cloud_trace_context("4BF92F3577B34DA6A3CE929D0E0E4736/12345678901234567890;o=0").unwrap();
        assert_eq!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id, "ab54a98ceb1f0ad2");
        assert!(!c.sampled);
        // `;o=` is optional (absent: not sampled); u64::MAX is the largest span id; other option bits are ignored.
        let c = parse_cloud_trace_context("4bf92f3577b34da6a3ce929d0e0e4736/18446744073709551615").unwrap();
        assert_eq!(c.span_id, "ffffffffffffffff");
        assert!(!c.sampled);
        assert!(
            parse_cloud_trace_context("4bf92f3577b34da6a3ce929d0e0e4736/7;o=3")
                .unwrap()
                .sampled
        );
        assert!(
            !parse_cloud_trace_context("4bf92f3577b34da6a3ce929d0e0e4736/7;o=2")
                .unwrap()
                .sampled
        );
        // Spaces and tabs around the value are optional whitespace.
        assert_eq!(
            parse_cloud_trace_context(" \t4bf92f3577b34da6a3ce929d0e0e4736/7;o=1\t "),
            parse_cloud_trace_context("4bf92f3577b34da6a3ce929d0e0e4736/7;o=1")
        );
    }

    #[test]
    fn hostile_cloud_trace_contexts_are_refused() {
        for bad in [
            "",
            "garbage",
            // missing slash, missing or empty span id
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "4bf92f3577b34da6a3ce929d0e0e4736;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/",
            "4bf92f3577b34da6a3ce929d0e0e4736/;o=1",
            // non-hex or wrong-length trace id
            "4bf92f3577b34da6a3ce929d0e0e473g/1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e473/1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e47366/1;o=1",
            "0x4bf92f3577b34da6a3ce929d0e0e47/1",
            // zero ids
            "00000000000000000000000000000000/1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/0;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/00000;o=1",
            // span id: overflow, hex, signs, not a number
            "4bf92f3577b34da6a3ce929d0e0e4736/18446744073709551616;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/99999999999999999999999;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/a1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/+1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/-1;o=1",
            // spaces inside
            "4bf92f3577b34da6a3ce929d0e0e4736 /1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/ 1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/1; o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o= 1",
            // bad options
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=",
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=x",
            "4bf92f3577b34da6a3ce929d0e0e4736/1;x=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=99999",
            // two lines combined into one value
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1, 5bf92f3577b34da6a3ce929d0e0e4736/2;o=1",
            "4bf92f3577b34da6a3ce929d0e0e4736/1/2",
        ] {
            assert_eq!(parse_cloud_trace_context(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cloud_trace_context_bridges_to_w3c_and_traceparent_wins() {
        let cloud = "105445aa7843bc8bf206b12000100000/1;o=1";
        let t = TraceContext::from_headers(headers(&[(CLOUD_TRACE_HEADER, cloud)]));
        assert_eq!(t.traceparent, "00-105445aa7843bc8bf206b12000100000-0000000000000001-01");
        assert_eq!((t.tracestate, t.xray), (None, None));
        let t = TraceContext::from_headers(headers(&[(CLOUD_TRACE_HEADER, "105445aa7843bc8bf206b12000100000/255")]));
        assert_eq!(t.traceparent, "00-105445aa7843bc8bf206b12000100000-00000000000000ff-00");
        // Cloud Run sends both: a valid traceparent wins, an invalid one falls through to the legacy header.
        let t = TraceContext::from_headers(headers(&[(CLOUD_TRACE_HEADER, cloud), ("traceparent", W3C_EXAMPLE)]));
        assert_eq!(t.traceparent, W3C_EXAMPLE);
        let t = TraceContext::from_headers(headers(&[(CLOUD_TRACE_HEADER, cloud), ("traceparent", "00-bad")]));
        assert_eq!(t.traceparent, "00-105445aa7843bc8bf206b12000100000-0000000000000001-01");
        // Repeated lines are refused (even identical ones), like a repeated traceparent: a new root.
        for pair in [[cloud, cloud], [cloud, "5bf92f3577b34da6a3ce929d0e0e4736/2;o=1"]] {
            let t =
                TraceContext::from_headers(headers(&[(CLOUD_TRACE_HEADER, pair[0]), (CLOUD_TRACE_HEADER, pair[1])]));
            let tp = parse_traceparent(&t.traceparent).expect("a new valid traceparent");
            assert!(!pair.iter().any(|c| c.starts_with(tp.trace_id)), "{tp:?}");
        }
        // A hostile value never fails: a new valid root.
        let t = TraceContext::from_headers(headers(&[(
            CLOUD_TRACE_HEADER,
            "105445aa7843bc8bf206b12000100000/18446744073709551616",
        )]));
        assert!(parse_traceparent(&t.traceparent).is_some());
        assert!(!t.traceparent.contains("105445aa7843bc8bf206b12000100000"));
    }

    /// A request's header lines, as an adapter hands them over: every line
    /// of a name, in order.
    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Vec<&'a [u8]> {
        move |name| {
            pairs
                .iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes())
                .collect()
        }
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

    #[test]
    fn a_repeated_traceparent_restarts_the_trace_without_tracestate() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for pair in [[W3C_EXAMPLE, other], [W3C_EXAMPLE, W3C_EXAMPLE]] {
            let t = TraceContext::from_headers(headers(&[
                ("traceparent", pair[0]),
                ("tracestate", "rojo=1"),
                ("traceparent", pair[1]),
            ]));
            let tp = parse_traceparent(&t.traceparent).expect("a new valid traceparent");
            assert!(
                !W3C_EXAMPLE.contains(tp.trace_id) && !other.contains(tp.trace_id),
                "{tp:?}"
            );
            assert_eq!(
                t.tracestate, None,
                "tracestate is not read without a usable traceparent"
            );
        }
        // Like an invalid one, it falls through to the other dialects.
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let t = TraceContext::from_headers(headers(&[
            ("traceparent", W3C_EXAMPLE),
            ("traceparent", other),
            ("x-amzn-trace-id", xray),
        ]));
        assert_eq!(t.traceparent, "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01");
        // A second line that is not text still counts.
        let t = TraceContext::from_headers(|name: &str| match name {
            TRACEPARENT => vec![W3C_EXAMPLE.as_bytes(), b"\xff".as_slice()],
            _ => vec![],
        });
        assert_ne!(t.traceparent, W3C_EXAMPLE);
    }

    #[test]
    fn tracestate_lines_reach_the_context_combined() {
        let t = TraceContext::from_headers(headers(&[
            ("tracestate", "acme=1,rojo=2"),
            ("traceparent", W3C_EXAMPLE),
            ("tracestate", "congo=3,acme=4"),
            ("tracestate", "vendor@=5"),
        ]));
        assert_eq!(t.traceparent, W3C_EXAMPLE);
        assert_eq!(t.tracestate.as_deref(), Some("acme=1,rojo=2,congo=3,vendor@=5"));
    }
}
