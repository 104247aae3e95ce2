//! Latency of `wasi:config/store.get` as a guest sees it: the `config_bench`
//! guest reads one declared key 100,000 times in a loop and times itself
//! with the WASI monotonic clock (so the figure is the host call plus the
//! guest's own binding code, not the invocation around it). Run with
//! `cargo run --release -p nimbus-tests --example config_cost`.

use nimbus_core::{Event, EventSource, Outcome, Payload, TraceContext};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (host, _logs) = nimbus_tests::boot(
        r#"
manifest_version = 1
[function.bench]
component = "{CONFIG_BENCH}"
[function.bench.config]
greeting = { value = "hello from the manifest" }
"#,
    )
    .await;
    let f = host.function("bench").unwrap();
    for (label, key) in [("declared key", "greeting"), ("undeclared key", "nope")] {
        let mut samples = Vec::new();
        for _ in 0..5 {
            let inv = host.new_invocation(f, None, TraceContext::new_root());
            let payload = format!(r#"{{"key": "{key}", "n": 100000}}"#).into_bytes();
            let event = Event {
                source: EventSource::Direct,
                payload,
            };
            match host.invoke(f, inv, Payload::Event(event)).await {
                Ok(Outcome::Event(out)) => {
                    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                    samples.push(v["ns_per_get"].as_f64().unwrap());
                }
                other => panic!("{other:?}"),
            }
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "wasi:config/store.get, {label:15} {:7.0} ns per call (median of 5 × 100,000; min {:.0}, max {:.0})",
            samples[2], samples[0], samples[4]
        );
    }
}
