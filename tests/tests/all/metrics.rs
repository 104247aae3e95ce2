//! `NIMBUS_METRICS=emf`: one CloudWatch Embedded Metric Format line per
//! invocation; `NIMBUS_METRICS=otlp`: the OpenTelemetry FaaS metrics,
//! exported to a real OTLP receiver.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::metrics::MetricsFormat;
use nimbus_core::telemetry::{MetricsConfig, OtlpMetrics};
use nimbus_core::{BootOptions, Event, EventSource, Host, Payload, TraceContext};
use nimbus_tests::otlp_receiver::{OtlpReceiver, ReceivedPoint};
use nimbus_tests::{boot_with, gateway, get};
use serde_json::Value;
use std::time::{Duration, Instant};

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

/// OTLP metrics as `NIMBUS_METRICS=otlp` configures them, built in-process
/// (tests share one process environment).
fn otlp(endpoint: String, flush_timeout: Duration) -> MetricsFormat {
    MetricsFormat::Otlp(
        OtlpMetrics::new(MetricsConfig {
            endpoint,
            resource: vec![opentelemetry::KeyValue::new("service.name", "metrics-test")],
            flush_timeout,
        })
        .unwrap(),
    )
}

async fn invoke_event(host: &Host, function: &str, source: EventSource, payload: &str) -> bool {
    let f = host.function(function).unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let event = Event {
        source,
        payload: payload.as_bytes().to_vec(),
    };
    host.invoke(f, inv, Payload::Event(event)).await.is_ok()
}

async fn invoke_http(host: &Host, function: &str, path: &str) -> bool {
    let f = host.function(function).unwrap();
    let inv = host.new_invocation(f, None, TraceContext::new_root());
    let body = Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync();
    let req = http::Request::get(format!("http://localhost{path}"))
        .body(body)
        .unwrap();
    match host.invoke(f, inv, Payload::Http(req)).await {
        Ok(nimbus_core::Outcome::Http(resp)) => {
            let ok = resp.status().is_success();
            let _ = resp.into_body().collect().await;
            ok
        }
        _ => false,
    }
}

/// The last point of each series of `metric` (cumulative: the totals)
/// whose attributes include `attrs`.
fn series<'a>(points: &'a [ReceivedPoint], metric: &str, attrs: &[(&str, &str)]) -> Vec<&'a ReceivedPoint> {
    let mut last: Vec<&ReceivedPoint> = Vec::new();
    for p in points
        .iter()
        .filter(|p| p.metric == metric && attrs.iter().all(|(k, v)| p.attr(k) == *v))
    {
        match last.iter_mut().find(|q| q.attributes == p.attributes) {
            Some(q) => *q = p,
            None => last.push(p),
        }
    }
    last
}

/// The total of `metric` over the series matching `attrs`: counters' values, histograms' counts.
fn total(points: &[ReceivedPoint], metric: &str, attrs: &[(&str, &str)]) -> f64 {
    series(points, metric, attrs)
        .iter()
        .map(|p| if p.kind == "histogram" { p.count as f64 } else { p.value })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_follow_the_faas_conventions() {
    let receiver = OtlpReceiver::start().await;
    let opts = BootOptions {
        metrics: otlp(receiver.metrics_endpoint(), Duration::from_secs(5)),
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
[function.trap]
component = "{TRAP}"
routes = ["ANY /trap"]
[function.spin]
component = "{SPIN}"
routes = ["GET /spin"]
timeout = "300ms"
"#,
        opts,
    )
    .await;
    assert!(invoke_event(&host, "event-check", EventSource::Direct, r#"{"n": 1}"#).await);
    assert!(invoke_event(&host, "event-check", EventSource::Direct, r#"{"n": 2}"#).await);
    assert!(!invoke_event(&host, "event-check", EventSource::Direct, r#"{"fail": "no"}"#).await);
    assert!(invoke_event(&host, "event-check", EventSource::Sqs, r#"{"n": 3}"#).await);
    assert!(!invoke_http(&host, "trap", "/trap").await);
    assert!(!invoke_http(&host, "spin", "/spin").await);
    let gw = gateway(host.clone(), logs).await;
    assert_eq!(get(gw.addr(), "/hello").await.status, 200);

    // An HTTP invocation is measured when the guest returns, just after its
    // response: flush until everything has arrived.
    let until = Instant::now() + Duration::from_secs(30);
    let points = loop {
        host.flush_telemetry().await;
        let points = receiver.points();
        if total(&points, "faas.invocations", &[]) >= 4.0 && total(&points, "faas.errors", &[]) >= 3.0 {
            break points;
        }
        assert!(Instant::now() < until, "metrics not received; got {points:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let ev = [("faas.name", "event-check")];
    let direct = [("faas.name", "event-check"), ("faas.trigger", "other")];
    let sqs = [("faas.name", "event-check"), ("faas.trigger", "pubsub")];
    // faas.invocations counts successes; faas.errors failures, by error.type.
    assert_eq!(total(&points, "faas.invocations", &direct), 2.0);
    assert_eq!(total(&points, "faas.invocations", &sqs), 1.0);
    assert_eq!(
        total(
            &points,
            "faas.invocations",
            &[("faas.name", "hello"), ("faas.trigger", "http")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &points,
            "faas.errors",
            &[("faas.name", "event-check"), ("error.type", "Function.Failed")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &points,
            "faas.errors",
            &[
                ("faas.name", "trap"),
                ("faas.trigger", "http"),
                ("error.type", "Nimbus.Trap")
            ]
        ),
        1.0
    );
    assert_eq!(
        total(
            &points,
            "faas.errors",
            &[("faas.name", "spin"), ("error.type", "Nimbus.Deadline")]
        ),
        1.0
    );
    assert_eq!(total(&points, "faas.timeouts", &[("faas.name", "spin")]), 1.0);
    assert_eq!(total(&points, "faas.timeouts", &[]), 1.0);
    assert_eq!(total(&points, "faas.invocations", &[("faas.name", "trap")]), 0.0);

    // Every invocation, failed or not, has a duration and a peak memory.
    assert_eq!(total(&points, "faas.invoke_duration", &ev), 4.0);
    assert_eq!(total(&points, "faas.invoke_duration", &[]), 7.0);
    assert_eq!(total(&points, "faas.mem_usage", &[]), 7.0);
    for p in series(&points, "faas.invoke_duration", &[]) {
        assert_eq!((p.kind, p.unit.as_str(), p.temporality), ("histogram", "s", 2), "{p:?}");
        assert!(p.value > 0.0, "{p:?}");
        assert_eq!(p.resource["service.name"], "metrics-test");
    }
    let spin = &series(&points, "faas.invoke_duration", &[("faas.name", "spin")])[0];
    assert!(spin.value >= 0.3, "stopped at its 300 ms deadline: {spin:?}");
    for p in series(&points, "faas.mem_usage", &[]) {
        assert_eq!((p.kind, p.unit.as_str()), ("histogram", "By"), "{p:?}");
        // At least the guest's initial memory (wasm pages are 64 KiB).
        assert!(p.min_max.0.unwrap() >= 65536.0, "{p:?}");
    }
    // The cold start: the process's first invocation only.
    let init = series(&points, "faas.init_duration", &[]);
    assert_eq!(init.len(), 1, "{init:?}");
    assert_eq!((init[0].count, init[0].unit.as_str()), (1, "s"));
    assert!(init[0].value > 0.0);
    assert_eq!(init[0].attr("faas.name"), "event-check");
    assert_eq!(total(&points, "faas.coldstarts", &[]), 1.0);
    for p in series(&points, "faas.invocations", &[]) {
        assert_eq!((p.kind, p.unit.as_str()), ("sum", "{invocation}"), "{p:?}");
    }
    gw.shutdown().await;
    host.shutdown_telemetry(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_metrics_collector_never_fails_or_stalls_an_invocation() {
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let opts = BootOptions {
        metrics: otlp(format!("http://{closed}/v1/metrics"), Duration::from_millis(200)),
        ..BootOptions::default()
    };
    let (host, _logs) = boot_with(
        r#"
manifest_version = 1
[function.event-check]
component = "{EVENT_CHECK}"
"#,
        opts,
    )
    .await;
    for i in 0..3 {
        let t = Instant::now();
        assert!(invoke_event(&host, "event-check", EventSource::Direct, r#"{"n": 1}"#).await);
        host.flush_telemetry().await;
        // The flush is bounded at 200 ms; the rest is the invocation on a slow machine.
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "invocation {i} took {:?}",
            t.elapsed()
        );
    }
}

/// The resilience metrics over OTLP: every outbound call's duration (its count is the throughput) and errors
/// per function and host, a breaker's state as a gauge, a function's degradation level as a gauge, and
/// the faults injected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_carry_dependencies_breakers_levels_and_faults() {
    let receiver = OtlpReceiver::start().await;
    let down = nimbus_tests::upstream::Upstream::status(503).await;
    let up = nimbus_tests::upstream::Upstream::status(200).await;
    let opts = BootOptions {
        metrics: otlp(receiver.metrics_endpoint(), Duration::from_secs(5)),
        ..BootOptions::default()
    };
    let (host, logs) = boot_with(
        r#"
manifest_version = 1
[function.guarded]
component = "{OUTBOUND}"
routes = ["GET /guarded"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
breaker = { minimum_calls = 2, failure_rate = 0.5, open_for = "60s", max_open_for = "60s" }
degradation = { cascade = 1 }
[function.plain]
component = "{OUTBOUND}"
routes = ["GET /plain"]
allowed_outbound_hosts = ["http://127.0.0.1:*"]
"#,
        opts,
    )
    .await;
    let gw = gateway(host.clone(), logs).await;
    for _ in 0..2 {
        get(
            gw.addr(),
            &format!("/guarded?url=http://127.0.0.1:{}/", down.addr.port()),
        )
        .await;
    }
    get(gw.addr(), "/guarded?url=http://127.0.0.1:1/").await;
    host.faults().replace(Some(
        nimbus_core::faults::FaultPlan::parse(
            "[[rule]]\nfunction = \"plain\"\ntarget = \"outbound\"\nkind = \"latency\"\nlatency = \"1ms\"",
            "t",
            || 0,
        )
        .unwrap(),
    ));
    for _ in 0..3 {
        get(gw.addr(), &format!("/plain?url=http://127.0.0.1:{}/", up.addr.port())).await;
    }
    let down_host = format!("127.0.0.1:{}", down.addr.port());
    let up_host = format!("127.0.0.1:{}", up.addr.port());
    let until = Instant::now() + Duration::from_secs(30);
    let points = loop {
        host.flush_telemetry().await;
        let points = receiver.points();
        if total(&points, "nimbus.dependency.duration", &[("faas.name", "plain")]) >= 3.0
            && !series(&points, "nimbus.degradation.level", &[]).is_empty()
            && total(&points, "nimbus.faults.injected", &[]) >= 3.0
        {
            break points;
        }
        assert!(Instant::now() < until, "metrics not received; got {points:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let guarded_down = [("faas.name", "guarded"), ("server.address", down_host.as_str())];
    assert_eq!(total(&points, "nimbus.dependency.duration", &guarded_down), 2.0);
    assert_eq!(total(&points, "nimbus.dependency.errors", &guarded_down), 2.0);
    let plain_up = [("faas.name", "plain"), ("server.address", up_host.as_str())];
    assert_eq!(total(&points, "nimbus.dependency.duration", &plain_up), 3.0);
    assert_eq!(total(&points, "nimbus.dependency.errors", &plain_up), 0.0);
    let state = series(&points, "nimbus.breaker.state", &guarded_down);
    assert_eq!(state.len(), 1, "{points:#?}");
    assert_eq!((state[0].kind, state[0].value), ("gauge", 2.0), "open");
    let level = series(&points, "nimbus.degradation.level", &[("faas.name", "guarded")]);
    assert_eq!(level[0].value, 4.0, "one open breaker is the cascade: level 4");
    assert_eq!(total(&points, "nimbus.faults.injected", &[("faas.name", "plain")]), 3.0);
}
