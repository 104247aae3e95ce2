//! Durable-task runs: a [`Payload::Task`](crate::Payload::Task) through the shared invocation path, whose
//! kind-specific step hands the run to the `checkpoint` capability and, once the guest call is over,
//! commits how the run ended. [`Host::run_task`] is the adapters' entry point.

use super::invoke::{Finish, Step};
use super::{Function, Host};
use crate::bindings::{TaskFunction, TaskOutcome, types};
use crate::caps::Grants;
use crate::error::InvokeError;
use crate::invocation::{DeadlineCause, Invocation, Outcome, Payload, RunEnd, TraceContext};
use crate::manifest::Limits;
use crate::state::HostState;
use nimbus_checkpoint::Run;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Store;

/// What the platform knows about the invocation a task run happens in; all optional.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// Time until the deadline of the platform invocation the run happens in (less a margin), and what set
    /// that deadline: when it is sooner than the function's `timeout`, the run's deadline, `should-yield` and a
    /// deadline error follow it.
    pub time_left: Option<(Duration, DeadlineCause)>,
    /// The platform's trace (e.g. Lambda's X-Ray header); else the run starts a new trace.
    pub trace: Option<TraceContext>,
    /// The platform's request id; else `{task id}-{seq}`.
    pub request_id: Option<String>,
}

/// Why [`Host::run_task`] could not run or end a task run.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The invocation could not start (e.g. no free instance before the queue timeout, or the function is
    /// not a task function); the run was dropped and resumes when its message is delivered again.
    #[error("task invocation could not start: {0}")]
    Invoke(#[source] InvokeError),
    /// The store failed ending the run; the message is delivered again after its visibility timeout.
    #[error("task store: {0}")]
    Durable(#[from] nimbus_checkpoint::DurableError),
}

impl Host {
    /// Runs one invocation of a task function for `run` (from [`nimbus_checkpoint::Durable::begin`]) and ends
    /// the run in the store according to what happened:
    ///
    /// - the guest returned `done(output)`: [`Run::done`](nimbus_checkpoint::Run::done);
    /// - it returned `yielded`: [`Run::yielded`](nimbus_checkpoint::Run::yielded), the continuation is queued;
    /// - it returned an error value, trapped or ran out of memory:
    ///   [`Run::failed`](nimbus_checkpoint::Run::failed), retried from the last commit until
    ///   `task.max_attempts`, then the task is failed;
    /// - it hit its deadline (it ignored `should-yield`): if it committed a checkpoint in this run, that is
    ///   progress and the run ends like a yield (the next run resumes from the commit, attempts are not
    ///   counted); if it committed nothing it counts as a failed attempt, so a task that can never reach a
    ///   checkpoint within one timeout ends failed instead of looping forever;
    /// - a save was fenced (a newer run took the task over): nothing more is written, the newer run owns it.
    ///
    /// This is what a platform adapter calls with the run of each continuation message; `cx` carries the
    /// platform's deadline and trace when it has them (Lambda), so `should-yield` and the epoch deadline
    /// fire before the platform kills the environment. It is [`Host::invoke`] with a
    /// [`Payload::Task`](crate::Payload::Task): admission, metrics and spans are those of every invocation.
    pub async fn run_task(&self, f: &Function, run: Run, cx: RunContext) -> Result<RunEnd, TaskError> {
        let request_id = cx
            .request_id
            .unwrap_or_else(|| format!("{}-{}", run.task_id(), run.seq()));
        let trace = cx.trace.unwrap_or_else(TraceContext::new_root);
        let inv = match cx.time_left {
            // The run ends with the platform invocation it happens in, and a deadline error names that one's cause.
            Some((left, cause)) if left < f.limits.timeout => {
                let mut inv = Invocation::new(self.app.clone(), f.name.clone(), left, Some(request_id), trace);
                inv.deadline_cause = cause;
                inv
            }
            _ => Invocation::new(
                self.app.clone(),
                f.name.clone(),
                f.limits.timeout,
                Some(request_id),
                trace,
            ),
        };
        // No free instance in time is like a crash: the message is delivered again once the lease and its
        // visibility pass.
        match self.invoke(f, inv, Payload::Task(run)).await {
            Ok(Outcome::Task(end)) => Ok(end),
            Ok(other) => Err(TaskError::Invoke(InvokeError::internal(format!(
                "a task invocation produced {other:?}"
            )))),
            Err(InvokeError::Store(e)) => Err(TaskError::Durable(e)),
            Err(e) => Err(TaskError::Invoke(e)),
        }
    }
}

/// A task run's step: the run goes into the `checkpoint` capability for the call and comes back out with
/// what the guest committed; [`Step::finish`] ends the run in the store.
pub(super) struct TaskStep {
    /// The app's name, for its log lines.
    app: Arc<str>,
    run: Option<Run>,
    input: Vec<u8>,
    /// Checkpoints the guest committed in this run.
    saves: u64,
    /// A save was fenced: a newer run owns the task.
    fenced: bool,
}

impl TaskStep {
    pub(super) fn new(run: Run, app: Arc<str>) -> TaskStep {
        TaskStep {
            app,
            input: run.input().to_vec(),
            run: Some(run),
            saves: 0,
            fenced: false,
        }
    }
}

impl Step<TaskFunction> for TaskStep {
    type Value = TaskOutcome;

    /// A run's input was checked when the task was started (and checkpoints by their own quota).
    fn check_input(&self, _limits: &Limits) -> Result<(), InvokeError> {
        Ok(())
    }

    fn grants(&mut self) -> Grants {
        Grants {
            run: self.run.take(),
            ..Grants::none()
        }
    }

    async fn call(
        &mut self,
        instance: &TaskFunction,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Result<TaskOutcome, types::Error>> {
        instance.nimbus_function_task().call_run(store, &self.input).await
    }

    fn leave(&mut self, state: &mut HostState) {
        let back = state.caps.checkpoint.take();
        (self.run, self.saves, self.fenced) = (back.run, back.saves, back.fenced);
    }
}

impl Finish<TaskFunction> for TaskStep {
    async fn finish(self, f: &Function, returned: Result<TaskOutcome, InvokeError>) -> Result<Outcome, InvokeError> {
        let Some(run) = self.run else {
            return Err(InvokeError::internal("the task run was lost"));
        };
        let task_id = run.task_id().to_owned();
        if self.fenced {
            tracing::warn!(app = %self.app, function = %f.name, task_id, "task run fenced: a newer run owns the task");
            return Ok(Outcome::Task(RunEnd::Fenced));
        }
        let end = match returned {
            Ok(TaskOutcome::Done(output)) => {
                run.done(output).await?;
                RunEnd::Done
            }
            Ok(TaskOutcome::Yielded) => {
                run.yielded().await?;
                RunEnd::Yielded
            }
            Err(InvokeError::Guest(m) | InvokeError::BadEvent(m)) => {
                run.failed(m.clone()).await?;
                RunEnd::Failed(m)
            }
            Err(InvokeError::Deadline(d)) if self.saves > 0 => {
                tracing::warn!(app = %self.app, function = %f.name, task_id, saves = self.saves,
                    timeout_ms = d.budget().as_millis() as u64,
                    "task run hit its deadline (it ignored should-yield); resuming from its last checkpoint");
                run.yielded().await?;
                RunEnd::DeadlineResumed
            }
            Err(e) => {
                let m = match &e {
                    InvokeError::Deadline(d) => format!(
                        "the run hit its {}ms deadline without committing a checkpoint",
                        d.budget().as_millis()
                    ),
                    e => e.to_string(),
                };
                tracing::warn!(app = %self.app, function = %f.name, task_id, error = %m, "task run failed");
                run.failed(m.clone()).await?;
                RunEnd::Failed(m)
            }
        };
        Ok(Outcome::Task(end))
    }
}
