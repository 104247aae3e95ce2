//! The durable-task protocol, independent of the backend.
//!
//! A task is a chain of runs. Each run:
//! 1. [`Durable::receive`]s a continuation message and [`Durable::begin`]s: it takes the task's lease with a
//!    compare-and-swap on the record (an expired lease may be taken over) and loads the last committed
//!    checkpoint, falling back to an earlier one if the newest is unreadable;
//! 2. [`Run::save`]s checkpoints: put the object `seq + 1`, then commit it with a write conditional on the
//!    previous `seq` and the run's lease token, so a run that lost its lease is fenced and never overwrites
//!    newer state (each object key also names its writer, so even its object cannot replace a committed one);
//! 3. ends with [`Run::yielded`] (enqueue the continuation, release the lease, ack), [`Run::done`] or
//!    [`Run::failed`] (retry from the last commit until `max_attempts`, then `Failed`).
//!
//! A run that dies without ending leaves its message claimed; when the visibility timeout passes the message
//! is received again, the lease has expired, and the next run resumes from the last commit. Whether the dead
//! run counts against `max_attempts` depends on what it committed: taking the lease charges an attempt, and the
//! first checkpoint the run commits takes it back in the same conditional write (see
//! [`TaskRecord::attempts`]), so a run killed after committing is progress and only runs that died with nothing
//! committed add up. Messages carry the
//! record's `epoch`, bumped on every continuation, so duplicated or superseded messages are acked and dropped
//! instead of forking the task into two chains.
//!
//! Transient backend failures are retried with bounded exponential backoff; when retries run out the error
//! names the operation. A conditional write whose response was lost is recognised on retry by re-reading the
//! record, so it is not mistaken for fencing.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock, fresh_id};
use crate::embedded::Embedded;
use crate::format::{self, DEFAULT_MAX_CHECKPOINT, FormatError};
use crate::store::{
    Backend, CheckpointRef, Condition, Continuation, Created, Lease, StoreError, TaskRecord, TaskStatus, checkpoint_key,
};

/// How many committed checkpoints are kept; the older ones are fallbacks when the newest cannot be read.
pub const KEEP_CHECKPOINTS: usize = 3;

/// Longest progress string accepted by [`Run::set_progress`]; progress lives in the task record, which
/// DynamoDB caps at 400 KB.
pub const MAX_PROGRESS: usize = 16 * 1024;

/// SQS refuses delays above 15 minutes, so retry delays are capped there on every backend.
const MAX_DELAY: Duration = Duration::from_secs(900);

/// How long after a live lease expires a delivery that found it ([`Begin::Busy`]) comes back.
const BUSY_SLACK: Duration = Duration::from_millis(500);

/// Tuning of the protocol. Every field is a manifest field or `NIMBUS_*` setting parsed by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Largest state one checkpoint may hold (`task.max_checkpoint`); a larger save fails with
    /// [`SaveError::TooLarge`] and is not retried.
    pub max_checkpoint: usize,
    /// How long a run's lease lasts without a save or [`Run::renew`]; after that another run may take over.
    /// Must exceed the longest a run can go without saving, or a live run gets fenced.
    pub lease_ttl: Duration,
    /// Attempts without progress before the task is marked `Failed`: runs that failed since the last yield,
    /// and runs that died (killed, crashed) without committing a checkpoint since the last commit. A run that
    /// committed and then died is not counted. 0 is treated as 1.
    pub max_attempts: u32,
    /// How long a received message stays hidden; when it passes, the message is delivered again. Should be at
    /// least `lease_ttl`, or a redelivery finds the lease still held and waits another round.
    pub visibility_timeout: Duration,
    /// Delay before the first retry of a failed run; doubled per attempt, capped at 15 minutes.
    pub retry_delay: Duration,
    /// Retries of transient backend failures.
    pub retry: RetryPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_checkpoint: DEFAULT_MAX_CHECKPOINT,
            lease_ttl: Duration::from_secs(300),
            max_attempts: 3,
            visibility_timeout: Duration::from_secs(330),
            retry_delay: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        }
    }
}

/// Bounded exponential backoff for transient backend failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries of one operation, including the first (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Cap on a single wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Why a protocol step failed.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// A backend operation kept failing transiently.
    #[error("{op}: gave up after {attempts} attempts: {source}")]
    RetriesExhausted {
        /// The operation, e.g. `"commit checkpoint"`.
        op: &'static str,
        /// How many times it was tried.
        attempts: u32,
        /// The last failure.
        #[source]
        source: StoreError,
    },
    /// A backend operation failed permanently.
    #[error("{op}: {source}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The failure.
        #[source]
        source: StoreError,
    },
    /// This run lost its lease to a newer run; nothing was written.
    #[error("task {task_id}: {op} rejected: a newer run holds the task's lease")]
    Fenced {
        /// The task.
        task_id: String,
        /// The step that was rejected.
        op: &'static str,
    },
    /// A caller-supplied value was refused (empty function name, over-long idempotency key, bad message).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was refused.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

/// Why a [`Run::save`] (or [`Run::set_progress`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The state is larger than `max_checkpoint`. Never retried: the guest must save less.
    #[error("checkpoint of {size} bytes exceeds the limit of {limit} bytes (task.max_checkpoint)")]
    TooLarge {
        /// Bytes the guest tried to save.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A newer run took the task over; this run must stop, its state was not committed.
    #[error("task {task_id}: checkpoint {seq} rejected: a newer run holds the task's lease")]
    Fenced {
        /// The task.
        task_id: String,
        /// The sequence number this run tried to commit.
        seq: u64,
    },
    /// The backend failed.
    #[error(transparent)]
    Durable(#[from] DurableError),
}

/// The answer of [`Durable::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The task's id.
    pub task_id: String,
    /// False if the idempotency key was used before and this is the existing task.
    pub created: bool,
}

/// A received continuation message, to be passed to [`Durable::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The task to run.
    pub task_id: String,
    /// The queue receipt (acks the message, extends its visibility).
    pub receipt: String,
    /// The message's continuation generation.
    pub epoch: u64,
}

impl Delivery {
    /// Builds a delivery from a message body and receipt handed over by the platform (e.g. an SQS event
    /// delivered to Lambda), rather than from [`Durable::receive`].
    pub fn from_message(body: &str, receipt: impl Into<String>) -> Result<Self, DurableError> {
        let message: Continuation = serde_json::from_str(body).map_err(|e| DurableError::Invalid {
            what: "continuation message",
            detail: e.to_string(),
        })?;
        Ok(Self {
            task_id: message.task_id,
            receipt: receipt.into(),
            epoch: message.epoch,
        })
    }
}

/// The outcome of [`Durable::begin`].
#[derive(Debug)]
pub enum Begin {
    /// Run the task: this run holds its lease.
    Run(Run),
    /// Nothing to do: the task is done or failed, unknown, or the message was superseded. The message was acked.
    Finished,
    /// Another run holds a live lease. The message is hidden until shortly after that lease expires, by which
    /// time that run has ended (and the message is dropped as superseded) or its lease can be taken over.
    Busy,
}

/// What went wrong loading the committed checkpoint, when [`Run::resumed`] is not the newest commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The last committed sequence number.
    pub committed_seq: u64,
    /// The checkpoint the run resumed from instead; `None` = none was readable, the run starts over.
    pub resumed_seq: Option<u64>,
    /// One line per checkpoint that could not be used, newest first.
    pub problems: Vec<String>,
}

/// The entry point of the protocol: cheap to clone, shared by all runs of a host.
#[derive(Clone)]
pub struct Durable {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    settings: Settings,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Durable {
    /// A driver over `backend`, on the system clock.
    pub fn new(backend: Arc<dyn Backend>, settings: Settings) -> Self {
        Self::with_clock(backend, settings, Arc::new(SystemClock))
    }

    /// A driver whose leases follow `clock` (tests move a [`crate::ManualClock`] instead of sleeping).
    pub fn with_clock(backend: Arc<dyn Backend>, settings: Settings, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                settings,
                clock,
            }),
        }
    }

    /// A driver over the [`Embedded`] store in `dir`: what `nimbus serve` uses.
    pub fn embedded(dir: impl Into<PathBuf>, settings: Settings) -> Result<Self, DurableError> {
        let store = Embedded::open(dir).map_err(|source| DurableError::Store {
            op: "open embedded store",
            source,
        })?;
        Ok(Self::new(Arc::new(store), settings))
    }

    /// The settings this driver was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Creates a task and enqueues its first run. With an `idempotency_key` used before, returns the existing
    /// task (`created: false`) and creates nothing, so a retried start never makes a second task.
    pub async fn start(
        &self,
        function: &str,
        input: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Result<Started, DurableError> {
        if function.is_empty() {
            return Err(DurableError::Invalid {
                what: "function",
                detail: "empty function name".into(),
            });
        }
        if let Some(key) = idempotency_key
            && (key.is_empty() || key.len() > 512)
        {
            return Err(DurableError::Invalid {
                what: "idempotency key",
                detail: format!("must be 1..=512 bytes, got {}", key.len()),
            });
        }
        let now = self.now_ms();
        let record = TaskRecord {
            task_id: fresh_id(),
            function: function.to_owned(),
            status: TaskStatus::Running,
            seq: 0,
            lease: None,
            attempts: 0,
            failures: 0,
            runs: 0,
            progress: None,
            result: None,
            error: None,
            idempotency_key: idempotency_key.map(str::to_owned),
            input,
            created_ms: now,
            updated_ms: now,
            revision: 0,
            epoch: 0,
            checkpoints: Vec::new(),
        };
        let created = self
            .retry("create task", || self.backend().create_task(&record))
            .await?;
        let (task_id, epoch, created) = match created {
            Created::New => (record.task_id.clone(), 0, true),
            // Our own create whose response was lost: the record is ours.
            Created::Existing(found) if found.task_id == record.task_id => (record.task_id.clone(), 0, true),
            Created::Existing(found) => {
                if found.function != function {
                    tracing::warn!(task_id = %found.task_id, existing = %found.function, requested = %function,
                        "idempotency key reused for another function; returning the existing task");
                }
                let unstarted = found.runs == 0 && found.lease.is_none() && found.status == TaskStatus::Running;
                if !unstarted {
                    return Ok(Started {
                        task_id: found.task_id,
                        created: false,
                    });
                }
                // The first start may have died between creating the record and enqueueing its first run; a
                // duplicate message is harmless (same epoch, the lease lets one run in), a lost one is not.
                (found.task_id, found.epoch, false)
            }
        };
        let message = Continuation {
            task_id: task_id.clone(),
            epoch,
        };
        self.retry("enqueue first run", || self.backend().enqueue(&message, 0))
            .await?;
        tracing::debug!(%task_id, created, "task started");
        Ok(Started { task_id, created })
    }

    /// The committed record of a task: status, progress, result or error.
    pub async fn status(&self, task_id: &str) -> Result<Option<TaskRecord>, DurableError> {
        self.retry("read task", || self.backend().get_task(task_id)).await
    }

    /// Claims the next visible continuation message, if any.
    pub async fn receive(&self) -> Result<Option<Delivery>, DurableError> {
        let visibility = self.settings().visibility_timeout.as_millis() as u64;
        let received = self
            .retry("receive continuation", || self.backend().receive(visibility))
            .await?;
        Ok(received.map(|r| Delivery {
            task_id: r.message.task_id,
            receipt: r.receipt,
            epoch: r.message.epoch,
        }))
    }

    /// Starts a run for a delivery: takes the lease (compare-and-swap on the record; an expired lease is taken
    /// over) and loads the last committed checkpoint. Taking the lease charges the run an attempt until it
    /// commits a checkpoint, so a run that dies before committing anything counts as a failed attempt.
    ///
    /// Messages for finished, unknown or superseded tasks are acked here ([`Begin::Finished`]). A task whose
    /// attempts reached `max_attempts` (its last runs died before committing) is marked `Failed` here too. A
    /// delivery that finds a live lease is hidden until that lease expires ([`Begin::Busy`]). On an error the
    /// message stays claimed and is delivered again after its visibility timeout; a lease taken before the
    /// error simply expires.
    pub async fn begin(&self, delivery: Delivery) -> Result<Begin, DurableError> {
        let task_id = delivery.task_id.as_str();
        let Some(record) = self.status(task_id).await? else {
            tracing::warn!(%task_id, "continuation for an unknown task; dropping it");
            self.ack(&delivery).await?;
            return Ok(Begin::Finished);
        };
        if record.status.is_terminal() {
            self.ack(&delivery).await?;
            return Ok(Begin::Finished);
        }
        if delivery.epoch < record.epoch {
            tracing::debug!(%task_id, message = delivery.epoch, record = record.epoch, "superseded continuation");
            self.ack(&delivery).await?;
            return Ok(Begin::Finished);
        }
        let now = self.now_ms();
        if let Some(lease) = record.lease.as_ref().filter(|l| l.expires_at_ms > now) {
            self.hide_until_lease_expires(&delivery, lease.expires_at_ms - now)
                .await;
            return Ok(Begin::Busy);
        }
        let cas = Condition::Revision(record.revision);
        let mut next = record.clone();
        next.revision += 1;
        next.updated_ms = now;
        next.lease = None;
        if record.attempts >= self.max_attempts() {
            // Every allowed attempt began and none made progress: the last runs crashed or were killed before
            // committing anything. Stop instead of looping.
            next.status = TaskStatus::Failed;
            next.error = Some(format!(
                "gave up after {} attempts: the last run ended without yielding, finishing or failing ({})",
                record.attempts,
                record
                    .error
                    .as_deref()
                    .unwrap_or("no error reported; it lost its lease")
            ));
            tracing::warn!(%task_id, attempts = record.attempts, "task failed: runs keep dying");
            return match self.commit(&next, &cas, "fail task").await {
                Ok(()) => {
                    self.ack(&delivery).await?;
                    Ok(Begin::Finished)
                }
                Err(DurableError::Fenced { .. }) => Ok(Begin::Busy),
                Err(e) => Err(e),
            };
        }
        let token = fresh_id();
        next.status = TaskStatus::Running;
        next.lease = Some(Lease {
            token: token.clone(),
            expires_at_ms: now + self.lease_ms(),
        });
        next.attempts += 1;
        next.runs += 1;
        next.epoch = next.epoch.max(delivery.epoch);
        match self.commit(&next, &cas, "take lease").await {
            Ok(()) => {}
            // Another run took the lease between our read and our write.
            Err(DurableError::Fenced { .. }) => return Ok(Begin::Busy),
            Err(e) => return Err(e),
        }
        let (resumed, resumed_seq, recovery) = self.load_checkpoint(&next).await?;
        tracing::debug!(%task_id, seq = next.seq, resumed_seq, attempt = next.attempts, "run begins");
        Ok(Begin::Run(Run {
            durable: self.clone(),
            delivery,
            attempt: next.attempts,
            record: Box::new(next),
            token,
            resumed,
            resumed_seq,
            recovery,
        }))
    }

    /// Loads the newest committed checkpoint that decodes, newest first.
    async fn load_checkpoint(
        &self,
        record: &TaskRecord,
    ) -> Result<(Option<Vec<u8>>, u64, Option<Recovery>), DurableError> {
        let mut problems = Vec::new();
        for cp in record.checkpoints.iter().rev() {
            let object = self
                .retry("read checkpoint", || self.backend().get_object(&cp.key))
                .await?;
            let outcome = match object {
                None => Err(format!("checkpoint {} ({}) is missing", cp.seq, cp.key)),
                Some(bytes) => {
                    format::decode_with_limit(&bytes, &record.task_id, cp.seq, self.settings().max_checkpoint)
                        .map_err(|e: FormatError| format!("checkpoint {} ({}) is unreadable: {e}", cp.seq, cp.key))
                }
            };
            match outcome {
                Ok(state) if problems.is_empty() => return Ok((Some(state), cp.seq, None)),
                Ok(state) => {
                    tracing::warn!(task_id = %record.task_id, committed = record.seq, resumed = cp.seq,
                        problems = ?problems, "newest checkpoint unusable; resuming from an earlier one");
                    let recovery = Recovery {
                        committed_seq: record.seq,
                        resumed_seq: Some(cp.seq),
                        problems,
                    };
                    return Ok((Some(state), cp.seq, Some(recovery)));
                }
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            return Ok((None, 0, None));
        }
        tracing::warn!(task_id = %record.task_id, committed = record.seq, problems = ?problems,
            "no committed checkpoint is readable; the task starts over");
        Ok((
            None,
            0,
            Some(Recovery {
                committed_seq: record.seq,
                resumed_seq: None,
                problems,
            }),
        ))
    }

    /// A conditional write, telling fencing apart from a retried write whose first response was lost.
    async fn commit(&self, next: &TaskRecord, condition: &Condition, op: &'static str) -> Result<(), DurableError> {
        match self.retry(op, || self.backend().update_task(next, condition)).await {
            Ok(()) => Ok(()),
            Err(DurableError::Store {
                source: StoreError::ConditionFailed,
                ..
            }) => match self.status(&next.task_id).await? {
                Some(stored) if stored == *next => Ok(()),
                _ => Err(DurableError::Fenced {
                    task_id: next.task_id.clone(),
                    op,
                }),
            },
            Err(e) => Err(e),
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), DurableError> {
        self.retry("ack continuation", || self.backend().ack(&delivery.receipt))
            .await
    }

    /// Hides a delivery that found a live lease until `remaining_ms` (plus [`BUSY_SLACK`]) from now, instead of
    /// the whole visibility timeout it was claimed for: after a host is killed, its runs' messages come back
    /// while their leases (renewed on every save) still live, and the task resumes as soon as the lease allows.
    /// Best effort: if this fails, the message comes back after its visibility timeout as before.
    async fn hide_until_lease_expires(&self, delivery: &Delivery, remaining_ms: u64) {
        let visibility = remaining_ms + BUSY_SLACK.as_millis() as u64;
        let receipt = &delivery.receipt;
        if let Err(e) = self
            .retry("extend visibility", || {
                self.backend().change_visibility(receipt, visibility)
            })
            .await
        {
            tracing::debug!(task_id = %delivery.task_id, error = %e,
                "could not reschedule a busy delivery; it comes back after its visibility timeout");
        }
    }

    /// Runs `f` until it succeeds, fails permanently, or the retry budget is spent on transient failures.
    async fn retry<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, DurableError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let policy = &self.settings().retry;
        let attempts = policy.attempts.max(1);
        let mut delay = policy.base_delay;
        let mut tried = 0;
        loop {
            tried += 1;
            match f().await {
                Ok(value) => return Ok(value),
                Err(source) if source.is_transient() => {
                    if tried >= attempts {
                        return Err(DurableError::RetriesExhausted {
                            op,
                            attempts: tried,
                            source,
                        });
                    }
                    tracing::debug!(op, attempt = tried, error = %source, "transient backend failure; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(policy.max_delay);
                }
                Err(source) => return Err(DurableError::Store { op, source }),
            }
        }
    }

    fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// `max_attempts`, where 0 means 1: a task always gets at least one run.
    fn max_attempts(&self) -> u32 {
        self.settings().max_attempts.max(1)
    }

    fn lease_ms(&self) -> u64 {
        self.settings().lease_ttl.as_millis() as u64
    }
}

/// One run of a task, holding a fresh lease. Dropping it without [`Run::yielded`], [`Run::done`] or
/// [`Run::failed`] is what a crash looks like: the task resumes from the last commit after the lease expires
/// and the message is redelivered.
pub struct Run {
    durable: Durable,
    delivery: Delivery,
    /// Which attempt this run is, as charged when it took the lease.
    attempt: u32,
    /// The record as this run last committed it.
    record: Box<TaskRecord>,
    token: String,
    resumed: Option<Vec<u8>>,
    resumed_seq: u64,
    recovery: Option<Recovery>,
}

/// Identifies the run without dumping its input and state, which may be megabytes.
impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("task_id", &self.record.task_id)
            .field("seq", &self.record.seq)
            .field("resumed_seq", &self.resumed_seq)
            .field("attempt", &self.attempt)
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

impl Run {
    /// The task's id.
    pub fn task_id(&self) -> &str {
        &self.record.task_id
    }

    /// The function that runs the task.
    pub fn function(&self) -> &str {
        &self.record.function
    }

    /// The task's input, as given to [`Durable::start`].
    pub fn input(&self) -> &[u8] {
        &self.record.input
    }

    /// The state to resume from; `None` on the first run (or if no checkpoint was readable).
    pub fn resumed(&self) -> Option<&[u8]> {
        self.resumed.as_deref()
    }

    /// Sequence number of the last committed checkpoint (0 = none); the next save commits `seq() + 1`.
    pub fn seq(&self) -> u64 {
        self.record.seq
    }

    /// Sequence number of the checkpoint [`Run::resumed`] came from (0 = none); below [`Run::seq`] only after
    /// a recovery.
    pub fn resumed_seq(&self) -> u64 {
        self.resumed_seq
    }

    /// Which attempt this run is (1-based): 1 plus the attempts charged when it began, i.e. runs that failed
    /// since the last yield and runs that died without committing since the last commit.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Set if the newest committed checkpoint could not be used and the run resumed from an earlier one.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Wall-clock ms at which this run's lease expires unless it saves or renews.
    pub fn lease_expires_at_ms(&self) -> u64 {
        self.record.lease.as_ref().map_or(0, |l| l.expires_at_ms)
    }

    /// Commits `state` as checkpoint `seq() + 1` and renews the lease. Fails with [`SaveError::Fenced`] if a
    /// newer run took the task over, and with [`SaveError::TooLarge`] (not retried) above `max_checkpoint`.
    pub async fn save(&mut self, state: &[u8]) -> Result<(), SaveError> {
        let limit = self.durable.settings().max_checkpoint;
        if state.len() > limit {
            return Err(SaveError::TooLarge {
                size: state.len(),
                limit,
            });
        }
        let task_id = self.record.task_id.clone();
        let mut resynced = false;
        loop {
            let seq = self.record.seq + 1;
            let key = checkpoint_key(&task_id, seq, &self.token);
            let bytes = format::encode(&task_id, seq, state);
            let backend = self.durable.backend();
            self.durable
                .retry("write checkpoint", || backend.put_object(&key, bytes.clone()))
                .await?;

            let mut next = self.renewed();
            next.seq = seq;
            // A commit is progress: this run, and the runs that died before it, stop counting as attempts, in
            // the same conditional write, so a crash right after it costs nothing. Failures still count.
            next.attempts = next.failures;
            next.checkpoints.push(CheckpointRef { seq, key: key.clone() });
            let excess = next.checkpoints.len().saturating_sub(KEEP_CHECKPOINTS);
            let pruned: Vec<CheckpointRef> = next.checkpoints.drain(..excess).collect();
            let condition = self.condition();
            match self.durable.commit(&next, &condition, "commit checkpoint").await {
                Ok(()) => {
                    *self.record = next;
                    for old in pruned {
                        self.delete_quietly(&old.key).await;
                    }
                    return Ok(());
                }
                // An earlier save of ours landed although it reported failure: the object just written under
                // the same key is now the committed one (with this newer state). Commit on top of it.
                Err(DurableError::Fenced { .. }) if !resynced && self.resync().await? => resynced = true,
                Err(DurableError::Fenced { .. }) => {
                    // Our object is uncommitted and named after our lease, so it replaced nothing; tidy it up.
                    self.delete_quietly(&key).await;
                    return Err(SaveError::Fenced { task_id, seq });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Records guest-reported progress (text or JSON, at most [`MAX_PROGRESS`] bytes) and renews the lease.
    pub async fn set_progress(&mut self, progress: &str) -> Result<(), SaveError> {
        if progress.len() > MAX_PROGRESS {
            return Err(SaveError::TooLarge {
                size: progress.len(),
                limit: MAX_PROGRESS,
            });
        }
        let commit = self.commit("commit progress", |run| {
            let mut next = run.renewed();
            next.progress = Some(progress.to_owned());
            next
        });
        commit.await.map_err(|e| match e {
            DurableError::Fenced { task_id, .. } => SaveError::Fenced {
                task_id,
                seq: self.record.seq,
            },
            e => SaveError::Durable(e),
        })
    }

    /// Extends the lease and the message's visibility, for a run that works long between saves.
    pub async fn renew(&mut self) -> Result<(), DurableError> {
        self.commit("renew lease", Run::renewed).await?;
        let visibility = self.durable.settings().visibility_timeout.as_millis() as u64;
        let receipt = &self.delivery.receipt;
        let backend = self.durable.backend();
        self.durable
            .retry("extend visibility", || backend.change_visibility(receipt, visibility))
            .await
    }

    /// Ends the run voluntarily: enqueues the continuation, marks the task `Yielded`, releases the lease and
    /// acks the delivery. The next run resumes from the last committed checkpoint.
    pub async fn yielded(self) -> Result<(), DurableError> {
        let epoch = self.record.epoch + 1;
        // Enqueue before committing: a crash in between leaves a spare message (dropped as superseded or
        // fenced by the lease), never a yielded task with no message.
        self.enqueue(epoch, Duration::ZERO).await?;
        self.finish("commit yield", |run| {
            let mut next = run.released();
            next.status = TaskStatus::Yielded;
            next.attempts = 0;
            next.failures = 0;
            next.error = None;
            next.epoch = epoch;
            next
        })
        .await
    }

    /// Ends the task with its output.
    pub async fn done(self, output: Vec<u8>) -> Result<(), DurableError> {
        self.finish("commit result", |run| {
            let mut next = run.released();
            next.status = TaskStatus::Done;
            next.result = Some(output.clone());
            next.error = None;
            next
        })
        .await
    }

    /// Ends the run with an error, which counts as a failed attempt even if the run committed checkpoints (a
    /// guest that saves and then fails every time must not retry forever). Below `max_attempts` the task is
    /// retried from the last commit after a backoff; at `max_attempts` it is marked `Failed` with this error.
    pub async fn failed(self, error: String) -> Result<(), DurableError> {
        let failures = self.record.failures.saturating_add(1);
        // Without a commit this run is still charged from `begin`; after one, it is charged again here.
        let attempts = self.record.attempts.max(failures);
        let (status, epoch) = if attempts >= self.durable.max_attempts() {
            tracing::warn!(task_id = %self.record.task_id, attempts, "task failed");
            (TaskStatus::Failed, self.record.epoch)
        } else {
            let exp = attempts.saturating_sub(1).min(20);
            let delay = self
                .durable
                .settings()
                .retry_delay
                .saturating_mul(1 << exp)
                .min(MAX_DELAY);
            let epoch = self.record.epoch + 1;
            self.enqueue(epoch, delay).await?;
            (TaskStatus::Running, epoch)
        };
        self.finish("commit failure", |run| {
            let mut next = run.released();
            next.error = Some(error.clone());
            next.status = status;
            next.epoch = epoch;
            next.attempts = attempts;
            next.failures = failures;
            next
        })
        .await
    }

    /// The record with the lease renewed, as the base of a lease-holder commit.
    fn renewed(&self) -> TaskRecord {
        let now = self.durable.now_ms();
        let mut next = (*self.record).clone();
        next.lease = Some(Lease {
            token: self.token.clone(),
            expires_at_ms: now + self.durable.lease_ms(),
        });
        next.updated_ms = now;
        next.revision += 1;
        next
    }

    /// The record with the lease released, as the base of a final commit.
    fn released(&self) -> TaskRecord {
        let mut next = self.renewed();
        next.lease = None;
        next
    }

    /// The condition of every commit by this run: its lease and the seq it last committed.
    fn condition(&self) -> Condition {
        Condition::Lease {
            seq: self.record.seq,
            token: self.token.clone(),
        }
    }

    /// A lease-holder commit of `build(self)`. If it is fenced but the stored record still carries our lease,
    /// an earlier commit of ours landed although it reported failure; adopt it and build on top of it once.
    async fn commit(&mut self, op: &'static str, build: impl Fn(&Run) -> TaskRecord) -> Result<(), DurableError> {
        let mut resynced = false;
        loop {
            let next = build(self);
            match self.durable.commit(&next, &self.condition(), op).await {
                Ok(()) => {
                    *self.record = next;
                    return Ok(());
                }
                Err(DurableError::Fenced { .. }) if !resynced && self.resync().await? => resynced = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Re-reads the record after a fenced commit; true (and the record adopted) if we still hold the lease.
    async fn resync(&mut self) -> Result<bool, DurableError> {
        match self.durable.status(&self.record.task_id).await? {
            Some(stored)
                if !stored.status.is_terminal()
                    && stored.lease.as_ref().is_some_and(|l| l.token == self.token)
                    && stored.seq != self.record.seq =>
            {
                tracing::info!(task_id = %stored.task_id, ours = self.record.seq, stored = stored.seq,
                    "an earlier commit of this run landed after reporting failure; continuing from it");
                *self.record = stored;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Final commit, then ack. A fenced run does not ack: its receipt may belong to the newer run's delivery.
    async fn finish(mut self, op: &'static str, build: impl Fn(&Run) -> TaskRecord) -> Result<(), DurableError> {
        self.commit(op, build).await?;
        self.durable.ack(&self.delivery).await
    }

    async fn enqueue(&self, epoch: u64, delay: Duration) -> Result<(), DurableError> {
        let message = Continuation {
            task_id: self.record.task_id.clone(),
            epoch,
        };
        let delay_ms = delay.as_millis() as u64;
        let backend = self.durable.backend();
        self.durable
            .retry("enqueue continuation", || backend.enqueue(&message, delay_ms))
            .await
    }

    async fn delete_quietly(&self, key: &str) {
        let backend = self.durable.backend();
        if let Err(e) = self
            .durable
            .retry("delete checkpoint", || backend.delete_object(key))
            .await
        {
            tracing::warn!(task_id = %self.record.task_id, key, error = %e, "could not delete a stale checkpoint");
        }
    }
}
