//! Outbound HTTP: denied unless the manifest allows the origin, and never to an address the policy
//! refuses — whatever the URL's spelling, whatever a name resolves to, however many redirects lead there.
//!
//! Every request here stays on loopback: refused addresses are refused before any connection is made,
//! and [`FakeNetwork`] plays public hosts and hostile DNS answers with loopback servers.

use nimbus_core::BootOptions;
use nimbus_core::caps::outbound::network::OutboundOptions;
use nimbus_platforms::local::Gateway;
use nimbus_tests::fake_network::FakeNetwork;
use nimbus_tests::upstream::Upstream;
use nimbus_tests::{Logs, boot, boot_with, gateway, get};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

/// The guest's error for a request the allow-list does not name.
const DENIED: &str = "HttpRequestDenied";
/// The guest's error for a request to an address the policy refuses.
const PROHIBITED: &str = "DestinationIpProhibited";

/// What the `outbound` guest at `/{route}` answered when asked to fetch `url` (following up to
/// `follow` redirects).
async fn fetch(gw: &Gateway, route: &str, url: &str) -> Value {
    get(gw.addr(), &format!("/{route}?url={url}")).await.json()
}

async fn fetch_following(gw: &Gateway, route: &str, url: &str) -> Value {
    get(gw.addr(), &format!("/{route}?follow=3&url={url}")).await.json()
}

/// Asserts the guest got `code` for `url`.
fn assert_refused(v: &Value, code: &str, url: &str) {
    let mut wrong = Vec::new();
    note_unless_refused(v, code, url, &mut wrong);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Notes in `wrong` what the guest got for `url` unless it is `code`, so a test reports every request
/// that got through, not just the first.
fn note_unless_refused(v: &Value, code: &str, url: &str, wrong: &mut Vec<String>) {
    if !v["error"].as_str().is_some_and(|e| e.contains(code)) {
        wrong.push(format!("{url}: expected {code}, got {v}"));
    }
}

/// The host's "outbound request refused" records.
fn refusals(logs: &Logs) -> Vec<Value> {
    logs.lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["msg"] == "outbound request refused")
        .collect()
}

/// Boots `text` with the outbound network and control endpoints given, behind a gateway.
async fn serve(text: &str, outbound: OutboundOptions) -> (Gateway, Logs) {
    let (host, logs) = boot_with(
        text,
        BootOptions {
            outbound,
            ..BootOptions::default()
        },
    )
    .await;
    (gateway(host, logs.clone()).await, logs)
}

fn fake(net: &Arc<FakeNetwork>) -> OutboundOptions {
    OutboundOptions {
        network: net.clone(),
        ..OutboundOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_are_denied_by_default_and_allowed_by_the_list() {
    // A real upstream on loopback for the allowed case.
    let up = Upstream::status(207).await;
    let (host, logs) = boot(&format!(
        r#"
manifest_version = 1
[function.denied]
component = "{{OUTBOUND}}"
routes = ["GET /denied"]
[function.allowed]
component = "{{OUTBOUND}}"
routes = ["GET /allowed"]
allowed_outbound_hosts = ["http://127.0.0.1:{}", "http://169.254.169.254"]
"#,
        up.addr.port()
    ))
    .await;
    let gw = gateway(host, logs.clone()).await;
    let url = format!("http://127.0.0.1:{}/x", up.addr.port());
    assert_refused(&fetch(&gw, "denied", &url).await, DENIED, &url);
    let v = fetch(&gw, "allowed", &url).await;
    assert_eq!(v["status"], 207, "{v}");
    // Another port on the same host is not allowed.
    assert_refused(&fetch(&gw, "allowed", "http://127.0.0.1:1/x").await, DENIED, "port 1");
    // The metadata endpoint stays out of reach even when listed.
    let imds = "http://169.254.169.254/latest/meta-data/";
    assert_refused(&fetch(&gw, "allowed", imds).await, PROHIBITED, imds);
    // Each refusal is logged with its reason, never with the path.
    let r = refusals(&logs);
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0]["reason"], "not in allowed_outbound_hosts");
    assert_eq!(r[0]["function"], "denied");
    assert_eq!(r[0]["app"], "nimbus", "a manifest without `[app]` is the app `nimbus`");
    assert_eq!(r[2]["reason"], "cloud metadata service");
    assert_eq!(r[2]["address"], "169.254.169.254:80");
    assert!(!logs.lock().unwrap().iter().any(|l| l.contains("meta-data")));
}

/// With `*:*` allowed, the cloud metadata services stay out of reach however their address is spelled:
/// every numeric form the system resolver accepts, IPv4 inside IPv6, and the IPv6 endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_metadata_address_is_refused_under_a_wildcard() {
    let (host, logs) = boot(
        r#"
manifest_version = 1
[function.any]
component = "{OUTBOUND}"
routes = ["GET /any"]
allowed_outbound_hosts = ["http://*:*", "https://*:*"]
"#,
    )
    .await;
    let gw = gateway(host, logs.clone()).await;
    let urls = [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://0251.0376.0251.0376/latest/meta-data/",
        "http://169.254.43518/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[fe80::a9fe:a9fe]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.170.2/v2/credentials/x",
        "http://100.100.100.200/latest/meta-data/",
        "http://0x646464c8/latest/meta-data/",
        "http://[fd20:ce::254]/computeMetadata/v1/",
        "https://0xa9fea9fe/latest/meta-data/",
    ];
    let mut wrong = Vec::new();
    for url in urls {
        note_unless_refused(&fetch(&gw, "any", url).await, PROHIBITED, url, &mut wrong);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let r = refusals(&logs);
    assert_eq!(r.len(), urls.len(), "one record per refusal: {r:?}");
    assert_eq!(r[1]["host"], "2852039166");
    assert_eq!(r[1]["address"], "169.254.169.254:80");
    assert_eq!(r[1]["reason"], "cloud metadata service");
    assert_eq!(r[8]["reason"], "link-local address");
    assert_eq!(r[12]["address"], "100.100.100.200:80");
}

/// `*:*` does not open the host's own loopback services: not by `127.0.0.1`, not by another spelling,
/// not by `localhost`, not by the unspecified address (which Linux connects to the host). Nothing even
/// connects to the server listening there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_never_reaches_loopback_by_any_spelling() {
    let local = Upstream::status(207).await;
    let p = local.addr.port();
    let (host, logs) = boot(&format!(
        r#"
manifest_version = 1
[function.any]
component = "{{OUTBOUND}}"
routes = ["GET /any"]
allowed_outbound_hosts = ["http://*:*"]
[function.literal]
component = "{{OUTBOUND}}"
routes = ["GET /literal"]
allowed_outbound_hosts = ["http://127.0.0.1:{p}"]
"#
    ))
    .await;
    let gw = gateway(host, logs).await;
    let mut wrong = Vec::new();
    for spelling in [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "localhost",
        "0.0.0.0",
        "0",
        "[::]",
    ] {
        let url = format!("http://{spelling}:{p}/");
        note_unless_refused(&fetch(&gw, "any", &url).await, PROHIBITED, &url, &mut wrong);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(local.connections().await, 0, "nothing may reach the loopback server");
    // The server is there: the function that names it literally reaches it.
    let v = fetch(&gw, "literal", &format!("http://127.0.0.1:{p}/")).await;
    assert_eq!(v["status"], 207, "{v}");
    assert_eq!(local.connections().await, 1);
}

/// An allow-list *name* never grants the internal address it resolves to (a DNS record is all an
/// attacker needs): metadata, loopback, private and unique-local answers are refused, and so is an
/// answer mixing a public address with an internal one. The same loopback server named as an IP works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_never_grants_the_internal_address_it_resolves_to() {
    let local = Upstream::status(207).await;
    let p = local.addr.port();
    let net = Arc::new(FakeNetwork::default());
    for (name, ips) in [
        ("imds.example.org", &["169.254.169.254"][..]),
        ("ecs.example.org", &["169.254.170.2"]),
        ("imds6.example.org", &["fd00:ec2::254"]),
        ("mapped.example.org", &["::ffff:169.254.169.254"]),
        ("loop.example.org", &["127.0.0.1"]),
        ("private.example.org", &["10.0.0.1"]),
        ("ula.example.org", &["fd12:3456::1"]),
        ("mixed.example.org", &["93.184.215.14", "127.0.0.1"]),
    ] {
        net.answer(name, ips);
    }
    let (gw, logs) = serve(
        &format!(
            r#"
manifest_version = 1
[function.f]
component = "{{OUTBOUND}}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://*.example.org:*", "http://127.0.0.1:{p}"]
"#
        ),
        fake(&net),
    )
    .await;
    let mut wrong = Vec::new();
    for name in ["imds", "ecs", "imds6", "mapped", "loop", "private", "ula", "mixed"] {
        let url = format!("http://{name}.example.org:{p}/latest/meta-data/");
        note_unless_refused(&fetch(&gw, "f", &url).await, PROHIBITED, &url, &mut wrong);
        assert_eq!(net.lookups(&format!("{name}.example.org")), 1);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        net.dials(),
        Vec::<SocketAddr>::new(),
        "nothing is dialled when any address is refused"
    );
    assert_eq!(local.connections().await, 0);
    let reasons: Vec<Value> = refusals(&logs).iter().map(|r| r["reason"].clone()).collect();
    assert_eq!(reasons[4], "loopback address not allowed literally");
    assert_eq!(reasons[5], "private address not allowed literally");
    // The literal reaches the same server.
    let v = fetch(&gw, "f", &format!("http://127.0.0.1:{p}/")).await;
    assert_eq!(v["status"], 207, "{v}");
    assert_eq!(local.connections().await, 1);
}

/// `localhost` is a name too: allowing it by name does not open loopback (the system resolver, through
/// `/etc/hosts`); allowing `127.0.0.1` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_by_name_is_not_loopback_allowed_literally() {
    let local = Upstream::status(207).await;
    let p = local.addr.port();
    let (host, logs) = boot(&format!(
        r#"
manifest_version = 1
[function.f]
component = "{{OUTBOUND}}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://localhost:{p}", "http://127.0.0.1:{p}"]
"#
    ))
    .await;
    let gw = gateway(host, logs).await;
    let url = format!("http://localhost:{p}/");
    assert_refused(&fetch(&gw, "f", &url).await, PROHIBITED, &url);
    assert_eq!(local.connections().await, 0);
    let v = fetch(&gw, "f", &format!("http://127.0.0.1:{p}/")).await;
    assert_eq!(v["status"], 207, "{v}");
}

/// A name is looked up once; the connection goes to the address that was checked. A DNS answer that
/// changes between lookups (public first, loopback next) cannot turn the checked request into a
/// connection to loopback; the next request looks the name up again and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_checked_is_the_address_connected_to() {
    let public = Upstream::status(207).await;
    let local = Upstream::status(299).await;
    let p = local.addr.port();
    let net = Arc::new(FakeNetwork::default());
    net.answers_in_turn("rebind.example.org", &[&["93.184.215.14"], &["127.0.0.1"]]);
    let checked: SocketAddr = format!("93.184.215.14:{p}").parse().unwrap();
    net.route(checked, public.addr);
    let (gw, _logs) = serve(
        r#"
manifest_version = 1
[function.f]
component = "{OUTBOUND}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://*.example.org:*"]
"#,
        fake(&net),
    )
    .await;
    let url = format!("http://rebind.example.org:{p}/x");
    let v = fetch(&gw, "f", &url).await;
    assert_eq!(v["status"], 207, "{v}");
    assert_eq!(net.lookups("rebind.example.org"), 1, "one lookup per request");
    assert_eq!(net.dials(), vec![checked]);
    let seen = public.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["host"], format!("rebind.example.org:{p}"));
    // The second lookup answers loopback: refused, and nothing connects there.
    assert_refused(&fetch(&gw, "f", &url).await, PROHIBITED, &url);
    assert_eq!(net.lookups("rebind.example.org"), 2);
    assert_eq!(net.dials(), vec![checked]);
    assert_eq!(local.connections().await, 0);
}

/// HTTPS to a name connects to the checked address and still verifies the *name*: the TLS ClientHello
/// carries it as the server name (SNI), and an untrusted server fails the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_verifies_the_name_over_the_pinned_connection() {
    let tls_server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = tls_server.local_addr().unwrap();
    // Reads the first TLS record (the ClientHello), then refuses the handshake with a fatal
    // `handshake_failure` alert, as a server that cannot prove the name would. (A bare hang-up is
    // `ConnectionTerminated` under wasmtime 50; it was `TlsProtocolError` under 48.)
    let hello = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = tls_server.accept().await.unwrap();
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[3], head[4]]))];
        s.read_exact(&mut body).await.unwrap();
        s.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]).await.unwrap();
        (head[0], body)
    });
    let net = Arc::new(FakeNetwork::default());
    net.answer("api.example.org", &["93.184.215.14"]);
    net.route("93.184.215.14:443".parse().unwrap(), tls_addr);
    let (gw, _logs) = serve(
        r#"
manifest_version = 1
[function.f]
component = "{OUTBOUND}"
routes = ["GET /f"]
allowed_outbound_hosts = ["https://api.example.org"]
"#,
        fake(&net),
    )
    .await;
    let v = fetch(&gw, "f", "https://api.example.org/v1").await;
    assert!(v["error"].as_str().is_some_and(|e| e.contains("Tls")), "{v}");
    let (record_type, hello) = hello.await.unwrap();
    assert_eq!(record_type, 0x16, "a TLS handshake record");
    assert!(
        hello.windows(15).any(|w| w == b"api.example.org"),
        "the ClientHello names the host"
    );
    assert_eq!(net.dials(), vec!["93.184.215.14:443".parse::<SocketAddr>().unwrap()]);
}

/// The platform's control endpoints (the Lambda Runtime API, …) stay refused even when an allow-list
/// entry names their address literally, on every loopback address; other ports stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_endpoints_stay_refused_when_allowed_literally() {
    let runtime_api = Upstream::status(200).await;
    let other = Upstream::status(207).await;
    let p = runtime_api.addr.port();
    let (gw, logs) = serve(
        r#"
manifest_version = 1
[function.f]
component = "{OUTBOUND}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://127.0.0.1:*", "http://127.0.0.2:*", "http://[::1]:*"]
"#,
        OutboundOptions {
            control_endpoints: vec![runtime_api.addr],
            ..OutboundOptions::default()
        },
    )
    .await;
    for host in ["127.0.0.1", "127.0.0.2", "[::1]"] {
        let url = format!("http://{host}:{p}/2018-06-01/runtime/invocation/next");
        assert_refused(&fetch(&gw, "f", &url).await, PROHIBITED, &url);
    }
    assert_eq!(runtime_api.connections().await, 0);
    let r = refusals(&logs);
    assert!(r.iter().all(|r| r["reason"] == "platform control endpoint"), "{r:?}");
    assert!(!logs.lock().unwrap().iter().any(|l| l.contains("invocation/next")));
    let v = fetch(&gw, "f", &format!("http://127.0.0.1:{}/", other.addr.port())).await;
    assert_eq!(v["status"], 207, "{v}");
}

/// A redirect is a new request, checked like any other: an allowed upstream answering 302 to a
/// metadata or loopback address leads nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_refused_addresses_are_refused() {
    let local = Upstream::status(299).await;
    let fine = Upstream::status(207).await;
    let targets: Arc<Vec<String>> = Arc::new(vec![
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://0xa9fea9fe/latest/meta-data/".into(),
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/".into(),
        format!("http://2130706433:{}/", local.addr.port()),
        format!("http://localhost:{}/", local.addr.port()),
        format!("http://127.0.0.1:{}/", fine.addr.port()),
    ]);
    let to = targets.clone();
    let redirector = Upstream::start(Arc::new(move |req| {
        let i: usize = req.uri.path().trim_start_matches("/to/").parse().unwrap_or(0);
        http::Response::builder()
            .status(302)
            .header("location", to[i].as_str())
            .body(String::new())
            .unwrap()
    }))
    .await;
    let (host, logs) = boot(&format!(
        r#"
manifest_version = 1
[function.f]
component = "{{OUTBOUND}}"
routes = ["GET /f"]
allowed_outbound_hosts = ["http://127.0.0.1:{}", "http://127.0.0.1:{}", "http://*:*"]
"#,
        redirector.addr.port(),
        fine.addr.port()
    ))
    .await;
    let gw = gateway(host, logs).await;
    let mut wrong = Vec::new();
    for (i, target) in targets[..5].iter().enumerate() {
        let url = format!("http://127.0.0.1:{}/to/{i}", redirector.addr.port());
        note_unless_refused(&fetch_following(&gw, "f", &url).await, PROHIBITED, target, &mut wrong);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(redirector.requests().len(), 5, "every first hop was allowed");
    assert_eq!(local.connections().await, 0);
    // Following an allowed redirect works.
    let url = format!("http://127.0.0.1:{}/to/5", redirector.addr.port());
    let v = fetch_following(&gw, "f", &url).await;
    assert_eq!(v["status"], 207, "{v}");
}
