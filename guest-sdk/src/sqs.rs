//! SQS batches with partial failures.
//!
//! Lambda hands an SQS-triggered function up to 10 messages at once. With
//! `ReportBatchItemFailures` on the event source mapping, the function
//! answers with the ids of the messages that failed
//! (`{"batchItemFailures": [{"itemIdentifier": "…"}]}`) and SQS redelivers
//! only those; the others are deleted. [`each_message`] does that
//! bookkeeping:
//!
//! ```no_run
//! use nimbus_sdk::event::{Error, Event};
//! use nimbus_sdk::sqs;
//!
//! fn handle(event: Event) -> Result<sqs::BatchResponse, Error> {
//!     sqs::each_message(&event, |msg| {
//!         let body = msg.body.as_deref().unwrap_or("");
//!         if body.is_empty() {
//!             return Err(Error::failed("empty message"));
//!         }
//!         println!("processing {body}");
//!         Ok(())
//!     })
//! }
//!
//! nimbus_sdk::event_function!(handle);
//! # fn main() {}
//! ```

use crate::event::{Error, Event, IntoOutput};
pub use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// The answer to an SQS batch: which messages to redeliver.
#[derive(Debug, Default, Clone)]
pub struct BatchResponse {
    failed: Vec<String>,
}

impl BatchResponse {
    /// Marks a message (by `messageId`) for redelivery.
    pub fn fail(&mut self, message_id: impl Into<String>) {
        self.failed.push(message_id.into());
    }

    /// The ids marked so far.
    pub fn failed(&self) -> &[String] {
        &self.failed
    }
}

impl IntoOutput for BatchResponse {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        let mut resp = SqsBatchResponse::default();
        resp.batch_item_failures = self
            .failed
            .into_iter()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        serde_json::to_vec(&resp).map_err(Error::failed)
    }
}

/// Parses the batch and runs `handle` on each message in order. A message
/// whose `handle` fails (or that has no `messageId`… then the whole batch
/// fails, as SQS could not tell which to retry) is reported for redelivery;
/// the failure is printed to stderr with the message id.
pub fn each_message<F>(event: &Event, mut handle: F) -> Result<BatchResponse, Error>
where
    F: FnMut(&SqsMessage) -> Result<(), Error>,
{
    let batch: SqsEvent = event.json()?;
    let mut resp = BatchResponse::default();
    for msg in &batch.records {
        if let Err(e) = handle(msg) {
            let Some(id) = msg.message_id.clone() else {
                return Err(Error::failed(format!("a message without messageId failed: {e}")));
            };
            eprintln!("message {id} failed: {e}");
            resp.fail(id);
        }
    }
    Ok(resp)
}
