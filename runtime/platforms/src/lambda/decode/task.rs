//! What a task function makes of an event that is not an HTTP request: the tasks it starts, under which
//! idempotency key, and the runs it continues. The I/O is `lambda::tasks`'s.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use nimbus_checkpoint::Delivery;
use nimbus_core::EventSource;
use serde::Deserialize;

/// One record of an SQS batch, for a task function.
#[derive(Debug, PartialEq, Eq)]
pub struct SqsRecord {
    /// Its `messageId`: the `itemIdentifier` it is reported by in `batchItemFailures`.
    pub message_id: String,
    /// What the record asks for.
    pub work: SqsWork,
}

/// What an SQS record asks of a task function.
#[derive(Debug, PartialEq, Eq)]
pub enum SqsWork {
    /// A message of the function's continuation queue: one run of its task.
    Continue {
        /// The continuation message Nimbus wrote.
        body: String,
        /// The queue receipt, which acks the message and extends its visibility.
        receipt_handle: String,
    },
    /// A message of any other queue: a task with the message body as its input.
    Start {
        /// The task's idempotency key, so a redelivered message starts nothing new.
        key: String,
        /// The task's input.
        input: Vec<u8>,
    },
}

/// An SQS batch, decoded for a task function.
#[derive(Debug, PartialEq, Eq)]
pub struct SqsBatch {
    /// The records with a `messageId`, in order.
    pub records: Vec<SqsRecord>,
    /// The positions (from 0) of the records without one, or with an empty one: nothing could name them in
    /// `batchItemFailures` nor key their task, so they are not served (see [`sqs_batch`]).
    pub unidentified: Vec<usize>,
}

/// Decodes an SQS event for a task function whose continuation queue is named `continuation_queue`.
///
/// A record's `messageId` is both its task's idempotency key and the only way to report it in
/// `batchItemFailures`. A record without one (never from an SQS event source mapping, which always sets it;
/// a hand-made or replayed event may lack it) can be neither: keyed by an empty id, every such record would
/// share one task and all but the first would be lost; and Lambda fails the whole batch for a missing or
/// empty `itemIdentifier`. So it is set apart in [`SqsBatch::unidentified`], and the caller fails the
/// invocation after serving the other records: the whole batch comes back (its starts are idempotent,
/// continuation messages tolerate redelivery), and nothing is merged or dropped.
pub fn sqs_batch(raw: &str, continuation_queue: &str) -> Result<SqsBatch, String> {
    let batch: SqsEvent = serde_json::from_str(raw).map_err(|e| format!("malformed SQS event: {e}"))?;
    let mut out = SqsBatch {
        records: Vec::with_capacity(batch.records.len()),
        unidentified: Vec::new(),
    };
    for (position, record) in batch.records.into_iter().enumerate() {
        let Some(message_id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
            out.unidentified.push(position);
            continue;
        };
        // Body and receipt are no keys: a missing one merges nothing (the run or start fails, or has no input).
        let work = if is_continuation(&record, continuation_queue) {
            SqsWork::Continue {
                body: record.body.unwrap_or_default(),
                receipt_handle: record.receipt_handle.unwrap_or_default(),
            }
        } else {
            SqsWork::Start {
                key: format!("sqs:{message_id}"),
                input: record.body.unwrap_or_default().into_bytes(),
            }
        };
        out.records.push(SqsRecord { message_id, work });
    }
    Ok(out)
}

/// Whether a record came from the continuation queue: its ARN ends in the queue's name (a record without an
/// ARN, from a test or a replay, counts as one if its body is a continuation message).
fn is_continuation(record: &SqsMessage, queue: &str) -> bool {
    match record.event_source_arn.as_deref() {
        Some(arn) => arn.rsplit(':').next() == Some(queue),
        None => record
            .body
            .as_deref()
            .is_some_and(|b| Delivery::from_message(b, "").is_ok()),
    }
}

/// The idempotency key of the task a non-SQS event starts: an EventBridge event's own `id`, else (no id, or
/// an empty one, which would make every such event one task) the Lambda request id (an asynchronous
/// invocation's retries keep it).
pub fn start_key(source: EventSource, raw: &str, request_id: &str) -> String {
    match (source, serde_json::from_str::<EventId>(raw)) {
        (EventSource::EventBridge, Ok(EventId { id: Some(id) })) if !id.is_empty() => format!("eventbridge:{id}"),
        _ => format!("lambda:{request_id}"),
    }
}

/// An event's own id (EventBridge's `id`).
#[derive(Deserialize)]
struct EventId {
    id: Option<String>,
}
