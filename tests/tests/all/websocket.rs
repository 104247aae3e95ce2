//! WebSocket functions through `Host::invoke`: the `websocket` export's lifecycle (connect, message,
//! disconnect) and the `connections` import with the per-invocation and the boot's default sender.

use nimbus_core::websocket::{
    BoxFuture, ConnectRequest, ConnectionError, ConnectionSender, Disconnect, IncomingMessage, Message, Sender,
    WsEvent, WsOutcome,
};
use nimbus_core::{BootOptions, Host, InvokeError, Outcome, Payload, TraceContext};
use nimbus_tests::Logs;
use std::sync::{Arc, Mutex, OnceLock};

const MANIFEST: &str = r#"
manifest_version = 1

[function.ws]
component = "{WS_ECHO}"
timeout = "500ms"
max_request_body = "4KiB"
"#;

/// Records what the guest sends; ids starting with `gone` are gone.
#[derive(Default)]
pub struct Recorder {
    /// `(connection id, message)` of every send.
    pub sent: Mutex<Vec<(String, Message)>>,
    /// Ids closed.
    pub closed: Mutex<Vec<String>>,
}

impl ConnectionSender for Recorder {
    fn send<'a>(&'a self, id: &'a str, message: Message) -> BoxFuture<'a, Result<(), ConnectionError>> {
        Box::pin(async move {
            if id.starts_with("gone") {
                return Err(ConnectionError::Gone);
            }
            self.sent.lock().unwrap().push((id.to_owned(), message));
            Ok(())
        })
    }

    fn close<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ConnectionError>> {
        Box::pin(async move {
            self.closed.lock().unwrap().push(id.to_owned());
            Ok(())
        })
    }
}

/// A host without a default sender.
fn host() -> (Arc<Host>, Logs) {
    static HOST: OnceLock<(Arc<Host>, Logs)> = OnceLock::new();
    HOST.get_or_init(|| boot(BootOptions::default())).clone()
}

fn boot(opts: BootOptions) -> (Arc<Host>, Logs) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(nimbus_tests::boot_with(MANIFEST, opts))
    })
    .join()
    .unwrap()
}

async fn invoke_on(host: &Host, event: WsEvent, sender: Option<Sender>) -> Result<WsOutcome, InvokeError> {
    let f = host.function("ws").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    match host.invoke(f, inv, Payload::WebSocket(event, sender)).await? {
        Outcome::WebSocket(w) => Ok(w),
        other => panic!("{other:?}"),
    }
}

async fn invoke(event: WsEvent, sender: Option<Sender>) -> Result<WsOutcome, InvokeError> {
    invoke_on(&host().0, event, sender).await
}

fn connect(query: &[(&str, &str)], headers: &[(&str, &str)]) -> WsEvent {
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    WsEvent::Connect(ConnectRequest {
        connection_id: "c1".into(),
        path: "/chat".into(),
        headers: pairs(headers),
        query: pairs(query),
        source_ip: Some("127.0.0.1".into()),
    })
}

pub(crate) fn text(route: &str, t: &str) -> WsEvent {
    WsEvent::Message(IncomingMessage {
        connection_id: "c1".into(),
        route_key: route.into(),
        message: Message::Text(t.into()),
    })
}

pub(crate) fn reply_text(outcome: WsOutcome) -> String {
    match outcome {
        WsOutcome::Handled(Some(Message::Text(t))) => t,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connect_is_accepted_or_rejected_with_a_4xx() {
    assert!(matches!(
        invoke(connect(&[], &[]), None).await.unwrap(),
        WsOutcome::Accepted
    ));
    match invoke(connect(&[("deny", "1")], &[]), None).await.unwrap() {
        WsOutcome::Rejected(r) => assert_eq!((r.status, r.reason.as_str()), (401, "denied by query")),
        other => panic!("{other:?}"),
    }
    // A rejection that is not a 4xx becomes 403, as API Gateway answers a refused connect.
    match invoke(connect(&[], &[("x-reject-status", "500")]), None).await.unwrap() {
        WsOutcome::Rejected(r) => assert_eq!(r.status, 403),
        other => panic!("{other:?}"),
    }
    let logs = host().1.lock().unwrap().join("\n");
    assert!(
        logs.contains("connect c1 path=/chat ip=Some(\\\"127.0.0.1\\\")"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_reply_fail_and_time_out() {
    assert_eq!(
        reply_text(invoke(text("sendmessage", "echo:hi"), None).await.unwrap()),
        "sendmessage|hi"
    );
    let binary = WsEvent::Message(IncomingMessage {
        connection_id: "c1".into(),
        route_key: "$default".into(),
        message: Message::Binary(vec![1, 2, 3]),
    });
    match invoke(binary, None).await.unwrap() {
        WsOutcome::Handled(Some(Message::Binary(b))) => assert_eq!(b, [3, 2, 1]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        invoke(text("$default", "noreply"), None).await.unwrap(),
        WsOutcome::Handled(None)
    ));
    assert!(matches!(
        invoke(text("$default", "fail"), None).await,
        Err(InvokeError::Guest(_))
    ));
    assert!(matches!(
        invoke(text("$default", "spin"), None).await,
        Err(InvokeError::Deadline(_))
    ));
    let big = "x".repeat(5000);
    assert!(matches!(
        invoke(text("$default", &big), None).await,
        Err(InvokeError::TooLarge {
            quota: "max_request_body",
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sends_go_through_the_invocations_sender() {
    let recorder = Arc::new(Recorder::default());
    let sender: Sender = recorder.clone();
    let out = invoke(text("$default", "send:a,b,gone-1:hello"), Some(sender.clone()))
        .await
        .unwrap();
    assert_eq!(reply_text(out), "ok=2 gone=1 other=");
    let sent = recorder.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert!(
        matches!(&sent[0], (id, Message::Text(t)) if id == "a" && t == "hello"),
        "{sent:?}"
    );
    assert_eq!(
        reply_text(invoke(text("$default", "close:b"), Some(sender)).await.unwrap()),
        "close=ok"
    );
    assert_eq!(recorder.closed.lock().unwrap().as_slice(), ["b"]);

    // No sender at all: a typed failure the guest can report, not a trap.
    let out = reply_text(invoke(text("$default", "send:a:hello"), None).await.unwrap());
    assert!(out.starts_with("ok=0 gone=0 other="), "{out}");
    assert!(out.contains("no WebSocket API"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_boot_default_sender_serves_invocations_without_their_own() {
    let recorder = Arc::new(Recorder::default());
    let (host, _) = boot(BootOptions {
        connections: Some(recorder.clone()),
        ..BootOptions::default()
    });
    let out = invoke_on(&host, text("$default", "send:z:ping"), None).await.unwrap();
    assert_eq!(reply_text(out), "ok=1 gone=0 other=");
    assert_eq!(recorder.sent.lock().unwrap()[0].0, "z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_disconnect_reaches_the_guest() {
    let event = WsEvent::Disconnect(Disconnect {
        connection_id: "c9".into(),
        status_code: Some(1001),
        reason: "going away".into(),
    });
    assert!(matches!(invoke(event, None).await.unwrap(), WsOutcome::Disconnected));
    let logs = host().1.lock().unwrap().join("\n");
    assert!(
        logs.contains("disconnect c9 code=Some(1001) reason=going away"),
        "{logs}"
    );
}

#[tokio::test]
async fn websocket_settings_on_another_kind_fail_boot_and_websocket_functions_get_defaults() {
    let m = nimbus_tests::manifest(
        "manifest_version = 1\n[function.hello]\ncomponent = \"{HELLO}\"\nroutes = [\"GET /h\"]\n\
         websocket = { path = \"/ws\" }\n",
    );
    let err = match Host::boot(m, Default::default()).await {
        Ok(_) => panic!("a websocket section on an HTTP function must fail boot"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("`websocket` settings are for WebSocket functions") && err.contains("this is an HTTP function"),
        "{err}"
    );
    // Without a section, a WebSocket function gets API Gateway's quotas (and no local path).
    let ws = host().0;
    let spec = ws.function("ws").unwrap().websocket.as_ref().unwrap();
    assert_eq!(*spec, nimbus_core::manifest::WebSocketSpec::default());
}
