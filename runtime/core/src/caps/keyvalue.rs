//! `wasi:keyvalue` (`store`, `atomics`, `batch`): small shared state, e.g. a WebSocket connection registry.
//!
//! A function opens only the buckets its manifest declares (`keyvalue = ["default", "rooms"]`); any other
//! name is `access-denied`, and with no store configured (no `--state-dir` under `nimbus serve`, no
//! `NIMBUS_KV_TABLE` on Lambda) `open` is `no-such-store`. The store is the platform's
//! ([`crate::BootOptions::keyvalue`]): the embedded one under `nimbus serve`, DynamoDB on AWS; both enforce
//! the same key and value limits ([`nimbus_kv::MAX_KEY`], [`nimbus_kv::MAX_VALUE`]).

use super::{Boot, Capability, Grants, View, ViewFn, ViewOf};
use crate::bindings::keyvalue::{atomics, batch, store};
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use nimbus_kv::{KvError, KvStore};
use std::sync::Arc;
use wasmtime::component::{Linker, Resource};

/// The `wasi:keyvalue` capability.
pub struct KeyValue;

/// A function's view of the store: the store, and the buckets it may open.
#[derive(Clone)]
pub struct KvShared {
    store: Option<Arc<dyn KvStore>>,
    buckets: Arc<[String]>,
}

/// An open bucket (the guest's `bucket` resource).
pub struct Bucket {
    name: String,
}

impl Capability for KeyValue {
    const NAME: &'static str = "keyvalue";
    type Shared = KvShared;
    type Ctx = KvShared;

    fn link(linker: &mut Linker<HostState>, view: ViewFn<KvShared>) -> wasmtime::Result<()> {
        store::add_to_linker::<HostState, ViewOf<KvShared>>(linker, view)?;
        atomics::add_to_linker::<HostState, ViewOf<KvShared>>(linker, view)?;
        batch::add_to_linker::<HostState, ViewOf<KvShared>>(linker, view)
    }

    async fn configure(spec: &FunctionSpec, boot: &Boot) -> Result<KvShared, BootError> {
        Ok(KvShared {
            store: boot.keyvalue.clone(),
            buckets: spec.keyvalue.clone().into(),
        })
    }

    fn prepare(shared: &KvShared, _inv: &Arc<Invocation>, _grants: &mut Grants) -> KvShared {
        shared.clone()
    }
}

impl View<'_, KvShared> {
    /// A store failure as the guest sees it: limits as they are, a backend failure without its detail (host
    /// paths, AWS errors), which goes to the host's log instead.
    fn kv_error(&self, op: &'static str, bucket: &str, e: KvError) -> store::Error {
        if let KvError::Backend(detail) = &e {
            tracing::warn!(app = %self.inv.app, function = %self.inv.function, request_id = %self.inv.request_id, bucket, op,
                error = %detail, "key-value store failed");
        }
        store::Error::Other(e.guest_message())
    }

    /// The store and the name of an open bucket.
    fn bucket(&self, b: &Resource<Bucket>) -> wasmtime::Result<(Arc<dyn KvStore>, String)> {
        let name = self.table.get(b)?.name.clone();
        // A bucket only opens when a store exists, so this is a host bug if it fails.
        let store = self
            .ctx
            .store
            .clone()
            .ok_or_else(|| wasmtime::Error::msg("keyvalue: a bucket is open without a store"))?;
        Ok((store, name))
    }
}

impl store::Host for View<'_, KvShared> {
    async fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        let name = if identifier.is_empty() {
            "default".to_owned()
        } else {
            identifier
        };
        if self.ctx.store.is_none() {
            return Ok(Err(store::Error::NoSuchStore));
        }
        if !self.ctx.buckets.contains(&name) {
            return Ok(Err(store::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(Bucket { name })?))
    }
}

impl store::HostBucket for View<'_, KvShared> {
    async fn get(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        Ok(kv.get(&name, &key).await.map_err(|e| self.kv_error("get", &name, e)))
    }

    async fn set(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        Ok(kv
            .set(&name, &key, value)
            .await
            .map_err(|e| self.kv_error("set", &name, e)))
    }

    async fn delete(&mut self, b: Resource<Bucket>, key: String) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        Ok(kv
            .delete(&name, &key)
            .await
            .map_err(|e| self.kv_error("delete", &name, e)))
    }

    async fn exists(&mut self, b: Resource<Bucket>, key: String) -> wasmtime::Result<Result<bool, store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        Ok(kv
            .get(&name, &key)
            .await
            .map(|v| v.is_some())
            .map_err(|e| self.kv_error("exists", &name, e)))
    }

    async fn list_keys(
        &mut self,
        b: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        Ok(kv
            .list_keys(&name, cursor)
            .await
            .map(|k| store::KeyResponse {
                keys: k.keys,
                cursor: k.cursor,
            })
            .map_err(|e| self.kv_error("list-keys", &name, e)))
    }

    async fn drop(&mut self, b: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for View<'_, KvShared> {
    async fn increment(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        Ok(kv
            .increment(&name, &key, delta)
            .await
            .map_err(|e| self.kv_error("increment", &name, e)))
    }
}

impl batch::Host for View<'_, KvShared> {
    async fn get_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match kv.get(&name, &key).await {
                Ok(v) => out.push(v.map(|v| (key, v))),
                Err(e) => return Ok(Err(self.kv_error("get-many", &name, e))),
            }
        }
        Ok(Ok(out))
    }

    async fn set_many(
        &mut self,
        b: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        for (key, value) in key_values {
            if let Err(e) = kv.set(&name, &key, value).await {
                return Ok(Err(self.kv_error("set-many", &name, e)));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (kv, name) = self.bucket(&b)?;
        for key in keys {
            if let Err(e) = kv.delete(&name, &key).await {
                return Ok(Err(self.kv_error("delete-many", &name, e)));
            }
        }
        Ok(Ok(()))
    }
}
