//! Per-invocation cost of the host itself, without HTTP or sockets: how long
//! `Host::invoke` takes for a trivial event function (fresh instance, config,
//! invocation context, logs) and for the plain HTTP hello, one at a time and
//! with 2 concurrent callers. Run with
//! `cargo run --release -p nimbus-tests --example invoke_cost`.

use nimbus_tests::bench::{event_once, http_once};
use std::sync::Arc;
use std::time::Instant;

const N: usize = 20_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let host = nimbus_tests::bench::boot().await;
    for (name, http) in [("event (event_check)", false), ("http (proxy_hello)", true)] {
        for _ in 0..1000 {
            if http {
                http_once(&host).await
            } else {
                event_once(&host).await
            }
        }
        let t = Instant::now();
        for _ in 0..N {
            if http {
                http_once(&host).await
            } else {
                event_once(&host).await
            }
        }
        let serial = t.elapsed().as_secs_f64() * 1e6 / N as f64;
        let t = Instant::now();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let host: Arc<nimbus_core::Host> = host.clone();
                tokio::spawn(async move {
                    for _ in 0..N / 2 {
                        if http {
                            http_once(&host).await
                        } else {
                            event_once(&host).await
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let rate = N as f64 / t.elapsed().as_secs_f64();
        println!("{name:22} {serial:6.1} µs per invocation (serial)   {rate:8.0} invocations/s (2 callers)");
    }
}
