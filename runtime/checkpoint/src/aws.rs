//! The AWS backend: checkpoints in S3, task records in DynamoDB (conditional writes), continuations in SQS.
//!
//! DynamoDB table: partition key `task_id` (string). A task item holds the record as JSON in `record` plus the
//! attributes conditions test (`seq`, `revision`, `lease_token`). An idempotency key is an item
//! `idem#{sha256(key)}` whose `target` is the task id; it is written first with `attribute_not_exists`, so two
//! starts with one key agree on one task even if a crash separates the two writes.
//!
//! Records live in one item, so a task's input, result, progress and checkpoint list must fit DynamoDB's 400 KB
//! item limit; checkpoints themselves go to S3 and are bounded only by `max_checkpoint`.
//!
//! The SDK clients are built without their own retries: the driver retries [`StoreError::Transient`] failures,
//! so an exhausted retry names the protocol step. Throttling, 5xx, timeouts and dispatch failures are transient.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use crate::store::{Backend, BoxFuture, Condition, Continuation, Created, Received, StoreError, TaskRecord};

/// Largest record JSON written to DynamoDB: its item limit is 400 KB, minus room for the other attributes.
const MAX_RECORD: usize = 380 * 1024;

/// SQS refuses delays and visibility timeouts above these.
const MAX_DELAY_SECS: u64 = 900;
const MAX_VISIBILITY_SECS: u64 = 43_200;

/// Error codes that mean "slow down or try again", whatever the HTTP status.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Which AWS resources hold the state (the planned Terraform `durable-state` module is to create them), passed
/// to a Lambda as `NIMBUS_STATE_BUCKET`, `NIMBUS_TASK_TABLE` and `NIMBUS_TASK_QUEUE_URL` (read by the host's
/// settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    /// S3 bucket for checkpoint objects.
    pub bucket: String,
    /// DynamoDB table of task records.
    pub table: String,
    /// SQS queue URL for continuations.
    pub queue_url: String,
    /// Long-poll wait of a receive, in seconds (0..=20); 0 returns at once when nothing is visible.
    pub receive_wait_secs: i32,
    /// Path-style S3 addressing, needed by local endpoints such as moto.
    pub force_path_style: bool,
}

/// A [`Backend`] on S3, DynamoDB and SQS.
#[derive(Debug, Clone)]
pub struct Aws {
    s3: aws_sdk_s3::Client,
    ddb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    res: AwsResources,
}

impl Aws {
    /// A backend using `sdk` (region, credentials, endpoint, HTTP client) for all three services.
    /// Build `sdk` with `nimbus_core::aws::sdk_config_with(.., CallPolicy::SELF_RETRYING)` to get
    /// rustls-on-ring and no SDK-level retries (the driver retries transient failures itself).
    pub fn new(sdk: &aws_config::SdkConfig, res: AwsResources) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(res.force_path_style)
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3),
            ddb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            res,
        }
    }

    /// The resources this backend uses.
    pub fn resources(&self) -> &AwsResources {
        &self.res
    }

    async fn put_object_impl(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.s3
            .put_object()
            .bucket(&self.res.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| classify("s3 PutObject", e))?;
        Ok(())
    }

    async fn get_object_impl(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let out = match self.s3.get_object().bucket(&self.res.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify("s3 GetObject", e)),
        };
        let body = out.body.collect().await.map_err(|e| StoreError::Transient {
            op: "s3 GetObject",
            detail: format!("reading the body of {key}: {e}"),
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn delete_object_impl(&self, key: &str) -> Result<(), StoreError> {
        self.s3
            .delete_object()
            .bucket(&self.res.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("s3 DeleteObject", e))?;
        Ok(())
    }

    async fn get_item(
        &self,
        id: &str,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.res.table)
            .key("task_id", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb GetItem", e))?;
        Ok(out.item)
    }

    async fn get_task_impl(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        if task_id.starts_with("idem#") {
            return Ok(None);
        }
        match self.get_item(task_id).await? {
            Some(item) => parse_record(task_id, &item).map(Some),
            None => Ok(None),
        }
    }

    /// Writes `record`; `condition` is a DynamoDB condition expression with its values.
    async fn put_record(
        &self,
        op: &'static str,
        record: &TaskRecord,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Backend {
            op,
            detail: e.to_string(),
        })?;
        if json.len() > MAX_RECORD {
            // DynamoDB would refuse it with an opaque validation error; say what is too big instead.
            return Err(StoreError::Backend {
                op,
                detail: format!(
                    "task record of {} bytes (input {}, result {}, progress {}) exceeds the {MAX_RECORD}-byte limit \
                     of one DynamoDB item",
                    json.len(),
                    record.input.len(),
                    record.result.as_ref().map_or(0, Vec::len),
                    record.progress.as_ref().map_or(0, String::len),
                ),
            });
        }
        let mut put = self
            .ddb
            .put_item()
            .table_name(&self.res.table)
            .item("task_id", AttributeValue::S(record.task_id.clone()))
            .item("record", AttributeValue::S(json))
            .item("seq", AttributeValue::N(record.seq.to_string()))
            .item("revision", AttributeValue::N(record.revision.to_string()))
            .item(
                "status",
                AttributeValue::S(format!("{:?}", record.status).to_lowercase()),
            )
            .condition_expression(condition);
        if let Some(lease) = &record.lease {
            put = put.item("lease_token", AttributeValue::S(lease.token.clone()));
        }
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
        put.send().await.map_err(|e| classify(op, e))?;
        Ok(())
    }

    async fn create_task_impl(&self, record: &TaskRecord) -> Result<Created, StoreError> {
        let mut record = record.clone();
        if let Some(key) = &record.idempotency_key {
            let digest: String = Sha256::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let index = format!("idem#{digest}");
            let put = self
                .ddb
                .put_item()
                .table_name(&self.res.table)
                .item("task_id", AttributeValue::S(index.clone()))
                .item("target", AttributeValue::S(record.task_id.clone()))
                .condition_expression("attribute_not_exists(task_id)")
                .send()
                .await;
            match put.map_err(|e| classify("dynamodb PutItem (idempotency key)", e)) {
                Ok(_) => {}
                Err(StoreError::ConditionFailed) => {
                    let item = self.get_item(&index).await?.ok_or_else(|| StoreError::Backend {
                        op: "create task",
                        detail: format!("idempotency item {index} vanished while creating"),
                    })?;
                    let Some(AttributeValue::S(target)) = item.get("target") else {
                        return Err(StoreError::Corrupt {
                            what: format!("idempotency item {index}"),
                            detail: "no target".into(),
                        });
                    };
                    if let Some(found) = self.get_task_impl(target).await? {
                        return Ok(Created::Existing(Box::new(found)));
                    }
                    // The first start died between the two writes: finish creating its record.
                    record.task_id = target.clone();
                    return match self.put_new(&record).await? {
                        Created::New => Ok(Created::Existing(Box::new(record))),
                        existing => Ok(existing),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        self.put_new(&record).await
    }

    async fn put_new(&self, record: &TaskRecord) -> Result<Created, StoreError> {
        match self
            .put_record(
                "dynamodb PutItem (create task)",
                record,
                "attribute_not_exists(task_id)",
                vec![],
            )
            .await
        {
            Ok(()) => Ok(Created::New),
            Err(StoreError::ConditionFailed) => match self.get_task_impl(&record.task_id).await? {
                Some(found) => Ok(Created::Existing(Box::new(found))),
                None => Err(StoreError::Backend {
                    op: "create task",
                    detail: "record vanished while creating".into(),
                }),
            },
            Err(e) => Err(e),
        }
    }

    async fn update_task_impl(&self, record: &TaskRecord, condition: &Condition) -> Result<(), StoreError> {
        let op = "dynamodb PutItem (conditional commit)";
        match condition {
            Condition::Lease { seq, token } => {
                let values = vec![
                    (":seq", AttributeValue::N(seq.to_string())),
                    (":tok", AttributeValue::S(token.clone())),
                ];
                self.put_record(op, record, "seq = :seq AND lease_token = :tok", values)
                    .await
            }
            Condition::Revision(rev) => {
                let values = vec![(":rev", AttributeValue::N(rev.to_string()))];
                self.put_record(op, record, "revision = :rev", values).await
            }
        }
    }

    async fn enqueue_impl(&self, message: &Continuation, delay_ms: u64) -> Result<(), StoreError> {
        let body = serde_json::to_string(message).map_err(|e| StoreError::Backend {
            op: "sqs SendMessage",
            detail: e.to_string(),
        })?;
        let delay = delay_ms.div_ceil(1000).min(MAX_DELAY_SECS) as i32;
        self.sqs
            .send_message()
            .queue_url(&self.res.queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| classify("sqs SendMessage", e))?;
        Ok(())
    }

    async fn receive_impl(&self, visibility_ms: u64) -> Result<Option<Received>, StoreError> {
        let visibility = visibility_ms.div_ceil(1000).clamp(1, MAX_VISIBILITY_SECS) as i32;
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.res.queue_url)
            .max_number_of_messages(1)
            .visibility_timeout(visibility)
            .wait_time_seconds(self.res.receive_wait_secs)
            .send()
            .await
            .map_err(|e| classify("sqs ReceiveMessage", e))?;
        let Some(msg) = out.messages.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let Some(receipt) = msg.receipt_handle else {
            return Err(StoreError::Backend {
                op: "sqs ReceiveMessage",
                detail: "message without a receipt handle".into(),
            });
        };
        let body = msg.body.unwrap_or_default(); // an empty body is malformed and handled below
        match serde_json::from_str::<Continuation>(&body) {
            Ok(message) => Ok(Some(Received { message, receipt })),
            Err(e) => {
                // A foreign message can never become a run; drop it rather than block the queue with it.
                tracing::warn!(error = %e, body = %body.chars().take(200).collect::<String>(),
                    "deleting a malformed continuation message");
                self.ack_impl(&receipt).await?;
                Ok(None)
            }
        }
    }

    async fn ack_impl(&self, receipt: &str) -> Result<(), StoreError> {
        self.sqs
            .delete_message()
            .queue_url(&self.res.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| classify("sqs DeleteMessage", e))?;
        Ok(())
    }

    async fn change_visibility_impl(&self, receipt: &str, visibility_ms: u64) -> Result<(), StoreError> {
        let visibility = visibility_ms.div_ceil(1000).min(MAX_VISIBILITY_SECS) as i32;
        let res = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.res.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // The message was redelivered or deleted meanwhile: nothing of ours to extend.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_message_not_inflight()) => Ok(()),
            Err(e) => Err(classify("sqs ChangeMessageVisibility", e)),
        }
    }
}

impl Backend for Aws {
    fn put_object<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put_object_impl(key, bytes))
    }
    fn get_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(self.get_object_impl(key))
    }
    fn delete_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.delete_object_impl(key))
    }
    fn get_task<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        Box::pin(self.get_task_impl(task_id))
    }
    fn create_task<'a>(&'a self, record: &'a TaskRecord) -> BoxFuture<'a, Result<Created, StoreError>> {
        Box::pin(self.create_task_impl(record))
    }
    fn update_task<'a>(
        &'a self,
        record: &'a TaskRecord,
        condition: &'a Condition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.update_task_impl(record, condition))
    }
    fn enqueue<'a>(&'a self, message: &'a Continuation, delay_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.enqueue_impl(message, delay_ms))
    }
    fn receive(&self, visibility_ms: u64) -> BoxFuture<'_, Result<Option<Received>, StoreError>> {
        Box::pin(self.receive_impl(visibility_ms))
    }
    fn ack<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.ack_impl(receipt))
    }
    fn change_visibility<'a>(&'a self, receipt: &'a str, visibility_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.change_visibility_impl(receipt, visibility_ms))
    }
}

fn parse_record(id: &str, item: &std::collections::HashMap<String, AttributeValue>) -> Result<TaskRecord, StoreError> {
    let what = || format!("task record {id}");
    let Some(AttributeValue::S(json)) = item.get("record") else {
        return Err(StoreError::Corrupt {
            what: what(),
            detail: "no `record` attribute".into(),
        });
    };
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        what: what(),
        detail: e.to_string(),
    })
}

/// Maps an SDK failure to the driver's vocabulary: failed conditions, transient failures, everything else.
fn classify<E>(op: &'static str, err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = aws_sdk_s3::error::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient { op, detail }
        }
        _ => {
            let code = err.code().unwrap_or_default();
            if code == "ConditionalCheckFailedException" {
                return StoreError::ConditionFailed;
            }
            let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            if status == 429 || status >= 500 || TRANSIENT_CODES.contains(&code) {
                StoreError::Transient { op, detail }
            } else {
                StoreError::Backend { op, detail }
            }
        }
    }
}
