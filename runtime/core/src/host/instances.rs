//! Instances and their stores: admission (a permit from the function's semaphore), a warm idle instance or
//! a fresh store, the epoch deadline, and the release of a sound instance back to the idle list.

use super::{Function, Host};
use crate::bindings::{
    EventFunction, EventFunctionPre, TaskFunction, TaskFunctionPre, WebsocketFunction, WebsocketFunctionPre,
};
use crate::caps::Grants;
use crate::caps::limits::MemoryLimiter;
use crate::error::InvokeError;
use crate::invocation::{DeadlineCause, Invocation};
use crate::manifest::Reuse;
use crate::state::HostState;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

/// Deadline checks happen every this many epoch ticks; in between, a busy
/// guest yields to the executor so it cannot starve other requests.
const YIELD_TICKS: u64 = 10;

/// An instance with its store, ready for (another) invocation.
pub(super) struct Ready<I> {
    pub(super) store: Store<HostState>,
    /// `None` until instantiated (a fresh store).
    instance: Option<I>,
    /// Invocations it has served.
    uses: u32,
}

/// The warm instances of a `reuse` function that are not serving anyone.
/// At most `concurrency` exist, so they always fit in the instance pool.
pub(super) type Idle<I> = Arc<Mutex<Vec<Ready<I>>>>;

/// Instantiation from an `InstancePre`, for every kind of function.
pub(super) trait Instantiate: Clone + Send + Sync + 'static {
    type Instance: Send + Sync + 'static;
    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;
}

/// Each bindgen `…Pre` instantiates the same way; one impl per kind, written once.
macro_rules! instantiate {
    ($($pre:ident => $instance:ident),* $(,)?) => {$(
        impl Instantiate for $pre<HostState> {
            type Instance = $instance;
            async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<$instance> {
                self.instantiate_async(store).await
            }
        }
    )*};
}

instantiate!(
    ProxyPre => Proxy,
    EventFunctionPre => EventFunction,
    TaskFunctionPre => TaskFunction,
    WebsocketFunctionPre => WebsocketFunction,
);

impl<I> Ready<I> {
    /// The instance (instantiated now if the store is fresh) and its store.
    pub(super) async fn instance<P: Instantiate<Instance = I>>(
        &mut self,
        pre: &P,
    ) -> wasmtime::Result<(&I, &mut Store<HostState>)> {
        let instance = match self.instance.take() {
            Some(i) => i,
            None => pre.instantiate(&mut self.store).await?,
        };
        Ok((self.instance.insert(instance), &mut self.store))
    }

    /// After a sound invocation: back to the idle list while `reuse`
    /// allows, else dropped (its pool slot is reset for the next instance).
    pub(super) fn release(mut self, reuse: Reuse, idle: &Idle<I>) {
        self.uses += 1;
        if reuse.keeps(self.uses)
            && let Ok(mut idle) = idle.lock()
        {
            idle.push(self);
        }
    }
}

impl Host {
    /// Waits for a free instance slot, at most until the deadline or the queue timeout.
    pub(super) async fn acquire(&self, f: &Function, inv: &Invocation) -> Result<OwnedSemaphorePermit, InvokeError> {
        let overloaded = || InvokeError::Overloaded {
            concurrency: f.limits.concurrency,
            retry_after: Duration::from_secs(1),
        };
        if let Ok(p) = f.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let wait = self.queue_timeout.min(inv.remaining());
        match tokio::time::timeout(wait, f.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(overloaded()),
        }
    }

    /// A warm idle instance pointed at `inv`, or else a fresh store for one.
    pub(super) fn ready<I>(
        &self,
        f: &Function,
        idle: &Idle<I>,
        inv: &Arc<Invocation>,
        grants: &mut Grants,
    ) -> Ready<I> {
        let warm = match f.reuse {
            Reuse::Fresh => None,
            Reuse::Warm { .. } => idle.lock().ok().and_then(|mut idle| idle.pop()),
        };
        let tick = self.engine.tick();
        match warm {
            Some(mut ready) => {
                ready.store.data_mut().begin(&f.shared, inv, grants);
                ready.store.set_epoch_deadline(ticks_left(inv.deadline, tick));
                ready
            }
            None => Ready {
                store: self.new_store(f, inv, grants),
                instance: None,
                uses: 0,
            },
        }
    }

    /// A store for one invocation, with its memory limit and deadline. The
    /// deadline is read from the store's current invocation, so a warm
    /// store keeps the same callback.
    fn new_store(&self, f: &Function, inv: &Arc<Invocation>, grants: &mut Grants) -> Store<HostState> {
        let state = HostState::prepare(&f.shared, inv, grants, f.limits.memory, &self.log_sink, f.reuse);
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        let tick = self.engine.tick();
        store.set_epoch_deadline(ticks_left(inv.deadline, tick));
        store.epoch_deadline_callback(move |cx| {
            let deadline = cx.data().inv.deadline;
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(ticks_left(deadline, tick)))
            }
        });
        store
    }
}

/// Epoch ticks until the next deadline check: the time left, at most
/// `YIELD_TICKS` so a busy guest yields to the executor now and then.
fn ticks_left(deadline: Instant, tick: Duration) -> u64 {
    let tick_ms = tick.as_millis().max(1) as u64;
    (deadline.saturating_duration_since(Instant::now()).as_millis() as u64 / tick_ms).clamp(1, YIELD_TICKS)
}

/// Longest trap description kept: a deep recursion's backtrace has thousands of frames.
const MAX_TRAP_DETAIL: usize = 16 * 1024;

/// A failed guest call's error chain (the trap, then its wasm backtrace), at most [`MAX_TRAP_DETAIL`] bytes.
fn trap_detail(err: &wasmtime::Error) -> String {
    let mut text = format!("{err:#}");
    if text.len() > MAX_TRAP_DETAIL {
        let mut cut = MAX_TRAP_DETAIL;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!(" … ({dropped} more bytes)"));
    }
    text
}

/// Turns a failed guest call (or instantiation) into the invocation's error, by the error's type: the
/// memory limiter's flag, wasmtime's `Trap`, and the pooling allocator's `PoolConcurrencyLimitError`.
pub(super) fn classify(err: wasmtime::Error, limits: &MemoryLimiter, deadline: DeadlineCause) -> InvokeError {
    if limits.hit {
        return InvokeError::Memory {
            limit_mb: limits.limit_mb(),
        };
    }
    if err.chain().any(|e| e.is::<wasmtime::PoolConcurrencyLimitError>()) {
        return InvokeError::Overloaded {
            concurrency: 0,
            retry_after: Duration::from_secs(1),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Deadline(deadline),
        // The whole chain: the trap and the wasm backtrace (function names, offsets) for the log line.
        // Callers see only `InvokeError::public_message`.
        _ => InvokeError::Trap(trap_detail(&err)),
    }
}
