//! The DynamoDB store: one table (`NIMBUS_KV_TABLE`), partition key `bucket` (string), sort key `key`
//! (string), the value in the binary attribute `v`. `increment` is a read followed by a write conditional
//! on the value read, retried on conflict, so concurrent increments from many Lambda environments never
//! lose an update. `list_keys` queries the bucket in key order; its cursor is an offset into that order.
//!
//! The function's role needs `dynamodb:GetItem`, `PutItem`, `DeleteItem` and `Query` on the table.

use crate::{BoxFuture, Keys, KvError, KvStore, PAGE, add_to_counter, check_key, check_value};
pub use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

/// Conflicting writers an `increment` outlasts before giving up.
const INCREMENT_TRIES: u32 = 20;

/// A store on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct Dynamo {
    client: Client,
    table: String,
}

fn backend<E: std::error::Error + 'static>(op: &str, e: E) -> KvError {
    KvError::Backend(format!("DynamoDB {op}: {}", DisplayErrorContext(e)))
}

impl Dynamo {
    /// A store on `table` through `client` (its region, credentials and endpoint).
    pub fn new(client: Client, table: impl Into<String>) -> Dynamo {
        Dynamo {
            client,
            table: table.into(),
        }
    }

    fn key(bucket: &str, key: &str) -> [(String, AttributeValue); 2] {
        [
            ("bucket".into(), AttributeValue::S(bucket.into())),
            ("key".into(), AttributeValue::S(key.into())),
        ]
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(bucket, key).into_iter().collect()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", e))?;
        Ok(match out.item.and_then(|mut i| i.remove("v")) {
            Some(AttributeValue::B(b)) => Some(b.into_inner()),
            _ => None,
        })
    }
}

impl KvStore for Dynamo {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        Box::pin(async move {
            check_key(key)?;
            self.read(bucket, key).await
        })
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            check_key(key)?;
            check_value(&value)?;
            let mut item: std::collections::HashMap<_, _> = Self::key(bucket, key).into_iter().collect();
            item.insert("v".into(), AttributeValue::B(Blob::new(value)));
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| backend("PutItem", e))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(async move {
            check_key(key)?;
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(bucket, key).into_iter().collect()))
                .send()
                .await
                .map_err(|e| backend("DeleteItem", e))?;
            Ok(())
        })
    }

    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<u64>) -> BoxFuture<'a, Result<Keys, KvError>> {
        Box::pin(async move {
            let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
            let mut keys = Vec::new();
            let mut seen = 0usize;
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#b = :b")
                    .expression_attribute_names("#b", "bucket")
                    .expression_attribute_names("#k", "key")
                    .expression_attribute_values(":b", AttributeValue::S(bucket.into()))
                    .projection_expression("#k")
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| backend("Query", e))?;
                for item in out.items.unwrap_or_default() {
                    if let Some(AttributeValue::S(k)) = item.get("key") {
                        if seen >= skip {
                            if keys.len() == PAGE {
                                return Ok(Keys {
                                    keys,
                                    cursor: Some(seen as u64),
                                });
                            }
                            keys.push(k.clone());
                        }
                        seen += 1;
                    }
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    return Ok(Keys { keys, cursor: None });
                }
            }
        })
    }

    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: u64) -> BoxFuture<'a, Result<u64, KvError>> {
        Box::pin(async move {
            check_key(key)?;
            for _ in 0..INCREMENT_TRIES {
                let current = self.read(bucket, key).await?;
                let next = add_to_counter(current.as_deref(), delta)?;
                let mut item: std::collections::HashMap<_, _> = Self::key(bucket, key).into_iter().collect();
                item.insert("v".into(), AttributeValue::B(Blob::new(next.to_string().into_bytes())));
                let put = self.client.put_item().table_name(&self.table).set_item(Some(item));
                let put = match current {
                    None => put.condition_expression("attribute_not_exists(v)"),
                    Some(old) => put
                        .condition_expression("v = :old")
                        .expression_attribute_values(":old", AttributeValue::B(Blob::new(old))),
                };
                match put.send().await {
                    Ok(_) => return Ok(next),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                    Err(e) => return Err(backend("PutItem", e)),
                }
            }
            Err(KvError::Backend(format!(
                "increment of {bucket}/{key}: still conflicting after {INCREMENT_TRIES} tries"
            )))
        })
    }
}
