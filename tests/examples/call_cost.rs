//! Latency of host calls as a guest sees them: the `call_bench` guest makes
//! one kind of call in a loop and times itself with the WASI monotonic clock
//! (so a figure is the host call plus the guest's own binding code, not the
//! invocation around it):
//! - `wasi:config/store.get` of a declared and of an undeclared key
//!   (100,000 calls per invocation);
//! - a guest span (`nimbus_sdk::trace::Span`: start, one attribute, end),
//!   with OTLP export off and on (200 spans per invocation, under the
//!   per-invocation bound of 256, so every one is recorded).
//!
//! Run with `cargo run --release -p nimbus-tests --example call_cost`.

use nimbus_core::telemetry::{Telemetry, TelemetryConfig};
use nimbus_core::{BootOptions, Event, EventSource, Host, Outcome, Payload, TraceContext};
use nimbus_tests::otlp_receiver::OtlpReceiver;
use std::time::Duration;

const MANIFEST: &str = r#"
manifest_version = 1
[function.bench]
component = "{CALL_BENCH}"
[function.bench.config]
greeting = { value = "hello from the manifest" }
"#;

/// The guest's own ns per call, median over `runs` invocations (min, max).
async fn measure(host: &Host, request: &str, runs: usize) -> (f64, f64, f64) {
    let f = host.function("bench").unwrap();
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        // A sampled trace, so spans are recorded when export is on.
        let trace = TraceContext::from_w3c(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        let inv = host.new_invocation(f, None, trace);
        let event = Event {
            source: EventSource::Direct,
            payload: request.as_bytes().to_vec(),
        };
        match host.invoke(f, inv, Payload::Event(event)).await {
            Ok(Outcome::Event(out)) => {
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                samples.push(v["ns_per_call"].as_f64().unwrap());
            }
            other => panic!("{other:?}"),
        }
    }
    samples.sort_by(f64::total_cmp);
    (samples[runs / 2], samples[0], samples[runs - 1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let receiver = OtlpReceiver::start().await;
    let telemetry = Telemetry::new(TelemetryConfig {
        traces_endpoint: receiver.traces_endpoint(),
        resource: vec![opentelemetry::KeyValue::new("service.name", "call-cost")],
        flush_timeout: Duration::from_secs(5),
        gzip: false,
    })
    .unwrap();
    let (off, _) = nimbus_tests::boot(MANIFEST).await;
    let (on, _) = nimbus_tests::boot_with(
        MANIFEST,
        BootOptions {
            telemetry: Some(telemetry.clone()),
            ..BootOptions::default()
        },
    )
    .await;
    let cases: [(&str, &Host, &str, usize); 4] = [
        (
            "wasi:config/store.get, declared key",
            &off,
            r#"{"call": "config-get", "key": "greeting", "n": 100000}"#,
            5,
        ),
        (
            "wasi:config/store.get, undeclared key",
            &off,
            r#"{"call": "config-get", "key": "nope", "n": 100000}"#,
            5,
        ),
        ("guest span, export off", &off, r#"{"call": "span", "n": 200}"#, 101),
        ("guest span, export on", &on, r#"{"call": "span", "n": 200}"#, 101),
    ];
    for (label, host, request, runs) in cases {
        let (median, min, max) = measure(host, request, runs).await;
        println!("{label:40} {median:7.0} ns per call (median of {runs} invocations; min {min:.0}, max {max:.0})");
    }
    telemetry.flush().await;
    println!("spans received by the collector: {}", receiver.spans().len());
}
