//! What span export costs per invocation: the plain HTTP hello through
//! `Host::invoke`, with export off and with export on (batched to a local
//! OTLP receiver, as `nimbus serve` does), measured in alternating rounds in
//! one run. Run with `cargo run --release -p nimbus-tests --example trace_cost`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::telemetry::{Telemetry, TelemetryConfig};
use nimbus_core::{BootOptions, Host, Outcome, Payload, TraceContext};
use nimbus_tests::otlp_receiver::OtlpReceiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"
manifest_version = 1
[function.hello]
component = "{PROXY_HELLO}"
routes = ["GET /"]
"#;
const ROUNDS: usize = 6;
const PER_ROUND: usize = 5_000;

async fn hello(host: &Host) {
    let f = host.function("hello").unwrap();
    let trace = TraceContext::from_w3c(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
    let inv = host.new_invocation(f, None, trace);
    let body = Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync();
    let req = http::Request::get("http://localhost/").body(body).unwrap();
    match host.invoke(f, inv, Payload::Http(req)).await {
        Ok(Outcome::Http(resp)) => {
            let b = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&b[..], b"Hello, world!\n");
        }
        other => panic!("{other:?}"),
    }
}

/// Invocations per second over `n` serial calls.
async fn rate(host: &Host, n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        hello(host).await;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let receiver = OtlpReceiver::start().await;
    let telemetry = Telemetry::new(TelemetryConfig {
        traces_endpoint: receiver.traces_endpoint(),
        resource: vec![opentelemetry::KeyValue::new("service.name", "trace-cost")],
        flush_timeout: Duration::from_secs(5),
    })
    .unwrap();
    let (off, _) = nimbus_tests::boot(MANIFEST).await;
    let (on, _): (Arc<Host>, _) = nimbus_tests::boot_with(
        MANIFEST,
        BootOptions {
            telemetry: Some(telemetry.clone()),
            ..BootOptions::default()
        },
    )
    .await;
    rate(&off, 1_000).await;
    rate(&on, 1_000).await;
    let (mut sum_off, mut sum_on) = (0.0, 0.0);
    for round in 0..ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = rate(&off, PER_ROUND).await;
            (a, rate(&on, PER_ROUND).await)
        } else {
            let b = rate(&on, PER_ROUND).await;
            (rate(&off, PER_ROUND).await, b)
        };
        println!("round {round}: off {a:8.0}/s   on {b:8.0}/s");
        sum_off += a;
        sum_on += b;
    }
    telemetry.flush().await;
    let (off_rate, on_rate) = (sum_off / ROUNDS as f64, sum_on / ROUNDS as f64);
    println!(
        "hello (proxy_hello), serial: export off {off_rate:.0}/s, export on {on_rate:.0}/s ({:+.1}%); \
         spans received: {}",
        (on_rate / off_rate - 1.0) * 100.0,
        receiver.spans().len()
    );
}
