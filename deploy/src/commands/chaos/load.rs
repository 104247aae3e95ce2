//! The load of a chaos run: requests started at the experiment's rate (an open loop: a slow service does not
//! slow the arrivals down; a tick that finds every slot busy is skipped and counted), each one timed to the
//! end of its response body; and the stand-in upstream an experiment may ask for.

use super::analyze::Sample;
use super::experiment::{Dependency, Experiment};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the load has done so far.
pub struct Recorder {
    /// When the load started.
    pub start: Instant,
    samples: Mutex<Vec<Sample>>,
    in_flight: AtomicU32,
    skipped: AtomicU64,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn start() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            samples: Mutex::new(Vec::new()),
            in_flight: AtomicU32::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    /// Every request completed so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Ticks skipped because every slot was busy.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn push(&self, s: Sample) {
        if let Ok(mut v) = self.samples.lock() {
            v.push(s);
        }
    }
}

/// Sends the experiment's load to `base` (`http://host:port`) until its duration is over, then waits (up to
/// [`REQUEST_TIMEOUT`]) for the requests still in flight.
pub async fn drive(base: &str, exp: &Experiment, rec: Arc<Recorder>) -> anyhow::Result<()> {
    let uri: http::Uri = format!("{base}{}", exp.path)
        .parse()
        .map_err(|e| anyhow::anyhow!("cannot request {base}{}: {e}", exp.path))?;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(exp.load.concurrency as usize)
        .build_http();
    let mut next = rec.start;
    let end = rec.start + exp.load.duration;
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let at = next.saturating_duration_since(rec.start);
        next += Duration::from_secs_f64(1.0 / exp.load.rate_at(at));
        if rec.in_flight.load(Ordering::Relaxed) >= exp.load.concurrency {
            rec.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        rec.in_flight.fetch_add(1, Ordering::Relaxed);
        let req = http::Request::builder()
            .method(exp.method.clone())
            .uri(uri.clone())
            .body(Empty::<Bytes>::new())?;
        let (client, rec) = (client.clone(), rec.clone());
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let res = client.request(req).await.ok()?;
                let status = res.status();
                res.into_body().collect().await.ok()?;
                Some(status)
            })
            .await;
            let failed = !matches!(outcome, Ok(Some(status)) if !status.is_server_error());
            let done = Instant::now();
            rec.push(Sample {
                done_s: done.saturating_duration_since(rec.start).as_secs_f64(),
                latency_ms: done.saturating_duration_since(sent).as_secs_f64() * 1e3,
                failed,
            });
            rec.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let give_up = Instant::now() + REQUEST_TIMEOUT;
    while rec.in_flight() > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Starts the stand-in upstream: every request answered 200 with the body, after the latency. It stops
/// when the returned handle is aborted (or the runtime ends).
pub async fn serve_dependency(dep: &Dependency) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(dep.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the stand-in upstream on {}: {e}", dep.listen))?;
    let addr = listener.local_addr()?;
    let body = Bytes::from(dep.body.clone());
    let latency = dep.latency;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        tokio::time::sleep(latency).await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, task))
}
