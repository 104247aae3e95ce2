//! The running invocation: ids, deadline and trace context.
//!
//! ```no_run
//! let ctx = nimbus_sdk::invocation::current();
//! println!("request {} has {:?} left", ctx.request_id, nimbus_sdk::invocation::remaining());
//! ```

use crate::wit::nimbus::function::invocation as wit;
use std::time::Duration;

/// What the host tells a guest about the current invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The platform's request id; log lines carry the same id.
    pub request_id: String,
    /// The function's name in `nimbus.toml`.
    pub function_name: String,
    /// The deadline in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// W3C `traceparent` of this invocation.
    pub traceparent: String,
    /// W3C `tracestate`, if the caller sent one.
    pub tracestate: Option<String>,
    /// The AWS X-Ray trace header, when the platform sent one.
    pub xray: Option<String>,
}

/// Reads the whole invocation context.
pub fn current() -> Context {
    let trace = wit::trace();
    Context {
        request_id: wit::request_id(),
        function_name: wit::function_name(),
        deadline_ms: wit::deadline_ms(),
        traceparent: trace.traceparent,
        tracestate: trace.tracestate,
        xray: trace.xray,
    }
}

/// Time left before the host stops this invocation.
pub fn remaining() -> Duration {
    Duration::from_millis(wit::remaining_ms())
}

/// The AWS X-Ray trace header of this invocation (`Root=…;Parent=…;Sampled=…`),
/// when the platform sent one (Lambda does); [`current`]`().traceparent` is
/// the same trace in W3C form. AWS SDKs read the same value from the
/// `_X_AMZN_TRACE_ID` environment variable, which the host sets for fresh
/// instances only: a warm (`reuse`) instance reads its environment once, so
/// there the variable is absent and this function is the way to get it.
pub fn xray_trace_id() -> Option<String> {
    wit::trace().xray
}

/// The request id alone (cheaper than [`current`]).
pub fn request_id() -> String {
    wit::request_id()
}
