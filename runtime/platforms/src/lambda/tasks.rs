//! A task function on Lambda: durable tasks on the AWS store (S3, DynamoDB, SQS).
//!
//! One Lambda function serves a task function whatever triggers it:
//!
//! - **SQS records from the continuation queue** (`NIMBUS_TASK_QUEUE_URL`, wired to the function by an event
//!   source mapping with `ReportBatchItemFailures`): each record is one run of its task
//!   ([`Tasks::handle_in`]), inside this invocation's deadline and trace. A record whose task another run
//!   holds, or whose run failed to reach the store, is reported in `batchItemFailures` and comes back after
//!   the queue's visibility timeout; records left when too little time remains are reported the same way,
//!   unstarted.
//! - **API Gateway and Function URL requests**: `POST /tasks/{function}` starts a task, `GET
//!   /tasks/{function}/{id}` shows it ([`crate::task_api`]).
//! - **Any other event** starts a task with the event as its input: SQS records from other queues one task
//!   each (idempotency key: the message id), EventBridge events keyed by their `id`, direct invocations
//!   keyed by the Lambda request id (an async invocation's retries keep it), so a retried delivery never
//!   starts a second task. The answer is `{"task_id", "created", "status_url"}` (`batchItemFailures` for
//!   SQS).

use super::decode::task::{SqsRecord, SqsWork};
use super::decode::{self, Origin};
use super::encode;
use crate::task_api;
use lambda_runtime::Diagnostic;
use nimbus_checkpoint::Delivery;
use nimbus_checkpoint::aws::{Aws, AwsResources};
use nimbus_core::aws::{AwsSettings, CallPolicy, sdk_config_with};
use nimbus_core::settings::TaskStoreSettings;
use nimbus_core::settings::lambda::{TASK_STORE_VARIABLES, queue_name};
use nimbus_core::{EventSource, Function, Handled, Invocation, RunContext, Tasks, TraceContext};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Why the task store could not be set up at init.
#[derive(Debug, thiserror::Error)]
#[error("task function `{function}` needs the AWS task store: {detail}")]
pub struct TaskStoreError {
    function: String,
    detail: String,
}

/// The durable tasks of the one function this environment serves.
pub struct LambdaTasks {
    tasks: Arc<Tasks>,
    /// The continuation queue's name (the last segment of its URL), to tell its records from other queues'.
    queue_name: String,
}

impl LambdaTasks {
    /// The AWS store `settings` name (`NIMBUS_STATE_BUCKET`, `NIMBUS_TASK_TABLE`, `NIMBUS_TASK_QUEUE_URL`), with
    /// the standard AWS environment (region, credentials, `AWS_ENDPOINT_URL`). S3 is addressed path-style when
    /// an S3 endpoint is overridden (local S3s such as moto or MinIO need it).
    pub async fn new(
        host: Arc<nimbus_core::Host>,
        function: &str,
        settings: &TaskStoreSettings,
    ) -> Result<LambdaTasks, TaskStoreError> {
        let (Some(bucket), Some(table), Some(queue_url)) = (
            settings.state_bucket.clone(),
            settings.task_table.clone(),
            settings.task_queue_url.clone(),
        ) else {
            let missing: Vec<&str> = [&settings.state_bucket, &settings.task_table, &settings.task_queue_url]
                .iter()
                .zip(TASK_STORE_VARIABLES)
                .filter(|(value, _)| value.is_none())
                .map(|(_, name)| name)
                .collect();
            return Err(TaskStoreError {
                function: function.to_owned(),
                detail: format!(
                    "{} not set; set {} (the bucket, table and queue of the task store)",
                    missing.join(", "),
                    TASK_STORE_VARIABLES.join(", ")
                ),
            });
        };
        // Settings read from the environment were checked already.
        let Some(queue_name) = queue_name(&queue_url) else {
            return Err(TaskStoreError {
                function: function.to_owned(),
                detail: format!("NIMBUS_TASK_QUEUE_URL {queue_url:?} is not a queue URL"),
            });
        };
        let res = AwsResources {
            bucket,
            table,
            queue_url,
            receive_wait_secs: 0,
            force_path_style: std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
                || std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        };
        let sdk = sdk_config_with(&AwsSettings::default(), CallPolicy::SELF_RETRYING).await;
        let tasks = Tasks::new(host, Arc::new(Aws::new(&sdk, res)));
        Ok(LambdaTasks {
            tasks: Arc::new(tasks),
            queue_name,
        })
    }

    /// Serves one event. `trace` is the platform's (the runs' spans join it); `inv` carries the deadline.
    pub async fn handle(
        &self,
        f: &Function,
        inv: &Invocation,
        trace: TraceContext,
        origin: Origin,
        raw: &RawValue,
    ) -> Result<Box<RawValue>, Diagnostic> {
        if origin.is_http() {
            return Ok(self.http(origin, raw).await);
        }
        match origin {
            Origin::Event(EventSource::Sqs) => self.sqs(f, inv, trace, raw).await,
            Origin::Event(source) => {
                let key = decode::task::start_key(source, raw.get(), &inv.request_id);
                let reply = self.start(&f.name, raw.get().as_bytes().to_vec(), &key).await?;
                Ok(encode::raw_json(reply.to_string()))
            }
            _ => Err(bad_event(format!("{} events cannot start a task", origin.name()))),
        }
    }

    async fn http(&self, origin: Origin, raw: &RawValue) -> Box<RawValue> {
        let reply = match decode::http_request(origin, raw.get()) {
            Err(msg) => crate::reply::plain(http::StatusCode::BAD_REQUEST, "Function.BadEvent", &msg),
            Ok(req) => {
                let (parts, body) = req.into_parts();
                match task_api::task_path(&self.tasks, parts.uri.path()) {
                    Some((function, id)) => {
                        task_api::serve(&self.tasks, &parts.method, &parts.headers, body, function, id).await
                    }
                    None => crate::reply::plain(
                        http::StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!(
                            "a task function serves POST {p}{{function}} and GET {p}{{function}}/{{id}}, not {}",
                            parts.uri.path(),
                            p = task_api::TASKS_PREFIX
                        ),
                    ),
                }
            }
        };
        encode::http_response(origin, reply).unwrap_or_else(|e| {
            encode::raw_json(json!({"statusCode": 500, "body": format!("cannot encode the response: {e}")}).to_string())
        })
    }

    /// Starts a task of `function`: `{"task_id", "created", "status_url"}`.
    async fn start(&self, function: &str, input: Vec<u8>, key: &str) -> Result<Value, Diagnostic> {
        match self.tasks.start(function, input, Some(key)).await {
            Ok(started) => Ok(json!({
                "task_id": started.task_id,
                "created": started.created,
                "status_url": task_api::status_url(function, &started.task_id),
            })),
            Err(e) => Err(Diagnostic {
                error_type: "Nimbus.TaskStore".into(),
                error_message: format!("cannot start a task of `{function}`: {e}"),
            }),
        }
    }

    /// An SQS batch: continuation records run, other records start tasks. Answers `batchItemFailures`.
    async fn sqs(
        &self,
        f: &Function,
        inv: &Invocation,
        trace: TraceContext,
        raw: &RawValue,
    ) -> Result<Box<RawValue>, Diagnostic> {
        let batch = decode::task::sqs_batch(raw.get(), &self.queue_name).map_err(bad_event)?;
        let total = batch.records.len() + batch.unidentified.len();
        // A run started with less time than this would be told to yield at once.
        let least = f.task.map_or(Duration::ZERO, |t| t.yield_margin);
        let mut failures = Vec::new();
        for SqsRecord { message_id: id, work } in batch.records {
            let ok = match work {
                SqsWork::Continue { .. } if inv.remaining() <= least => {
                    tracing::info!(message_id = %id, "too little time left for another run; it comes back later");
                    false
                }
                SqsWork::Continue { body, receipt_handle } => {
                    self.continuation(inv, &trace, &id, &body, receipt_handle).await
                }
                SqsWork::Start { key, input } => match self.start(&f.name, input, &key).await {
                    Ok(_) => true,
                    Err(d) => {
                        tracing::warn!(message_id = %id, error = %d.error_message, "task start failed; the message comes back");
                        false
                    }
                },
            };
            if !ok {
                failures.push(json!({ "itemIdentifier": id }));
            }
        }
        if !batch.unidentified.is_empty() {
            // No `itemIdentifier` can name these records (see `decode::task::sqs_batch`): the invocation fails,
            // so the whole batch comes back (until the queue's maxReceiveCount moves it to its dead-letter
            // queue); the records served above start no second task when it does.
            let positions: Vec<String> = batch.unidentified.iter().map(|p| (p + 1).to_string()).collect();
            return Err(bad_event(format!(
                "SQS records without a messageId (number {} of {}): no batchItemFailures entry can name them and \
                 no task can be keyed by them, so the invocation fails and the whole batch comes back (the other \
                 records were served as usual: their starts are idempotent by messageId)",
                positions.join(", "),
                total,
            )));
        }
        Ok(encode::raw_json(json!({ "batchItemFailures": failures }).to_string()))
    }

    /// Runs one continuation record; false when it must come back (busy task, store failure).
    async fn continuation(
        &self,
        inv: &Invocation,
        trace: &TraceContext,
        id: &str,
        body: &str,
        receipt_handle: String,
    ) -> bool {
        let delivery = match Delivery::from_message(body, receipt_handle) {
            Ok(d) => d,
            Err(e) => {
                // Not a message Nimbus wrote: retrying cannot fix it, and no task state lives in it.
                tracing::error!(message_id = %id, error = %e, "dropping a malformed continuation message");
                return true;
            }
        };
        let cx = RunContext {
            time_left: Some((inv.remaining(), inv.deadline_cause)),
            trace: Some(trace.clone()),
            request_id: Some(inv.request_id.to_string()),
        };
        let task_id = delivery.task_id.clone();
        match self.tasks.handle_in(delivery, cx).await {
            Ok(Handled::Ran { end, .. }) => {
                tracing::debug!(task_id, ?end, "task run ended");
                true
            }
            Ok(Handled::Finished) => true,
            Ok(Handled::Busy) => {
                tracing::info!(task_id, "another run holds the task; the message comes back later");
                false
            }
            Err(e) => {
                tracing::warn!(task_id, error = %e, "task run failed; it resumes when its message comes back");
                false
            }
        }
    }
}

fn bad_event(message: String) -> Diagnostic {
    Diagnostic {
        error_type: "Function.BadEvent".into(),
        error_message: message,
    }
}
