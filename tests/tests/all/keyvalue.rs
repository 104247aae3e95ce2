//! `wasi:keyvalue` through the `chat` example (WebSocket + key-value + connections) on the embedded store,
//! bucket access rules, and the DynamoDB store against moto.

use crate::websocket::Recorder;
use nimbus_core::websocket::{ConnectRequest, Disconnect, IncomingMessage, Message, Sender, WsEvent, WsOutcome};
use nimbus_core::{BootOptions, Host, InvokeError, Outcome, Payload, TraceContext};
use nimbus_kv::{KvStore, MAX_VALUE};
use std::sync::Arc;

const MANIFEST: &str = r#"
manifest_version = 1

[function.chat]
component = "{CHAT}"
keyvalue = ["rooms"]

[function.chat-undeclared]
component = "{CHAT}"
"#;

async fn boot(kv: Option<Arc<dyn KvStore>>, sender: Sender) -> Arc<Host> {
    let opts = BootOptions {
        keyvalue: kv,
        connections: Some(sender),
        ..BootOptions::default()
    };
    nimbus_tests::boot_with(MANIFEST, opts).await.0
}

async fn ws(host: &Host, function: &str, event: WsEvent) -> Result<WsOutcome, InvokeError> {
    let f = host.function(function).unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    match host.invoke(f, inv, Payload::WebSocket(event, None)).await? {
        Outcome::WebSocket(o) => Ok(o),
        other => panic!("{other:?}"),
    }
}

fn say(id: &str, route: &str, json: serde_json::Value) -> WsEvent {
    WsEvent::Message(IncomingMessage {
        connection_id: id.into(),
        route_key: route.into(),
        message: Message::Text(json.to_string()),
    })
}

fn reply(o: WsOutcome) -> serde_json::Value {
    match o {
        WsOutcome::Handled(Some(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// What each connection received, as JSON.
fn inbox(rec: &Recorder, id: &str) -> Vec<serde_json::Value> {
    rec.sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(to, _)| to == id)
        .map(|(_, m)| match m {
            Message::Text(t) => serde_json::from_str(t).unwrap(),
            Message::Binary(_) => panic!("binary"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rooms_live_in_keyvalue_and_broadcasts_reach_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let kv: Arc<dyn KvStore> = Arc::new(nimbus_kv::Embedded::open(dir.path()).unwrap());
    let rec = Arc::new(Recorder::default());
    let host = boot(Some(kv.clone()), rec.clone()).await;
    let connect = |id: &str| {
        WsEvent::Connect(ConnectRequest {
            connection_id: id.into(),
            path: "/chat".into(),
            headers: vec![],
            query: vec![],
            source_ip: None,
        })
    };
    assert!(matches!(
        ws(&host, "chat", connect("c1")).await.unwrap(),
        WsOutcome::Accepted
    ));
    let joined = reply(
        ws(
            &host,
            "chat",
            say("c1", "join", serde_json::json!({"room": "lobby", "name": "ann"})),
        )
        .await
        .unwrap(),
    );
    assert_eq!(joined, serde_json::json!({"joined": "lobby", "members": 1}));
    let joined = reply(
        ws(
            &host,
            "chat",
            say("c2", "join", serde_json::json!({"room": "lobby", "name": "bob"})),
        )
        .await
        .unwrap(),
    );
    assert_eq!(joined["members"], 2);
    ws(
        &host,
        "chat",
        say("c3", "join", serde_json::json!({"room": "elsewhere", "name": "cy"})),
    )
    .await
    .unwrap();
    let sent = reply(
        ws(&host, "chat", say("c2", "send", serde_json::json!({"text": "hi all"})))
            .await
            .unwrap(),
    );
    assert_eq!(sent, serde_json::json!({"sent": 2}));
    let hi = serde_json::json!({"event": "message", "from": "bob", "text": "hi all"});
    assert!(inbox(&rec, "c1").contains(&hi), "{:?}", inbox(&rec, "c1"));
    assert!(inbox(&rec, "c2").contains(&hi));
    assert!(!inbox(&rec, "c3").contains(&hi), "another room hears nothing");
    // The room state is in the store, readable by anything holding it.
    assert_eq!(
        kv.get("rooms", "member/lobby/c1").await.unwrap().as_deref(),
        Some(&b"ann"[..])
    );

    let gone = WsEvent::Disconnect(Disconnect {
        connection_id: "c1".into(),
        status_code: None,
        reason: "connection lost".into(),
    });
    assert!(matches!(
        ws(&host, "chat", gone).await.unwrap(),
        WsOutcome::Disconnected
    ));
    assert!(inbox(&rec, "c2").contains(&serde_json::json!({"event": "left", "name": "ann"})));
    assert_eq!(kv.get("rooms", "member/lobby/c1").await.unwrap(), None);

    // A member whose connection is gone is dropped at the next broadcast.
    ws(
        &host,
        "chat",
        say("gone-9", "join", serde_json::json!({"room": "lobby", "name": "ghost"})),
    )
    .await
    .unwrap();
    ws(&host, "chat", say("c2", "send", serde_json::json!({"text": "anyone?"})))
        .await
        .unwrap();
    assert_eq!(kv.get("rooms", "member/lobby/gone-9").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_must_be_declared_and_a_store_configured() {
    let dir = tempfile::tempdir().unwrap();
    let kv: Arc<dyn KvStore> = Arc::new(nimbus_kv::Embedded::open(dir.path()).unwrap());
    let host = boot(Some(kv), Arc::new(Recorder::default())).await;
    let join = say("c1", "join", serde_json::json!({"room": "r"}));
    match ws(&host, "chat-undeclared", join.clone()).await {
        Err(InvokeError::Guest(m)) => assert!(m.contains("AccessDenied"), "{m}"),
        other => panic!("{other:?}"),
    }
    let host = boot(None, Arc::new(Recorder::default())).await;
    match ws(&host, "chat", join).await {
        Err(InvokeError::Guest(m)) => assert!(m.contains("NoSuchStore"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_on_moto_pages_counts_and_enforces_limits() {
    let moto = nimbus_tests::moto::shared();
    let table = moto.kv_table("kv").await;
    let client = nimbus_kv::dynamo::Client::new(&moto.sdk_config().await);
    let kv = nimbus_kv::dynamo::Dynamo::new(client, table);
    assert_eq!(kv.get("b", "missing").await.unwrap(), None);
    kv.set("b", "k", b"v".to_vec()).await.unwrap();
    assert_eq!(kv.get("b", "k").await.unwrap().as_deref(), Some(&b"v"[..]));
    kv.delete("b", "k").await.unwrap();
    assert_eq!(kv.get("b", "k").await.unwrap(), None);
    for i in 0..1005 {
        kv.set("many", &format!("{i:04}"), vec![]).await.unwrap();
    }
    let first = kv.list_keys("many", None).await.unwrap();
    assert_eq!((first.keys.len(), first.cursor), (1000, Some(1000)));
    let rest = kv.list_keys("many", first.cursor).await.unwrap();
    assert_eq!(rest.keys, ["1000", "1001", "1002", "1003", "1004"]);
    assert_eq!(rest.cursor, None);
    assert_eq!(kv.list_keys("empty", None).await.unwrap().keys.len(), 0);
    // Concurrent increments from many "environments" lose nothing.
    let kv = Arc::new(kv);
    let incs: Vec<_> = (0..8)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move { kv.increment("c", "n", 1).await.unwrap() })
        })
        .collect();
    for i in incs {
        i.await.unwrap();
    }
    assert_eq!(kv.get("c", "n").await.unwrap().as_deref(), Some(&b"8"[..]));
    assert!(kv.set("b", "big", vec![0; MAX_VALUE + 1]).await.is_err());
    // Keys up to 1 KiB, as on the embedded store.
    let long = "ключ".repeat(128);
    kv.set("long", &long, b"l".to_vec()).await.unwrap();
    assert_eq!(kv.get("long", &long).await.unwrap().as_deref(), Some(&b"l"[..]));
    assert_eq!(kv.list_keys("long", None).await.unwrap().keys, [long.as_str()]);
    assert!(kv.set("long", &format!("{long}k"), Vec::new()).await.is_err());
    // DynamoDB cannot store an empty sort key: refused as the guest's mistake, not sent to fail there.
    assert!(matches!(
        kv.set("b", "", Vec::new()).await,
        Err(nimbus_kv::KvError::Invalid(_))
    ));
    kv.set("b", "text", b"not a number".to_vec()).await.unwrap();
    assert!(kv.increment("b", "text", 1).await.is_err());
}

const KV_OPS: &str = r#"
manifest_version = 1

[function.kv-ops]
component = "{KV_OPS}"
keyvalue = ["kv"]
"#;

/// Runs `ops` through the `kv_ops` guest; one `{"ok": ..}` or `{"err": ..}` per op.
pub(crate) async fn kv_ops(host: &Host, ops: serde_json::Value) -> Vec<serde_json::Value> {
    let f = host.function("kv-ops").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let event = nimbus_core::Event {
        source: nimbus_core::EventSource::Direct,
        payload: serde_json::json!({ "ops": ops }).to_string().into_bytes(),
    };
    match host.invoke(f, inv, Payload::Event(event)).await {
        Ok(Outcome::Event(out)) => serde_json::from_slice(&out).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// Keys of 128 bytes and more (up to the documented 1 KiB) and keys with `/`, `..`, `%`, NUL or non-ASCII
/// characters round-trip through `wasi:keyvalue` on the embedded store, and `list-keys` returns them exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_keys_up_to_one_kib_of_any_characters_round_trip_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let host = kv_ops_host(dir.path()).await;
    let mut keys: Vec<String> = [128, 255, 1024].iter().map(|&n| "k".repeat(n)).collect();
    keys.extend(["a/b", "../..", "100%", "nul\0byte", "ключ 🔑"].map(String::from));
    keys.push("ü".repeat(512));
    let sets = keys
        .iter()
        .map(|k| serde_json::json!({"op": "set", "key": k, "value": format!("v:{k}")}));
    let gets = keys.iter().map(|k| serde_json::json!({"op": "get", "key": k}));
    let ops: Vec<_> = sets.chain(gets).chain([serde_json::json!({"op": "keys"})]).collect();
    let results = kv_ops(&host, ops.into()).await;
    let (set, rest) = results.split_at(keys.len());
    let (got, listed) = rest.split_at(keys.len());
    for (key, r) in keys.iter().zip(set) {
        assert_eq!(r, &serde_json::json!({"ok": null}), "set {key:?}");
    }
    for (key, r) in keys.iter().zip(got) {
        assert_eq!(r["ok"], format!("v:{key}"), "get {key:?}");
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(listed[0]["ok"], serde_json::json!(sorted));

    let over = "k".repeat(1025);
    let results = kv_ops(&host, serde_json::json!([{"op": "set", "key": over, "value": ""}])).await;
    let err = results[0]["err"].as_str().unwrap();
    assert!(err.contains("key of 1025 bytes exceeds the 1024-byte limit"), "{err}");

    // An empty key is the guest's mistake, said as such: before, the embedded store tried to use the bucket's
    // directory as the key's file and answered with a host failure.
    let ops = serde_json::json!([
        {"op": "set", "key": "", "value": "v"},
        {"op": "get", "key": ""},
        {"op": "delete", "key": ""},
    ]);
    for r in kv_ops(&host, ops).await {
        let err = r["err"].as_str().unwrap_or_else(|| panic!("{r}"));
        assert!(err.contains("a key cannot be empty"), "{err}");
    }
}

/// A store failure reaches the guest as an error that names no host path (the host's log has the detail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_store_errors_never_show_host_paths() {
    let dir = tempfile::tempdir().unwrap();
    let host = kv_ops_host(dir.path()).await;
    let long = "k".repeat(300);
    let ops = serde_json::json!([
        {"op": "set", "key": "short", "value": "v"},
        {"op": "set", "key": long, "value": "v"},
    ]);
    assert_eq!(kv_ops(&host, ops).await, vec![serde_json::json!({"ok": null}); 2]);
    // Every file of the bucket replaced by a directory: reads and writes fail on the host.
    let bucket = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() != "tmp")
        .unwrap();
    for file in std::fs::read_dir(&bucket).unwrap() {
        let file = file.unwrap().path();
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
    }
    let mut ops = Vec::new();
    for key in ["short", long.as_str()] {
        ops.push(serde_json::json!({"op": "get", "key": key}));
        ops.push(serde_json::json!({"op": "set", "key": key, "value": "w"}));
        ops.push(serde_json::json!({"op": "increment", "key": key, "delta": 1}));
    }
    let results = kv_ops(&host, ops.into()).await;
    let root = dir.path().to_str().unwrap();
    for r in &results {
        let err = r["err"].as_str().unwrap_or_else(|| panic!("expected an error: {r}"));
        assert!(
            !err.contains(root) && !err.contains('/'),
            "a host path reached the guest: {err}"
        );
        assert!(err.contains("failed on the host"), "{err}");
    }
}

/// A host serving the `kv_ops` program on an embedded store under `dir`.
pub(crate) async fn kv_ops_host(dir: &std::path::Path) -> Arc<Host> {
    let kv: Arc<dyn KvStore> = Arc::new(nimbus_kv::Embedded::open(dir).unwrap());
    let opts = BootOptions {
        keyvalue: Some(kv),
        ..BootOptions::default()
    };
    nimbus_tests::boot_with(KV_OPS, opts).await.0
}
