//! `spans`: the `nimbus:function/tracing` interface, spans a guest records
//! inside its invocation.
//!
//! A guest span is a resource in the store's table. It gets an id of the
//! invocation's trace when created; its parent is the innermost guest span
//! still open, or the invocation span, so spans nest the way the guest's
//! code does without the guest passing contexts around. While a span is
//! open, outgoing requests are its children ([`super::outbound`]).
//!
//! With telemetry off, or a trace the caller did not sample, a span keeps
//! only its ids (no name, no attributes): creating one is a table push.
//! What one invocation may record is bounded ([`MAX_SPANS`],
//! [`MAX_ATTRIBUTES`], [`MAX_KEY`], [`MAX_TEXT`]); past a bound, spans and
//! attributes are dropped, with one warning per invocation, never the
//! invocation itself.

use super::logging::truncate as cut;
use super::{Boot, Capability};
use crate::bindings::tracing as wit;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use crate::telemetry::opentelemetry::{self, KeyValue};
use crate::telemetry::{SpanRecord, Telemetry};
use std::sync::Arc;
use std::time::SystemTime;
use wasmtime::component::{HasSelf, Linker, Resource};

/// Most spans one invocation records; later ones are not exported.
pub const MAX_SPANS: u32 = 256;
/// Most attributes one span keeps.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute key, in bytes (longer keys are cut).
pub const MAX_KEY: usize = 128;
/// Longest string kept for a name, a text value or an error, in bytes.
pub const MAX_TEXT: usize = 4096;

/// The `spans` capability.
pub struct Spans;

/// One invocation's guest spans: where they go, which are open, how many were made.
pub struct SpanState {
    telemetry: Option<Telemetry>,
    /// Ids of the guest spans still open, oldest first; the last is the
    /// parent of the next span and of outgoing requests.
    open: Vec<u64>,
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

impl Capability for Spans {
    const NAME: &'static str = "spans";
    /// Where spans are exported.
    type Shared = Option<Telemetry>;
    type State = SpanState;

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
    }

    async fn configure(_spec: &FunctionSpec, boot: &Boot) -> Result<Self::Shared, BootError> {
        Ok(boot.telemetry.clone())
    }

    fn prepare(shared: &Self::Shared, inv: &Arc<Invocation>) -> SpanState {
        SpanState {
            // An unsampled trace exports nothing: do not collect for it.
            telemetry: shared.clone().filter(|_| inv.span.sampled()),
            open: Vec::new(),
            created: 0,
            warned: false,
        }
    }
}

impl HostState {
    /// Points outgoing requests at the innermost open guest span.
    fn reparent_outbound(&mut self) {
        self.outbound.parent_span = self.spans.open.last().copied().unwrap_or(0);
    }

    /// Logs, once per invocation, that the guest went past a tracing bound.
    fn warn_bound(&mut self, what: &str) {
        if !std::mem::replace(&mut self.spans.warned, true) {
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
        if let (Some(record), Some(t)) = (record, &self.spans.telemetry) {
            t.record_internal(&inv.span, inv.trace.tracestate.as_deref(), *record);
        }
        if let Some(at) = self.spans.open.iter().rposition(|&o| o == id) {
            self.spans.open.remove(at);
            self.reparent_outbound();
        }
        Ok(())
    }
}

impl wit::Host for HostState {}

impl wit::HostSpan for HostState {
    fn new(&mut self, name: String) -> wasmtime::Result<Resource<GuestSpan>> {
        let id = crate::caps::propagate::new_span_id();
        let parent = self.spans.open.last().copied().unwrap_or(self.inv.span.span_id);
        self.spans.created = self.spans.created.saturating_add(1);
        let within = self.spans.created <= MAX_SPANS;
        if !within {
            self.warn_bound(&format!("more than {MAX_SPANS} spans in one invocation"));
        }
        let record = (within && self.spans.telemetry.is_some()).then(|| {
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
        self.spans.open.push(id);
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
