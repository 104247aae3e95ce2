//! An SQS consumer with partial batch failures: messages whose body
//! contains "fail" are reported in `batchItemFailures`.

use nimbus_sdk::event::{Error, Event};
use nimbus_sdk::sqs;

fn handle(event: Event) -> Result<sqs::BatchResponse, Error> {
    sqs::each_message(&event, |msg| match msg.body.as_deref() {
        Some(b) if b.contains("fail") => Err(Error::failed(format!("cannot process {b:?}"))),
        _ => Ok(()),
    })
}

nimbus_sdk::event_function!(handle);

fn main() {}
