//! The embedded backend's own guarantees: durable queue, claims, conditional writes, key validation.

use std::sync::Arc;

use nimbus_checkpoint::{
    Backend, Condition, Continuation, Created, Embedded, Lease, ManualClock, StoreError, TaskRecord, TaskStatus,
};

fn record(id: &str, key: Option<&str>) -> TaskRecord {
    TaskRecord {
        task_id: id.into(),
        function: "f".into(),
        status: TaskStatus::Running,
        seq: 0,
        lease: None,
        attempts: 0,
        failures: 0,
        runs: 0,
        progress: None,
        result: Some(vec![0, 159, 255]),
        error: None,
        idempotency_key: key.map(Into::into),
        input: b"in".to_vec(),
        created_ms: 1,
        updated_ms: 1,
        revision: 0,
        epoch: 0,
        checkpoints: Vec::new(),
    }
}

fn open(dir: &std::path::Path, clock: &ManualClock) -> Embedded {
    Embedded::with_clock(dir, Arc::new(clock.clone())).unwrap()
}

#[tokio::test]
async fn queue_claims_hide_messages_until_visibility_passes_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let store = open(dir.path(), &clock);
    let m1 = Continuation {
        task_id: "t1".into(),
        epoch: 0,
    };
    let m2 = Continuation {
        task_id: "t2".into(),
        epoch: 3,
    };
    store.enqueue(&m1, 0).await.unwrap();
    clock.advance(1);
    store.enqueue(&m2, 500).await.unwrap();

    let first = store.receive(100).await.unwrap().unwrap();
    assert_eq!(first.message, m1);
    assert!(
        store.receive(100).await.unwrap().is_none(),
        "m1 is claimed, m2 is delayed"
    );
    drop(store);

    let store = open(dir.path(), &clock);
    clock.advance(100);
    let again = store.receive(100).await.unwrap().unwrap();
    assert_eq!(
        again.message, m1,
        "an unacked claim comes back after its visibility timeout"
    );
    assert_ne!(again.receipt, first.receipt);
    // A stale receipt neither deletes nor hides the redelivered message (SQS semantics).
    store.ack(&first.receipt).await.unwrap();
    store.change_visibility(&first.receipt, 0).await.unwrap();
    store.change_visibility(&again.receipt, 0).await.unwrap();
    let third = store.receive(100).await.unwrap().unwrap();
    assert_eq!(third.message, m1);
    store.ack(&third.receipt).await.unwrap();
    store.ack(&third.receipt).await.unwrap();

    clock.advance(1_000);
    let last = store.receive(100).await.unwrap().unwrap();
    assert_eq!(last.message, m2);
    store.ack(&last.receipt).await.unwrap();
    clock.advance(1_000);
    assert!(store.receive(100).await.unwrap().is_none());
}

#[tokio::test]
async fn conditional_updates_check_seq_and_lease_or_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &ManualClock::new(0));
    let mut rec = record("task1", None);
    assert_eq!(store.create_task(&rec).await.unwrap(), Created::New);
    assert!(matches!(store.create_task(&rec).await.unwrap(), Created::Existing(found) if *found == rec));

    rec.lease = Some(Lease {
        token: "tok".into(),
        expires_at_ms: 10,
    });
    rec.revision = 1;
    let stale = Condition::Revision(7);
    assert!(matches!(
        store.update_task(&rec, &stale).await,
        Err(StoreError::ConditionFailed)
    ));
    store.update_task(&rec, &Condition::Revision(0)).await.unwrap();

    let mut next = rec.clone();
    next.seq = 1;
    let wrong_token = Condition::Lease {
        seq: 0,
        token: "other".into(),
    };
    let wrong_seq = Condition::Lease {
        seq: 1,
        token: "tok".into(),
    };
    assert!(matches!(
        store.update_task(&next, &wrong_token).await,
        Err(StoreError::ConditionFailed)
    ));
    assert!(matches!(
        store.update_task(&next, &wrong_seq).await,
        Err(StoreError::ConditionFailed)
    ));
    store
        .update_task(
            &next,
            &Condition::Lease {
                seq: 0,
                token: "tok".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get_task("task1").await.unwrap(), Some(next));

    let missing = record("nope", None);
    assert!(matches!(
        store.update_task(&missing, &Condition::Revision(0)).await,
        Err(StoreError::ConditionFailed)
    ));
}

#[tokio::test]
async fn idempotency_key_maps_to_one_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &ManualClock::new(0));
    let first = record("first", Some("key/with spaces & unicode ✓"));
    let second = record("second", Some("key/with spaces & unicode ✓"));
    assert_eq!(store.create_task(&first).await.unwrap(), Created::New);
    match store.create_task(&second).await.unwrap() {
        Created::Existing(found) => assert_eq!(found.task_id, "first"),
        other => panic!("expected the existing task, got {other:?}"),
    }
    assert!(store.get_task("second").await.unwrap().is_none());
}

#[tokio::test]
async fn objects_roundtrip_and_keys_cannot_escape_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &ManualClock::new(0));
    store.put_object("tasks/t/1/w", b"one".to_vec()).await.unwrap();
    store.put_object("tasks/t/1/w", b"two".to_vec()).await.unwrap();
    assert_eq!(
        store.get_object("tasks/t/1/w").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    store.delete_object("tasks/t/1/w").await.unwrap();
    store.delete_object("tasks/t/1/w").await.unwrap();
    assert_eq!(store.get_object("tasks/t/1/w").await.unwrap(), None);
    for bad in [
        "../x",
        "tasks/../../etc/passwd",
        "/abs",
        "tasks//1",
        "",
        "a/./b",
        "sp ace",
    ] {
        let err = store.put_object(bad, Vec::new()).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { what: "object key", .. }),
            "{bad}: {err:?}"
        );
    }
    assert!(matches!(store.get_task("../t").await, Err(StoreError::Invalid { .. })));
    assert!(matches!(store.ack("../../x/y").await, Err(StoreError::Invalid { .. })));
    // Nothing was written outside the store's directory and no temp files were left behind.
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn corrupt_records_are_reported_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &ManualClock::new(0));
    std::fs::write(dir.path().join("tasks/broken.json"), b"{not json").unwrap();
    match store.get_task("broken").await {
        Err(e @ StoreError::Corrupt { .. }) => assert!(e.to_string().contains("broken.json"), "{e}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn open_discards_staged_files_left_by_a_killed_process() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), &ManualClock::new(0)));
    std::fs::write(dir.path().join("tmp/half-written"), b"partial").unwrap();
    let _store = open(dir.path(), &ManualClock::new(0));
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}
