//! The interception seam: every call a guest makes that leaves the sandbox — outbound HTTP, `wasi:config`,
//! `wasi:keyvalue`, WebSocket sends and the checkpoint store — goes through what
//! [`BootOptions::intercept`] wraps around it, which can watch it, fail it or pass it on.

use nimbus_checkpoint::{Backend, Condition, Continuation, Created, Received, StoreError, TaskRecord, TaskStatus};
use nimbus_core::caps::Intercept;
use nimbus_core::caps::config::{ConfigError, ConfigStore};
use nimbus_core::caps::intercept::Interceptor;
use nimbus_core::caps::outbound::{Exchange, OutboundCall, OutboundHttp, SendError};
use nimbus_core::websocket::{ConnectionError, ConnectionSender, Message};
use nimbus_core::{BootOptions, Event, EventSource, Host, Outcome, Payload, Tasks, TraceContext};
use nimbus_kv::{KvError, KvStore};
use nimbus_tests::upstream::Upstream;
use nimbus_tests::{boot_with, gateway, get};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi_http::Error as HttpError;

type BoxFuture<'a, T> = futures_util::future::BoxFuture<'a, T>;

/// What the wrappers saw, one entry per call: `"family op detail"`.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Seen {
    fn push(&self, call: String) {
        self.0.lock().unwrap().push(call);
    }

    fn calls(&self, family: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with(family))
            .cloned()
            .collect()
    }
}

/// Wraps every family with a recorder; fails outbound requests to `refuse_port` and config reads of
/// `fail_key`, the way fault injection would.
struct Recording {
    seen: Arc<Seen>,
    refuse_port: Option<u16>,
    fail_key: Option<&'static str>,
}

impl Recording {
    fn install(refuse_port: Option<u16>, fail_key: Option<&'static str>) -> (Interceptor, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let me = Recording {
            seen: seen.clone(),
            refuse_port,
            fail_key,
        };
        (Interceptor(Arc::new(me)), seen)
    }
}

impl Intercept for Recording {
    fn outbound(&self, inner: Arc<dyn OutboundHttp>) -> Arc<dyn OutboundHttp> {
        Arc::new(RecOutbound {
            inner,
            seen: self.seen.clone(),
            refuse_port: self.refuse_port,
        })
    }

    fn config(&self, function: &str, inner: Arc<dyn ConfigStore>) -> Arc<dyn ConfigStore> {
        Arc::new(RecConfig {
            inner,
            function: function.to_owned(),
            seen: self.seen.clone(),
            fail_key: self.fail_key,
        })
    }

    fn keyvalue(&self, inner: Arc<dyn KvStore>) -> Arc<dyn KvStore> {
        Arc::new(RecKv {
            inner,
            seen: self.seen.clone(),
        })
    }

    fn checkpoint(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(RecBackend {
            inner,
            seen: self.seen.clone(),
        })
    }

    fn connections(&self, inner: Arc<dyn ConnectionSender>) -> Arc<dyn ConnectionSender> {
        Arc::new(RecSender {
            inner,
            seen: self.seen.clone(),
        })
    }
}

struct RecOutbound {
    inner: Arc<dyn OutboundHttp>,
    seen: Arc<Seen>,
    refuse_port: Option<u16>,
}

impl OutboundHttp for RecOutbound {
    fn send(&self, call: OutboundCall) -> BoxFuture<'_, Result<Exchange, SendError>> {
        let traced = call.request.headers().contains_key("traceparent");
        self.seen.push(format!(
            "outbound {} {}:{} traceparent={traced}",
            call.request.method(),
            call.target.host(),
            call.target.port
        ));
        if Some(call.target.port) == self.refuse_port {
            return Box::pin(async { Err(SendError::Failed(HttpError::ConnectionRefused)) });
        }
        self.inner.send(call)
    }
}

struct RecConfig {
    inner: Arc<dyn ConfigStore>,
    function: String,
    seen: Arc<Seen>,
    fail_key: Option<&'static str>,
}

impl ConfigStore for RecConfig {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<String>, ConfigError>> {
        self.seen.push(format!("config get {} {key}", self.function));
        if Some(key) == self.fail_key {
            return Box::pin(async { Err(ConfigError::Upstream("injected".into())) });
        }
        self.inner.get(key)
    }

    fn get_all(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, ConfigError>> {
        self.seen.push(format!("config get-all {}", self.function));
        self.inner.get_all()
    }
}

struct RecKv {
    inner: Arc<dyn KvStore>,
    seen: Arc<Seen>,
}

impl KvStore for RecKv {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, KvError>> {
        self.seen.push(format!("kv get {bucket}/{key}"));
        self.inner.get(bucket, key)
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), KvError>> {
        self.seen.push(format!("kv set {bucket}/{key}"));
        self.inner.set(bucket, key, value)
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), KvError>> {
        self.seen.push(format!("kv delete {bucket}/{key}"));
        self.inner.delete(bucket, key)
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<u64>,
    ) -> BoxFuture<'a, Result<nimbus_kv::Keys, KvError>> {
        self.seen.push(format!("kv list-keys {bucket}"));
        self.inner.list_keys(bucket, cursor)
    }

    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: u64) -> BoxFuture<'a, Result<u64, KvError>> {
        self.seen.push(format!("kv increment {bucket}/{key}"));
        self.inner.increment(bucket, key, delta)
    }
}

struct RecSender {
    inner: Arc<dyn ConnectionSender>,
    seen: Arc<Seen>,
}

impl ConnectionSender for RecSender {
    fn send<'a>(&'a self, id: &'a str, message: Message) -> BoxFuture<'a, Result<(), ConnectionError>> {
        self.seen.push(format!("ws send {id}"));
        self.inner.send(id, message)
    }

    fn close<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ConnectionError>> {
        self.seen.push(format!("ws close {id}"));
        self.inner.close(id)
    }
}

struct RecBackend {
    inner: Arc<dyn Backend>,
    seen: Arc<Seen>,
}

impl Backend for RecBackend {
    fn put_object<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        self.seen.push("checkpoint put_object".into());
        self.inner.put_object(key, bytes)
    }

    fn get_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        self.seen.push("checkpoint get_object".into());
        self.inner.get_object(key)
    }

    fn delete_object<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.seen.push("checkpoint delete_object".into());
        self.inner.delete_object(key)
    }

    fn get_task<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        self.seen.push("checkpoint get_task".into());
        self.inner.get_task(task_id)
    }

    fn create_task<'a>(&'a self, record: &'a TaskRecord) -> BoxFuture<'a, Result<Created, StoreError>> {
        self.seen.push("checkpoint create_task".into());
        self.inner.create_task(record)
    }

    fn update_task<'a>(
        &'a self,
        record: &'a TaskRecord,
        condition: &'a Condition,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.seen.push("checkpoint update_task".into());
        self.inner.update_task(record, condition)
    }

    fn enqueue<'a>(&'a self, message: &'a Continuation, delay_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.seen.push("checkpoint enqueue".into());
        self.inner.enqueue(message, delay_ms)
    }

    fn receive(&self, visibility_ms: u64) -> BoxFuture<'_, Result<Option<Received>, StoreError>> {
        self.seen.push("checkpoint receive".into());
        self.inner.receive(visibility_ms)
    }

    fn ack<'a>(&'a self, receipt: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.seen.push("checkpoint ack".into());
        self.inner.ack(receipt)
    }

    fn change_visibility<'a>(&'a self, receipt: &'a str, visibility_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.seen.push("checkpoint change_visibility".into());
        self.inner.change_visibility(receipt, visibility_ms)
    }
}

async fn event(host: &Host, function: &str, payload: Value) -> Value {
    let f = host.function(function).unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let event = Event {
        source: EventSource::Direct,
        payload: payload.to_string().into_bytes(),
    };
    match host.invoke(f, inv, Payload::Event(event)).await {
        Ok(Outcome::Event(out)) => serde_json::from_slice(&out).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_go_through_the_interceptor_after_the_allow_list() {
    let up = Upstream::status(207).await;
    let refused = Upstream::status(200).await;
    let (intercept, seen) = Recording::install(Some(refused.addr.port()), None);
    let text = format!(
        "manifest_version = 1\n[function.out]\ncomponent = \"{{OUTBOUND}}\"\nroutes = [\"GET /out\"]\n\
         allowed_outbound_hosts = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]\n",
        up.addr.port(),
        refused.addr.port()
    );
    let opts = BootOptions {
        intercept,
        ..BootOptions::default()
    };
    let (host, logs) = boot_with(&text, opts).await;
    let gw = gateway(host, logs).await;
    let fetch = |port: u16| {
        let addr = gw.addr();
        async move { get(addr, &format!("/out?url=http://127.0.0.1:{port}/x")).await.json() }
    };
    // Passed on: the upstream answers.
    let v = fetch(up.addr.port()).await;
    assert_eq!(v["status"], 207, "{v}");
    assert_eq!(up.requests().len(), 1);
    // Failed by the wrapper: the guest gets the error, the upstream never sees the request.
    let v = fetch(refused.addr.port()).await;
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("ConnectionRefused")),
        "{v}"
    );
    assert!(refused.requests().is_empty());
    // Denied by the allow-list: never reaches the seam.
    let v = fetch(1).await;
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("HttpRequestDenied")),
        "{v}"
    );
    assert_eq!(
        seen.calls("outbound"),
        [
            format!("outbound GET 127.0.0.1:{} traceparent=true", up.addr.port()),
            format!("outbound GET 127.0.0.1:{} traceparent=true", refused.addr.port()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reads_go_through_the_interceptor() {
    let (intercept, seen) = Recording::install(None, Some("secret"));
    let text = "manifest_version = 1\n[function.cfg]\ncomponent = \"{CONFIG_GET}\"\nroutes = [\"GET /config\"]\n\
                config = { greeting = { value = \"hi\" }, secret = { value = \"s3\" } }\n";
    let opts = BootOptions {
        intercept,
        ..BootOptions::default()
    };
    let (host, logs) = boot_with(text, opts).await;
    let gw = gateway(host, logs).await;
    let v: Value = get(gw.addr(), "/config?key=greeting").await.json();
    assert_eq!(v["value"], "hi", "{v}");
    // The wrapper fails this read: the guest sees no value (its SDK maps the error to `None` here).
    let v: Value = get(gw.addr(), "/config?key=secret").await.json();
    assert_eq!(v["value"], Value::Null, "{v}");
    assert_eq!(
        seen.calls("config"),
        [
            "config get cfg greeting",
            "config get-all cfg",
            "config get cfg secret",
            "config get-all cfg"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyvalue_and_websocket_sends_go_through_the_interceptor() {
    let dir = tempfile::tempdir().unwrap();
    let (intercept, seen) = Recording::install(None, None);
    let recorder = Arc::new(crate::websocket::Recorder::default());
    let kv: Arc<dyn KvStore> = Arc::new(nimbus_kv::Embedded::open(dir.path()).unwrap());
    let text = "manifest_version = 1\n[function.kv-ops]\ncomponent = \"{KV_OPS}\"\nkeyvalue = [\"kv\"]\n\
                [function.notify]\ncomponent = \"{WS_NOTIFY}\"\n[function.ws]\ncomponent = \"{WS_ECHO}\"\n";
    let opts = BootOptions {
        intercept,
        keyvalue: Some(kv),
        connections: Some(recorder.clone()),
        ..BootOptions::default()
    };
    let (host, _) = boot_with(text, opts).await;
    let out = event(
        &host,
        "kv-ops",
        json!({ "ops": [
            { "op": "set", "key": "k", "value": "v" },
            { "op": "get", "key": "k" },
        ] }),
    )
    .await;
    assert_eq!(out[1]["ok"], "v", "{out}");
    assert_eq!(seen.calls("kv"), ["kv set kv/k", "kv get kv/k"]);

    let out = event(&host, "notify", json!({ "to": ["a", "b"], "text": "hi" })).await;
    assert_eq!(out["ok"], 2, "{out}");
    assert_eq!(seen.calls("ws"), ["ws send a", "ws send b"]);
    assert_eq!(recorder.sent.lock().unwrap().len(), 2, "the wrapper passed them on");

    // A WebSocket event's own sender (the API that delivered it) is wrapped too.
    let own = Arc::new(crate::websocket::Recorder::default());
    let f = host.function("ws").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let event = crate::websocket::text("$default", "send:c:hello");
    let out = match host.invoke(f, inv, Payload::WebSocket(event, Some(own.clone()))).await {
        Ok(Outcome::WebSocket(w)) => crate::websocket::reply_text(w),
        other => panic!("{other:?}"),
    };
    assert_eq!(out, "ok=1 gone=0 other=");
    assert_eq!(seen.calls("ws"), ["ws send a", "ws send b", "ws send c"]);
    assert_eq!(own.sent.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_store_calls_go_through_the_interceptor() {
    let (intercept, seen) = Recording::install(None, None);
    let text = "manifest_version = 1\n[function.steps]\ncomponent = \"{TASK_STEPS}\"\ntimeout = \"5s\"\n\
                task = { max_attempts = 1 }\n";
    let opts = BootOptions {
        intercept,
        ..BootOptions::default()
    };
    let (host, _) = boot_with(text, opts).await;
    let dir = tempfile::tempdir().unwrap();
    let tasks = Tasks::embedded(host, dir.path()).unwrap();
    let started = tasks
        .start(
            "steps",
            br#"{"steps": 3, "step_ms": 1, "ignore_yield": true}"#.to_vec(),
            None,
        )
        .await
        .unwrap();
    let (record, _) = crate::durable::drive(&tasks, &started.task_id, Duration::from_secs(60)).await;
    assert_eq!(record.status, TaskStatus::Done, "{record:?}");
    let calls = seen.calls("checkpoint");
    for op in [
        "create_task",
        "enqueue",
        "receive",
        "get_task",
        "put_object",
        "update_task",
        "ack",
    ] {
        assert!(
            calls.contains(&format!("checkpoint {op}")),
            "no {op} went through the interceptor: {calls:?}"
        );
    }
}
