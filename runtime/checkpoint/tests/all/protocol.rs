//! The protocol end to end: multi-run tasks, fencing, recovery, idempotency, failures, faults and restarts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nimbus_checkpoint::{
    Backend, Begin, Durable, DurableError, Embedded, ManualClock, Run, SaveError, Settings, TaskStatus,
};

use crate::support::{
    Drive, Ended, FaultMode, Faulty, GuestState, assert_done, drive, expected, guest, job, kill_after_each_commit,
    settings,
};

const START_MS: u64 = 1_700_000_000_000;

fn embedded(dir: &std::path::Path, clock: &ManualClock) -> Arc<dyn Backend> {
    Arc::new(Embedded::with_clock(dir, Arc::new(clock.clone())).unwrap())
}

fn durable_on(backend: Arc<dyn Backend>, clock: &ManualClock, settings: Settings) -> Durable {
    Durable::with_clock(backend, settings, Arc::new(clock.clone()))
}

fn setup() -> (tempfile::TempDir, ManualClock, Durable) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let durable = durable_on(embedded(dir.path(), &clock), &clock, settings());
    (dir, clock, durable)
}

async fn begin_run(durable: &Durable) -> Run {
    let delivery = durable.receive().await.unwrap().expect("a visible message");
    match durable.begin(delivery).await.unwrap() {
        Begin::Run(run) => run,
        other => panic!("expected a run, got {other:?}"),
    }
}

#[tokio::test]
async fn task_needing_many_runs_completes_with_exact_result() {
    let (_dir, clock, durable) = setup();
    let started = durable.start("summer", job(17, 7), None).await.unwrap();
    assert!(started.created);
    let seen = drive(&durable, &clock, &started.task_id, 3).await;
    assert_eq!(seen.runs, 6, "17 chunks at 3 per run: {seen:?}");
    assert_eq!((seen.busy, seen.finished), (0, 0), "{seen:?}");
    let record = assert_done(&durable, &started.task_id, 17, 7).await;
    assert_eq!(record.runs, 6);
    assert!(record.checkpoints.len() <= nimbus_checkpoint::driver::KEEP_CHECKPOINTS);
    // Nothing is left in the queue once the task is done.
    clock.advance(3_600_000);
    assert!(durable.receive().await.unwrap().is_none());
}

#[tokio::test]
async fn yielded_status_and_resume_state_between_runs() {
    let (_dir, _clock, durable) = setup();
    let started = durable.start("summer", job(10, 1), None).await.unwrap();
    let run = begin_run(&durable).await;
    assert_eq!((run.seq(), run.attempt(), run.resumed()), (0, 1, None));
    let (ended, _) = guest(run, 4).await.unwrap();
    assert_eq!(ended, Ended::Yielded);
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.seq, record.attempts, record.lease.clone()),
        (TaskStatus::Yielded, 4, 0, None)
    );
    let run = begin_run(&durable).await;
    assert_eq!(run.seq(), 4);
    assert_eq!(GuestState::decode(run.resumed().unwrap()).next, 4);
    assert!(run.recovery().is_none());
}

#[tokio::test]
async fn stale_run_is_fenced_and_never_overwrites_newer_state() {
    let (dir, clock, durable) = setup();
    let started = durable.start("summer", job(8, 3), None).await.unwrap();
    let mut stale = begin_run(&durable).await;

    // The stale run stalls past its lease; its message is redelivered and a new run takes over.
    clock.advance(durable.settings().visibility_timeout.as_millis() as u64 + 1);
    let mut fresh = begin_run(&durable).await;
    assert_eq!((fresh.seq(), fresh.resumed(), fresh.attempt()), (0, None, 2));

    // Same seq as the record, so only the lease token fences this one.
    match stale.save(&[9, 9, 9]).await {
        Err(SaveError::Fenced { seq: 1, .. }) => {}
        other => panic!("stale save must be fenced, got {other:?}"),
    }
    fresh.save(&[4, 5]).await.unwrap();
    match stale.save(&[9, 9, 9]).await {
        Err(SaveError::Fenced { .. }) => {}
        other => panic!("stale save must be fenced, got {other:?}"),
    }
    match stale.set_progress("stale").await {
        Err(SaveError::Fenced { .. }) => {}
        other => panic!("stale progress must be fenced, got {other:?}"),
    }
    match stale.done(b"wrong".to_vec()).await {
        Err(DurableError::Fenced { .. }) => {}
        other => panic!("stale done must be fenced, got {other:?}"),
    }
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(
        (record.seq, record.status, record.result.clone()),
        (1, TaskStatus::Running, None)
    );
    // The fenced run's objects were removed again; only the committed one remains.
    let objects = std::fs::read_dir(dir.path().join("objects/tasks").join(&started.task_id).join("1")).unwrap();
    assert_eq!(objects.count(), 1);

    // The newer run's state is what the next run resumes.
    fresh.yielded().await.unwrap();
    let mut next = begin_run(&durable).await;
    assert_eq!(next.resumed(), Some(&[4u8, 5][..]));
    // [4, 5] is not a guest state, so restart the computation cleanly and check the final result.
    next.save(&GuestState::initial().encode()).await.unwrap();
    next.yielded().await.unwrap();
    drive(&durable, &clock, &started.task_id, 3).await;
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Done);
    assert_eq!(record.result.as_deref(), Some(&expected(8, 3)[..]));
}

#[tokio::test]
async fn concurrent_begins_admit_exactly_one_run() {
    let (_dir, clock, durable) = setup();
    // A retried start of an unstarted task re-arms it: two messages for one task.
    let a = durable.start("summer", job(9, 5), Some("dup")).await.unwrap();
    let b = durable.start("summer", job(9, 5), Some("dup")).await.unwrap();
    assert_eq!(a.task_id, b.task_id);
    let d1 = durable.receive().await.unwrap().unwrap();
    let d2 = durable.receive().await.unwrap().unwrap();
    assert_ne!(d1.receipt, d2.receipt);
    let (r1, r2) = tokio::join!(durable.begin(d1), durable.begin(d2));
    let outcomes = [r1.unwrap(), r2.unwrap()];
    let runs: Vec<&Run> = outcomes
        .iter()
        .filter_map(|b| if let Begin::Run(r) = b { Some(r) } else { None })
        .collect();
    let busy = outcomes.iter().filter(|b| matches!(b, Begin::Busy)).count();
    assert_eq!((runs.len(), busy), (1, 1), "{outcomes:?}");
    let [first, second] = outcomes;
    let run = match (first, second) {
        (Begin::Run(r), _) | (_, Begin::Run(r)) => r,
        _ => unreachable!(),
    };
    guest(run, 3).await.unwrap();
    let seen: Drive = drive(&durable, &clock, &a.task_id, 3).await;
    // The busy duplicate comes back and is dropped as superseded, not run as a second chain.
    assert!(seen.finished >= 1, "{seen:?}");
    assert_done(&durable, &a.task_id, 9, 5).await;
}

#[tokio::test]
async fn corrupt_newest_checkpoint_falls_back_to_previous() {
    let (dir, clock, durable) = setup();
    let started = durable.start("summer", job(12, 11), None).await.unwrap();
    let (ended, _) = guest(begin_run(&durable).await, 4).await.unwrap();
    assert_eq!(ended, Ended::Yielded);

    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    let newest = record.checkpoints.last().unwrap();
    assert_eq!(newest.seq, 4);
    let path = dir.path().join("objects").join(&newest.key);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&path, bytes).unwrap();

    let run = begin_run(&durable).await;
    let recovery = run.recovery().expect("recovery is reported").clone();
    assert_eq!((recovery.committed_seq, recovery.resumed_seq), (4, Some(3)));
    assert!(recovery.problems[0].contains("checksum mismatch"), "{recovery:?}");
    assert_eq!((run.seq(), run.resumed_seq()), (4, 3));
    assert_eq!(GuestState::decode(run.resumed().unwrap()).next, 3);
    // The run redoes chunk 4 and commits it as seq 5; the result is still exact.
    guest(run, 4).await.unwrap();
    drive(&durable, &clock, &started.task_id, 4).await;
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Done);
    assert_eq!(record.result.as_deref(), Some(&expected(12, 11)[..]));
}

#[tokio::test]
async fn missing_newest_checkpoint_falls_back_and_unreadable_history_starts_over() {
    let (dir, _clock, durable) = setup();
    let started = durable.start("summer", job(12, 2), None).await.unwrap();
    guest(begin_run(&durable).await, 3).await.unwrap();
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    let keys: Vec<_> = record
        .checkpoints
        .iter()
        .map(|c| dir.path().join("objects").join(&c.key))
        .collect();
    std::fs::remove_file(&keys[2]).unwrap();
    let run = begin_run(&durable).await;
    let recovery = run.recovery().unwrap();
    assert_eq!(recovery.resumed_seq, Some(2));
    assert!(recovery.problems[0].contains("missing"), "{recovery:?}");
    drop(run);

    // With every retained checkpoint unreadable the run starts over, and says so.
    std::fs::write(&keys[1], b"garbage").unwrap();
    std::fs::write(&keys[0], b"NMBCKPT").unwrap();
    let clock_skip = durable.settings().visibility_timeout.as_millis() as u64 + 1;
    _clock.advance(clock_skip);
    let run = begin_run(&durable).await;
    let recovery = run.recovery().unwrap();
    assert_eq!(
        (recovery.resumed_seq, recovery.problems.len()),
        (None, 3),
        "{recovery:?}"
    );
    assert!(run.resumed().is_none());
    assert!(recovery.problems[1].contains("bad magic"), "{recovery:?}");
    assert!(recovery.problems[2].contains("truncated"), "{recovery:?}");
}

#[tokio::test]
async fn idempotent_start_returns_the_existing_task() {
    let (_dir, clock, durable) = setup();
    let first = durable.start("summer", job(4, 9), Some("order-17")).await.unwrap();
    let again = durable.start("summer", job(4, 9), Some("order-17")).await.unwrap();
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(first.task_id, again.task_id);
    let other = durable.start("summer", job(4, 9), Some("order-18")).await.unwrap();
    assert!(other.created);
    assert_ne!(other.task_id, first.task_id);

    drive(&durable, &clock, &first.task_id, 10).await;
    drive(&durable, &clock, &other.task_id, 10).await;
    let done = assert_done(&durable, &first.task_id, 4, 9).await;
    assert_eq!(done.runs, 1, "the duplicate start must not cause a second run");
    // After completion, a retried start still returns the task and enqueues nothing.
    let late = durable.start("summer", job(4, 9), Some("order-17")).await.unwrap();
    assert_eq!((late.task_id.as_str(), late.created), (first.task_id.as_str(), false));
    clock.advance(3_600_000);
    assert!(durable.receive().await.unwrap().is_none());
}

#[tokio::test]
async fn failed_runs_retry_from_last_commit_then_fail_with_the_error() {
    let (_dir, clock, durable) = setup();
    let started = durable.start("flaky", Vec::new(), None).await.unwrap();
    let mut attempts = Vec::new();
    let mut resumed = Vec::new();
    for _ in 0..20 {
        let Some(delivery) = durable.receive().await.unwrap() else {
            let record = durable.status(&started.task_id).await.unwrap().unwrap();
            if record.status.is_terminal() {
                break;
            }
            clock.advance(60_000);
            continue;
        };
        let Begin::Run(mut run) = durable.begin(delivery).await.unwrap() else {
            continue;
        };
        attempts.push(run.attempt());
        resumed.push(run.resumed().map(<[u8]>::to_vec));
        if run.attempt() == 1 {
            run.save(b"partial").await.unwrap();
        }
        let n = run.attempt();
        run.failed(format!("boom {n}")).await.unwrap();
    }
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(resumed, [None, Some(b"partial".to_vec()), Some(b"partial".to_vec())]);
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("boom 3"));
    assert_eq!(record.seq, 1);
}

#[tokio::test]
async fn runs_that_keep_dying_end_in_failed() {
    let (_dir, clock, durable) = setup();
    let started = durable.start("crashy", Vec::new(), None).await.unwrap();
    let visibility = durable.settings().visibility_timeout.as_millis() as u64 + 1;
    for attempt in 1..=3 {
        let run = begin_run(&durable).await;
        assert_eq!(run.attempt(), attempt);
        drop(run); // killed: no yield, no done, no failed
        clock.advance(visibility);
    }
    let delivery = durable.receive().await.unwrap().unwrap();
    assert!(matches!(durable.begin(delivery).await.unwrap(), Begin::Finished));
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Failed);
    assert!(
        record.error.as_deref().unwrap().contains("gave up after 3 attempts"),
        "{record:?}"
    );
    clock.advance(visibility);
    assert!(durable.receive().await.unwrap().is_none());
}

/// Runs killed after committing, many more than `max_attempts` in a row, never fail the task: each commit is
/// progress and clears the attempt in the committed record. The task then completes with the exact result.
#[tokio::test]
async fn runs_killed_after_committing_never_use_up_the_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let backend = embedded(dir.path(), &clock);
    let durable = durable_on(backend.clone(), &clock, settings());
    let started = durable.start("summer", job(14, 8), None).await.unwrap();
    let kills = 3 * u64::from(durable.settings().max_attempts) + 1;
    kill_after_each_commit(&durable, &*backend, &clock, &started.task_id, kills).await;
    drive(&durable, &clock, &started.task_id, 3).await;
    let record = assert_done(&durable, &started.task_id, 14, 8).await;
    assert_eq!(record.runs, kills + 2, "10 killed runs, then 4 chunks at 3 per run");
}

/// Runs that die before committing still count, and only a commit clears them: two lost runs, a run that
/// commits and dies (the task carries on from its first attempt), then `max_attempts` lost runs fail it.
#[tokio::test]
async fn runs_lost_before_committing_count_until_a_commit_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let backend = embedded(dir.path(), &clock);
    let durable = durable_on(backend.clone(), &clock, settings());
    let started = durable.start("crashy", job(5, 2), None).await.unwrap();
    let visibility = durable.settings().visibility_timeout.as_millis() as u64 + 1;
    for attempt in 1..=2 {
        assert_eq!(begin_run(&durable).await.attempt(), attempt);
        clock.advance(visibility); // killed before its first commit
    }
    let mut run = begin_run(&durable).await;
    assert_eq!(run.attempt(), 3);
    run.save(&GuestState::initial().encode()).await.unwrap();
    drop(run);
    clock.advance(visibility);
    for attempt in 1..=3 {
        assert_eq!(
            begin_run(&durable).await.attempt(),
            attempt,
            "the commit cleared the lost runs"
        );
        clock.advance(visibility);
    }
    let delivery = durable.receive().await.unwrap().unwrap();
    assert!(matches!(durable.begin(delivery).await.unwrap(), Begin::Finished));
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!((record.status, record.seq, record.runs), (TaskStatus::Failed, 1, 6));
    assert!(
        record.error.as_deref().unwrap().contains("gave up after 3 attempts"),
        "{record:?}"
    );
}

/// A run that commits and then fails with an error still counts, with the backoff doubling: a guest that
/// saves and then fails every time is failed after `max_attempts` runs instead of retrying forever.
#[tokio::test]
async fn runs_failing_after_a_commit_still_count_with_backoff() {
    let (_dir, clock, durable) = setup();
    let started = durable.start("flaky", Vec::new(), None).await.unwrap();
    let base = durable.settings().retry_delay.as_millis() as u64;
    for attempt in 1..=3u32 {
        let mut run = begin_run(&durable).await;
        assert_eq!(run.attempt(), attempt);
        run.save(format!("state {attempt}").as_bytes()).await.unwrap();
        run.failed(format!("boom {attempt}")).await.unwrap();
        if attempt < 3 {
            let backoff = base << (attempt - 1);
            clock.advance(backoff - 1);
            assert!(durable.receive().await.unwrap().is_none(), "retried before its backoff");
            clock.advance(1);
        }
    }
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.seq, record.error.as_deref()),
        (TaskStatus::Failed, 3, Some("boom 3"))
    );
    clock.advance(3_600_000);
    assert!(durable.receive().await.unwrap().is_none());
}

/// A delivery that finds a live lease comes back when that lease expires, not a whole visibility timeout
/// later: a host restarted after a kill resumes the task as soon as the dead run's lease allows.
#[tokio::test]
async fn a_busy_delivery_comes_back_when_the_lease_expires() {
    let (_dir, clock, durable) = setup();
    durable.start("slow", Vec::new(), None).await.unwrap();
    let mut run = begin_run(&durable).await;
    let lease = durable.settings().lease_ttl.as_millis() as u64; // 10 s; visibility 15 s
    clock.advance(lease - 1_000);
    run.save(b"late save").await.unwrap(); // the lease now outlives the message's claim
    let expires = run.lease_expires_at_ms();
    drop(run); // killed
    clock.advance(durable.settings().visibility_timeout.as_millis() as u64 - (lease - 1_000) + 1);
    let delivery = durable.receive().await.unwrap().expect("the claim lapsed");
    assert!(matches!(durable.begin(delivery).await.unwrap(), Begin::Busy));
    assert!(
        durable.receive().await.unwrap().is_none(),
        "hidden while the lease lives"
    );
    clock.advance(expires - nimbus_checkpoint::Clock::now_ms(&clock) + 1_000);
    let next = begin_run(&durable).await;
    assert_eq!(next.resumed(), Some(&b"late save"[..]));
}

#[tokio::test]
async fn oversized_checkpoint_is_refused_without_touching_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let faulty = Arc::new(Faulty::new(embedded(dir.path(), &clock), 0, FaultMode::Before));
    let durable = durable_on(
        faulty.clone(),
        &clock,
        Settings {
            max_checkpoint: 100,
            ..settings()
        },
    );
    durable.start("big", Vec::new(), None).await.unwrap();
    let mut run = begin_run(&durable).await;
    let ops = faulty.ops.load(Ordering::SeqCst);
    match run.save(&[0u8; 101]).await {
        Err(e @ SaveError::TooLarge { size: 101, limit: 100 }) => {
            assert!(e.to_string().contains("exceeds the limit of 100 bytes"), "{e}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        faulty.ops.load(Ordering::SeqCst),
        ops,
        "an oversized save must not reach the backend"
    );
    run.save(&[0u8; 100]).await.unwrap();
}

async fn completes_under_faults(every: u64, mode: FaultMode) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let faulty = Arc::new(Faulty::new(embedded(dir.path(), &clock), every, mode));
    let durable = durable_on(faulty.clone(), &clock, settings());
    let started = durable.start("summer", job(15, 4), Some("faulty")).await.unwrap();
    assert!(started.created, "a create whose response was lost is still ours");
    drive(&durable, &clock, &started.task_id, 4).await;
    assert_done(&durable, &started.task_id, 15, 4).await;
    assert!(faulty.injected.load(Ordering::SeqCst) > 10, "faults were injected");
}

#[tokio::test]
async fn transient_faults_before_the_operation_are_retried_and_task_completes_exactly() {
    completes_under_faults(3, FaultMode::Before).await;
}

#[tokio::test]
async fn transient_faults_after_the_operation_are_retried_and_task_completes_exactly() {
    // Every 4th response is lost after the write landed: retried commits must not be mistaken for fencing.
    completes_under_faults(4, FaultMode::After).await;
}

#[tokio::test]
async fn exhausted_retries_name_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let faulty = Arc::new(Faulty::new(embedded(dir.path(), &clock), 0, FaultMode::Before));
    let durable = durable_on(faulty.clone(), &clock, settings());
    durable.start("summer", job(3, 3), None).await.unwrap();
    let mut run = begin_run(&durable).await;

    faulty.always.store(true, Ordering::SeqCst);
    let before = faulty.ops.load(Ordering::SeqCst);
    let err = run.save(b"state").await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            &err,
            SaveError::Durable(DurableError::RetriesExhausted {
                op: "write checkpoint",
                attempts: 5,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(text.contains("write checkpoint: gave up after 5 attempts"), "{text}");
    assert!(text.contains("put_object: transient backend failure"), "{text}");
    assert_eq!(faulty.ops.load(Ordering::SeqCst) - before, 5, "bounded retries");

    let err = durable.start("summer", Vec::new(), None).await.unwrap_err();
    assert!(
        err.to_string().starts_with("create task: gave up after 5 attempts"),
        "{err}"
    );

    // Once the backend recovers the same run carries on.
    faulty.always.store(false, Ordering::SeqCst);
    run.save(b"state").await.unwrap();
    assert_eq!(run.seq(), 1);
}

/// Runs `chunks` guest steps of `run` by hand, saving each, then drops the run without ending it (a kill).
async fn kill_after(mut run: Run, chunks: u64) {
    let seed = u64::from_le_bytes(run.input()[8..16].try_into().unwrap());
    let mut st = run
        .resumed()
        .map(GuestState::decode)
        .unwrap_or_else(GuestState::initial);
    for _ in 0..chunks {
        st.step(seed);
        run.save(&st.encode()).await.unwrap();
    }
}

#[tokio::test]
async fn restarted_host_resumes_every_task_from_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let short = Duration::from_millis(300);
    let settings = Settings {
        lease_ttl: Duration::from_millis(200),
        visibility_timeout: short,
        ..settings()
    };
    let (a, b) = {
        let durable = durable_on(embedded(dir.path(), &clock), &clock, settings.clone());
        let a = durable.start("summer", job(10, 21), None).await.unwrap().task_id;
        let b = durable.start("summer", job(6, 22), None).await.unwrap().task_id;
        // a: the first run yields after 3 chunks (its continuation queues behind b's first message).
        let run = begin_run(&durable).await;
        assert_eq!(run.task_id(), a);
        guest(run, 3).await.unwrap();
        // b: killed after 2 committed chunks; a: its second run killed after 2 more.
        let run = begin_run(&durable).await;
        assert_eq!(run.task_id(), b);
        kill_after(run, 2).await;
        let run = begin_run(&durable).await;
        assert_eq!(run.task_id(), a);
        kill_after(run, 2).await;
        (a, b)
        // The whole host (driver, backend, locks) is dropped here; like a SIGKILL, nothing is flushed or acked.
    };
    let durable = durable_on(embedded(dir.path(), &clock), &clock, settings);
    assert!(
        durable.receive().await.unwrap().is_none(),
        "claimed messages stay hidden until visibility passes"
    );
    clock.advance(301);
    let mut resumed = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let run = begin_run(&durable).await;
        resumed.insert(
            run.task_id().to_owned(),
            GuestState::decode(run.resumed().unwrap()).next,
        );
        guest(run, 3).await.unwrap();
    }
    assert_eq!(resumed[&a], 5, "a resumes from its last commit, not its last yield");
    assert_eq!(resumed[&b], 2);
    drive(&durable, &clock, &a, 3).await;
    drive(&durable, &clock, &b, 3).await;
    assert_done(&durable, &a, 10, 21).await;
    assert_done(&durable, &b, 6, 22).await;
}

#[tokio::test]
async fn restart_on_the_system_clock_with_short_timeouts() {
    // Real time this once: waits are polled up to a generous bound, so a slow machine only makes it slower.
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        lease_ttl: Duration::from_millis(100),
        visibility_timeout: Duration::from_millis(150),
        ..settings()
    };
    let task = {
        let durable = Durable::embedded(dir.path(), settings.clone()).unwrap();
        let task = durable
            .start("summer", job(7, 8), Some("real-clock"))
            .await
            .unwrap()
            .task_id;
        let delivery = durable.receive().await.unwrap().unwrap();
        let Begin::Run(run) = durable.begin(delivery).await.unwrap() else {
            panic!("expected a run")
        };
        kill_after(run, 4).await;
        task
    };
    let durable = Durable::embedded(dir.path(), settings).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut first_resume = None;
    loop {
        assert!(std::time::Instant::now() < deadline, "task did not finish in 30 s");
        let Some(delivery) = durable.receive().await.unwrap() else {
            if durable.status(&task).await.unwrap().unwrap().status.is_terminal() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if let Begin::Run(run) = durable.begin(delivery).await.unwrap() {
            first_resume.get_or_insert_with(|| GuestState::decode(run.resumed().unwrap()).next);
            guest(run, 2).await.unwrap();
        }
    }
    assert_eq!(first_resume, Some(4));
    assert_done(&durable, &task, 7, 8).await;
}

/// Set in the environment of the child process that [`sigkilled_host_resumes_from_its_last_commit`] kills.
const SIGKILL_CHILD_DIR: &str = "NIMBUS_CHECKPOINT_SIGKILL_CHILD_DIR";

fn short_real_settings() -> Settings {
    Settings {
        lease_ttl: Duration::from_millis(100),
        visibility_timeout: Duration::from_millis(150),
        ..settings()
    }
}

/// The host half of the SIGKILL test: runs only inside the child process (a no-op in a normal test run). It
/// commits 5 chunks of a task, tells the parent so through a marker file, and then hangs until killed.
#[tokio::test]
async fn sigkill_child_host() {
    let Ok(dir) = std::env::var(SIGKILL_CHILD_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let durable = Durable::embedded(dir.join("store"), short_real_settings()).unwrap();
    durable.start("summer", job(12, 5), Some("sigkill")).await.unwrap();
    let delivery = durable.receive().await.unwrap().unwrap();
    let Begin::Run(mut run) = durable.begin(delivery).await.unwrap() else {
        panic!("expected a run")
    };
    let mut st = GuestState::initial();
    for _ in 0..5 {
        st.step(5);
        run.save(&st.encode()).await.unwrap();
    }
    std::fs::write(dir.join("marker.tmp"), run.task_id()).unwrap();
    std::fs::rename(dir.join("marker.tmp"), dir.join("marker")).unwrap();
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn sigkilled_host_resumes_from_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "protocol::sigkill_child_host", "--test-threads=1"])
        .env(SIGKILL_CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = dir.path().join("marker");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child host exited early: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "child host never reached its 5th commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructors, no flush, no ack.
    child.wait().unwrap();
    let task = std::fs::read_to_string(&marker).unwrap();

    let durable = Durable::embedded(dir.path().join("store"), short_real_settings()).unwrap();
    let record = durable.status(&task).await.unwrap().unwrap();
    assert_eq!((record.seq, record.status), (5, TaskStatus::Running));
    assert!(
        record.lease.is_some(),
        "the killed run still holds its (expiring) lease"
    );
    let mut first_resume = None;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "task did not finish after the restart"
        );
        let Some(delivery) = durable.receive().await.unwrap() else {
            if durable.status(&task).await.unwrap().unwrap().status.is_terminal() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if let Begin::Run(run) = durable.begin(delivery).await.unwrap() {
            first_resume.get_or_insert_with(|| GuestState::decode(run.resumed().unwrap()).next);
            guest(run, 3).await.unwrap();
        }
    }
    assert_eq!(first_resume, Some(5), "resumed from the last commit before the kill");
    let record = assert_done(&durable, &task, 12, 5).await;
    assert_eq!(record.runs, 4, "1 killed run + 7 chunks at 3 per run");
}

#[tokio::test]
async fn renew_keeps_a_slow_run_alive_until_it_stops_renewing() {
    let (_dir, clock, durable) = setup();
    durable.start("slow", Vec::new(), None).await.unwrap();
    let mut run = begin_run(&durable).await;
    let first_expiry = run.lease_expires_at_ms();
    clock.advance(9_000); // lease 10 s, visibility 15 s
    run.renew().await.unwrap();
    assert_eq!(run.lease_expires_at_ms(), first_expiry + 9_000);
    clock.advance(9_000); // past the original visibility, within the renewed one
    assert!(
        durable.receive().await.unwrap().is_none(),
        "renewed visibility hides the message"
    );
    run.save(b"still mine").await.unwrap();

    clock.advance(30_000); // the run stalls without renewing
    let next = begin_run(&durable).await;
    assert_eq!(next.resumed(), Some(&b"still mine"[..]));
    assert!(matches!(run.save(b"late").await, Err(SaveError::Fenced { .. })));
    assert!(matches!(run.renew().await, Err(DurableError::Fenced { .. })));
    next.done(Vec::new()).await.unwrap();
}

#[tokio::test]
async fn deliveries_from_platform_messages_parse_or_are_refused() {
    let delivery = nimbus_checkpoint::Delivery::from_message(r#"{"task_id":"abc","epoch":4}"#, "rh-1").unwrap();
    assert_eq!(
        (delivery.task_id.as_str(), delivery.epoch, delivery.receipt.as_str()),
        ("abc", 4, "rh-1")
    );
    let err = nimbus_checkpoint::Delivery::from_message("{}", "rh-2").unwrap_err();
    assert!(err.to_string().starts_with("invalid continuation message"), "{err}");
}

#[tokio::test]
async fn zero_max_attempts_still_allows_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let durable = durable_on(
        embedded(dir.path(), &clock),
        &clock,
        Settings {
            max_attempts: 0,
            ..settings()
        },
    );
    let started = durable.start("once", Vec::new(), None).await.unwrap();
    let run = begin_run(&durable).await;
    run.failed("only try".into()).await.unwrap();
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.runs, record.error.as_deref()),
        (TaskStatus::Failed, 1, Some("only try"))
    );
}

#[tokio::test]
async fn invalid_starts_are_refused() {
    let (_dir, _clock, durable) = setup();
    assert!(matches!(
        durable.start("", Vec::new(), None).await,
        Err(DurableError::Invalid { what: "function", .. })
    ));
    let long = "k".repeat(513);
    let err = durable.start("f", Vec::new(), Some(&long)).await.unwrap_err();
    assert!(err.to_string().contains("must be 1..=512 bytes, got 513"), "{err}");
}

/// The host spawns runs on a multi-threaded runtime, so every protocol future must be `Send`.
#[allow(dead_code)]
fn protocol_futures_are_send(durable: Durable, mut run: Run, delivery: nimbus_checkpoint::Delivery) {
    fn send<T: Send>(_: T) {}
    send(durable.start("f", Vec::new(), None));
    send(durable.status("t"));
    send(durable.receive());
    send(durable.begin(delivery));
    send(run.save(b""));
    send(run.set_progress(""));
    send(run.renew());
    send(run.yielded());
}

#[tokio::test]
async fn save_after_a_commit_that_landed_but_reported_failure_continues_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let faulty = Arc::new(Faulty::new(embedded(dir.path(), &clock), 0, FaultMode::After));
    let durable = durable_on(faulty.clone(), &clock, settings());
    let started = durable.start("summer", Vec::new(), None).await.unwrap();
    let mut run = begin_run(&durable).await;
    run.save(b"one").await.unwrap();

    // Every commit response is lost although the first write lands: the save reports failure.
    *faulty.only.lock().unwrap() = Some("update_task");
    faulty.always.store(true, Ordering::SeqCst);
    let err = run.save(b"two").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("commit checkpoint: gave up after 5 attempts"),
        "{err}"
    );
    assert_eq!(
        durable.status(&started.task_id).await.unwrap().unwrap().seq,
        2,
        "the write landed"
    );
    assert_eq!(run.seq(), 1, "the run could not know");

    // The guest retries: not fenced (the run still holds the lease), and it continues after the landed commit.
    faulty.always.store(false, Ordering::SeqCst);
    clock.advance(1); // a later save differs from the landed one at least in its time stamps
    run.save(b"three").await.unwrap();
    assert_eq!(run.seq(), 3);
    run.set_progress("p").await.unwrap();
    run.yielded().await.unwrap();
    let next = begin_run(&durable).await;
    assert_eq!((next.seq(), next.resumed()), (3, Some(&b"three"[..])));
}
