//! Sandbox escapes: a guest reaching for what its manifest did not grant — the host's files and `/proc`,
//! its environment and credentials, raw sockets and DNS, undeclared config keys and key-value buckets, and
//! (through a circuit breaker's backup origin) the metadata service and loopback. Every attempt is denied
//! with an error the guest can read, and nothing reaches the target.

use super::{attack, hostile_gateway, still_serving};
use nimbus_tests::upstream::Upstream;
use nimbus_tests::{boot, gateway, get};
use serde_json::Value;
use std::time::Duration;

/// The attempts in `report` (a JSON object of `{"ok": ..} | {"err": ..}`) that were not refused.
fn granted(report: &Value) -> Vec<String> {
    report
        .as_object()
        .unwrap_or_else(|| panic!("not a report: {report}"))
        .iter()
        .filter(|(_, outcome)| outcome.get("err").is_none())
        .map(|(attempt, outcome)| format!("{attempt}: {outcome}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reads_no_host_file_no_proc_and_no_environment() {
    let (gw, _) = hostile_gateway().await;
    let files = attack(&gw, "/files").await;
    // Reads of /etc/passwd and /proc/self/environ, listings of /, .., /proc and /sys, a write to /tmp.
    assert_eq!(files.as_object().map(|o| o.len()), Some(12), "{files}");
    assert_eq!(granted(&files), Vec::<String>::new());

    let env = attack(&gw, "/env").await;
    // No variable of the host's (its AWS credentials, PATH, ...), no arguments, no working directory.
    let vars: Vec<&str> = env["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(vars.iter().all(|v| v.starts_with("_X_AMZN_TRACE_ID=")), "{vars:?}");
    assert_eq!(env["args"], serde_json::json!([]), "{env}");
    assert!(env["cwd"].get("ok").is_none_or(|d| d == "/"), "{env}");
    still_serving(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_opens_no_socket_and_resolves_no_name() {
    let (gw, _) = hostile_gateway().await;
    // Real sockets on loopback for the guest to aim at: nothing may arrive at either.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await.ok();

    let v = attack(&gw, &format!("/sockets?port={port}")).await;
    assert_eq!(v.as_object().map(|o| o.len()), Some(4), "{v}");
    assert_eq!(granted(&v), Vec::<String>::new());

    let accepted = tokio::time::timeout(Duration::from_millis(300), tcp.accept()).await;
    assert!(accepted.is_err(), "a connection reached the listener: {accepted:?}");
    if let Some(udp) = udp {
        let mut buf = [0u8; 16];
        let got = tokio::time::timeout(Duration::from_millis(100), udp.recv_from(&mut buf)).await;
        assert!(got.is_err(), "a datagram arrived: {got:?}");
    }
    still_serving(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_config_keys_and_key_value_buckets_are_denied() {
    let (gw, _) = hostile_gateway().await;
    // The declared key is there; a key named after the host's secrets is not, nor is a path.
    let v = attack(&gw, "/config?key=greeting").await;
    assert_eq!(v["value"]["ok"], "hello", "{v}");
    assert_eq!(v["all"]["ok"], serde_json::json!(["greeting"]), "{v}");
    for key in ["AWS_SECRET_ACCESS_KEY", "PATH", "../../etc/passwd", "greeting/../token"] {
        let v = attack(&gw, &format!("/config?key={key}")).await;
        assert_eq!(v["value"], serde_json::json!({ "ok": null }), "{key}: {v}");
    }
    // The declared bucket opens; another does not.
    assert_eq!(
        attack(&gw, "/kv?bucket=mine").await["open"],
        serde_json::json!({ "ok": null })
    );
    for bucket in ["other", "", "mine/../other", "MINE"] {
        let v = attack(&gw, &format!("/kv?bucket={bucket}")).await;
        assert!(v["open"].get("err").is_some(), "{bucket:?} opened: {v}");
    }
    still_serving(&gw).await;
}

/// A function whose breaker on the failing upstream at `port` sends calls to `backup` once open.
async fn breaker_with_backup(port: u16, backup: &str) -> (nimbus_platforms::local::Gateway, nimbus_tests::Logs) {
    let text = format!(
        r#"
manifest_version = 1
[function.f]
component = "{{OUTBOUND}}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://127.0.0.1:*", "http://*:*"]
[function.f.breaker]
minimum_calls = 2
failure_rate = 0.5
open_for = "30s"
max_open_for = "60s"
[function.f.breaker.hosts."127.0.0.1:{port}"]
backup = "{backup}"
"#
    );
    let (host, logs) = boot(&text).await;
    (gateway(host, logs.clone()).await, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_backup_origin_cannot_reach_the_metadata_service_or_loopback() {
    let failing = Upstream::status(503).await;
    let port = failing.addr.port();
    let target = Upstream::status(200).await;
    // The allow-list's wildcard matches each backup, so the manifest is accepted; the address check when
    // connecting is what refuses them (metadata never; loopback only when named literally and allowed so).
    let mut sent = 0;
    for backup in [
        "http://169.254.169.254".to_owned(),
        "http://[fd00:ec2::254]".to_owned(),
        "http://[::ffff:169.254.169.254]".to_owned(),
        format!("http://localhost:{}", target.addr.port()),
    ] {
        let (gw, logs) = breaker_with_backup(port, &backup).await;
        let url = format!("http://127.0.0.1:{port}/pay");
        for _ in 0..2 {
            assert_eq!(get(gw.addr(), &format!("/f?url={url}")).await.json()["status"], 503);
        }
        let v = get(gw.addr(), &format!("/f?url={url}")).await.json();
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("DestinationIpProhibited")),
            "{backup}: {v}"
        );
        let refused = nimbus_tests::records(&logs, "outbound request refused");
        assert_eq!(refused.len(), 1, "{backup}: {refused:?}");
        sent += 2;
        assert_eq!(
            failing.requests().len(),
            sent,
            "the open circuit sent nothing to the failing host"
        );
    }
    assert_eq!(target.requests().len(), 0, "a backup reached loopback");
    assert_eq!(target.connections().await, 0);
}
