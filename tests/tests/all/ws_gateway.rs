//! WebSocket functions under the local gateway (`nimbus serve`), with real clients over 127.0.0.1:
//! tokio-tungstenite, a raw TCP client, and Python's `websockets` as an independent implementation.
//!
//! One host serves every test; each function below exercises one set of quotas. Timeouts are generous
//! (the machine is slow and shared); no assertion is tighter than seconds.

use futures_util::{SinkExt, StreamExt};
use nimbus_platforms::local::Gateway;
use nimbus_tests::Logs;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const MANIFEST: &str = r#"
manifest_version = 1

# Route selection and origins, API Gateway's other defaults.
[function.chat]
component = "{WS_ECHO}"
[function.chat.websocket]
path = "/chat"
routes = ["join", "send"]
allowed_origins = ["http://localhost:8080"]

# A short heartbeat, idle timeout and lifetime.
[function.beat]
component = "{WS_ECHO}"
[function.beat.websocket]
path = "/beat"
heartbeat = "500ms"
idle_timeout = "3s"
max_lifetime = "6s"

# Small messages, a low rate.
[function.tiny]
component = "{WS_ECHO}"
[function.tiny.websocket]
path = "/tiny"
max_message = "4KiB"
messages_per_second = 5

# Two connections per address.
[function.few]
component = "{WS_ECHO}"
[function.few.websocket]
path = "/few"
max_connections_per_ip = 2

# A short outgoing queue.
[function.slow]
component = "{WS_ECHO}"
[function.slow.websocket]
path = "/slow"
send_queue = 2

# An event function that sends to clients (through the registry the host was booted with).
[function.notify]
component = "{WS_NOTIFY}"

# Subprotocols, preferred first.
[function.proto]
component = "{WS_ECHO}"
[function.proto.websocket]
path = "/proto"
subprotocols = ["chat.v2", "chat.v1"]

# A heartbeat short enough to notice a client that stopped reading; messages large enough to fill its
# socket buffers and a short queue behind them.
[function.stall]
component = "{WS_ECHO}"
[function.stall.websocket]
path = "/stall"
heartbeat = "300ms"
max_message = "8MiB"
max_frame = "8MiB"
send_queue = 4
"#;

/// Long enough for anything on a slow, shared machine.
const PATIENCE: Duration = Duration::from_secs(30);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The host every test here serves, with the connection registry its functions send through.
fn host() -> nimbus_tests::Serving {
    static HOST: OnceLock<nimbus_tests::Serving> = OnceLock::new();
    nimbus_tests::boot_serving_once(&HOST, MANIFEST)
}

/// A gateway on this test's runtime.
async fn gateway() -> (Gateway, Logs) {
    let (host, logs, connections) = host();
    (nimbus_tests::ws_gateway(host, logs.clone(), connections).await, logs)
}

/// Small buffers: some tests hold a thousand clients in this process.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(0)
}

async fn connect_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Client, WsError> {
    let mut req = format!("ws://{addr}{path}").into_client_request()?;
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let connecting = tokio_tungstenite::connect_async_with_config(req, Some(client_config()), true);
    match tokio::time::timeout(PATIENCE, connecting).await {
        Ok(r) => r.map(|(client, _)| client),
        Err(_) => panic!("connecting to {path} took over {PATIENCE:?}"),
    }
}

async fn connect(addr: SocketAddr, path: &str) -> Client {
    connect_with(addr, path, &[])
        .await
        .unwrap_or_else(|e| panic!("connect {path}: {e}"))
}

/// The next data message (control frames skipped).
async fn recv(client: &mut Client) -> Message {
    let next = async {
        loop {
            match client.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("connection ended while waiting for a message: {other:?}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, next).await.expect("a message in time")
}

async fn recv_text(client: &mut Client) -> String {
    match recv(client).await {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends `text` and returns the reply.
async fn ask(client: &mut Client, text: &str) -> String {
    client.send(Message::text(text)).await.expect("send");
    recv_text(client).await
}

/// Reads until the server's close frame, skipping data messages.
async fn recv_close(client: &mut Client) -> CloseFrame {
    let close = async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame,
                Some(Ok(Message::Close(None))) => panic!("a close frame without a code"),
                Some(Ok(_)) => continue,
                other => panic!("connection ended without a close frame: {other:?}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, close)
        .await
        .expect("a close frame in time")
}

/// Waits until a captured log line contains every one of `needles`.
async fn wait_for_log(logs: &Logs, needles: &[&str]) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(line) = logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return line.clone();
        }
        assert!(Instant::now() < deadline, "no log line with {needles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn refusal(e: WsError) -> (u16, String) {
    match e {
        WsError::Http(resp) => (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_echoes_with_route_selection_and_logs_the_close() {
    let (gw, logs) = gateway().await;
    let mut c = connect_with(gw.addr(), "/chat", &[("origin", "http://localhost:8080")])
        .await
        .expect("an allowed origin connects");
    assert_eq!(
        ask(&mut c, r#"{"action":"join","room":"a"}"#).await,
        r#"join|{"action":"join","room":"a"}"#
    );
    assert_eq!(
        ask(&mut c, r#"{"action":"leave"}"#).await,
        r#"$default|{"action":"leave"}"#
    );
    assert_eq!(ask(&mut c, "echo:hi").await, "$default|hi");
    c.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(recv(&mut c).await, Message::binary(vec![3u8, 2, 1]));
    let id = ask(&mut c, "whoami").await;
    assert_eq!(id.len(), 22, "{id}");
    // A failing on-message is logged; the connection stays open.
    c.send(Message::text("fail")).await.unwrap();
    assert_eq!(ask(&mut c, "echo:still here").await, "$default|still here");
    wait_for_log(
        &logs,
        &["websocket invocation failed", &id, "Function.Failed", "on-message"],
    )
    .await;

    c.close(Some(CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    // The server answers the close; the stream then ends.
    let rest = tokio::time::timeout(PATIENCE, async { while let Some(Ok(_)) = c.next().await {} }).await;
    assert!(rest.is_ok(), "the server completes the close handshake");
    wait_for_log(&logs, &[&format!("disconnect {id} code=Some(4000) reason=bye")]).await;
    let line = wait_for_log(&logs, &["websocket closed", &id]).await;
    assert!(line.contains(r#""messages_in":7"#), "{line}");
    assert!(line.contains(r#""close_code":4000"#), "{line}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_refuses_connects_the_function_or_the_origin_check_rejects() {
    let (gw, _logs) = gateway().await;
    let (status, body) = refusal(connect_with(gw.addr(), "/chat?deny=1", &[]).await.unwrap_err());
    assert_eq!((status, body.as_str()), (401, "denied by query"));
    let (status, body) = refusal(
        connect_with(gw.addr(), "/chat", &[("origin", "http://evil.example")])
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 403);
    assert!(body.contains("websocket.allowed_origins"), "{body}");
    // A plain request on a WebSocket path says what it takes.
    let plain = nimbus_tests::get(gw.addr(), "/chat").await;
    assert_eq!(plain.status, 426, "{}", plain.text());
    // Without an Origin (not a browser) the check does not apply.
    let mut c = connect(gw.addr(), "/chat").await;
    assert_eq!(ask(&mut c, "echo:ok").await, "$default|ok");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_broadcasts_to_every_client_and_closes_one_by_id() {
    let (gw, logs) = gateway().await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let mut c = connect(gw.addr(), "/chat").await;
        ids.push(ask(&mut c, "whoami").await);
        clients.push(c);
    }
    let all = ids.join(",");
    // The sender gets the broadcast (it is one of the ids) and the summary, in order.
    assert_eq!(ask(&mut clients[0], &format!("send:{all}:hi")).await, "hi");
    assert_eq!(recv_text(&mut clients[0]).await, "ok=5 gone=0 other=");
    for c in &mut clients[1..] {
        assert_eq!(recv_text(c).await, "hi");
    }

    assert_eq!(ask(&mut clients[0], &format!("close:{}", ids[2])).await, "close=ok");
    let frame = recv_close(&mut clients[2]).await;
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1000, "closed by the function")
    );
    wait_for_log(
        &logs,
        &[&format!(
            "disconnect {} code=Some(1000) reason=closed by the function",
            ids[2]
        )],
    )
    .await;
    // The closed id is gone for every later send.
    assert_eq!(
        ask(&mut clients[0], &format!("send:{},{}:again", ids[2], ids[1])).await,
        "ok=1 gone=1 other="
    );
    assert_eq!(recv_text(&mut clients[1]).await, "again");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_reports_dropped_and_silent_clients() {
    let (gw, logs) = gateway().await;
    // A client whose TCP connection closes without a close frame.
    let mut c = connect(gw.addr(), "/chat").await;
    let id = ask(&mut c, "whoami").await;
    drop(c);
    wait_for_log(&logs, &[&format!("disconnect {id} code=None reason=connection lost")]).await;

    // A client that upgrades, then never reads nor answers a ping (a half-open connection): dropped once a
    // heartbeat (500 ms) goes unanswered, well before its idle timeout (3 s).
    let started = Instant::now();
    let mut raw = TcpStream::connect(gw.addr()).await.unwrap();
    let upgrade = format!(
        "GET /beat HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gw.addr()
    );
    raw.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    raw.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let line = wait_for_log(
        &logs,
        &["websocket closed", r#""function":"beat""#, "heartbeat timeout"],
    )
    .await;
    assert!(line.contains(r#""close_code":null"#), "{line}");
    assert!(line.contains(r#""quota":"heartbeat = 500ms""#), "{line}");
    wait_for_log(&logs, &["code=None reason=heartbeat timeout"]).await;
    println!("silent client dropped after {:?} (heartbeat 500ms)", started.elapsed());
    drop(raw);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_closes_idle_and_old_connections_with_1001() {
    let (gw, _logs) = gateway().await;
    let mut idle = connect(gw.addr(), "/beat").await;
    let frame = recv_close(&mut idle).await;
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "idle timeout (idle_timeout = 3s)");

    // Busy, but past its lifetime.
    let mut busy = connect(gw.addr(), "/beat").await;
    let started = Instant::now();
    let frame = loop {
        assert!(started.elapsed() < PATIENCE, "no close within {PATIENCE:?}");
        if busy.send(Message::text("noreply")).await.is_err() {
            break recv_close(&mut busy).await;
        }
        match tokio::time::timeout(Duration::from_millis(300), busy.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => break f,
            Ok(None | Some(Err(_))) => panic!("closed without a close frame"),
            _ => {}
        }
    };
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "max lifetime (max_lifetime = 6s)");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_closes_oversize_and_flooding_clients() {
    let (gw, logs) = gateway().await;
    let mut c = connect(gw.addr(), "/tiny").await;
    assert_eq!(ask(&mut c, &"x".repeat(4000)).await.len(), "$default|".len() + 4000);
    let id = ask(&mut c, "whoami").await;
    c.send(Message::text("x".repeat(5000))).await.unwrap();
    let frame = recv_close(&mut c).await;
    assert_eq!(u16::from(frame.code), 1009);
    assert_eq!(frame.reason.as_str(), "message too big (max_message = 4KiB)");
    wait_for_log(
        &logs,
        &[&format!("disconnect {id} code=Some(1009) reason=message too big")],
    )
    .await;

    // Five messages a second, with a burst of five: a hundred at once are too many.
    let mut flood = connect(gw.addr(), "/tiny").await;
    for _ in 0..100 {
        if flood.feed(Message::text("noreply")).await.is_err() {
            break;
        }
    }
    let _ = flood.flush().await;
    let frame = recv_close(&mut flood).await;
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "rate limit (messages_per_second = 5)");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_closes_invalid_utf8_with_1007_and_protocol_violations_with_1002() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let (gw, logs) = gateway().await;
    let mut c = connect(gw.addr(), "/chat").await;
    let id = ask(&mut c, "whoami").await;
    // A text frame whose payload is not UTF-8 (tungstenite sends a raw frame as it is, masked).
    let bad_text = Frame::message(vec![b'h', b'i', 0xff, 0xfe], OpCode::Data(Data::Text), true);
    c.send(Message::Frame(bad_text)).await.unwrap();
    let frame = recv_close(&mut c).await;
    assert_eq!(u16::from(frame.code), 1007);
    assert_eq!(frame.reason.as_str(), "invalid UTF-8");
    wait_for_log(
        &logs,
        &[&format!("disconnect {id} code=Some(1007) reason=invalid UTF-8")],
    )
    .await;

    // A data frame with a reserved opcode.
    let mut c = connect(gw.addr(), "/chat").await;
    let id = ask(&mut c, "whoami").await;
    let reserved = Frame::message(b"?".to_vec(), OpCode::Data(Data::Reserved(3)), true);
    c.send(Message::Frame(reserved)).await.unwrap();
    let frame = recv_close(&mut c).await;
    assert_eq!(u16::from(frame.code), 1002);
    wait_for_log(
        &logs,
        &[&format!("disconnect {id} code=Some(1002) reason=protocol error")],
    )
    .await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_negotiates_the_declared_subprotocols() {
    let (gw, _logs) = gateway().await;
    // The handshake's answer, read raw: its head only.
    let upgrade = |path: &str, offer: Option<&str>| {
        let addr = gw.addr();
        let path = path.to_owned();
        let offer = offer.map(str::to_owned);
        async move {
            let mut raw = TcpStream::connect(addr).await.unwrap();
            let offer = offer
                .map(|o| format!("Sec-WebSocket-Protocol: {o}\r\n"))
                .unwrap_or_default();
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n"
            );
            raw.write_all(request.as_bytes()).await.unwrap();
            // The response head (a refusal's body follows it; only the head is read).
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                let n = tokio::time::timeout(PATIENCE, raw.read(&mut byte))
                    .await
                    .expect("an answer")
                    .unwrap();
                assert_eq!(
                    n,
                    1,
                    "connection closed in the head: {}",
                    String::from_utf8_lossy(&head)
                );
                head.push(byte[0]);
            }
            String::from_utf8(head).unwrap().to_ascii_lowercase()
        }
    };
    // The server's preference wins over the client's order.
    let head = upgrade("/proto", Some("chat.v1, chat.v2")).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("sec-websocket-protocol: chat.v2\r\n"), "{head}");
    let head = upgrade("/proto", Some("mqtt, chat.v1")).await;
    assert!(head.contains("sec-websocket-protocol: chat.v1\r\n"), "{head}");
    // No offer: connected without one.
    let head = upgrade("/proto", None).await;
    assert!(
        head.starts_with("http/1.1 101") && !head.contains("sec-websocket-protocol"),
        "{head}"
    );
    // Only others offered: refused, before the function is asked.
    let head = upgrade("/proto", Some("mqtt")).await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    // A function declaring none answers none.
    let head = upgrade("/chat", Some("mqtt")).await;
    assert!(
        head.starts_with("http/1.1 101") && !head.contains("sec-websocket-protocol"),
        "{head}"
    );

    // A real client offering two gets the chosen one (tungstenite checks the answer is one it offered).
    let c = connect_with(gw.addr(), "/proto", &[("sec-websocket-protocol", "chat.v1")])
        .await
        .expect("a client offering a declared subprotocol connects");
    drop(c);
    let refused = connect_with(gw.addr(), "/proto", &[("sec-websocket-protocol", "mqtt")])
        .await
        .expect_err("a client offering only others is refused");
    let (status, body) = refusal(refused);
    assert_eq!(status, 400);
    assert!(body.contains("websocket.subprotocols"), "{body}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_drops_a_client_that_stops_reading() {
    let (gw, logs) = gateway().await;
    let mut c = connect(gw.addr(), "/stall").await;
    let id = ask(&mut c, "whoami").await;
    // Ask for eight messages of 4 MiB to itself, then read nothing more. The queue takes four and the
    // writer one, 20 MiB: more than the loopback socket buffers hold for a client that does not read (Linux
    // sends at most 4 MiB by default, and grows a receive buffer only as the application reads). The writer
    // waits on the full socket, the client answers no ping, and it is dropped as not reading.
    let ids = [id.as_str(); 8].join(",");
    let body = "x".repeat(4 << 20);
    c.send(Message::text(format!("send:{ids}:{body}"))).await.unwrap();
    let line = wait_for_log(&logs, &["websocket closed", &id]).await;
    assert!(line.contains(r#""reason":"client not reading""#), "{line}");
    assert!(line.contains(r#""quota":"heartbeat = 300ms""#), "{line}");
    assert!(line.contains(r#""close_code":null"#), "{line}");
    wait_for_log(
        &logs,
        &[&format!("disconnect {id} code=None reason=client not reading")],
    )
    .await;
    drop(c);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_closes_with_1013_when_every_instance_is_busy() {
    // One instance, and a short wait for it: a message arriving while it spins finds none.
    let manifest = r#"
manifest_version = 1
[function.busy]
component = "{WS_ECHO}"
concurrency = 1
timeout = "3s"
[function.busy.websocket]
path = "/busy"
"#;
    let opts = nimbus_core::BootOptions {
        queue_timeout: Some(Duration::from_millis(200)),
        ..nimbus_core::BootOptions::default()
    };
    let (host, logs, connections) = nimbus_tests::boot_serving_with(manifest, opts).await;
    let gw = nimbus_tests::ws_gateway(host, logs.clone(), connections).await;
    let mut spinner = connect(gw.addr(), "/busy").await;
    let mut other = connect(gw.addr(), "/busy").await;
    let id = ask(&mut other, "whoami").await;
    spinner.send(Message::text("spin")).await.unwrap();
    // Until the spin holds the instance, a message may still get it: ask until the close comes.
    let started = Instant::now();
    let frame = loop {
        assert!(started.elapsed() < PATIENCE, "no 1013 within {PATIENCE:?}");
        if other.send(Message::text("echo:x")).await.is_err() {
            break recv_close(&mut other).await;
        }
        match tokio::time::timeout(PATIENCE, other.next()).await.expect("an answer") {
            Some(Ok(Message::Close(Some(f)))) => break f,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.code), 1013);
    assert_eq!(frame.reason.as_str(), "try again later (concurrency = 1)");
    let line = wait_for_log(&logs, &["websocket closed", &id]).await;
    assert!(
        line.contains(r#""close_code":1013"#) && line.contains(r#""quota":"concurrency = 1""#),
        "{line}"
    );
    drop(spinner);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_limits_connections_per_address() {
    let (gw, _logs) = gateway().await;
    let a = connect(gw.addr(), "/few").await;
    let _b = connect(gw.addr(), "/few").await;
    let (status, body) = refusal(connect_with(gw.addr(), "/few", &[]).await.unwrap_err());
    assert_eq!(status, 429);
    assert!(body.contains("websocket.max_connections_per_ip = 2"), "{body}");
    // Another path has its own count.
    let _other = connect(gw.addr(), "/chat").await;
    // Once one closes, its slot is free again.
    drop(a);
    let deadline = Instant::now() + PATIENCE;
    loop {
        match connect_with(gw.addr(), "/few", &[]).await {
            Ok(_) => break,
            Err(e) => assert_eq!(refusal(e).0, 429),
        }
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_shutdown_closes_connections_with_1001() {
    let (gw, logs) = gateway().await;
    let mut c = connect(gw.addr(), "/chat").await;
    let id = ask(&mut c, "whoami").await;
    let stopping = tokio::spawn(gw.shutdown());
    let frame = recv_close(&mut c).await;
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1001, "server shutting down")
    );
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("shutdown in time")
        .unwrap();
    // Shutdown returns once on-disconnect has run.
    let logged = logs.lock().unwrap().join("\n");
    assert!(
        logged.contains(&format!("disconnect {id} code=Some(1001) reason=server shutting down")),
        "{logged}"
    );
}

/// Invokes the `notify` event function through the gateway's Lambda Invoke API.
async fn notify(addr: SocketAddr, event: serde_json::Value) -> serde_json::Value {
    let body = event.to_string();
    let reply = nimbus_tests::request(
        addr,
        "POST",
        "/2015-03-31/functions/notify/invocations",
        Some(body.as_bytes()),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_lets_any_function_send_with_gone_too_large_and_throttled() {
    let (gw, logs) = gateway().await;
    let mut reader = connect(gw.addr(), "/chat").await;
    let reader_id = ask(&mut reader, "whoami").await;
    let out = notify(
        gw.addr(),
        serde_json::json!({ "to": [reader_id, "no-such-client"], "text": "from an event" }),
    )
    .await;
    assert_eq!(
        out,
        serde_json::json!({ "ok": 1, "gone": 1, "throttled": 0, "other": [] })
    );
    assert_eq!(recv_text(&mut reader).await, "from an event");
    let out = notify(gw.addr(), serde_json::json!({ "to": [reader_id], "size": 200_000 })).await;
    assert_eq!(out["other"][0], "ConnectionError::TooLarge(131072)", "{out}");
    let out = notify(gw.addr(), serde_json::json!({ "close": reader_id })).await;
    assert_eq!(out["closed"]["Ok"], serde_json::Value::Null, "{out}");
    assert_eq!(u16::from(recv_close(&mut reader).await.code), 1000);
    wait_for_log(&logs, &[&format!("disconnect {reader_id} code=Some(1000)")]).await;

    // A burst faster than the client takes it (it does not even read): once its two-message queue is full,
    // sends are refused at once with `throttled`, never blocking the function.
    let mut slow = connect(gw.addr(), "/slow").await;
    let slow_id = ask(&mut slow, "whoami").await;
    let out = notify(
        gw.addr(),
        serde_json::json!({ "to": [slow_id], "size": 100_000, "repeat": 300 }),
    )
    .await;
    let throttled = out["throttled"].as_u64().unwrap();
    assert!(throttled > 0, "{out}");
    assert_eq!(out["ok"].as_u64().unwrap() + throttled, 300, "{out}");
    drop(slow);
    gw.shutdown().await;
}

/// The process's resident memory, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files (each client here is two sockets in this process).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_serves_a_thousand_clients_and_broadcasts_to_all() {
    const CLIENTS: usize = 1000;
    let limit = open_files_limit();
    println!("ulimit -n: {limit}");
    assert!(
        limit >= 2 * CLIENTS as u64 + 200,
        "this test needs {} open files (client and server side of {CLIENTS} sockets); ulimit -n is {limit}",
        2 * CLIENTS + 200
    );
    // A host of its own: its registry then counts only this test's clients.
    let manifest = r#"
manifest_version = 1
[function.many]
component = "{WS_ECHO}"
[function.many.websocket]
path = "/many"
max_connections_per_ip = 2000
"#;
    let (host, logs, connections) = nimbus_tests::boot_serving(manifest).await;
    let gw = nimbus_tests::ws_gateway(host, logs, connections).await;
    let addr = gw.addr();
    let rss_before = rss_kib();
    let started = Instant::now();

    // Connect and learn the ids fifty at a time.
    let mut clients: Vec<(Client, String)> = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS / 50 {
        let batch = (0..50).map(|_| async move {
            let mut c = connect(addr, "/many").await;
            let id = ask(&mut c, "whoami").await;
            (c, id)
        });
        clients.extend(futures_util::future::join_all(batch).await);
    }
    assert_eq!(gw.connections().len(), CLIENTS);
    let connected = started.elapsed();

    let all: Vec<&str> = clients.iter().map(|(_, id)| id.as_str()).collect();
    let broadcast = format!("send:{}:hi", all.join(","));
    let sent_at = Instant::now();
    let (first, _) = &mut clients[0];
    assert_eq!(ask(first, &broadcast).await, "hi");
    assert_eq!(recv_text(first).await, format!("ok={CLIENTS} gone=0 other="));
    let received = futures_util::future::join_all(clients[1..].iter_mut().map(|(c, _)| recv_text(c))).await;
    assert!(received.iter().all(|m| m == "hi"));
    let delivered = sent_at.elapsed();
    let rss_after = rss_kib();
    println!(
        "{CLIENTS} clients connected in {connected:?}; broadcast delivered to all in {delivered:?}; \
         RSS {} MiB -> {} MiB",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 1 << 20,
        "RSS grew by {} MiB for {CLIENTS} clients",
        (rss_after - rss_before) / 1024
    );
    drop(clients);
    gw.shutdown().await;
}

/// A Python with `websockets`: the venv `scripts/setup` makes, else `python3` on PATH.
fn python_with_websockets() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/moto-venv/bin/python");
    let candidates = [venv, "python3".into()];
    candidates
        .into_iter()
        .find(|py| {
            std::process::Command::new(py)
                .args(["-c", "import websockets.sync.client"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "no Python with the `websockets` package (looked in target/moto-venv and on PATH): run scripts/setup"
            )
        })
}

/// An independent client implementation: Python's `websockets`, synchronous API.
const PY_CLIENT: &str = r#"
import sys
from websockets.sync.client import connect
with connect(sys.argv[1]) as ws:
    ws.send('{"action":"send","text":"py"}')
    print(ws.recv())
    ws.send(bytes([1, 2, 3, 4]))
    print(list(ws.recv()))
    ws.send("whoami")
    print("id=" + ws.recv())
    ws.close(1000, "python done")
print("closed", ws.close_code)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_gateway_talks_to_python_websockets() {
    let python = python_with_websockets();
    let (gw, logs) = gateway().await;
    let url = format!("ws://{}/chat", gw.addr());
    let run = tokio::process::Command::new(&python)
        .args(["-c", PY_CLIENT, &url])
        .output();
    let out = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the Python client finished in time")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], r#"send|{"action":"send","text":"py"}"#);
    assert_eq!(lines[1], "[4, 3, 2, 1]");
    let id = lines[2].strip_prefix("id=").expect("an id line");
    assert_eq!(lines[3], "closed 1000");
    wait_for_log(&logs, &[&format!("disconnect {id} code=Some(1000) reason=python done")]).await;
    gw.shutdown().await;
}
