//! Long tasks: work that outlives one invocation, resumed from durable checkpoints.
//!
//! A task function takes its input (JSON, decoded into your type) and a [`Context`] holding its typed state.
//! It works in steps, [`Context::save`]s the state as it goes, and returns [`Step::Yield`] when
//! [`Context::should_yield`] says the invocation's deadline is near. The host commits every save before `save`
//! returns and schedules the next run, which starts from the last saved state: the same function is called
//! again and [`Context::resume_or`] hands back that state. A run that is killed or hits its deadline also
//! resumes from the last save, so at most the work since then is redone. Make each step deterministic in the
//! state and the input and the result equals an uninterrupted run.
//!
//! State is encoded as JSON (`serde_json`), so it may be any `Serialize + Deserialize` type and stays readable
//! when debugging a stored checkpoint; keep it small (the function's `task.max_checkpoint`, default 8 MiB,
//! bounds one checkpoint). The output is JSON too.
//!
//! ```no_run
//! use nimbus_sdk::task::{Context, Error, Step};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input { limit: u64 }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Count { next: u64, primes: u64 }
//!
//! fn count_primes(input: Input, cx: &mut Context<Count>) -> Result<Step<u64>, Error> {
//!     let mut st = cx.resume_or(Count { next: 2, primes: 0 })?;
//!     while st.next < input.limit {
//!         let n = st.next;
//!         if (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0) {
//!             st.primes += 1;
//!         }
//!         st.next += 1;
//!         if st.next % 10_000 == 0 {
//!             cx.save(&st)?;                      // committed before it returns
//!             if cx.should_yield() {
//!                 return Ok(Step::Yield);         // the next run resumes from the save
//!             }
//!         }
//!     }
//!     Ok(Step::Done(st.primes))
//! }
//!
//! nimbus_sdk::task_function!(count_primes);
//! # fn main() {}
//! ```

use crate::wit::nimbus::function::checkpoint as wit;
use crate::wit::nimbus::function::types as wit_types;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;

/// Why a task run failed: [`Error::InvalidEvent`] for input it cannot understand, [`Error::Failed`] otherwise.
/// A failed run is retried from the last save until `task.max_attempts`, then the task is marked failed.
pub use crate::event::Error;

/// How a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<O> {
    /// The task is finished with this output (encoded as JSON).
    Done(O),
    /// The run gives up its invocation; the next run resumes from the last [`Context::save`].
    Yield,
}

/// Why a [`Context::save`] (or [`Context::set_progress`]) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveError {
    /// The encoded state is larger than the function's `task.max_checkpoint`.
    TooLarge {
        /// Bytes the state encoded to.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// A newer run took the task over; this run must stop. Nothing was committed.
    Fenced,
    /// The store failed, the state could not be encoded, or this is not a task invocation.
    Failed(String),
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::TooLarge { size, limit } => write!(
                f,
                "checkpoint too large: {size} bytes, the function's task.max_checkpoint is {limit} bytes"
            ),
            SaveError::Fenced => f.write_str("checkpoint refused: a newer run of this task took it over"),
            SaveError::Failed(m) => write!(f, "checkpoint failed: {m}"),
        }
    }
}

impl std::error::Error for SaveError {}

impl From<SaveError> for Error {
    fn from(e: SaveError) -> Self {
        Error::Failed(e.to_string())
    }
}

/// One run's view of its task: the state it resumes from, saving, and when to yield.
///
/// `S` is the state type, encoded as JSON in each checkpoint.
pub struct Context<S> {
    _state: PhantomData<fn() -> S>,
}

impl<S: Serialize + DeserializeOwned> Context<S> {
    fn new() -> Self {
        Context { _state: PhantomData }
    }

    /// The state of the last committed save, or `None` on the task's first run.
    pub fn resume(&self) -> Result<Option<S>, Error> {
        match wit::resumed() {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::failed(format!("the saved state does not decode as this task's state: {e}"))),
        }
    }

    /// The state of the last committed save, or `init` on the task's first run.
    pub fn resume_or(&self, init: S) -> Result<S, Error> {
        Ok(self.resume()?.unwrap_or(init))
    }

    /// Commits `state` durably (before returning) as the task's newest checkpoint.
    pub fn save(&mut self, state: &S) -> Result<(), SaveError> {
        let bytes = serde_json::to_vec(state).map_err(|e| SaveError::Failed(format!("cannot encode state: {e}")))?;
        let size = bytes.len() as u64;
        wit::save(&bytes).map_err(|e| convert(e, size))
    }

    /// True once the invocation is within the function's `task.yield_margin` of its deadline: return
    /// [`Step::Yield`] soon after (having saved). A run that ignores it is stopped at the deadline.
    pub fn should_yield(&self) -> bool {
        wit::should_yield()
    }

    /// Records a short progress note (text or JSON, at most 16 KiB) for the task's status.
    pub fn set_progress(&mut self, progress: &str) -> Result<(), SaveError> {
        wit::set_progress(progress).map_err(|e| convert(e, progress.len() as u64))
    }
}

fn convert(e: wit::CheckpointError, size: u64) -> SaveError {
    match e {
        wit::CheckpointError::TooLarge(limit) => SaveError::TooLarge { size, limit },
        wit::CheckpointError::Fenced => SaveError::Fenced,
        wit::CheckpointError::Failed(m) => SaveError::Failed(m),
    }
}

#[doc(hidden)]
pub fn __run<I, S, O, F>(
    input: Vec<u8>,
    handler: F,
) -> Result<crate::task_wit::exports::nimbus::function::task::TaskOutcome, wit_types::Error>
where
    I: DeserializeOwned,
    S: Serialize + DeserializeOwned,
    O: Serialize,
    F: FnOnce(I, &mut Context<S>) -> Result<Step<O>, Error>,
{
    use crate::task_wit::exports::nimbus::function::task::TaskOutcome;
    let to_wit = |e: Error| match e {
        Error::InvalidEvent(m) => wit_types::Error::InvalidEvent(m),
        Error::Failed(m) => wit_types::Error::Failed(m),
    };
    let input: I = serde_json::from_slice(&input)
        .map_err(|e| to_wit(Error::invalid(format!("task input is not the expected JSON: {e}"))))?;
    let mut cx = Context::new();
    match handler(input, &mut cx).map_err(to_wit)? {
        Step::Yield => Ok(TaskOutcome::Yielded),
        Step::Done(out) => serde_json::to_vec(&out)
            .map(TaskOutcome::Done)
            .map_err(|e| to_wit(Error::failed(format!("cannot encode the output: {e}")))),
    }
}

/// Exports a function `fn(Input, &mut Context<State>) -> Result<Step<Output>, Error>` as this component's
/// long task (`nimbus:function/task`). `Input` is decoded from the task's JSON input, `Output` encoded as JSON.
#[macro_export]
macro_rules! task_function {
    ($handler:path) => {
        struct __NimbusTaskFunction;
        impl $crate::task_wit::exports::nimbus::function::task::Guest for __NimbusTaskFunction {
            fn run(
                input: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<
                $crate::task_wit::exports::nimbus::function::task::TaskOutcome,
                $crate::wit::nimbus::function::types::Error,
            > {
                $crate::task::__run(input, $handler)
            }
        }
        $crate::task_wit::export_task_function!(__NimbusTaskFunction with_types_in $crate::task_wit);
    };
}
