//! `logging`: the standard `wasi:logging` interface. Each call becomes one
//! JSON log record — level, message, function, request id, trace id and
//! the guest's context string — on the same sink as guest stdout/stderr,
//! so a guest logs with levels without formatting JSON itself.

use super::{Boot, Capability, Grants, View, ViewFn, ViewOf};
use crate::bindings::logging as wit;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::logs::{LogSink, MAX_LINE, format_record};
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use std::sync::Arc;
use wasmtime::component::Linker;

/// The `logging` capability. Its state is the store's log sink and invocation.
pub struct Logging;

/// Where `wasi:logging` records go (stdout and stderr have their own copy, in the WASI context).
pub struct LoggingCtx(LogSink);

impl Capability for Logging {
    const NAME: &'static str = "logging";
    type Shared = LogSink;
    type Ctx = LoggingCtx;

    fn link(linker: &mut Linker<HostState>, view: ViewFn<LoggingCtx>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, ViewOf<LoggingCtx>>(linker, view)
    }

    async fn configure(_spec: &FunctionSpec, boot: &Boot) -> Result<LogSink, BootError> {
        Ok(boot.log_sink.clone())
    }

    fn prepare(sink: &LogSink, _inv: &Arc<Invocation>, _grants: &mut Grants) -> LoggingCtx {
        LoggingCtx(sink.clone())
    }
}

/// The record's `level` field: the names CloudWatch and SLS filter on.
fn level_name(level: wit::Level) -> &'static str {
    match level {
        wit::Level::Trace => "TRACE",
        wit::Level::Debug => "DEBUG",
        wit::Level::Info => "INFO",
        wit::Level::Warn => "WARN",
        wit::Level::Error => "ERROR",
        wit::Level::Critical => "CRITICAL",
    }
}

impl wit::Host for View<'_, LoggingCtx> {
    fn log(&mut self, level: wit::Level, context: String, message: String) {
        // One runaway message cannot hold unbounded host memory in a record.
        let message = truncate(&message, MAX_LINE);
        let mut extra = vec![("stream", "sdk".into())];
        if !context.is_empty() {
            extra.push(("context", truncate(&context, 256).into()));
        }
        let line = format_record(level_name(level), message, Some(self.inv), &extra);
        self.ctx.0.write_line(&line);
        if let Some(tap) = &self.inv.log_tap {
            tap.record(message);
        }
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("hi", 10), "hi");
    }
}
