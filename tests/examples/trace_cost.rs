//! What span export costs per invocation: the plain HTTP hello through
//! `Host::invoke`, with export off, with export on to a collector that
//! decodes every span (the test OTLP receiver, on a thread of its own, like
//! a sidecar sharing the machine), and with export on to a sink that reads,
//! counts and discards (`nimbus_tests::otlp_sink`; the host's own cost:
//! building, batching, encoding and sending spans), plainly and
//! gzip-compressed. Measured in rotating rounds in one run.
//! Run with `cargo run --release -p nimbus-tests --example trace_cost`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::telemetry::{Telemetry, TelemetryConfig};
use nimbus_core::{BootOptions, Host, Outcome, Payload, TraceContext};
use nimbus_tests::otlp_receiver::OtlpReceiver;
use nimbus_tests::otlp_sink::OtlpSink;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"
manifest_version = 1
[function.hello]
component = "{PROXY_HELLO}"
routes = ["GET /"]
"#;
/// Short alternating rounds, so a machine whose load drifts (other builds)
/// weighs on both sides alike; the figure is the median of per-round ratios.
const ROUNDS: usize = 40;
const PER_ROUND: usize = 1_000;

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

/// Runs `serve` on a thread and runtime of its own, like a sidecar process.
fn on_own_thread<T: Send + 'static, F: Future<Output = T> + 'static>(serve: impl FnOnce() -> F + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tx.send(serve().await).unwrap();
            std::future::pending::<()>().await
        })
    });
    rx.recv().unwrap()
}

async fn exporting_host(traces_endpoint: String, gzip: bool) -> (Arc<Host>, Telemetry) {
    let telemetry = Telemetry::new(TelemetryConfig {
        traces_endpoint,
        resource: vec![opentelemetry::KeyValue::new("service.name", "trace-cost")],
        flush_timeout: Duration::from_secs(5),
        gzip,
    })
    .unwrap();
    let (host, _) = nimbus_tests::boot_with(
        MANIFEST,
        BootOptions {
            telemetry: Some(telemetry.clone()),
            ..BootOptions::default()
        },
    )
    .await;
    (host, telemetry)
}

/// The median and quartiles of `ratios`.
fn summary(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    format!(
        "median ratio to off {:.3} ({:+.1}%), quartiles {:.3}..{:.3}",
        ratios[n / 2],
        (ratios[n / 2] - 1.0) * 100.0,
        ratios[n / 4],
        ratios[3 * n / 4]
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let receiver = on_own_thread(OtlpReceiver::start);
    let sink = OtlpSink::start();
    let (off, _) = nimbus_tests::boot(MANIFEST).await;
    let (decoded, decoded_t) = exporting_host(receiver.traces_endpoint(), false).await;
    let (discarded, discarded_t) = exporting_host(sink.traces_endpoint("plain"), false).await;
    let (gzipped, gzipped_t) = exporting_host(sink.traces_endpoint("gzip"), true).await;
    // A second host with export off: how far apart two identical hosts
    // measure (the noise floor of the ratios above).
    let (control, _) = nimbus_tests::boot(MANIFEST).await;
    let hosts = [&off, &decoded, &discarded, &gzipped, &control];
    let n = hosts.len();
    for h in hosts {
        rate(h, 2_000).await;
    }
    let mut sums = vec![0.0; n];
    let mut ratios = vec![Vec::with_capacity(ROUNDS); n];
    for round in 0..ROUNDS {
        let mut r = vec![0.0; n];
        // Rotate who goes first, so drifting load weighs on each alike.
        for k in 0..n {
            let i = (round + k) % n;
            r[i] = rate(hosts[i], PER_ROUND).await;
        }
        for i in 0..n {
            sums[i] += r[i];
            ratios[i].push(r[i] / r[0]);
        }
    }
    for t in [&decoded_t, &discarded_t, &gzipped_t] {
        t.flush().await;
    }
    let avg = |i: usize| sums[i] / ROUNDS as f64;
    println!("hello (proxy_hello), serial, {ROUNDS} rotating rounds of {PER_ROUND} invocations each");
    println!("  export off:                      {:8.0}/s", avg(0));
    let mut ratios = ratios.into_iter();
    ratios.next();
    for (i, (name, ratios)) in [
        "export on, decoding collector: ",
        "export on, discarding sink:    ",
        "export on, gzip, to the sink:  ",
        "export off, a second host:     ",
    ]
    .into_iter()
    .zip(ratios)
    .enumerate()
    {
        println!("  {name}  {:8.0}/s  {}", avg(i + 1), summary(ratios));
    }
    println!("  spans the collector decoded: {}", receiver.spans().len());
    println!(
        "  spans the sink counted: {} plain, {} gzip",
        sink.spans("plain"),
        sink.spans("gzip")
    );
}
