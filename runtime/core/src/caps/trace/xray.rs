//! AWS X-Ray trace headers, bridged to W3C ([`super::TraceContext::from_xray`]).
//!
//! Platforms speak different trace dialects: Lambda hands the runtime an
//! AWS X-Ray header (`Lambda-Runtime-Trace-Id`, the value Lambda's own
//! runtimes export as `_X_AMZN_TRACE_ID`), gateways and clients send W3C
//! `traceparent`. Adapters convert at the edge with the functions here, so
//! the guest always reads W3C from `invocation.trace` — and, where the
//! platform sent X-Ray, also finds the untouched X-Ray header in its own
//! environment as `_X_AMZN_TRACE_ID`, as AWS SDKs inside the guest expect.
//! The value lives in the invocation, never in a process-wide variable, so
//! concurrent invocations cannot see each other's ids.

#[cfg(test)]
use super::{TraceContext, context::is_valid_traceparent};

/// The guest environment variable that carries the X-Ray header, as on Lambda.
pub const XRAY_ENV: &str = "_X_AMZN_TRACE_ID";

/// The parts of an X-Ray trace header that map to W3C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrayHeader<'a> {
    /// `1-{8 hex time}-{24 hex}`.
    pub root: &'a str,
    /// 16 hex digits: the caller's segment id.
    pub parent: Option<&'a str>,
    /// `Some(true)` for `Sampled=1`, `Some(false)` for `0`, `None` for `?` or absent.
    pub sampled: Option<bool>,
}

/// Parses `Root=…;Parent=…;Sampled=…` (any order, extra fields such as
/// `Lineage=` or `Self=` ignored). `None` if there is no well-formed `Root`.
pub fn parse_xray(header: &str) -> Option<XrayHeader<'_>> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = None;
    for field in header.split(';') {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            k if k.eq_ignore_ascii_case("Root") => root = Some(value),
            k if k.eq_ignore_ascii_case("Parent") => parent = Some(value),
            k if k.eq_ignore_ascii_case("Sampled") => {
                sampled = match value {
                    "1" => Some(true),
                    "0" => Some(false),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    let root = root.filter(|r| xray_root_hex(r).is_some())?;
    let parent = parent.filter(|p| p.len() == 16 && is_hex(p) && !all_zero(p));
    Some(XrayHeader { root, parent, sampled })
}

/// The 32 hex digits of a W3C trace id inside an X-Ray root (`1-{8}-{24}`).
pub(super) fn xray_root_hex(root: &str) -> Option<(&str, &str)> {
    let rest = root.strip_prefix("1-")?;
    let (time, id) = rest.split_once('-')?;
    (time.len() == 8 && id.len() == 24 && is_hex(time) && is_hex(id) && !(all_zero(time) && all_zero(id)))
        .then_some((time, id))
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn all_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_header_converts_to_w3c() {
        let h = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let t = TraceContext::from_xray(h);
        assert_eq!(t.traceparent, "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01");
        assert_eq!(t.xray.as_deref(), Some(h));
        assert_eq!(t.trace_id(), "5759e988bd862e3fe1be46a994272793");
    }

    #[test]
    fn lineage_order_case_and_spaces_do_not_matter() {
        let h = " Sampled=0 ; Lineage=a87bd80c:1|68fd508a:5 ;parent=53995C3F42CD8AD8; Root=1-5759E988-BD862E3FE1BE46A994272793";
        let t = TraceContext::from_xray(h);
        assert_eq!(t.traceparent, "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00");
    }

    #[test]
    fn missing_parent_gets_a_fresh_span_and_unknown_sampling_is_not_sampled() {
        let t = TraceContext::from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?");
        assert!(t.traceparent.starts_with("00-5759e988bd862e3fe1be46a994272793-"));
        assert!(t.traceparent.ends_with("-00"));
        assert!(is_valid_traceparent(&t.traceparent), "{}", t.traceparent);
    }

    #[test]
    fn malformed_headers_start_a_new_trace_but_are_kept() {
        for bad in [
            "garbage",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
            "Root=1-zzzzzzzz-bd862e3fe1be46a994272793",
            "Parent=53995c3f42cd8ad8;Sampled=1",
        ] {
            let t = TraceContext::from_xray(bad);
            assert!(is_valid_traceparent(&t.traceparent), "{bad}: {}", t.traceparent);
            assert_eq!(t.xray.as_deref(), Some(bad));
        }
        // A bad Parent keeps the root but not the parent.
        let t = TraceContext::from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz;Sampled=1");
        assert!(t.traceparent.starts_with("00-5759e988bd862e3fe1be46a994272793-"));
        assert!(!t.traceparent.contains("xyz"));
        assert!(TraceContext::from_xray("").xray.is_none());
    }
}
