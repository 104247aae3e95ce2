//! `invocation`: the `nimbus:function/invocation` interface — request id,
//! function name, deadline and trace context of the running invocation.

use super::{Boot, Capability, Grants, View, ViewFn, ViewOf};
use crate::bindings::{invocation as wit, types};
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use std::sync::Arc;
use wasmtime::component::Linker;

/// The `invocation` capability. Its state is the [`Invocation`] itself.
pub struct InvocationCap;

/// The `invocation` capability's context: nothing of its own; it reads the invocation.
pub struct InvocationCtx;

impl Capability for InvocationCap {
    const NAME: &'static str = "invocation";
    type Shared = ();
    type Ctx = InvocationCtx;

    fn link(linker: &mut Linker<HostState>, view: ViewFn<InvocationCtx>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, ViewOf<InvocationCtx>>(linker, view)
    }

    async fn configure(_spec: &FunctionSpec, _boot: &Boot) -> Result<(), BootError> {
        Ok(())
    }

    fn prepare(_shared: &(), _inv: &Arc<Invocation>, _grants: &mut Grants) -> InvocationCtx {
        InvocationCtx
    }
}

impl types::Host for View<'_, InvocationCtx> {}

impl wit::Host for View<'_, InvocationCtx> {
    fn request_id(&mut self) -> String {
        self.inv.request_id.to_string()
    }

    fn function_name(&mut self) -> String {
        self.inv.function.to_string()
    }

    fn deadline_ms(&mut self) -> u64 {
        self.inv.deadline_unix_ms
    }

    fn remaining_ms(&mut self) -> u64 {
        // The guest's view uses wall-clock time so it agrees with deadline-ms.
        self.inv
            .deadline_unix_ms
            .saturating_sub(crate::invocation::unix_ms_now())
    }

    fn trace(&mut self) -> types::TraceContext {
        types::TraceContext {
            traceparent: self.inv.trace.traceparent.clone(),
            tracestate: self.inv.trace.tracestate.clone(),
            xray: self.inv.trace.xray.clone(),
        }
    }
}
