//! OpenTelemetry: exported spans (init, invocation, outbound client) chain
//! under the caller's trace, and the host propagates the trace to outbound
//! requests whether or not it exports.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nimbus_core::telemetry::{Telemetry, TelemetryConfig};
use nimbus_core::{BootOptions, Host, Outcome, Payload, TraceContext};
use nimbus_tests::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use nimbus_tests::{boot_with, gateway, request};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const XRAY_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// A loopback HTTP server answering 207 and keeping every request's headers.
async fn upstream() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let keep = keep.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                keep.lock().unwrap().push(req.headers().clone());
                async {
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder().status(207).body(String::new()).unwrap(),
                    )
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(s), svc),
            );
        }
    });
    (addr, seen)
}

fn telemetry(traces_endpoint: String, flush_timeout: Duration) -> Telemetry {
    Telemetry::new(TelemetryConfig {
        traces_endpoint,
        resource: vec![opentelemetry::KeyValue::new("service.name", "trace-test")],
        flush_timeout,
        gzip: false,
    })
    .unwrap()
}

/// Boots one HTTP function `name` (the test program `program`, at `GET /name`)
/// that may call the loopback server at `up`.
async fn boot_calling(
    name: &str,
    program: &str,
    up: SocketAddr,
    telemetry: Option<Telemetry>,
) -> (Arc<Host>, nimbus_tests::Logs) {
    let manifest = format!(
        r#"
manifest_version = 1
[function.{name}]
component = "{{{program}}}"
routes = ["GET /{name}"]
allowed_outbound_hosts = ["http://127.0.0.1:{}"]
"#,
        up.port()
    );
    boot_with(
        &manifest,
        BootOptions {
            telemetry,
            ..BootOptions::default()
        },
    )
    .await
}

async fn boot_outbound(up: SocketAddr, telemetry: Option<Telemetry>) -> (Arc<Host>, nimbus_tests::Logs) {
    boot_calling("fetch", "OUTBOUND", up, telemetry).await
}

async fn boot_traced(up: SocketAddr, telemetry: Option<Telemetry>) -> (Arc<Host>, nimbus_tests::Logs) {
    boot_calling("traced", "TRACED", up, telemetry).await
}

/// Invokes `fetch` directly (as an adapter does) with `trace`; its request id and answer.
async fn fetch(host: &Host, up: SocketAddr, trace: TraceContext) -> (String, serde_json::Value) {
    let f = host.function("fetch").unwrap();
    let inv = host.new_invocation(f, None, trace);
    let rid = inv.request_id.to_string();
    let body = Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync();
    let req = http::Request::get(format!(
        "http://localhost/fetch?url=http://127.0.0.1:{}/down",
        up.port()
    ))
    .body(body)
    .unwrap();
    let Ok(Outcome::Http(resp)) = host.invoke(f, inv, Payload::Http(req)).await else {
        panic!("fetch failed")
    };
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (rid, serde_json::from_slice(&body).unwrap())
}

fn one<'a>(spans: &'a [ReceivedSpan], what: &str, pred: impl Fn(&ReceivedSpan) -> bool) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(found.len(), 1, "expected one {what}; spans: {spans:#?}");
    found[0]
}

/// The invocation span and its outbound client span in `trace`, checked
/// against the caller's parent and the headers the upstream received.
fn check_chain<'a>(
    spans: &'a [ReceivedSpan],
    trace: &str,
    caller: &str,
    rid: &str,
    headers: &http::HeaderMap,
) -> (&'a ReceivedSpan, &'a ReceivedSpan) {
    let inv = one(spans, "invocation span", |s| s.trace_id == trace && s.name == "fetch");
    let out = one(spans, "client span", |s| s.trace_id == trace && s.kind == 3);
    assert_eq!(
        inv.parent_span_id, caller,
        "the caller's span is the invocation's parent"
    );
    assert_eq!(inv.kind, 2, "SERVER");
    assert_eq!(inv.attr("faas.invocation_id"), rid);
    assert_eq!(inv.attr("faas.trigger"), "http");
    assert_eq!(inv.attr("http.request.method"), "GET");
    assert_eq!(inv.attr("url.path"), "/fetch");
    assert_eq!(inv.attr("http.response.status_code"), 200);
    assert_eq!(inv.resource["service.name"], "trace-test");
    assert_eq!(
        out.parent_span_id, inv.span_id,
        "the client span is the invocation's child"
    );
    assert_eq!(out.name, "GET");
    assert_eq!(out.attr("http.request.method"), "GET");
    assert!(out.attr("url.full").as_str().unwrap().ends_with("/down"), "{out:?}");
    assert_eq!(out.attr("server.address"), "127.0.0.1");
    assert_eq!(out.attr("http.response.status_code"), 207);
    assert!(out.start_end_ns.0 >= inv.start_end_ns.0 && out.start_end_ns.1 <= inv.start_end_ns.1);
    assert_eq!(
        headers["traceparent"],
        format!("00-{trace}-{}-01", out.span_id),
        "the upstream sees the client span as its parent"
    );
    (inv, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_chain_from_the_caller_through_the_outbound_request() {
    let receiver = OtlpReceiver::start().await;
    let (up, seen) = upstream().await;
    let tel = telemetry(receiver.traces_endpoint(), Duration::from_secs(5));
    let (host, logs) = boot_outbound(up, Some(tel.clone())).await;

    // Lambda's dialect: an X-Ray header, invoked directly.
    let (rid, answer) = fetch(&host, up, TraceContext::from_xray(XRAY)).await;
    assert_eq!(answer["status"], 207, "{answer}");
    tel.flush().await;
    let spans = receiver
        .wait_for(Duration::from_secs(30), |s| {
            s.iter().filter(|s| s.trace_id == XRAY_TRACE).count() >= 2
        })
        .await;
    let headers = seen.lock().unwrap()[0].clone();
    let (inv, out) = check_chain(&spans, XRAY_TRACE, "53995c3f42cd8ad8", &rid, &headers);
    assert_eq!(inv.attr("faas.coldstart"), true, "the process's first invocation");
    assert_eq!(
        headers["x-amzn-trace-id"],
        format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={};Sampled=1",
            out.span_id
        )
    );
    let init = one(&spans, "init span", |s| s.name == "nimbus.init");
    assert_eq!(init.parent_span_id, "", "init is a root");
    assert_ne!(init.trace_id, XRAY_TRACE);
    assert_eq!(init.attr("faas.coldstart"), true);

    // W3C through the local gateway, with tracestate.
    let gw = gateway(host.clone(), logs).await;
    let path = format!("/fetch?url=http://127.0.0.1:{}/down", up.port());
    let r = request(
        gw.addr(),
        "GET",
        &path,
        None,
        &[("traceparent", W3C), ("tracestate", "congo=t61rcWkgMzE")],
    )
    .await;
    assert_eq!(r.json()["status"], 207);
    let rid = r.headers["x-nimbus-request-id"].to_str().unwrap().to_owned();
    tel.flush().await;
    let spans = receiver
        .wait_for(Duration::from_secs(30), |s| {
            s.iter().filter(|s| s.trace_id == W3C_TRACE).count() >= 2
        })
        .await;
    let headers = seen.lock().unwrap()[1].clone();
    let (inv, _) = check_chain(&spans, W3C_TRACE, "00f067aa0ba902b7", &rid, &headers);
    assert_eq!(inv.attr("faas.coldstart"), false, "only the first invocation is cold");
    assert_eq!(headers["tracestate"], "congo=t61rcWkgMzE");
    assert!(
        headers.get("x-amzn-trace-id").is_none(),
        "no X-Ray header without an X-Ray caller"
    );
    gw.shutdown().await;
}

/// An injected fault is on the span it affects: an event naming the rule, and the count as an attribute, on
/// the outbound client span and on the invocation's span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_span_events_and_attributes() {
    let receiver = OtlpReceiver::start().await;
    let (up, _seen) = upstream().await;
    let tel = telemetry(receiver.traces_endpoint(), Duration::from_secs(5));
    let (host, _logs) = boot_outbound(up, Some(tel.clone())).await;
    let plan = nimbus_core::faults::FaultPlan::parse(
        "seed = 1\n[[rule]]\nname = \"down\"\ntarget = \"outbound\"\nkind = \"error\"\nstatus = 503",
        "test",
        || 0,
    )
    .unwrap();
    host.faults().replace(Some(plan));
    let (rid, answer) = fetch(&host, up, TraceContext::from_xray(XRAY)).await;
    assert_eq!(answer["status"], 503, "{answer}");
    tel.flush().await;
    let spans = receiver
        .wait_for(Duration::from_secs(30), |s| {
            s.iter().filter(|s| s.trace_id == XRAY_TRACE).count() >= 2
        })
        .await;
    let inv = one(&spans, "invocation span", |s| {
        s.attr("faas.invocation_id") == rid.as_str()
    });
    let client = one(&spans, "client span", |s| s.kind == 3 && s.trace_id == XRAY_TRACE);
    for s in [inv, client] {
        assert_eq!(s.attr("nimbus.fault.injected"), 1, "{s:?}");
        let (name, attrs) = &s.events[0];
        assert_eq!(name, "nimbus.fault");
        assert_eq!(attrs["nimbus.fault.rule"], "down");
        assert_eq!(attrs["nimbus.fault.target"], "outbound");
        assert_eq!(attrs["nimbus.fault.kind"], "error");
    }
}

/// A change of degradation level is an event on the span of the invocation whose admission made it: the
/// refused one that raised the level (a shed invocation gets a span only then), and the one that lowered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_changes_are_span_events_of_the_invocation_that_made_them() {
    let receiver = OtlpReceiver::start().await;
    let tel = telemetry(receiver.traces_endpoint(), Duration::from_secs(5));
    let (host, logs) = boot_with(
        r#"
manifest_version = 1
[function.hello]
component = "{HELLO}"
routes = ["GET /hello"]
degradation = { retry_after = "2s" }
"#,
        BootOptions {
            telemetry: Some(tel.clone()),
            ..BootOptions::default()
        },
    )
    .await;
    let gw = gateway(host.clone(), logs.clone()).await;
    let forced = nimbus_core::faults::FaultPlan::parse("[[override]]\nfunction = \"hello\"\nlevel = 2", "t", || 0);
    host.faults().replace(Some(forced.unwrap()));
    let shed: Vec<_> = [
        nimbus_tests::get(gw.addr(), "/hello").await,
        nimbus_tests::get(gw.addr(), "/hello").await,
    ]
    .into_iter()
    .map(|r| {
        assert_eq!(r.status, 503, "{}", r.text());
        r.headers["x-nimbus-request-id"].to_str().unwrap().to_owned()
    })
    .collect();
    host.faults().replace(None);
    let r = nimbus_tests::get(gw.addr(), "/hello").await;
    assert_eq!(r.status, 200);
    let recovered = r.headers["x-nimbus-request-id"].to_str().unwrap().to_owned();
    tel.flush().await;
    let spans = receiver.wait_for(Duration::from_secs(30), |s| s.len() >= 2).await;
    let raised = one(&spans, "the span of the shed invocation that raised the level", |s| {
        s.attr("faas.invocation_id") == shed[0].as_str()
    });
    assert_eq!(raised.status_code, 2, "{raised:?}");
    assert_eq!(raised.attr("error.type"), "Nimbus.Degraded");
    let (name, attrs) = &raised.events[0];
    assert_eq!(name, "nimbus.degradation");
    assert_eq!(attrs["nimbus.degradation.from"], 0);
    assert_eq!(attrs["nimbus.degradation.to"], 2);
    assert_eq!(attrs["nimbus.degradation.level"], "local overload");
    assert_eq!(attrs["nimbus.degradation.reason"], "forced to 2 by the operator");
    // The second shed invocation changed nothing: no span for it.
    assert!(
        spans.iter().all(|s| s.attr("faas.invocation_id") != shed[1].as_str()),
        "{spans:?}"
    );
    let lowered = one(&spans, "the span of the invocation that lowered it", |s| {
        s.attr("faas.invocation_id") == recovered.as_str()
    });
    let (name, attrs) = &lowered.events[0];
    assert_eq!(name, "nimbus.degradation");
    assert_eq!(
        (
            attrs["nimbus.degradation.from"].clone(),
            attrs["nimbus.degradation.to"].clone()
        ),
        (2.into(), 0.into())
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_error_spans_with_their_type() {
    let receiver = OtlpReceiver::start().await;
    let tel = telemetry(receiver.traces_endpoint(), Duration::from_secs(5));
    let (host, _logs) = boot_with(
        r#"
manifest_version = 1
[function.trap]
component = "{TRAP}"
routes = ["ANY /trap"]
[function.echo]
component = "{ECHO}"
"#,
        BootOptions {
            telemetry: Some(tel.clone()),
            ..BootOptions::default()
        },
    )
    .await;
    let f = host.function("trap").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::from_w3c(Some(W3C), None));
    let body = Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync();
    let req = http::Request::get("http://localhost/trap").body(body).unwrap();
    assert!(host.invoke(f, inv, Payload::Http(req)).await.is_err());
    let f = host.function("echo").unwrap();
    let inv = host.new_invocation(f, None, TraceContext::from_xray(XRAY));
    let ev = nimbus_core::Event {
        source: nimbus_core::EventSource::Sqs,
        payload: br#"{"Records":[]}"#.to_vec(),
    };
    assert!(host.invoke(f, inv, Payload::Event(ev)).await.is_ok());
    tel.flush().await;
    let spans = receiver
        .wait_for(Duration::from_secs(30), |s| {
            s.iter().filter(|s| s.name != "nimbus.init").count() >= 2
        })
        .await;
    let trap = one(&spans, "trap span", |s| s.name == "trap");
    assert_eq!(trap.status_code, 2, "error status");
    assert_eq!(trap.attr("error.type"), "Nimbus.Trap");
    let echo = one(&spans, "echo span", |s| s.name == "echo");
    assert_eq!(echo.kind, 5, "CONSUMER for a queue message");
    assert_eq!(echo.attr("faas.trigger"), "pubsub");
    assert_eq!(echo.status_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_never_fails_or_stalls_an_invocation() {
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (up, seen) = upstream().await;
    let tel = telemetry(format!("http://{closed}/v1/traces"), Duration::from_millis(200));
    let (host, _logs) = boot_outbound(up, Some(tel.clone())).await;
    for i in 0..3 {
        let t = Instant::now();
        let (_, answer) = fetch(&host, up, TraceContext::from_xray(XRAY)).await;
        tel.flush().await;
        assert_eq!(answer["status"], 207, "{answer}");
        // The flush is bounded at 200 ms; the rest is the invocation on a slow machine.
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "invocation {i} took {:?}",
            t.elapsed()
        );
    }
    // Propagation does not depend on the collector.
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_headers_are_injected_with_export_off() {
    let (up, seen) = upstream().await;
    let (host, _logs) = boot_outbound(up, None).await;
    let ctx = TraceContext::from_w3c(Some(W3C), Some("congo=t61rcWkgMzE"));
    let (_, answer) = fetch(&host, up, ctx).await;
    assert_eq!(answer["status"], 207, "{answer}");
    let headers = seen.lock().unwrap()[0].clone();
    let tp = headers["traceparent"].to_str().unwrap().to_owned();
    assert!(tp.starts_with(&format!("00-{W3C_TRACE}-")), "{tp}");
    assert!(tp.ends_with("-01"));
    assert_ne!(&tp[36..52], "00f067aa0ba902b7", "a new client span, not the caller's");
    assert_eq!(headers["tracestate"], "congo=t61rcWkgMzE");
}

/// The W3C conformance suite's shape: the caller sends trace headers to the
/// gateway, the guest calls back, and the headers the callee gets are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_follows_w3c_conformance_for_repeated_and_odd_trace_headers() {
    let (up, seen) = upstream().await;
    let (host, logs) = boot_outbound(up, None).await;
    let gw = gateway(host.clone(), logs).await;
    let path = format!("/fetch?url=http://127.0.0.1:{}/down", up.port());
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let cases: [(&str, &[(&str, &str)]); 5] = [
        (
            "two tracestate lines are one list, in order",
            &[
                ("traceparent", W3C),
                ("tracestate", "acme=1,rojo=2"),
                ("tracestate", "congo=3"),
            ],
        ),
        (
            "a repeated traceparent restarts the trace, without tracestate",
            &[("traceparent", W3C), ("traceparent", other), ("tracestate", "acme=1")],
        ),
        (
            "a duplicated key is kept once, the left-most",
            &[("traceparent", W3C), ("tracestate", "acme=1,rojo=2,acme=3")],
        ),
        (
            "keys with `@` beyond tenant@system are valid, and so are their neighbours",
            &[("traceparent", W3C), ("tracestate", "vendor@=1,t1@t2@t3=2,rojo=3")],
        ),
        (
            "a key starting with `@` is invalid: the whole tracestate goes",
            &[("traceparent", W3C), ("tracestate", "@vendor=1,rojo=3")],
        ),
    ];
    for (case, headers) in cases {
        let r = request(gw.addr(), "GET", &path, None, headers).await;
        assert_eq!(r.json()["status"], 207, "{case}: {}", r.text());
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    let trace_id = |h: &http::HeaderMap| h["traceparent"].to_str().unwrap()[3..35].to_owned();
    let state = |h: &http::HeaderMap| h.get("tracestate").map(|v| v.to_str().unwrap().to_owned());

    assert_eq!(trace_id(&seen[0]), W3C_TRACE);
    assert_eq!(state(&seen[0]).as_deref(), Some("acme=1,rojo=2,congo=3"));

    let restarted = trace_id(&seen[1]);
    assert!(restarted != W3C_TRACE && restarted != other[3..35], "{restarted}");
    assert_eq!(state(&seen[1]), None);

    assert_eq!(trace_id(&seen[2]), W3C_TRACE);
    assert_eq!(state(&seen[2]).as_deref(), Some("acme=1,rojo=2"));

    assert_eq!(state(&seen[3]).as_deref(), Some("vendor@=1,t1@t2@t3=2,rojo=3"));

    assert_eq!(trace_id(&seen[4]), W3C_TRACE, "a bad tracestate keeps the traceparent");
    assert_eq!(state(&seen[4]), None);
    gw.shutdown().await;
}

/// The parent-id field of a `traceparent`.
fn span_of(traceparent: &serde_json::Value) -> String {
    traceparent.as_str().unwrap()[36..52].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_spans_nest_carry_attributes_and_parent_outbound_requests() {
    let receiver = OtlpReceiver::start().await;
    let (up, seen) = upstream().await;
    let tel = telemetry(receiver.traces_endpoint(), Duration::from_secs(5));
    let (host, logs) = boot_traced(up, Some(tel.clone())).await;
    let gw = gateway(host.clone(), logs).await;
    let path = format!("/traced?url=http://127.0.0.1:{}/down&extra=300", up.port());
    let r = request(gw.addr(), "GET", &path, None, &[("traceparent", W3C)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["status"], 207, "{answer}");
    tel.flush().await;
    // invocation + order + price + validate + client + 253 extras (256 guest spans at most).
    let spans = receiver
        .wait_for(Duration::from_secs(30), |s| {
            s.iter().filter(|s| s.trace_id == W3C_TRACE).count() >= 258
        })
        .await;
    let spans: Vec<_> = spans.into_iter().filter(|s| s.trace_id == W3C_TRACE).collect();
    let inv = one(&spans, "invocation span", |s| s.name == "traced");
    let order = one(&spans, "order span", |s| s.name == "order");
    let price = one(&spans, "price span", |s| s.name == "price");
    let validate = one(&spans, "validate span", |s| s.name == "validate");
    let client = one(&spans, "client span", |s| s.kind == 3);

    assert_eq!(order.span_id, span_of(&answer["order"]), "traceparent names the span");
    assert_eq!(price.span_id, span_of(&answer["price"]));
    assert_eq!(
        order.parent_span_id, inv.span_id,
        "a top-level guest span is the invocation's child"
    );
    assert_eq!(
        price.parent_span_id, order.span_id,
        "spans nest as the guest's code does"
    );
    assert_eq!(validate.parent_span_id, order.span_id);
    assert_eq!(
        client.parent_span_id, price.span_id,
        "a request is a child of the open span"
    );
    let headers = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["traceparent"], format!("00-{W3C_TRACE}-{}-01", client.span_id));

    assert_eq!(order.kind, 1, "INTERNAL");
    assert_eq!(order.attr("order.id"), "o-42");
    assert_eq!(order.attr("order.items"), 4, "the last value wins");
    assert_eq!(order.attr("order.express"), true);
    assert_eq!(order.attr("order.weight"), 1.5);
    assert_eq!(price.attr("upstream.ok"), true);
    assert_eq!(order.status_code, 0);
    assert_eq!(validate.status_code, 2, "set-error marks the span failed");
    assert!(order.start_end_ns.0 >= inv.start_end_ns.0 && order.start_end_ns.1 <= inv.start_end_ns.1);
    assert!(price.start_end_ns.0 >= order.start_end_ns.0 && price.start_end_ns.1 <= order.start_end_ns.1);

    let extras = spans.iter().filter(|s| s.name == "extra").count();
    assert_eq!(extras, 253, "at most 256 guest spans per invocation");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_spans_propagate_with_export_off() {
    let (up, seen) = upstream().await;
    let (host, logs) = boot_traced(up, None).await;
    let gw = gateway(host.clone(), logs).await;
    let path = format!("/traced?url=http://127.0.0.1:{}/down", up.port());
    let r = request(gw.addr(), "GET", &path, None, &[("traceparent", W3C)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    let order = answer["order"].as_str().unwrap();
    assert!(order.starts_with(&format!("00-{W3C_TRACE}-")), "{answer}");
    assert_ne!(answer["order"], answer["price"]);
    let headers = seen.lock().unwrap()[0].clone();
    assert!(
        headers["traceparent"]
            .to_str()
            .unwrap()
            .starts_with(&format!("00-{W3C_TRACE}-"))
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_fetches_are_spans_under_init_then_roots_of_their_own() {
    let receiver = OtlpReceiver::start().await;
    let tel = telemetry(receiver.traces_endpoint(), Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssm.toml");
    std::fs::write(&file, "\"/shop/url\" = \"u\"\n\"/shop/db/host\" = \"h\"\n").unwrap();
    let m = nimbus_tests::manifest(
        "manifest_version = 1\n[function.cfg]\ncomponent = \"{CONFIG_GET}\"\nconfig_refresh = \"200ms\"\n\
         [function.cfg.config]\nurl = { ssm = \"/shop/url\" }\ndb = { ssm_path = \"/shop/db\" }\n",
    );
    let _host = nimbus_tests::boot_manifest(
        m,
        BootOptions {
            telemetry: Some(tel.clone()),
            ssm: nimbus_core::caps::config::SsmProvider::overrides_file(&file).unwrap(),
            ..BootOptions::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tel.flush().await;
    let spans = receiver
        .wait_for(Duration::from_secs(30), |s| {
            s.iter().filter(|s| s.name == "nimbus.config.fetch").count() >= 2
        })
        .await;
    let init = one(&spans, "init span", |s| s.name == "nimbus.init");
    let at_boot = one(&spans, "boot fetch", |s| {
        s.name == "nimbus.config.fetch" && s.trace_id == init.trace_id
    });
    assert_eq!(at_boot.parent_span_id, init.span_id, "a boot fetch is part of the init");
    assert_eq!(at_boot.attr("faas.name"), "cfg");
    assert_eq!(at_boot.attr("nimbus.config.parameters"), 1);
    assert_eq!(at_boot.attr("nimbus.config.paths"), 1);
    assert_eq!(at_boot.status_code, 0);
    assert!(at_boot.start_end_ns.0 >= init.start_end_ns.0 && at_boot.start_end_ns.1 <= init.start_end_ns.1);
    let refresh = spans
        .iter()
        .find(|s| s.name == "nimbus.config.fetch" && s.trace_id != init.trace_id)
        .expect("a refresh span");
    assert_eq!(refresh.parent_span_id, "", "a refresh is a trace of its own");
}
