//! `trace`: the trace capability. It owns everything about an invocation's place in its trace:
//!
//! - the trace context, whatever dialect the platform spoke ([`TraceContext`], `context.rs`; W3C and
//!   Function Compute headers in `headers.rs`, AWS X-Ray in `xray.rs`);
//! - the invocation's span ids and the headers put on outgoing requests (`propagate.rs`);
//! - the `nimbus:function/tracing` interface: spans a guest records inside its invocation (this file).
//!
//! A guest span is a resource in the store's table. It gets an id of the
//! invocation's trace when created; its parent is the innermost guest span
//! still open, or the invocation span, so spans nest the way the guest's
//! code does without the guest passing contexts around. While a span is
//! open, outgoing requests are its children: the innermost open span is kept
//! in the invocation's [`SpanCursor`], which `outbound` reads.
//!
//! With telemetry off, or a trace the caller did not sample, a span keeps
//! only its ids (no name, no attributes): creating one is a table push.
//! What one invocation may record is bounded ([`MAX_SPANS`],
//! [`MAX_ATTRIBUTES`], [`MAX_KEY`], [`MAX_TEXT`]); past a bound, spans and
//! attributes are dropped, with one warning per invocation, never the
//! invocation itself.

mod context;
pub mod headers;
pub mod propagate;
pub mod xray;

pub use context::TraceContext;
#[cfg(test)]
pub(crate) use context::is_valid_traceparent;
pub use propagate::{SpanCursor, SpanIds};
pub use xray::XRAY_ENV;

use super::logging::truncate as cut;
use super::{Boot, Capability, Grants, View, ViewFn, ViewOf};
use crate::bindings::tracing as wit;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use crate::telemetry::opentelemetry::{self, KeyValue};
use crate::telemetry::{SpanRecord, Telemetry};
use std::sync::Arc;
use std::time::SystemTime;
use wasmtime::component::{Linker, Resource};

/// Most spans one invocation records; later ones are not exported.
pub const MAX_SPANS: u32 = 256;
/// Most attributes one span keeps.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute key, in bytes (longer keys are cut).
pub const MAX_KEY: usize = 128;
/// Longest string kept for a name, a text value or an error, in bytes.
pub const MAX_TEXT: usize = 4096;

/// The `trace` capability.
pub struct Trace;

/// One invocation's guest spans: where they go, which are open, how many were made.
pub struct TraceCtx {
    telemetry: Option<Telemetry>,
    /// Ids of the guest spans still open, oldest first; the last is the
    /// parent of the next span and of outgoing requests.
    open: Vec<u64>,
    /// The innermost open span, as `outbound` sees it.
    cursor: SpanCursor,
    /// Spans created in this invocation (recorded or not).
    created: u32,
    /// Whether the guest was told (in the log) that a bound was hit.
    warned: bool,
}

/// A span the guest holds: the resource behind `tracing.span`.
pub struct GuestSpan {
    id: u64,
    /// The invocation it belongs to (a warm instance may keep it past that).
    inv: Arc<Invocation>,
    /// `Some` while it will be exported: the name, start, attributes and error.
    record: Option<Box<SpanRecord>>,
    ended: bool,
}

impl Capability for Trace {
    const NAME: &'static str = "trace";
    /// Where spans are exported.
    type Shared = Option<Telemetry>;
    type Ctx = TraceCtx;

    fn link(linker: &mut Linker<HostState>, view: ViewFn<TraceCtx>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, ViewOf<TraceCtx>>(linker, view)
    }

    async fn configure(_spec: &FunctionSpec, boot: &Boot) -> Result<Self::Shared, BootError> {
        Ok(boot.telemetry.clone())
    }

    fn prepare(shared: &Self::Shared, inv: &Arc<Invocation>, grants: &mut Grants) -> TraceCtx {
        TraceCtx {
            // An unsampled trace exports nothing: do not collect for it.
            telemetry: shared.clone().filter(|_| inv.span.sampled()),
            open: Vec::new(),
            cursor: grants.span_cursor.clone(),
            created: 0,
            warned: false,
        }
    }
}

impl View<'_, TraceCtx> {
    /// Points outgoing requests at the innermost open guest span.
    fn reparent_outbound(&mut self) {
        self.ctx.cursor.set(self.ctx.open.last().copied().unwrap_or(0));
    }

    /// Logs, once per invocation, that the guest went past a tracing bound.
    fn warn_bound(&mut self, what: &str) {
        if !std::mem::replace(&mut self.ctx.warned, true) {
            tracing::warn!(app = %self.inv.app, function = %self.inv.function, request_id = %self.inv.request_id,
                "guest tracing: {what}; the excess is dropped (further drops are not logged)");
        }
    }

    fn span(&mut self, span: &Resource<GuestSpan>) -> wasmtime::Result<&mut GuestSpan> {
        Ok(self.table.get_mut(span)?)
    }

    /// Ends a span: exports it (once) and closes it for nesting.
    fn end_span(&mut self, span: &Resource<GuestSpan>) -> wasmtime::Result<()> {
        let s = self.span(span)?;
        if std::mem::replace(&mut s.ended, true) {
            return Ok(());
        }
        let (id, inv, record) = (s.id, s.inv.clone(), s.record.take());
        if let (Some(record), Some(t)) = (record, &self.ctx.telemetry) {
            t.record_internal(&inv.span, inv.trace.tracestate.as_deref(), *record);
        }
        if let Some(at) = self.ctx.open.iter().rposition(|&o| o == id) {
            self.ctx.open.remove(at);
            self.reparent_outbound();
        }
        Ok(())
    }
}

impl wit::Host for View<'_, TraceCtx> {}

impl wit::HostSpan for View<'_, TraceCtx> {
    fn new(&mut self, name: String) -> wasmtime::Result<Resource<GuestSpan>> {
        let id = propagate::new_span_id();
        let parent = self.ctx.open.last().copied().unwrap_or(self.inv.span.span_id);
        self.ctx.created = self.ctx.created.saturating_add(1);
        let within = self.ctx.created <= MAX_SPANS;
        if !within {
            self.warn_bound(&format!("more than {MAX_SPANS} spans in one invocation"));
        }
        let record = (within && self.ctx.telemetry.is_some()).then(|| {
            Box::new(SpanRecord {
                span_id: id,
                parent_id: parent,
                name: cut(&name, MAX_TEXT).to_owned().into(),
                started: SystemTime::now(),
                attributes: Vec::new(),
                error: None,
            })
        });
        let span = self.table.push(GuestSpan {
            id,
            inv: self.inv.clone(),
            record,
            ended: false,
        })?;
        self.ctx.open.push(id);
        self.reparent_outbound();
        Ok(span)
    }

    fn set_attribute(
        &mut self,
        span: Resource<GuestSpan>,
        key: String,
        value: wit::AttributeValue,
    ) -> wasmtime::Result<()> {
        let Some(record) = self.span(&span)?.record.as_mut() else {
            return Ok(());
        };
        let key = cut(&key, MAX_KEY);
        let value = match value {
            wit::AttributeValue::Text(s) => opentelemetry::Value::from(cut(&s, MAX_TEXT).to_owned()),
            wit::AttributeValue::Flag(b) => b.into(),
            wit::AttributeValue::Integer(i) => i.into(),
            wit::AttributeValue::Float(f) => f.into(),
        };
        if let Some(kv) = record.attributes.iter_mut().find(|kv| kv.key.as_str() == key) {
            kv.value = value;
        } else if record.attributes.len() < MAX_ATTRIBUTES {
            record.attributes.push(KeyValue::new(key.to_owned(), value));
        } else {
            self.warn_bound(&format!("more than {MAX_ATTRIBUTES} attributes on one span"));
        }
        Ok(())
    }

    fn set_error(&mut self, span: Resource<GuestSpan>, message: String) -> wasmtime::Result<()> {
        if let Some(record) = self.span(&span)?.record.as_mut() {
            record.error = Some(("guest", cut(&message, MAX_TEXT).to_owned()));
        }
        Ok(())
    }

    fn traceparent(&mut self, span: Resource<GuestSpan>) -> wasmtime::Result<String> {
        let s = self.span(&span)?;
        Ok(s.inv.span.traceparent_for(s.id))
    }

    fn end(&mut self, span: Resource<GuestSpan>) -> wasmtime::Result<()> {
        self.end_span(&span)
    }

    fn drop(&mut self, span: Resource<GuestSpan>) -> wasmtime::Result<()> {
        self.end_span(&span)?;
        self.table.delete(span)?;
        Ok(())
    }
}
