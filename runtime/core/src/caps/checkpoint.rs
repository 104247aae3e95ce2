//! `checkpoint`: durable state for long tasks (`nimbus:function/checkpoint`).
//!
//! The per-invocation context holds the task's current [`Run`] (a grant of the
//! task invocation, taken by `prepare`; handed back by [`CheckpointCtx::take`] when the guest
//! returns). `save` and `set-progress` go through the run, so every save is
//! committed with the protocol's fencing before the guest sees `ok`.
//! `should-yield` is a clock comparison against the instant prepared from
//! the deadline and the function's `task.yield_margin`: no I/O.
//!
//! Outside a task invocation there is no run: `resumed` is `none` and the
//! writes fail with `failed`, so an HTTP or event function that imports the
//! interface gets an answer, not a trap.

use super::{Boot, Capability, Grants, View, ViewFn, ViewOf};
use crate::bindings::checkpoint as wit;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::{FunctionSpec, TaskSpec};
use crate::state::HostState;
use nimbus_checkpoint::{Run, SaveError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Linker;

/// The `checkpoint` capability.
pub struct Checkpoint;

/// One invocation's checkpoint context.
pub struct CheckpointCtx {
    /// The task run this invocation serves; `None` outside tasks.
    run: Option<Run>,
    /// When `should-yield` turns true: the deadline minus the yield margin.
    yield_at: Instant,
    /// Checkpoints this invocation committed.
    saves: u64,
    /// A save was fenced: a newer run owns the task and this run must write nothing more.
    fenced: bool,
}

impl Capability for Checkpoint {
    const NAME: &'static str = "checkpoint";
    /// The function's yield margin.
    type Shared = Duration;
    type Ctx = CheckpointCtx;

    fn link(linker: &mut Linker<HostState>, view: ViewFn<CheckpointCtx>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, ViewOf<CheckpointCtx>>(linker, view)
    }

    async fn configure(spec: &FunctionSpec, _boot: &Boot) -> Result<Duration, BootError> {
        let task = spec.task.unwrap_or_else(|| TaskSpec::defaults(spec.limits.timeout));
        Ok(task.yield_margin)
    }

    fn prepare(margin: &Duration, inv: &Arc<Invocation>, grants: &mut Grants) -> CheckpointCtx {
        CheckpointCtx {
            run: grants.run.take(),
            yield_at: inv.deadline.checked_sub(*margin).unwrap_or(inv.deadline),
            saves: 0,
            fenced: false,
        }
    }
}

/// What the guest sees when there is no task to save into.
fn no_task() -> wit::CheckpointError {
    wit::CheckpointError::Failed("not a task invocation: only task functions can checkpoint".into())
}

/// What a task invocation gets back from its checkpoint context when the guest returns.
pub(crate) struct Handback {
    /// The run (`None` only if it was never granted).
    pub run: Option<Run>,
    /// Checkpoints committed in this invocation.
    pub saves: u64,
    /// A save was fenced: a newer run owns the task.
    pub fenced: bool,
}

impl CheckpointCtx {
    /// Hands the run back, with what the guest did with it.
    pub(crate) fn take(&mut self) -> Handback {
        Handback {
            run: self.run.take(),
            saves: self.saves,
            fenced: self.fenced,
        }
    }
}

impl View<'_, CheckpointCtx> {
    /// The run, unless there is none or it was fenced.
    fn live_run(&mut self) -> Result<&mut Run, wit::CheckpointError> {
        if self.ctx.fenced {
            return Err(wit::CheckpointError::Fenced);
        }
        self.ctx.run.as_mut().ok_or_else(no_task)
    }

    /// Maps a driver error to the guest's, remembering fencing.
    fn save_error(&mut self, e: SaveError) -> wit::CheckpointError {
        match e {
            SaveError::TooLarge { limit, .. } => wit::CheckpointError::TooLarge(limit as u64),
            SaveError::Fenced { .. } => {
                self.ctx.fenced = true;
                wit::CheckpointError::Fenced
            }
            SaveError::Durable(e) => {
                tracing::warn!(app = %self.inv.app, function = %self.inv.function, request_id = %self.inv.request_id, error = %e,
                    "checkpoint: the store failed");
                wit::CheckpointError::Failed(e.to_string())
            }
        }
    }
}

impl wit::Host for View<'_, CheckpointCtx> {
    fn resumed(&mut self) -> Option<Vec<u8>> {
        self.ctx.run.as_ref()?.resumed().map(<[u8]>::to_vec)
    }

    async fn save(&mut self, state: Vec<u8>) -> wasmtime::Result<Result<(), wit::CheckpointError>> {
        let run = match self.live_run() {
            Ok(run) => run,
            Err(e) => return Ok(Err(e)),
        };
        match run.save(&state).await {
            Ok(()) => {
                self.ctx.saves += 1;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(self.save_error(e))),
        }
    }

    fn should_yield(&mut self) -> bool {
        Instant::now() >= self.ctx.yield_at
    }

    async fn set_progress(&mut self, progress: String) -> wasmtime::Result<Result<(), wit::CheckpointError>> {
        let run = match self.live_run() {
            Ok(run) => run,
            Err(e) => return Ok(Err(e)),
        };
        match run.set_progress(&progress).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(self.save_error(e))),
        }
    }
}
