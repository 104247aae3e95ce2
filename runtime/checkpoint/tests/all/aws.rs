//! The AWS backend against a real `moto_server` on 127.0.0.1 (S3, DynamoDB, SQS), started by the test binary.
//! The server is the tests' shared one (`nimbus_tests::moto`; scripts/setup installs it); needs `--features aws`.

use std::sync::Arc;

use nimbus_checkpoint::{
    Aws, Backend, Begin, Condition, Durable, DurableError, ManualClock, SaveError, StoreError, TaskStatus,
};

use crate::support::{assert_done, drive, job, kill_after_each_commit, settings};
use nimbus_tests::fault_proxy::{Fault, FaultProxy};

/// Fresh bucket, table and queue on moto for one test.
async fn backend(name: &str) -> Aws {
    backend_at(name, &nimbus_tests::moto::shared().endpoint()).await
}

/// A fresh store on moto, reached through `endpoint` (moto itself, or a proxy in front of it).
async fn backend_at(name: &str, endpoint: &str) -> Aws {
    let store = nimbus_tests::moto::shared().task_store(name).await;
    let settings = nimbus_core::aws::AwsSettings {
        endpoint_url: Some(endpoint.to_owned()),
        region: Some(nimbus_tests::moto::REGION.into()),
        credentials: Some(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "moto")),
    };
    let sdk = nimbus_core::aws::sdk_config_with(&settings, nimbus_core::aws::CallPolicy::SELF_RETRYING).await;
    Aws::new(&sdk, store.resources())
}

/// A fresh store whose every request passes a fault-injecting proxy in front of moto.
async fn proxied_backend(name: &str) -> (Aws, FaultProxy) {
    let proxy = FaultProxy::start(&nimbus_tests::moto::shared().endpoint()).await;
    (backend_at(name, &proxy.endpoint()).await, proxy)
}

fn durable(aws: Aws, clock: &ManualClock) -> Durable {
    Durable::with_clock(Arc::new(aws), settings(), Arc::new(clock.clone()))
}

#[tokio::test]
async fn aws_multi_run_task_with_idempotent_start_completes_exactly() {
    let clock = ManualClock::new(1_700_000_000_000);
    let durable = durable(backend("multi").await, &clock);
    let first = durable.start("summer", job(11, 6), Some("aws-key")).await.unwrap();
    let again = durable.start("summer", job(11, 6), Some("aws-key")).await.unwrap();
    assert_eq!(
        (first.created, again.created, &again.task_id),
        (true, false, &first.task_id)
    );
    let seen = drive(&durable, &clock, &first.task_id, 3).await;
    assert_eq!(seen.runs, 4, "{seen:?}");
    assert_done(&durable, &first.task_id, 11, 6).await;
}

#[tokio::test]
async fn aws_stale_run_is_fenced_by_dynamodb_conditions() {
    let clock = ManualClock::new(1_700_000_000_000);
    let durable = durable(backend("fence").await, &clock);
    let started = durable.start("summer", job(3, 1), None).await.unwrap();
    let delivery = durable.receive().await.unwrap().expect("first run");
    let Begin::Run(mut stale) = durable.begin(delivery.clone()).await.unwrap() else {
        panic!("expected a run")
    };
    assert!(
        matches!(durable.begin(delivery.clone()).await.unwrap(), Begin::Busy),
        "live lease"
    );
    clock.advance(durable.settings().lease_ttl.as_millis() as u64 + 1);
    let Begin::Run(mut fresh) = durable.begin(delivery).await.unwrap() else {
        panic!("expected a takeover")
    };
    assert!(matches!(stale.save(b"old").await, Err(SaveError::Fenced { .. })));
    fresh.save(b"new").await.unwrap();
    assert!(matches!(stale.save(b"old").await, Err(SaveError::Fenced { .. })));
    assert!(matches!(
        stale.done(b"wrong".to_vec()).await,
        Err(DurableError::Fenced { .. })
    ));
    fresh.done(b"right".to_vec()).await.unwrap();
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.seq, record.result.as_deref()),
        (TaskStatus::Done, 1, Some(&b"right"[..]))
    );
}

/// On S3 + DynamoDB + SQS: runs killed right after committing, more than `max_attempts` in a row (each
/// dropped without ending, its lease left to expire and its SQS claim to lapse), never fail the task; the
/// cleared attempt is in the record DynamoDB committed, and the task completes with the exact result.
#[tokio::test]
async fn aws_runs_killed_after_committing_never_use_up_the_attempts() {
    let clock = ManualClock::new(1_700_000_000_000);
    let aws = backend("killed").await;
    let durable = durable(aws.clone(), &clock);
    let started = durable.start("summer", job(9, 3), None).await.unwrap();
    let kills = u64::from(durable.settings().max_attempts) + 3;
    kill_after_each_commit(&durable, &aws, &clock, &started.task_id, kills).await;
    drive(&durable, &clock, &started.task_id, 3).await;
    let record = assert_done(&durable, &started.task_id, 9, 3).await;
    assert_eq!(record.runs, kills + 1, "6 killed runs, then 3 chunks in one run");
}

#[tokio::test]
async fn aws_backend_maps_missing_objects_and_failed_conditions() {
    let aws = backend("map").await;
    assert_eq!(aws.get_object("tasks/none/1/w").await.unwrap(), None);
    aws.put_object("tasks/t/1/w", b"bytes".to_vec()).await.unwrap();
    assert_eq!(
        aws.get_object("tasks/t/1/w").await.unwrap().as_deref(),
        Some(&b"bytes"[..])
    );
    assert_eq!(aws.get_task("missing").await.unwrap(), None);
    let clock = ManualClock::new(0);
    let durable = durable(aws.clone(), &clock);
    let started = durable.start("f", Vec::new(), None).await.unwrap();
    let record = aws.get_task(&started.task_id).await.unwrap().unwrap();
    let wrong = Condition::Lease {
        seq: 0,
        token: "nobody".into(),
    };
    assert!(matches!(
        aws.update_task(&record, &wrong).await,
        Err(StoreError::ConditionFailed)
    ));
    assert!(matches!(
        aws.update_task(&record, &Condition::Revision(9)).await,
        Err(StoreError::ConditionFailed)
    ));
    aws.update_task(&record, &Condition::Revision(0)).await.unwrap();
}

#[tokio::test]
async fn aws_oversized_record_is_refused_with_a_clear_error() {
    let clock = ManualClock::new(0);
    let durable = durable(backend("big").await, &clock);
    let err = durable.start("f", vec![7u8; 400 * 1024], None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("exceeds the 389120-byte limit of one DynamoDB item"),
        "{text}"
    );
    assert!(text.contains("input 409600"), "{text}");
}

/// Real S3 `SlowDown` (503) answers to checkpoint writes and real DynamoDB throttling
/// (`ProvisionedThroughputExceededException`) of conditional writes, parsed by the AWS SDK: classified as
/// transient, retried with backoff, and the task still completes with the exact result.
#[tokio::test]
async fn aws_s3_slow_down_and_dynamodb_throttling_are_retried_and_the_result_is_exact() {
    let (aws, proxy) = proxied_backend("faults").await;
    let clock = ManualClock::new(1_700_000_000_000);
    let durable = durable(aws, &clock);
    let started = durable.start("summer", job(9, 4), None).await.unwrap();
    let slow = proxy.inject(Fault::s3_put_slow_down(3));
    let throttled = proxy.inject(Fault::dynamodb_throttled("PutItem", 3));
    drive(&durable, &clock, &started.task_id, 3).await;
    assert_eq!((slow.served(), throttled.served()), (3, 3), "every fault was hit");
    assert_done(&durable, &started.task_id, 9, 4).await;
}

/// Failures outlasting the retry budget: the save fails with an error naming the step, the attempts and
/// AWS's error code; the last commit stays intact and the run carries on once the store recovers.
#[tokio::test]
async fn aws_failures_past_the_retry_budget_are_a_clear_error_and_lose_no_commit() {
    let (aws, proxy) = proxied_backend("exhausted").await;
    let clock = ManualClock::new(1_700_000_000_000);
    let durable = durable(aws, &clock);
    let started = durable.start("f", Vec::new(), None).await.unwrap();
    let delivery = durable.receive().await.unwrap().expect("first run");
    let Begin::Run(mut run) = durable.begin(delivery).await.unwrap() else {
        panic!("expected a run")
    };
    run.save(b"one").await.unwrap();

    let s3 = proxy.inject(Fault::s3_put_slow_down(u32::MAX));
    let text = run.save(b"two").await.unwrap_err().to_string();
    assert!(text.contains("write checkpoint: gave up after 5 attempts"), "{text}");
    assert!(text.contains("SlowDown"), "{text}");
    s3.stop();

    let ddb = proxy.inject(Fault::dynamodb_throttled("PutItem", u32::MAX));
    let text = run.save(b"three").await.unwrap_err().to_string();
    assert!(text.contains("commit checkpoint: gave up after 5 attempts"), "{text}");
    assert!(text.contains("ProvisionedThroughputExceeded"), "{text}");
    ddb.stop();

    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(record.seq, 1, "the failed saves committed nothing: {record:?}");
    run.save(b"four").await.unwrap();
    run.done(b"out".to_vec()).await.unwrap();
    let record = durable.status(&started.task_id).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.seq, record.result.as_deref()),
        (TaskStatus::Done, 2, Some(&b"out"[..]))
    );
}
