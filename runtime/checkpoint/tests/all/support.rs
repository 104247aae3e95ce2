//! Shared test machinery: a simulated guest, a loop that drives tasks to the end, and a fault-injecting backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nimbus_checkpoint::store::{BoxFuture, Received};
use nimbus_checkpoint::{
    Backend, Begin, Condition, Continuation, Created, Durable, ManualClock, RetryPolicy, Run, SaveError, Settings,
    StoreError, TaskRecord, TaskStatus,
};
use sha2::{Digest, Sha256};

/// Settings with fast transient retries; lease/visibility are on the manual clock, so their size is irrelevant
/// to test duration.
pub fn settings() -> Settings {
    Settings {
        max_checkpoint: 1024 * 1024,
        lease_ttl: Duration::from_secs(10),
        max_attempts: 3,
        visibility_timeout: Duration::from_secs(15),
        retry_delay: Duration::from_secs(1),
        retry: RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        },
    }
}

/// The job a simulated guest does: fold `chunks` generated chunks into a SHA-256 chain and a byte sum.
pub fn job(chunks: u64, seed: u64) -> Vec<u8> {
    [chunks.to_le_bytes(), seed.to_le_bytes()].concat()
}

fn parse_job(input: &[u8]) -> (u64, u64) {
    let chunks = u64::from_le_bytes(input[..8].try_into().unwrap());
    let seed = u64::from_le_bytes(input[8..16].try_into().unwrap());
    (chunks, seed)
}

/// Chunk `i` of the stream: 4 KiB derived from the seed, different for every chunk.
fn chunk(seed: u64, i: u64) -> Vec<u8> {
    let block = Sha256::digest([seed.to_le_bytes(), i.to_le_bytes()].concat());
    block
        .iter()
        .cycle()
        .take(4096)
        .enumerate()
        .map(|(k, b)| b.wrapping_add(k as u8))
        .collect()
}

/// The guest's state: next chunk index, running hash, running byte sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestState {
    pub next: u64,
    pub hash: [u8; 32],
    pub sum: u64,
}

impl GuestState {
    pub fn initial() -> Self {
        Self {
            next: 0,
            hash: [0; 32],
            sum: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        [&self.next.to_le_bytes()[..], &self.hash, &self.sum.to_le_bytes()].concat()
    }

    pub fn decode(bytes: &[u8]) -> Self {
        assert_eq!(bytes.len(), 48, "guest state has the wrong length");
        Self {
            next: u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            hash: bytes[8..40].try_into().unwrap(),
            sum: u64::from_le_bytes(bytes[40..48].try_into().unwrap()),
        }
    }

    pub fn step(&mut self, seed: u64) {
        let data = chunk(seed, self.next);
        self.sum += data.iter().map(|&b| b as u64).sum::<u64>();
        self.hash = Sha256::digest([&self.hash[..], &data].concat()).into();
        self.next += 1;
    }

    pub fn result(&self) -> Vec<u8> {
        [&self.hash[..], &self.sum.to_le_bytes()].concat()
    }
}

/// The result of the job computed in one go, to compare with the durable run's.
pub fn expected(chunks: u64, seed: u64) -> Vec<u8> {
    let mut st = GuestState::initial();
    for _ in 0..chunks {
        st.step(seed);
    }
    st.result()
}

/// How a simulated run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Yielded,
    Done,
}

/// One run of the simulated guest: resume, process up to `per_run` chunks saving after each, then yield or
/// finish. The state it resumed from is returned too.
pub async fn guest(mut run: Run, per_run: u64) -> Result<(Ended, Option<GuestState>), SaveError> {
    let (chunks, seed) = parse_job(run.input());
    let resumed = run.resumed().map(GuestState::decode);
    let mut st = resumed.clone().unwrap_or_else(GuestState::initial);
    for _ in 0..per_run {
        if st.next == chunks {
            break;
        }
        st.step(seed);
        run.save(&st.encode()).await?;
    }
    if st.next == chunks {
        run.done(st.result()).await?;
        Ok((Ended::Done, resumed))
    } else {
        run.yielded().await?;
        Ok((Ended::Yielded, resumed))
    }
}

/// What [`drive`] observed.
#[derive(Debug, Default)]
pub struct Drive {
    /// Runs begun (and completed by the guest).
    pub runs: u32,
    /// Deliveries dropped as finished/superseded.
    pub finished: u32,
    /// Deliveries that found the lease busy.
    pub busy: u32,
}

/// Receives and runs continuations until `task_id` is terminal and the queue is drained; when nothing is
/// visible, moves the clock past the visibility timeout (what a real host would wait for).
pub async fn drive(durable: &Durable, clock: &ManualClock, task_id: &str, per_run: u64) -> Drive {
    let mut seen = Drive::default();
    let visibility = durable.settings().visibility_timeout.as_millis() as u64;
    let mut idle = 0;
    for _ in 0..10_000 {
        match durable.receive().await.expect("receive") {
            Some(delivery) => {
                idle = 0;
                match durable.begin(delivery).await.expect("begin") {
                    Begin::Run(run) => {
                        seen.runs += 1;
                        guest(run, per_run).await.expect("guest run");
                    }
                    Begin::Finished => seen.finished += 1,
                    Begin::Busy => seen.busy += 1,
                }
            }
            None => {
                let record = durable.status(task_id).await.expect("status").expect("task exists");
                idle += 1;
                if record.status.is_terminal() && idle > 2 {
                    return seen;
                }
                clock.advance(visibility + 1);
            }
        }
    }
    panic!("task {task_id} did not finish: {seen:?}");
}

/// Asserts the task is `Done` with the job's exact result.
pub async fn assert_done(durable: &Durable, task_id: &str, chunks: u64, seed: u64) -> TaskRecord {
    let record = durable.status(task_id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Done, "task record: {record:?}");
    assert_eq!(
        record.result.as_deref(),
        Some(&expected(chunks, seed)[..]),
        "wrong result"
    );
    assert_eq!(record.seq, chunks, "one commit per chunk");
    assert!(record.lease.is_none());
    record
}

/// When an injected fault strikes relative to the real operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The operation is not performed (throttled before it ran).
    Before,
    /// The operation is performed but its response is lost (timeout after the write landed).
    After,
}

/// Wraps a backend and fails every `every`-th operation with `Transient` (0 = never), or all of them while
/// `always` is set.
pub struct Faulty {
    pub inner: Arc<dyn Backend>,
    pub every: u64,
    pub mode: FaultMode,
    pub always: AtomicBool,
    /// If set, only this backend operation is faulted.
    pub only: std::sync::Mutex<Option<&'static str>>,
    pub ops: AtomicU64,
    pub injected: AtomicU64,
}

impl Faulty {
    pub fn new(inner: Arc<dyn Backend>, every: u64, mode: FaultMode) -> Self {
        Self {
            inner,
            every,
            mode,
            always: AtomicBool::new(false),
            only: Default::default(),
            ops: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    fn gate<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        fut: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        Box::pin(async move {
            let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
            let selected = self.only.lock().unwrap().is_none_or(|only| only == op);
            let fault =
                selected && (self.always.load(Ordering::SeqCst) || (self.every != 0 && n.is_multiple_of(self.every)));
            if !fault {
                return fut.await;
            }
            self.injected.fetch_add(1, Ordering::SeqCst);
            if self.mode == FaultMode::After {
                let _ = fut.await;
            }
            Err(StoreError::Transient {
                op,
                detail: "injected fault (throttled)".into(),
            })
        })
    }
}

impl Backend for Faulty {
    fn put_object<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        self.gate("put_object", self.inner.put_object(key, bytes))
    }
    fn get_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        self.gate("get_object", self.inner.get_object(key))
    }
    fn delete_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.gate("delete_object", self.inner.delete_object(key))
    }
    fn get_task<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        self.gate("get_task", self.inner.get_task(task_id))
    }
    fn create_task<'a>(&'a self, record: &'a TaskRecord) -> BoxFuture<'a, Result<Created, StoreError>> {
        self.gate("create_task", self.inner.create_task(record))
    }
    fn update_task<'a>(
        &'a self,
        record: &'a TaskRecord,
        condition: &'a Condition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.gate("update_task", self.inner.update_task(record, condition))
    }
    fn enqueue<'a>(&'a self, message: &'a Continuation, delay_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.gate("enqueue", self.inner.enqueue(message, delay_ms))
    }
    fn receive(&self, visibility_ms: u64) -> BoxFuture<'_, Result<Option<Received>, StoreError>> {
        self.gate("receive", self.inner.receive(visibility_ms))
    }
    fn ack<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.gate("ack", self.inner.ack(receipt))
    }
    fn change_visibility<'a>(&'a self, receipt: &'a str, visibility_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.gate(
            "change_visibility",
            self.inner.change_visibility(receipt, visibility_ms),
        )
    }
}

/// Kills `kills` runs in a row of `task_id` (a task that has not run yet), each right after it committed one chunk of the job: the run is
/// dropped without ending (what a SIGKILL looks like to the store), then its lease expires (`clock`) and its
/// message's claim lapses (`backend`'s visibility change to 0, as when the visibility timeout passes). Every
/// run must begin as the first attempt, because a run that committed made progress, and the record must say
/// so as soon as the commit lands.
pub async fn kill_after_each_commit(
    durable: &Durable,
    backend: &dyn Backend,
    clock: &ManualClock,
    task_id: &str,
    kills: u64,
) {
    let (_, seed) = parse_job(&durable.status(task_id).await.unwrap().unwrap().input);
    for kill in 1..=kills {
        let delivery = durable
            .receive()
            .await
            .unwrap()
            .expect("the killed run's message comes back");
        let receipt = delivery.receipt.clone();
        let mut run = match durable.begin(delivery).await.unwrap() {
            Begin::Run(run) => run,
            other => panic!("kill {kill}: expected a run, got {other:?}"),
        };
        assert_eq!(run.attempt(), 1, "kill {kill}: a run killed after a commit was counted");
        let mut st = run
            .resumed()
            .map(GuestState::decode)
            .unwrap_or_else(GuestState::initial);
        st.step(seed);
        run.save(&st.encode()).await.unwrap();
        let record = durable.status(task_id).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.seq, record.attempts),
            (TaskStatus::Running, kill, 0),
            "kill {kill}: the commit must clear the attempt in the same record"
        );
        drop(run);
        clock.advance(durable.settings().lease_ttl.as_millis() as u64 + 1);
        backend.change_visibility(&receipt, 0).await.unwrap();
    }
}
