//! What the outbound address policy costs per request. Side by side in alternating rounds, one GET to a
//! loopback hyper server over a new connection each time (as every guest request is):
//! - `default`: `wasmtime_wasi_http::default_send_request`, what Nimbus used before (no address check);
//! - `nimbus`: Nimbus's connector (the allow-list's literal, the address check, a pinned connect) and its
//!   HTTP exchange.
//!
//! Then the checks alone, in a loop: `AddressPolicy::check` and an allow-list scan.
//! Run with `cargo run --release -p nimbus-tests --example outbound_cost`.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use nimbus_core::caps::outbound::address::AddressPolicy;
use nimbus_core::caps::outbound::network::OutboundOptions;
use nimbus_core::caps::outbound::send::{self, Connector, Target};
use nimbus_core::manifest::OutboundRule;
use nimbus_tests::upstream::Upstream;
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::WasiBody;

const ROUNDS: usize = 20;
const PER_ROUND: usize = 500;

fn request(addr: SocketAddr) -> http::Request<WasiBody> {
    let body = Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
    http::Request::get(format!("http://{addr}/"))
        .header(http::header::HOST, addr.to_string())
        .body(body)
        .unwrap()
}

async fn via_default(addr: SocketAddr) {
    let (res, io) = wasmtime_wasi_http::default_send_request(request(addr), None)
        .await
        .unwrap();
    let io = tokio::spawn(io);
    res.into_body().collect().await.unwrap();
    io.await.unwrap().unwrap();
}

async fn via_nimbus(connector: &Connector, target: &Target) {
    let stream = connector
        .connect(target, send::connect_timeout(None))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let (res, io) = send::exchange(stream, request(target_addr(target)), None)
        .await
        .unwrap();
    let io = tokio::spawn(Box::into_pin(io));
    res.into_body().collect().await.unwrap();
    io.await.unwrap().unwrap();
}

fn target_addr(t: &Target) -> SocketAddr {
    SocketAddr::new(t.ip.unwrap(), t.port)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let up = Upstream::status(200).await;
    let ip: IpAddr = up.addr.ip();
    let connector = Connector::new(&OutboundOptions::default()).unwrap();
    let target = Target {
        authority: up.addr.to_string().parse().unwrap(),
        port: up.addr.port(),
        tls: false,
        ip: Some(ip),
        literal: Some(ip),
    };
    // Warm both paths.
    for _ in 0..200 {
        via_default(up.addr).await;
        via_nimbus(&connector, &target).await;
    }
    let (mut default_us, mut nimbus_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            via_default(up.addr).await;
        }
        let d = t.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64;
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            via_nimbus(&connector, &target).await;
        }
        let n = t.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64;
        default_us.push(d);
        nimbus_us.push(n);
        ratios.push(n / d);
    }
    println!(
        "per request (median of {ROUNDS} rounds of {PER_ROUND}): default_send_request {:.1} us, nimbus {:.1} us, \
         nimbus/default {:.3}",
        median(default_us),
        median(nimbus_us),
        median(ratios)
    );

    // The checks alone.
    let policy = AddressPolicy::new(["127.0.0.1:9001".parse().unwrap()]);
    let addrs: Vec<SocketAddr> = [
        "93.184.215.14:443",
        "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443",
        "127.0.0.1:8080",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    let n = 10_000_000u32;
    let t = Instant::now();
    for i in 0..n {
        let a = addrs[i as usize % addrs.len()];
        let _ = black_box(policy.check(black_box(a), black_box(Some(ip))));
    }
    let check_ns = per(t.elapsed(), n);
    let rules: Vec<OutboundRule> = ["https://api.example.com", "https://*.example.org", "http://127.0.0.1:*"]
        .iter()
        .map(|r| OutboundRule::parse(r).unwrap())
        .collect();
    let t = Instant::now();
    for _ in 0..n {
        let host = black_box("b.example.org");
        black_box(rules.iter().any(|r| r.matches("https", host, 443)));
    }
    let scan_ns = per(t.elapsed(), n);
    println!("AddressPolicy::check {check_ns:.1} ns per address; allow-list scan (3 rules) {scan_ns:.1} ns");
}

fn per(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1e9 / f64::from(n)
}
