//! Durable long tasks on a host: starting them, running their continuations, and their status.
//!
//! [`Tasks`] ties the protocol driver ([`nimbus_checkpoint::Durable`]) to a booted [`Host`]. Every task
//! function gets its own driver over one shared [`Backend`], because its settings differ (its
//! `max_checkpoint`, `max_attempts`, and lease and visibility times derived from its `timeout`).
//!
//! Two ways to run continuations:
//! - [`Tasks::work`]: a loop that receives from the backend's queue and runs each delivery, bounded by the
//!   task functions' `concurrency` (what `nimbus serve` does on the embedded store);
//! - [`Tasks::handle`]: one delivery the platform handed over, e.g. an SQS record turned into a
//!   [`Delivery`] with [`Delivery::from_message`] — what a Lambda adapter calls.

use crate::host::{Host, RunContext, RunEnd, TaskError};
use base64::Engine as _;
use nimbus_checkpoint::{Backend, Begin, Delivery, Durable, DurableError, Settings, Started, TaskRecord};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// How long a run's lease outlives its invocation's timeout: room for the host to commit the run's end
/// after the guest returns. A run renews its lease on every save.
const LEASE_SLACK: Duration = Duration::from_secs(2);
/// How long after the lease a claimed message stays hidden: a redelivery then finds the lease expired.
const VISIBILITY_SLACK: Duration = Duration::from_millis(500);
/// Pause of [`Tasks::work`] when the queue is empty.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Pause of [`Tasks::work`] after the store failed.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// The durable tasks of one host.
pub struct Tasks {
    host: Arc<Host>,
    /// Receives messages and reads status; its settings are never used to run a task.
    any: Durable,
    /// One driver per task function, with that function's settings.
    drivers: HashMap<String, Durable>,
    /// Bounds the runs [`Tasks::work`] has in flight: the sum of the task functions' concurrency.
    slots: Arc<Semaphore>,
    total_slots: u32,
}

/// What [`Tasks::handle`] did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// A run of the task happened and ended like this.
    Ran {
        /// The task.
        task_id: String,
        /// How the run ended.
        end: RunEnd,
    },
    /// Nothing to do (finished, unknown or superseded task); the message was acked.
    Finished,
    /// Another run holds a live lease; the message is delivered again later.
    Busy,
}

/// Why a [`Tasks`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TasksError {
    /// No task function of that name on this host.
    #[error("no task function named `{0}` (task functions export `nimbus:function/task@0.1`)")]
    NoSuchTaskFunction(String),
    /// The store failed, or refused a value.
    #[error(transparent)]
    Durable(#[from] DurableError),
    /// Running the task failed.
    #[error(transparent)]
    Run(#[from] TaskError),
}

impl Tasks {
    /// The tasks of `host` on `backend` (e.g. the AWS backend, or [`nimbus_checkpoint::Embedded`]), wrapped
    /// by the host's interceptor ([`crate::caps::Intercept::checkpoint`]).
    pub fn new(host: Arc<Host>, backend: Arc<dyn Backend>) -> Tasks {
        let backend = host.intercept().checkpoint(backend);
        let mut drivers = HashMap::new();
        let mut total_slots = 0u32;
        for f in host.functions() {
            if let Some(settings) = settings_for(f) {
                total_slots = total_slots.saturating_add(f.limits.concurrency);
                drivers.insert(f.name.to_string(), Durable::new(backend.clone(), settings));
            }
        }
        let total_slots = total_slots.max(1);
        // Receiving claims a message for `visibility_timeout` before we know its function: use the longest
        // of the task functions', so no run outlives its claim. (The default's 330 s would keep a killed
        // host's messages hidden for minutes.)
        let longest = drivers
            .values()
            .map(|d| d.settings().clone())
            .max_by_key(|s| s.visibility_timeout);
        let any = Settings {
            visibility_timeout: longest
                .as_ref()
                .map_or(Duration::from_secs(30), |s| s.visibility_timeout),
            lease_ttl: longest.as_ref().map_or(Duration::from_secs(30), |s| s.lease_ttl),
            ..Settings::default()
        };
        Tasks {
            any: Durable::new(backend, any),
            host,
            drivers,
            slots: Arc::new(Semaphore::new(total_slots as usize)),
            total_slots,
        }
    }

    /// The tasks of `host` on the embedded store in `dir` (created if missing).
    pub fn embedded(host: Arc<Host>, dir: &Path) -> Result<Tasks, DurableError> {
        let backend = nimbus_checkpoint::Embedded::open(dir).map_err(|e| DurableError::Store {
            op: "open the embedded task store",
            source: e,
        })?;
        Ok(Tasks::new(host, Arc::new(backend)))
    }

    /// Whether `function` is a task function of this host.
    pub fn is_task_function(&self, function: &str) -> bool {
        self.drivers.contains_key(function)
    }

    /// Starts a task of `function` with `input`. With an `idempotency_key` used before, returns the task
    /// started then (`created: false`) and starts nothing.
    pub async fn start(
        &self,
        function: &str,
        input: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Result<Started, TasksError> {
        let driver = self
            .drivers
            .get(function)
            .ok_or_else(|| TasksError::NoSuchTaskFunction(function.to_owned()))?;
        Ok(driver.start(function, input, idempotency_key).await?)
    }

    /// The committed record of a task, `None` if there is no such task.
    pub async fn status(&self, task_id: &str) -> Result<Option<TaskRecord>, TasksError> {
        Ok(self.any.status(task_id).await?)
    }

    /// Claims the next visible continuation message, if any (for callers that drive runs themselves).
    pub async fn receive(&self) -> Result<Option<Delivery>, TasksError> {
        Ok(self.any.receive().await?)
    }

    /// Runs one delivery: begins the run with its function's driver (taking the lease, loading the last
    /// checkpoint), invokes the guest once, and ends the run. An error leaves the message to be delivered
    /// again after its visibility timeout.
    pub async fn handle(&self, delivery: Delivery) -> Result<Handled, TasksError> {
        self.handle_in(delivery, RunContext::default()).await
    }

    /// [`Tasks::handle`] inside a platform invocation whose deadline and trace `cx` carries (what the Lambda
    /// adapter calls for each SQS continuation record).
    pub async fn handle_in(&self, delivery: Delivery, cx: RunContext) -> Result<Handled, TasksError> {
        // The message names only the task; its record names the function, whose driver carries its settings.
        let driver = match self.any.status(&delivery.task_id).await? {
            Some(record) => self
                .drivers
                .get(&record.function)
                .ok_or(TasksError::NoSuchTaskFunction(record.function))?,
            // Unknown task: any driver acks the message as finished.
            None => &self.any,
        };
        match driver.begin(delivery).await? {
            Begin::Run(run) => {
                let task_id = run.task_id().to_owned();
                let f = self
                    .host
                    .function(run.function())
                    .ok_or_else(|| TasksError::NoSuchTaskFunction(run.function().to_owned()))?;
                let end = self.host.run_task(f, run, cx).await?;
                tracing::debug!(task_id, ?end, "task run ended");
                Ok(Handled::Ran { task_id, end })
            }
            Begin::Finished => Ok(Handled::Finished),
            Begin::Busy => Ok(Handled::Busy),
        }
    }

    /// Receives and runs continuations until `stop` turns true, at most the task functions' total
    /// concurrency at once; then waits (at most `drain`) for the runs in flight. A run cut off by shutdown
    /// resumes from its last checkpoint on the next start.
    pub async fn work(self: Arc<Self>, mut stop: watch::Receiver<bool>, drain: Duration) {
        loop {
            if *stop.borrow() {
                break;
            }
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            let pause = match self.any.receive().await {
                Ok(Some(delivery)) => {
                    let tasks = self.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let task_id = delivery.task_id.clone();
                        if let Err(e) = tasks.handle(delivery).await {
                            tracing::warn!(task_id, error = %e, "task run failed; it resumes when its message is delivered again");
                        }
                    });
                    continue;
                }
                Ok(None) => IDLE_POLL,
                Err(e) => {
                    tracing::warn!(error = %e, "task queue: receive failed");
                    ERROR_PAUSE
                }
            };
            drop(permit);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        let all = self.slots.clone().acquire_many_owned(self.total_slots);
        if tokio::time::timeout(drain, all).await.is_err() {
            tracing::warn!("shutdown: task runs still in flight; they resume from their last checkpoint");
        }
    }
}

/// The protocol settings of a task function (`None` for other functions): its manifest `task` section, and
/// lease and visibility times that outlast one invocation.
pub fn settings_for(f: &crate::Function) -> Option<Settings> {
    let task = f.task?;
    let lease_ttl = f.limits.timeout + LEASE_SLACK;
    Some(Settings {
        max_checkpoint: usize::try_from(task.max_checkpoint).unwrap_or(usize::MAX),
        lease_ttl,
        max_attempts: task.max_attempts,
        visibility_timeout: lease_ttl + VISIBILITY_SLACK,
        ..Settings::default()
    })
}

/// A task's status as the HTTP endpoint and `nimbus task status` show it:
/// `{task_id, function, status, seq, attempts, failures, runs, progress, result, result_base64, error,
/// created_ms, updated_ms}`. `result` is the output as JSON when it parses as JSON; otherwise `result_base64` holds it.
pub fn status_json(record: &TaskRecord) -> serde_json::Value {
    let (result, result_base64) = match &record.result {
        None => (serde_json::Value::Null, serde_json::Value::Null),
        Some(bytes) => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(v) => (v, serde_json::Value::Null),
            Err(_) => (
                serde_json::Value::Null,
                base64::engine::general_purpose::STANDARD.encode(bytes).into(),
            ),
        },
    };
    serde_json::json!({
        "task_id": record.task_id,
        "function": record.function,
        "status": record.status,
        "seq": record.seq,
        "attempts": record.attempts,
        "failures": record.failures,
        "runs": record.runs,
        "progress": record.progress,
        "result": result,
        "result_base64": result_base64,
        "error": record.error,
        "created_ms": record.created_ms,
        "updated_ms": record.updated_ms,
    })
}
