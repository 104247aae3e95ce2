//! Test support: the guest components, a test gateway and a small HTTP client.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::logs::LogSink;
use nimbus_core::{BootOptions, Host, Manifest};
use nimbus_platforms::listener::ListenerLimits;
use nimbus_platforms::local::{Connections, Gateway, GatewayOptions};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Paths of the built guest components.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// Parses manifest text; `{NAME}` placeholders become component paths.
pub fn manifest(text: &str) -> Manifest {
    let mut t = text.to_string();
    for (stem, path) in components::ALL {
        t = t.replace(&format!("{{{}}}", stem.to_uppercase()), path);
    }
    Manifest::parse(&t, Path::new("test.toml"), Path::new(".")).unwrap_or_else(|e| panic!("test manifest: {e}"))
}

/// Captured log lines.
pub type Logs = Arc<Mutex<Vec<String>>>;

/// The captured JSON log records whose `msg` is `msg`, in order.
pub fn records(logs: &Logs, msg: &str) -> Vec<serde_json::Value> {
    logs.lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == msg)
        .collect()
}

/// Boots a host whose guest logs are captured.
pub async fn boot(text: &str) -> (Arc<Host>, Logs) {
    boot_with(text, BootOptions::default()).await
}

/// Boots with options (the log sink is replaced by a capture).
pub async fn boot_with(text: &str, opts: BootOptions) -> (Arc<Host>, Logs) {
    boot_manifest(manifest(text), opts).await
}

/// Boots a parsed manifest (e.g. one given an SSM provider) with its guest logs captured.
pub async fn boot_manifest(m: Manifest, opts: BootOptions) -> (Arc<Host>, Logs) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let opts = BootOptions {
        log_sink: LogSink::Capture(logs.clone()),
        ..opts
    };
    let host = Host::boot(m, opts).await.unwrap_or_else(|e| panic!("boot: {e}"));
    (host, logs)
}

/// Starts a gateway on a free loopback port (access log captured too).
pub async fn gateway(host: Arc<Host>, logs: Logs) -> Gateway {
    gateway_with_limits(host, logs, None, ListenerLimits::default()).await
}

/// Starts a gateway (access log captured) with these connection limits, whose WebSocket clients are
/// `connections` when given.
pub async fn gateway_with_limits(
    host: Arc<Host>,
    logs: Logs,
    connections: Option<Arc<Connections>>,
    limits: ListenerLimits,
) -> Gateway {
    let opts = GatewayOptions {
        log_sink: LogSink::Capture(logs),
        connections,
        limits,
        ..GatewayOptions::default()
    };
    Gateway::start(host, "127.0.0.1:0".parse().unwrap(), opts)
        .await
        .expect("bind gateway")
}

/// Boots a host the way `nimbus serve` does for WebSockets: every function's `connections` reaches the
/// returned registry; serve it with [`ws_gateway`].
pub async fn boot_serving(text: &str) -> (Arc<Host>, Logs, Arc<Connections>) {
    boot_serving_with(text, BootOptions::default()).await
}

/// [`boot_serving`] with other boot options (a short `queue_timeout`, …).
pub async fn boot_serving_with(text: &str, opts: BootOptions) -> (Arc<Host>, Logs, Arc<Connections>) {
    let connections = Arc::new(Connections::new());
    let opts = BootOptions {
        connections: Some(connections.clone()),
        ..opts
    };
    let (host, logs) = boot_with(text, opts).await;
    (host, logs, connections)
}

/// A host booted as by [`boot_serving`].
pub type Serving = (Arc<Host>, Logs, Arc<Connections>);

/// [`boot_serving`] once per test file: the first caller boots `text` into `cell` (on a thread of its own,
/// since each `#[tokio::test]` has its own runtime), later callers share it.
pub fn boot_serving_once(cell: &'static std::sync::OnceLock<Serving>, text: &'static str) -> Serving {
    cell.get_or_init(|| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
            rt.block_on(boot_serving(text))
        })
        .join()
        .expect("boot thread")
    })
    .clone()
}

/// Starts a gateway (access log captured) whose WebSocket clients are `connections`.
pub async fn ws_gateway(host: Arc<Host>, logs: Logs, connections: Arc<Connections>) -> Gateway {
    gateway_with_limits(host, logs, Some(connections), ListenerLimits::default()).await
}

/// A response read fully.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body, if it arrived whole.
    pub body: Result<Bytes, String>,
}

impl Reply {
    /// The body as text (panics if the body failed).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.body.as_ref().expect("body")).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.body.as_ref().expect("body"))
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request over a new HTTP/1.1 connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .unwrap();
    let resp = sender.send_request(req).await.expect("send request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string());
    Reply { status, headers, body }
}

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8), so that tests can
/// play several clients against per-address bounds.
pub async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// Shorthand for a GET.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None, &[]).await
}
pub mod azure;
pub mod bench;
pub mod fake_network;
pub mod fault_proxy;
pub mod fc;
pub mod lambda_emulator;
pub mod moto;
pub mod native;
pub mod oci;
pub mod oos;
pub mod otlp_receiver;
pub mod otlp_sink;
pub mod process;
pub mod terraform;
pub mod upstream;

/// Collects a child process's output lines as they come (on a thread of their own), e.g. a `bootstrap`'s
/// stdout or stderr, so a test can wait for a line and read them all afterwards.
pub fn collect_lines(out: impl std::io::Read + Send + 'static) -> Logs {
    use std::io::BufRead as _;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// The SHA-256 of `bytes` in lowercase hex: how tests compare the files packages hold (and print them short on
/// failure).
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The values of header `name` in what HTTP_ECHO reports (`"headers": [[name, value], ...]`, names lowercase),
/// repeats in order.
pub fn header_values(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("not HTTP_ECHO's report: {echo}"))
        .iter()
        .filter(|h| h[0].as_str() == Some(name))
        .map(|h| h[1].as_str().unwrap_or_default().to_owned())
        .collect()
}
