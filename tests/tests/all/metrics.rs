//! `NIMBUS_METRICS=emf`: one CloudWatch Embedded Metric Format line per invocation.

use nimbus_core::metrics::MetricsFormat;
use nimbus_core::{BootOptions, Event, EventSource, Payload, TraceContext};
use nimbus_tests::{boot_with, gateway, get};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invocation_writes_one_emf_record() {
    let opts = BootOptions {
        metrics: MetricsFormat::Emf {
            namespace: "NimbusTest".into(),
        },
        ..BootOptions::default()
    };
    let (host, logs) = boot_with(
        r#"
manifest_version = 1
[function.event-check]
component = "{EVENT_CHECK}"
[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]
"#,
        opts,
    )
    .await;
    let f = host.function("event-check").unwrap();
    for payload in [r#"{"n": 1}"#, r#"{"n": 2}"#, r#"{"fail": "no"}"#] {
        let inv = host.new_invocation(f, Some(format!("req-{payload}")), TraceContext::new_root());
        let event = Event {
            source: EventSource::Direct,
            payload: payload.as_bytes().to_vec(),
        };
        let _ = host.invoke(f, inv, Payload::Event(event)).await;
    }
    let gw = gateway(host.clone(), logs.clone()).await;
    assert_eq!(get(gw.addr(), "/hello").await.status, 200);

    // The HTTP record is written when the guest returns, just after the response.
    let mut records: Vec<Value> = Vec::new();
    for _ in 0..100 {
        records = logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("\"_aws\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if records.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(records.len(), 4, "{records:?}");
    for r in &records {
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "NimbusTest");
        assert!(r["Duration"].as_f64().unwrap() > 0.0);
        // At least the guest's initial memory (wasm pages are 64 KiB).
        assert!(r["PeakMemory"].as_u64().unwrap() >= 65536, "{r}");
    }
    // Only the process's first invocation is a cold start.
    assert!(records[0]["InitDuration"].as_f64().unwrap() > 0.0);
    assert_eq!(records[0]["ColdStart"], true);
    assert!(
        records[1..]
            .iter()
            .all(|r| r.get("InitDuration").is_none() && r["ColdStart"] == false)
    );
    assert_eq!(records[0]["request_id"], r#"req-{"n": 1}"#);
    assert_eq!(records[0]["Errors"], 0);
    assert_eq!(records[2]["Errors"], 1);
    assert_eq!(records[2]["error_type"], "Function.Failed");
    assert_eq!(records[3]["function"], "hello");
}
