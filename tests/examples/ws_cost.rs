//! What a WebSocket message costs through `nimbus serve`: the local gateway and the `ws_echo` guest (a fresh
//! instance per message, and warm instances with `reuse = true`) against a minimal native tokio-tungstenite
//! echo server in the same process, side by side over 127.0.0.1:
//! - round-trip latency of one client sending a 64-byte text message and waiting for the reply (p50, p99
//!   over 5,000 round trips after 500 to warm up);
//! - messages per second with 32 clients doing the same at once for 5 seconds.
//!
//! Run with `cargo run --release -p nimbus-tests --example ws_cost`; it prints a markdown table.

use futures_util::{SinkExt, StreamExt};
use nimbus_core::logs::LogSink;
use nimbus_platforms::local::{Gateway, GatewayOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const MANIFEST: &str = r#"
manifest_version = 1

[function.fresh]
component = "{WS_ECHO}"
[function.fresh.websocket]
path = "/fresh"
messages_per_second = 1000000

[function.warm]
component = "{WS_ECHO}"
reuse = true
[function.warm.websocket]
path = "/warm"
messages_per_second = 1000000
"#;

const ROUND_TRIPS: usize = 5_000;
const WARMUP: usize = 500;
const CLIENTS: usize = 32;
const LOAD_TIME: Duration = Duration::from_secs(5);

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The guest answers `echo:X` with `$default|X`; the native server answers with the message itself.
fn payload() -> String {
    format!("echo:{}", "x".repeat(59))
}

async fn connect(url: &str) -> Client {
    let (client, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    client
}

async fn round_trip(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
    loop {
        match client.next().await {
            Some(Ok(Message::Text(_))) => return,
            Some(Ok(_)) => continue,
            other => panic!("no reply: {other:?}"),
        }
    }
}

/// Round-trip latency in microseconds: (p50, p99).
async fn latency(url: &str) -> (f64, f64) {
    let mut client = connect(url).await;
    let text = payload();
    for _ in 0..WARMUP {
        round_trip(&mut client, &text).await;
    }
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        round_trip(&mut client, &text).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let _ = client.close(None).await;
    samples.sort_by(f64::total_cmp);
    (samples[ROUND_TRIPS / 2], samples[ROUND_TRIPS * 99 / 100])
}

/// Messages per second (round trips completed) with `CLIENTS` clients for `LOAD_TIME`.
async fn throughput(url: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(connect(url).await);
    }
    let started = Instant::now();
    let until = started + LOAD_TIME;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let done = done.clone();
            tokio::spawn(async move {
                let text = payload();
                while Instant::now() < until {
                    round_trip(&mut client, &text).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                let _ = client.close(None).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A minimal native echo server: tokio-tungstenite, one task per connection, each message sent back.
async fn native_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

struct Row {
    name: &'static str,
    p50: f64,
    p99: f64,
    rate: f64,
}

async fn measure(name: &'static str, url: &str) -> Row {
    let (p50, p99) = latency(url).await;
    let rate = throughput(url).await;
    eprintln!("{name}: p50 {p50:.0} µs, p99 {p99:.0} µs, {rate:.0} msg/s");
    Row { name, p50, p99, rate }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (host, _logs, connections) = nimbus_tests::boot_serving(MANIFEST).await;
    let opts = GatewayOptions {
        access_log: false,
        log_sink: LogSink::Capture(Default::default()),
        connections: Some(connections),
        ..GatewayOptions::default()
    };
    let gw = Gateway::start(host, "127.0.0.1:0".parse().unwrap(), opts)
        .await
        .expect("bind gateway");
    let native = native_echo().await;

    let rows = [
        measure("native tokio-tungstenite echo", &format!("ws://{native}/")).await,
        measure(
            "gateway + ws_echo (fresh instance)",
            &format!("ws://{}/fresh", gw.addr()),
        )
        .await,
        measure("gateway + ws_echo (reuse = true)", &format!("ws://{}/warm", gw.addr())).await,
    ];
    let base = &rows[0];
    println!(
        "\n64-byte text messages over 127.0.0.1, {ROUND_TRIPS} round trips for latency, {CLIENTS} clients for {}s \
         for throughput\n",
        LOAD_TIME.as_secs()
    );
    println!("| server | p50 µs | p99 µs | msg/s ({CLIENTS} clients) | p50 vs native | msg/s vs native |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1}× | {:.2}× |",
            r.name,
            r.p50,
            r.p99,
            r.rate,
            r.p50 / base.p50,
            r.rate / base.rate
        );
    }
    gw.shutdown().await;
}
