//! The fault layer of the interception seam: [`FaultIntercept`] wraps every host-call family, and each
//! wrapper asks the invocation's share of the plan ([`super::current`]) whether a rule fires on the call.
//! When none does (no plan, or no rule for this invocation), the call goes straight through.
//!
//! What each family gets when a rule fires:
//!
//! | family | latency | error |
//! |---|---|---|
//! | outbound HTTP | before the request leaves | a response with the rule's status, not sent upstream; or a reset (`connection-terminated`), or a timeout (`connection-read-timeout` after the request's first-byte timeout) |
//! | `wasi:config` | before the read | `upstream` |
//! | `wasi:keyvalue` | before the call | the store's error (the guest sees that the operation failed on the host) |
//! | checkpoint store | before the call | a transient store error (the durable protocol retries it) |
//! | WebSocket sends | before the send | `throttled` |

use super::active::{Firing, InvocationFaults, current};
use super::plan::{CheckpointOp, Family, Fault, Target};
use crate::caps::config::{ConfigError, ConfigStore};
use crate::caps::intercept::Intercept;
use crate::caps::outbound::send::ResponseBody;
use crate::caps::outbound::{Exchange, OutboundCall, OutboundHttp, SendError};
use crate::websocket::{ConnectionError, ConnectionSender, Message};
use futures_util::future::BoxFuture;
use nimbus_checkpoint::{Backend, Condition, Continuation, Created, Received, StoreError, TaskRecord};
use nimbus_kv::{KvError, KvStore};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::Error as HttpError;

/// Wraps every host-call family with the fault layer; installed on every host (with no plan it costs a
/// task-local read per host call: BENCHMARKS.md, "Fault injection").
pub struct FaultIntercept;

impl Intercept for FaultIntercept {
    fn outbound(&self, inner: Arc<dyn OutboundHttp>) -> Arc<dyn OutboundHttp> {
        Arc::new(FaultyOutbound(inner))
    }

    fn config(&self, _function: &str, inner: Arc<dyn ConfigStore>) -> Arc<dyn ConfigStore> {
        Arc::new(FaultyConfig(inner))
    }

    fn keyvalue(&self, inner: Arc<dyn KvStore>) -> Arc<dyn KvStore> {
        Arc::new(FaultyKv(inner))
    }

    fn checkpoint(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(FaultyCheckpoint(inner))
    }

    fn connections(&self, inner: Arc<dyn ConnectionSender>) -> Arc<dyn ConnectionSender> {
        Arc::new(FaultySender(inner))
    }
}

/// What a fired non-outbound rule does to its call: wait, then fail or go on.
enum Effect {
    /// Go on after this long.
    Delay(Duration),
    /// Fail with the family's error naming the rule.
    Fail(String),
}

/// Asks the current invocation's share whether a rule of `family` whose target `matches` fires; records it
/// when one does.
fn decide(family: Family, matches: impl Fn(&Target) -> bool) -> Option<Effect> {
    let faults = current()?;
    let firing = faults.fire(family, matches)?;
    faults.record(&firing, None, None);
    Some(effect(&faults, &firing))
}

fn effect(faults: &InvocationFaults, firing: &Firing<'_>) -> Effect {
    match firing.rule.fault {
        Fault::Latency(_) => Effect::Delay(faults.latency(firing)),
        _ => Effect::Fail(format!("fault injected by rule `{}`", firing.rule.name)),
    }
}

/// Runs `call` under `effect`: delayed, failed with `fail`'s error, or untouched.
async fn apply<T, E>(
    effect: Option<Effect>,
    fail: impl FnOnce(String) -> E,
    call: BoxFuture<'_, Result<T, E>>,
) -> Result<T, E> {
    match effect {
        None => call.await,
        Some(Effect::Delay(d)) => {
            tokio::time::sleep(d).await;
            call.await
        }
        Some(Effect::Fail(message)) => Err(fail(message)),
    }
}

struct FaultyOutbound(Arc<dyn OutboundHttp>);

impl OutboundHttp for FaultyOutbound {
    fn send(&self, call: OutboundCall) -> BoxFuture<'_, Result<Exchange, SendError>> {
        let Some(faults) = call.faults.clone() else {
            return self.0.send(call);
        };
        let (method, path) = (call.request.method().as_str(), call.request.uri().path());
        let host = call.target.host();
        let Some(firing) = faults.fire(Family::Outbound, |t| t.outbound_matches(host, method, path)) else {
            return self.0.send(call);
        };
        let detail = format!("{method} {host}");
        faults.record(&firing, call.span_id, Some(detail));
        let delay = faults.latency(&firing);
        let fault = firing.rule.fault.clone();
        let rule = firing.rule.name.clone();
        Box::pin(async move {
            match fault {
                Fault::Latency(_) => {
                    tokio::time::sleep(delay).await;
                    self.0.send(call).await
                }
                Fault::Error { status } => Ok(injected_response(status, &rule)),
                Fault::Reset => Err(SendError::Failed(HttpError::ConnectionTerminated)),
                Fault::Timeout => {
                    tokio::time::sleep(crate::caps::outbound::send::first_byte_timeout(call.options.as_ref())).await;
                    Err(SendError::Failed(HttpError::ConnectionReadTimeout))
                }
                // The plan refuses the invocation-only kinds on outbound targets.
                _ => self.0.send(call).await,
            }
        })
    }
}

/// The response an outbound error rule answers with: its status, a short text body naming the rule, and
/// `x-nimbus-fault` so a handler's author can tell it from the upstream's own.
fn injected_response(status: u16, rule: &str) -> Exchange {
    let body = format!("fault injected by rule `{rule}`\n");
    let res = http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header("x-nimbus-fault", rule)
        .body(ResponseBody::local(body.into()))
        .unwrap_or_else(|_| http::Response::new(ResponseBody::local(bytes::Bytes::new())));
    (res, Box::new(async { Ok(()) }))
}

struct FaultyConfig(Arc<dyn ConfigStore>);

impl ConfigStore for FaultyConfig {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, ConfigError>> {
        let effect = decide(Family::Config, |t| *t == Target::Config);
        Box::pin(apply(effect, ConfigError::Upstream, self.0.get(key)))
    }

    fn get_all(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ConfigError>> {
        let effect = decide(Family::Config, |t| *t == Target::Config);
        Box::pin(apply(effect, ConfigError::Upstream, self.0.get_all()))
    }
}

struct FaultyKv(Arc<dyn KvStore>);

fn kv_decide() -> Option<Effect> {
    decide(Family::KeyValue, |t| *t == Target::KeyValue)
}

impl KvStore for FaultyKv {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        Box::pin(apply(kv_decide(), KvError::Backend, self.0.get(bucket, key)))
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(apply(kv_decide(), KvError::Backend, self.0.set(bucket, key, value)))
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        Box::pin(apply(kv_decide(), KvError::Backend, self.0.delete(bucket, key)))
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<u64>,
    ) -> BoxFuture<'a, Result<nimbus_kv::Keys, KvError>> {
        Box::pin(apply(kv_decide(), KvError::Backend, self.0.list_keys(bucket, cursor)))
    }

    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: u64) -> BoxFuture<'a, Result<u64, KvError>> {
        Box::pin(apply(
            kv_decide(),
            KvError::Backend,
            self.0.increment(bucket, key, delta),
        ))
    }
}

struct FaultyCheckpoint(Arc<dyn Backend>);

/// The decision for a checkpoint store call of kind `op` (named `name` in its error).
fn checkpoint_decide(op: CheckpointOp) -> Option<Effect> {
    decide(Family::Checkpoint, |t| match t {
        Target::Checkpoint(CheckpointOp::Any) => true,
        Target::Checkpoint(wanted) => *wanted == op,
        _ => false,
    })
}

/// A transient store failure for `op`, as a throttled or failing backend gives.
fn store_error(op: &'static str) -> impl FnOnce(String) -> StoreError {
    move |detail| StoreError::Transient { op, detail }
}

impl Backend for FaultyCheckpoint {
    fn put_object<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        let effect = checkpoint_decide(CheckpointOp::Write);
        Box::pin(apply(effect, store_error("put_object"), self.0.put_object(key, bytes)))
    }

    fn get_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let effect = checkpoint_decide(CheckpointOp::Read);
        Box::pin(apply(effect, store_error("get_object"), self.0.get_object(key)))
    }

    fn delete_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let effect = checkpoint_decide(CheckpointOp::Write);
        Box::pin(apply(effect, store_error("delete_object"), self.0.delete_object(key)))
    }

    fn get_task<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        let effect = checkpoint_decide(CheckpointOp::Read);
        Box::pin(apply(effect, store_error("get_task"), self.0.get_task(task_id)))
    }

    fn create_task<'a>(&'a self, record: &'a TaskRecord) -> BoxFuture<'a, Result<Created, StoreError>> {
        let effect = checkpoint_decide(CheckpointOp::Commit);
        Box::pin(apply(effect, store_error("create_task"), self.0.create_task(record)))
    }

    fn update_task<'a>(
        &'a self,
        record: &'a TaskRecord,
        condition: &'a Condition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let effect = checkpoint_decide(CheckpointOp::Commit);
        Box::pin(apply(
            effect,
            store_error("update_task"),
            self.0.update_task(record, condition),
        ))
    }

    fn enqueue<'a>(&'a self, message: &'a Continuation, delay_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        let effect = checkpoint_decide(CheckpointOp::Commit);
        Box::pin(apply(effect, store_error("enqueue"), self.0.enqueue(message, delay_ms)))
    }

    // The queue's own bookkeeping (receive, ack, visibility) happens between runs, outside any invocation:
    // no rule applies to it.
    fn receive(&self, visibility_ms: u64) -> BoxFuture<'_, Result<Option<Received>, StoreError>> {
        self.0.receive(visibility_ms)
    }

    fn ack<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.ack(receipt)
    }

    fn change_visibility<'a>(&'a self, receipt: &'a str, visibility_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.change_visibility(receipt, visibility_ms)
    }
}

struct FaultySender(Arc<dyn ConnectionSender>);

fn ws_decide() -> Option<Effect> {
    decide(Family::WebSocket, |t| *t == Target::WebSocket)
}

impl ConnectionSender for FaultySender {
    fn send<'a>(&'a self, connection_id: &'a str, message: Message) -> BoxFuture<'a, Result<(), ConnectionError>> {
        Box::pin(apply(
            ws_decide(),
            |_| ConnectionError::Throttled,
            self.0.send(connection_id, message),
        ))
    }

    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), ConnectionError>> {
        Box::pin(apply(
            ws_decide(),
            |_| ConnectionError::Throttled,
            self.0.close(connection_id),
        ))
    }
}
