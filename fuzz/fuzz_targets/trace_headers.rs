//! Trace headers of every dialect (`caps/trace`): each `name: value` line of the input (see
//! `nimbus_fuzz::header_lines`) is given, as raw field lines by lowercase name, to
//! `TraceContext::from_headers` (the bridge every adapter calls); each value, and the whole input, to
//! `headers::parse_traceparent`, `propagate::parse_traceparent`, `headers::parse_fc_span_context`,
//! `headers::parse_cloud_trace_context`, `xray::parse_xray`, `TraceContext::from_xray` and
//! `TraceContext::from_w3c`; all the lines to `headers::combine_tracestate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_core::TraceContext;
use nimbus_core::caps::trace::{headers, propagate, xray};

fn valid(tp: &str) -> bool {
    headers::parse_traceparent(tp).is_some()
}

fn check_context(ctx: &TraceContext) {
    assert!(valid(&ctx.traceparent), "{ctx:?}");
    if let Some(state) = &ctx.tracestate {
        // A combined tracestate is itself a valid one, and combining it again changes nothing.
        assert_eq!(headers::combine_tracestate([state.as_bytes()]).as_deref(), Some(state.as_str()));
    }
}

fn value(v: &str) {
    if let Some(tp) = headers::parse_traceparent(v) {
        let again = tp.to_header();
        assert_eq!(headers::parse_traceparent(&again), Some(tp), "{v:?} → {again:?}");
        let (trace, parent, flags) = propagate::parse_traceparent(v).expect("both parsers agree");
        assert!(trace != 0 && parent != 0);
        assert_eq!(flags, tp.flags);
    } else {
        assert!(propagate::parse_traceparent(v).is_none(), "both parsers agree on {v:?}");
    }
    if let Some(fc) = headers::parse_fc_span_context(v) {
        assert!(valid(&format!("00-{}-{}-01", fc.trace_id, fc.span_id)), "{v:?} → {fc:?}");
    }
    if let Some(c) = headers::parse_cloud_trace_context(v) {
        assert!(valid(&format!("00-{}-{}-01", c.trace_id, c.span_id)), "{v:?} → {c:?}");
    }
    let _ = xray::parse_xray(v);
    let ctx = TraceContext::from_xray(v);
    check_context(&ctx);
    let _ = ctx.trace_id();
    check_context(&TraceContext::from_w3c(Some(v), Some(v)));
}

fuzz_target!(|data: &[u8]| {
    let lines = nimbus_fuzz::header_lines(data);
    let lower: Vec<(String, &[u8])> =
        lines.iter().map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), *v)).collect();
    let ctx = TraceContext::from_headers(|name| {
        lower.iter().filter(move |(n, _)| n == name).map(|(_, v)| *v).collect::<Vec<&[u8]>>()
    });
    check_context(&ctx);

    let _ = headers::combine_tracestate(lines.iter().map(|(_, v)| *v));
    for (_, v) in &lines {
        if let Ok(v) = std::str::from_utf8(v) {
            value(v);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        value(text);
    }
});
