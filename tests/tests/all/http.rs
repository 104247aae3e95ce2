//! HTTP functions over the local gateway.

use crate::shared_gateway;
use nimbus_tests::{get, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_200_with_request_id() {
    let (gw, logs) = shared_gateway().await;
    let r = get(gw.addr(), "/hello?name=tester").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, tester!\n");
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    let rid = r.headers["x-nimbus-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 36);
    // The guest's println! became a JSON log line carrying the same request id.
    let lines = logs.lock().unwrap().clone();
    let guest: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["request_id"] == rid.as_str())
        .collect();
    assert!(
        guest
            .iter()
            .any(|v| v["msg"] == "saying hello to tester" && v["function"] == "hello" && v["stream"] == "stdout"),
        "{guest:?}"
    );
    assert!(
        guest
            .iter()
            .any(|v| v["msg"] == "request" && v["status"] == 200 && v["path"] == "/hello"),
        "{guest:?}"
    );
    // Both the guest's lines and the access log name the app (the manifest's `[app] name`).
    assert!(
        guest.len() >= 2 && guest.iter().all(|v| v["app"] == "shop"),
        "{guest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_wasi_http_proxy_component_runs_unchanged() {
    let (gw, _) = shared_gateway().await;
    let r = get(gw.addr(), "/proxy").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn std_component_importing_wasi_cli_runs_with_empty_environment() {
    let (gw, _) = shared_gateway().await;
    let r = get(gw.addr(), "/std").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["env"],
        serde_json::json!([]),
        "the host environment must not leak: {v}"
    );
    assert!(v["now"].as_u64().unwrap() > 1_600_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_404_and_405() {
    let (gw, _) = shared_gateway().await;
    let r = get(gw.addr(), "/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "NotFound");
    let r = request(gw.addr(), "DELETE", "/hello", None, &[]).await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_context_reaches_the_guest() {
    let (gw, logs) = shared_gateway().await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = request(
        gw.addr(),
        "GET",
        "/context",
        None,
        &[("traceparent", tp), ("tracestate", "congo=t61rcWkgMzE")],
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["function"], "context");
    // Same trace and flags; the parent is the invocation's own span, child of the caller's.
    let seen = v["traceparent"].as_str().unwrap();
    assert_eq!(&seen[..36], &tp[..36]);
    assert_eq!(&seen[52..], "-01");
    assert_ne!(&seen[36..52], &tp[36..52]);
    assert_eq!(v["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(v["request_id"], r.headers["x-nimbus-request-id"].to_str().unwrap());
    let remaining = v["remaining_ms"].as_u64().unwrap();
    assert!(remaining > 5_000 && remaining <= 10_000, "remaining {remaining}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let deadline = v["deadline_ms"].as_u64().unwrap();
    assert!(deadline > now_ms && deadline <= now_ms + 10_000);
    // stderr lines are logged too, at WARN, with the trace id.
    let lines = logs.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("context line two")
        && l.contains("\"level\":\"WARN\"")
        && l.contains("4bf92f3577b34da6a3ce929d0e0e4736")));
    // wasi:logging records (the SDK's `log`) carry their level, context and ids.
    let record = |needle: &str| -> serde_json::Value {
        let line = lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no record {needle:?} in {lines:?}"));
        serde_json::from_str(line).unwrap()
    };
    let error = record("context sdk record");
    assert_eq!(error["level"], "ERROR");
    assert_eq!(error["stream"], "sdk");
    assert_eq!(error["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(error["function"], "context");
    assert_eq!(error["app"], "shop");
    assert_eq!(error["request_id"], v["request_id"]);
    let debug = record("context sdk debug");
    assert_eq!(debug["level"], "DEBUG");
    assert_eq!(debug["context"], "billing");

    // A malformed traceparent starts a new trace instead of failing.
    let r = request(gw.addr(), "GET", "/context", None, &[("traceparent", "00-zz-bad")]).await;
    assert_eq!(r.status, 200);
    let tp2 = r.json()["traceparent"].as_str().unwrap().to_string();
    assert_eq!(tp2.len(), 55);
    assert_ne!(tp2, "00-zz-bad");

    // X-Ray (from an ALB or API Gateway in front) and Function Compute's
    // span context are bridged to W3C when there is no traceparent. The
    // guest sees the caller's trace id and sampling; its parent id is the
    // invocation's own span.
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let r = request(gw.addr(), "GET", "/context", None, &[("x-amzn-trace-id", xray)]).await;
    let tp = r.json()["traceparent"].as_str().unwrap().to_string();
    assert!(
        tp.starts_with("00-5759e988bd862e3fe1be46a994272793-") && tp.ends_with("-01"),
        "{tp}"
    );
    let fc = "1f2e3d4c5b6a7988:a1b2c3d4e5f60718:0:1";
    let r = request(
        gw.addr(),
        "GET",
        "/context",
        None,
        &[("x-fc-tracing-opentracing-span-context", fc)],
    )
    .await;
    let tp = r.json()["traceparent"].as_str().unwrap().to_string();
    assert!(
        tp.starts_with("00-00000000000000001f2e3d4c5b6a7988-") && tp.ends_with("-01"),
        "{tp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_round_trip_and_oversized_ones_get_413() {
    let (gw, _) = shared_gateway().await;
    // Within the limit: the SDK reads it and the handler runs.
    let r = request(gw.addr(), "POST", "/upload", Some(&vec![b'a'; 1000]), &[]).await;
    assert_eq!(r.status, 200);
    // Declared too large: refused before the guest runs.
    let r = request(gw.addr(), "POST", "/upload", Some(&vec![b'a'; 100 * 1024]), &[]).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], "Nimbus.PayloadTooLarge");
    assert!(v["message"].as_str().unwrap().contains("max_request_body"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_oversized_request_body_gets_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (gw, _) = shared_gateway().await;
    // No content-length: the limit trips while the guest reads the stream.
    let mut s = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'z'; 4096];
    for _ in 0..40 {
        // The server may answer and close early; later writes may then fail.
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || s.write_all(&chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("Nimbus.PayloadTooLarge"), "{text}");
}
