//! The listener's limits under the local gateway, with raw clients over 127.0.0.0/8 (each test plays its
//! clients from addresses of its own, so per-address bounds do not meet across tests): the header-read
//! timeout, the keep-alive idle limit, the global and per-address connection bounds and their early
//! refusals, WebSocket connections against all of them, and requests without `Host`.
//!
//! Limits are set short here so the tests are quick; `deploy/tests/cli.rs` runs `nimbus serve` with the
//! shipped ones. Every wait is bounded by [`PATIENCE`]; no assertion is tighter than a large fraction of
//! a second.

use futures_util::{SinkExt, StreamExt};
use nimbus_platforms::listener::ListenerLimits;
use nimbus_platforms::local::Gateway;
use nimbus_tests::{Logs, connect_from};
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const MANIFEST: &str = r#"
manifest_version = 1

[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]

[function.http-echo]
component = "{HTTP_ECHO}"
routes = ["ANY /echo"]

[function.ws]
component = "{WS_ECHO}"
[function.ws.websocket]
path = "/ws"
"#;

/// Long enough for anything on a slow, shared machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// The host every test here serves, with the connection registry its WebSocket function uses.
fn host() -> nimbus_tests::Serving {
    static HOST: OnceLock<nimbus_tests::Serving> = OnceLock::new();
    nimbus_tests::boot_serving_once(&HOST, MANIFEST)
}

/// A gateway on this test's runtime with `limits`.
async fn gateway(limits: ListenerLimits) -> (Gateway, Logs) {
    let (host, logs, connections) = host();
    let gw = nimbus_tests::gateway_with_limits(host, logs.clone(), Some(connections), limits).await;
    (gw, logs)
}

/// The loopback address `127.0.0.{n}`.
fn ip(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

async fn connect(from: IpAddr, addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(PATIENCE, connect_from(from, addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads until the server closes the connection; what it sent, and how long that took.
async fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + PATIENCE).into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection was still open after {PATIENCE:?}; it sent {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

/// Reads one response (with a `content-length` or chunked), leaving the connection open.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed mid-response: {:?}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let head = head.to_ascii_lowercase();
            let done = match head.lines().find_map(|l| l.strip_prefix("content-length:")) {
                Some(len) => body.len() >= len.trim().parse::<usize>().expect("a length"),
                None => head.contains("transfer-encoding: chunked") && body.ends_with("0\r\n\r\n"),
            };
            if done {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body.to_owned());
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("a response in time")
}

/// `GET /hello` over a new connection from `from`: its status, or the refusal's.
async fn hello_from(from: IpAddr, addr: SocketAddr) -> (u16, String) {
    let mut s = connect(from, addr).await;
    s.write_all(format!("GET /hello HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (text, _) = read_to_close(&mut s).await;
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Retries [`hello_from`] until it is answered 200 (a freed place is noticed when its socket closes).
async fn hello_eventually(from: IpAddr, addr: SocketAddr) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, text) = hello_from(from, addr).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "still refused after {PATIENCE:?}: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_not_sent_in_time_gets_its_connection_closed() {
    let limits = ListenerLimits {
        header_read_timeout: Duration::from_secs(1),
        keep_alive_idle: Duration::from_secs(30),
        ..ListenerLimits::default()
    };
    let (gw, _) = gateway(limits).await;
    let addr = gw.addr();
    // Nothing at all; half a request line; the start of the HTTP/2 preface (which the protocol sniffing
    // waits on); a whole request line and half the headers.
    let sends: [&[u8]; 4] = [b"", b"GET /hel", b"PRI * HTTP/2", b"GET /hello HTTP/1.1\r\nhost: x\r\n"];
    let mut clients = Vec::new();
    for (i, send) in sends.iter().enumerate() {
        let mut s = connect(ip(10), addr).await;
        s.write_all(send).await.unwrap();
        clients.push(tokio::spawn(async move {
            let (sent, took) = read_to_close(&mut s).await;
            (i, sent, took)
        }));
    }
    for c in clients {
        let (i, sent, took) = c.await.unwrap();
        assert_eq!(sent, "", "client {i}: dropped without an answer");
        assert!(
            took >= Duration::from_millis(800),
            "client {i} closed after {took:?}, before the timeout"
        );
    }
    // The same on a kept-alive connection: the next head's clock starts at its first byte.
    let mut s = connect(ip(10), addr).await;
    s.write_all(format!("GET /hello HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    s.write_all(b"GET /hello HTTP/1.1\r\nhost:").await.unwrap();
    let (sent, took) = read_to_close(&mut s).await;
    assert_eq!(sent, "");
    assert!(
        took < Duration::from_secs(15),
        "held by the idle limit instead: {took:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_limit_and_not_at_the_header_timeout() {
    let limits = ListenerLimits {
        header_read_timeout: Duration::from_millis(500),
        keep_alive_idle: Duration::from_secs(3),
        ..ListenerLimits::default()
    };
    let (gw, _) = gateway(limits).await;
    let addr = gw.addr();
    let mut s = connect(ip(11), addr).await;
    let request = format!("GET /hello HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    // Idle for longer than the header timeout, well within the idle limit: still served.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    let (sent, took) = read_to_close(&mut s).await;
    assert_eq!(sent, "", "closed without a word");
    assert!(took >= Duration::from_millis(2500), "closed after {took:?} idle");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_bound_are_refused_at_once_with_429_and_it_recovers() {
    let limits = ListenerLimits {
        max_connections_per_ip: Some(3),
        ..ListenerLimits::default()
    };
    let (gw, _) = gateway(limits).await;
    let addr = gw.addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(ip(12), addr).await);
    }
    // The fourth is answered before it sends anything, and closed.
    let mut fourth = connect(ip(12), addr).await;
    let (refusal, _) = read_to_close(&mut fourth).await;
    assert!(refusal.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{refusal}");
    assert!(refusal.contains("\r\nretry-after: 1\r\n"), "{refusal}");
    let body: serde_json::Value = serde_json::from_str(refusal.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"], "TooManyConnections");
    assert!(
        body["message"].as_str().unwrap().contains("max_connections_per_ip = 3"),
        "{body}"
    );
    // A client that sends its request first reads the same answer.
    let (status, _) = hello_from(ip(12), addr).await;
    assert_eq!(status, 429);
    // Another address is not affected.
    assert_eq!(hello_from(ip(13), addr).await.0, 200);
    // One leaves: its place is free again.
    held.pop();
    hello_eventually(ip(12), addr).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_global_bound_are_refused_at_once_with_503_and_it_recovers() {
    let limits = ListenerLimits {
        max_connections: 4,
        max_connections_per_ip: None,
        ..ListenerLimits::default()
    };
    let (gw, _) = gateway(limits).await;
    let addr = gw.addr();
    let mut held = Vec::new();
    for n in 0..4 {
        held.push(connect(ip(20 + n), addr).await);
    }
    let (status, refusal) = hello_from(ip(24), addr).await;
    assert_eq!(status, 503, "{refusal}");
    assert!(refusal.contains("\r\nretry-after: 1\r\n"), "{refusal}");
    assert!(refusal.contains("max_connections = 4"), "{refusal}");
    held.clear();
    hello_eventually(ip(24), addr).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_outlive_the_http_time_limits_and_count_only_in_the_global_bound() {
    let limits = ListenerLimits {
        header_read_timeout: Duration::from_millis(300),
        keep_alive_idle: Duration::from_millis(600),
        max_connections: 2,
        max_connections_per_ip: Some(1),
    };
    let (gw, _) = gateway(limits).await;
    let addr = gw.addr();
    let mut clients = Vec::new();
    for n in [30, 31] {
        let socket = connect(ip(n), addr).await;
        let (client, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), socket)
            .await
            .expect("upgrade");
        assert_eq!(resp.status(), 101);
        clients.push(client);
    }
    // Past both HTTP time limits, the WebSocket connection is still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for c in &mut clients {
        c.send(Message::text("still here")).await.unwrap();
        let reply = tokio::time::timeout(PATIENCE, c.next()).await.expect("a reply in time");
        assert_eq!(reply.unwrap().unwrap(), Message::text("$default|still here"));
    }
    // Both sockets are open, so the global bound is reached...
    assert_eq!(hello_from(ip(32), addr).await.0, 503);
    // ... while the per-address bound was released at the upgrade: 127.0.0.30 may open an HTTP
    // connection once a global place is free.
    clients.pop();
    hello_eventually(ip(30), addr).await;
    gw.shutdown().await;
}

/// Sends `request` as is and reads the whole `connection: close` answer: status, headers, JSON body.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String, serde_json::Value) {
    let mut s = connect(ip(40), addr).await;
    s.write_all(request.as_bytes()).await.unwrap();
    let (text, _) = read_to_close(&mut s).await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, head.to_owned(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_without_host_is_served_as_addressed_to_the_listener() {
    let (gw, _) = gateway(ListenerLimits::default()).await;
    let (status, head, v) = raw(gw.addr(), "GET /echo?q=1 HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200, "{head}\n{v}");
    assert_eq!(v["authority"], gw.addr().to_string());
    assert_eq!(v["path"], "/echo");
    assert_eq!(v["query"], "q=1");
    assert_eq!(v["headers"], serde_json::json!([]), "no Host header is made up");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http11_request_without_host_is_a_400_saying_so() {
    let (gw, logs) = gateway(ListenerLimits::default()).await;
    let (status, head, v) = raw(gw.addr(), "GET /echo HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert_eq!(status, 400, "{head}\n{v}");
    assert_eq!(v["error"], "BadRequest");
    assert!(
        v["message"].as_str().unwrap().contains("must have a Host header"),
        "{v}"
    );
    // Two Host headers are refused the same way.
    let (status, _, v) = raw(
        gw.addr(),
        "GET /echo HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert!(v["message"].as_str().unwrap().contains("more than one Host"), "{v}");
    // And logged as any answer is.
    let lines = logs.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""path":"/echo""#) && l.contains(r#""status":400"#)),
        "{lines:?}"
    );
    gw.shutdown().await;
}
