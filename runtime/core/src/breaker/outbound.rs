//! The breaker layer of outbound HTTP: one [`Breaker`] per (function, host, port) the function calls, for
//! the functions whose manifest has a `breaker` section. It sits over the fault layer, so an injected fault
//! counts as the upstream's.
//!
//! While a host's circuit is open a call never leaves: it is answered by the host's declared fallback, by
//! the last good response to the same GET (`cache_get`), or sent to the declared backup origin; with none of
//! these it fails at once with `internal-error("circuit-open: HOST:PORT; retry after N ms")` (the SDK's
//! `nimbus_sdk::http::circuit_open` reads it). Every answer the layer makes carries `x-nimbus-circuit`.
//!
//! A call counts as failed when it gets no response or a 5xx, and as slow when its response head took
//! `slow_call` or longer.

use super::machine::{Admit, Breaker, Outcome, State, Transition};
use crate::caps::intercept::Intercept;
use crate::caps::outbound::send::{ResponseBody, Target};
use crate::caps::outbound::{Exchange, OutboundCall, OutboundHttp, SendError};
use crate::logs::{LogSink, format_record};
use crate::manifest::{Backup, BreakerSpec, FunctionSpec, JitterSpec, OpenAnswer};
use crate::metrics::MetricsFormat;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::Error as HttpError;

/// Hosts one function keeps breakers for; calls to further hosts pass unguarded (a wildcard allow-list
/// must not grow the table without bound).
const MAX_HOSTS: usize = 256;
/// Cached GET responses per host (`cache_get`), and the largest body kept.
const MAX_CACHED: usize = 64;
const MAX_CACHED_BODY: usize = 256 * 1024;

/// The breakers of every function that declares them.
pub struct Breakers {
    functions: HashMap<String, Arc<FunctionBreakers>>,
    sink: LogSink,
    origin: Instant,
    /// Where breaker states and, over OTLP, every outbound call's duration and outcome are recorded.
    metrics: Arc<MetricsFormat>,
}

impl Breakers {
    /// The breakers `specs` declare; their states (and, over OTLP, every outbound call) go to `metrics`.
    pub fn new<'a>(
        specs: impl IntoIterator<Item = &'a FunctionSpec>,
        sink: LogSink,
        metrics: Arc<MetricsFormat>,
    ) -> Breakers {
        let functions = specs
            .into_iter()
            .filter_map(|f| {
                let spec = f.breaker.clone()?;
                Some((
                    f.name.clone(),
                    Arc::new(FunctionBreakers {
                        function: f.name.clone(),
                        spec,
                        hosts: Mutex::new(HashMap::new()),
                    }),
                ))
            })
            .collect();
        Breakers {
            functions,
            sink,
            origin: Instant::now(),
            metrics,
        }
    }

    /// Whether any function declares breakers.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// Every breaker's state now: (function, `host:port`, state), sorted.
    pub fn states(&self) -> Vec<(String, String, State)> {
        let mut out = Vec::new();
        for f in self.functions.values() {
            for (key, h) in f.hosts.lock().map(|h| h.clone()).unwrap_or_default() {
                let state = h.machine.lock().map_or(State::Closed, |m| m.state());
                out.push((f.function.clone(), format!("{}:{}", key.0, key.1), state));
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// How many of `function`'s circuits are open now (no allocation: the ladder asks at every admission).
    pub fn open_count(&self, function: &str) -> u32 {
        let Some(f) = self.functions.get(function) else {
            return 0;
        };
        let Ok(hosts) = f.hosts.lock() else {
            return 0;
        };
        hosts
            .values()
            .filter(|h| h.machine.lock().is_ok_and(|m| m.state() == State::Open))
            .count() as u32
    }

    /// How many of `function`'s hosts are answered from their fallback because their latency jitters
    /// (level 1).
    pub fn jittering_count(&self, function: &str) -> u32 {
        let Some(f) = self.functions.get(function) else {
            return 0;
        };
        let now = self.origin.elapsed();
        let Ok(hosts) = f.hosts.lock() else {
            return 0;
        };
        hosts
            .values()
            .filter(|h| h.jitter.lock().is_ok_and(|j| j.serving_until.is_some_and(|u| now < u)))
            .count() as u32
    }

    /// Closes every breaker of `function` (`None`: of every function): the operator's reset.
    pub fn reset(&self, function: Option<&str>) {
        for f in self
            .functions
            .values()
            .filter(|f| function.is_none_or(|n| n == f.function))
        {
            let hosts: Vec<(u16, String)> = f
                .hosts
                .lock()
                .map(|h| h.keys().map(|(host, port)| (*port, host.clone())).collect())
                .unwrap_or_default();
            for (port, host) in hosts {
                self.force(&f.function, &host, port, false);
            }
        }
    }

    /// Forces a breaker open or closed (the operator's override); `false` when there is no such breaker.
    pub fn force(&self, function: &str, host: &str, port: u16, open: bool) -> bool {
        let Some(f) = self.functions.get(function) else {
            return false;
        };
        let Some(h) = f
            .hosts
            .lock()
            .ok()
            .and_then(|h| h.get(&(host.to_owned(), port)).cloned())
        else {
            return false;
        };
        let t = h
            .machine
            .lock()
            .ok()
            .and_then(|mut m| m.force(self.origin.elapsed(), open));
        if let Some(t) = t {
            self.report(&f.function, &h.key, &t);
        }
        true
    }

    fn report_jitter(&self, function: &str, host: &str, p95: f64, spec: &JitterSpec) {
        tracing::info!(function, host, p95_ms = p95, "transient jitter: serving the fallback");
        self.sink.write_line(&format_record(
            "INFO",
            "transient jitter",
            None,
            &[
                ("function", function.into()),
                ("host", host.into()),
                ("p95_ms", p95.into()),
                ("windows", spec.windows.into()),
                ("serving_fallback_for_ms", (spec.window.as_millis() as u64).into()),
            ],
        ));
    }

    fn report(&self, function: &str, host: &str, t: &Transition) {
        self.metrics.breaker_state(&self.sink, function, host, t.to.gauge());
        tracing::info!(function, host, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "circuit breaker");
        self.sink.write_line(&format_record(
            if t.to == State::Open { "WARN" } else { "INFO" },
            "circuit breaker transition",
            None,
            &[
                ("function", function.into()),
                ("host", host.into()),
                ("from", t.from.as_str().into()),
                ("to", t.to.as_str().into()),
                ("reason", t.reason.clone().into()),
            ],
        ));
    }
}

struct FunctionBreakers {
    function: String,
    spec: BreakerSpec,
    hosts: Mutex<HashMap<(String, u16), Arc<HostBreaker>>>,
}

impl FunctionBreakers {
    /// The breaker of `host:port`, made on first use (`None` past [`MAX_HOSTS`]).
    fn host(&self, host: &str, port: u16) -> Option<Arc<HostBreaker>> {
        let mut hosts = self.hosts.lock().ok()?;
        let key = (host.to_owned(), port);
        if let Some(h) = hosts.get(&key) {
            return Some(h.clone());
        }
        if hosts.len() >= MAX_HOSTS {
            return None;
        }
        let h = Arc::new(HostBreaker {
            key: format!("{host}:{port}"),
            machine: Mutex::new(Breaker::new(self.spec.settings.clone())),
            jitter: Mutex::new(Jitter::default()),
            answer: self.spec.answer(host, port).cloned().unwrap_or_default(),
            cache: Mutex::new(HashMap::new()),
        });
        hosts.insert(key, h.clone());
        Some(h)
    }
}

struct HostBreaker {
    key: String,
    machine: Mutex<Breaker>,
    /// Level 1: this host's latencies in the current window, and whether its fallback is being served.
    jitter: Mutex<Jitter>,
    answer: OpenAnswer,
    /// `cache_get`: the last good response to each GET URL (path and query).
    cache: Mutex<HashMap<String, Cached>>,
}

/// One host's latency window for level 1 ([`crate::manifest::JitterSpec`]).
#[derive(Default)]
struct Jitter {
    /// When the current window started (since the breakers' origin).
    started: Duration,
    /// Its latencies, in milliseconds (the first [`MAX_JITTER_SAMPLES`]).
    samples: Vec<f32>,
    /// Consecutive windows whose p95 was over the threshold.
    slow_windows: u32,
    /// Until when the host's fallback is served instead of calling it.
    serving_until: Option<Duration>,
}

/// Latencies kept per window: enough for a p95, bounded whatever the rate.
const MAX_JITTER_SAMPLES: usize = 4096;

impl Jitter {
    /// Adds a call that took `took` at `now`; at a window's end, judges it. `Some(p95)` when the host starts
    /// being answered from its fallback.
    fn record(&mut self, spec: &JitterSpec, now: Duration, took: Duration) -> Option<f64> {
        if self.samples.len() < MAX_JITTER_SAMPLES {
            self.samples.push(took.as_secs_f32() * 1e3);
        }
        if now.saturating_sub(self.started) < spec.window {
            return None;
        }
        self.samples.sort_by(f32::total_cmp);
        let rank = ((self.samples.len() as f64) * 0.95).ceil() as usize;
        let p95 = f64::from(self.samples[rank.clamp(1, self.samples.len()) - 1]);
        self.samples.clear();
        self.started = now;
        if p95 > spec.p95.as_secs_f64() * 1e3 {
            self.slow_windows += 1;
        } else {
            self.slow_windows = 0;
        }
        if self.slow_windows >= spec.windows {
            self.slow_windows = 0;
            self.serving_until = Some(now + spec.window);
            return Some(p95);
        }
        None
    }

    /// Whether the fallback is being served at `now`.
    fn serving(&mut self, now: Duration) -> bool {
        match self.serving_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.serving_until = None;
                self.started = now;
                false
            }
            None => false,
        }
    }
}

#[derive(Clone)]
struct Cached {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

/// Installs the breaker layer over outbound HTTP.
pub struct BreakerIntercept(pub Arc<Breakers>);

impl Intercept for BreakerIntercept {
    fn outbound(&self, inner: Arc<dyn OutboundHttp>) -> Arc<dyn OutboundHttp> {
        if self.0.is_empty() && !matches!(*self.0.metrics, MetricsFormat::Otlp(_)) {
            return inner;
        }
        Arc::new(Guarded {
            inner,
            breakers: self.0.clone(),
        })
    }
}

struct Guarded {
    inner: Arc<dyn OutboundHttp>,
    breakers: Arc<Breakers>,
}

impl OutboundHttp for Guarded {
    fn send(&self, call: OutboundCall) -> BoxFuture<'_, Result<Exchange, SendError>> {
        let Some(f) = self.breakers.functions.get(&*call.inv.function) else {
            return self.measured(call);
        };
        let host = call.target.host().trim_end_matches('.').to_ascii_lowercase();
        let Some(h) = f.host(&host, call.target.port) else {
            return self.measured(call);
        };
        let breakers = &self.breakers;
        let url = (call.request.method() == http::Method::GET && h.answer.cache_get).then(|| {
            call.request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned()
        });
        // Level 1: while the host's latency jitters, its declared answer is served instead of calling it.
        if f.spec.jitter.is_some()
            && h.jitter.lock().is_ok_and(|mut j| j.serving(breakers.origin.elapsed()))
            && let Some(answer) = open_answer(&h, url.as_deref(), "jitter")
        {
            return Box::pin(async move { Ok(answer) });
        }
        let (admit, t) = match h.machine.lock() {
            Ok(mut m) => m.admit(breakers.origin.elapsed()),
            Err(_) => return self.inner.send(call),
        };
        if let Some(t) = &t {
            breakers.report(&f.function, &h.key, t);
        }
        match admit {
            Admit::Pass { probe } => Box::pin(async move {
                let started = Instant::now();
                let sent = self.inner.send(call).await;
                let outcome = Outcome {
                    failed: sent.as_ref().map_or(true, |(r, _)| r.status().is_server_error()),
                    took: started.elapsed(),
                };
                breakers
                    .metrics
                    .dependency_call(&f.function, &h.key, outcome.took, outcome.failed);
                if let Some(spec) = &f.spec.jitter
                    && !outcome.failed
                    && let Some(p95) = h
                        .jitter
                        .lock()
                        .ok()
                        .and_then(|mut j| j.record(spec, breakers.origin.elapsed(), outcome.took))
                {
                    breakers.report_jitter(&f.function, &h.key, p95, spec);
                }
                let t = h
                    .machine
                    .lock()
                    .ok()
                    .and_then(|mut m| m.record(breakers.origin.elapsed(), probe, outcome));
                if let Some(t) = &t {
                    breakers.report(&f.function, &h.key, t);
                }
                match (sent, url) {
                    (Ok((res, io)), Some(url)) if res.status().is_success() => Ok(keep(&h, url, res, io)),
                    (sent, _) => sent,
                }
            }),
            Admit::Refuse { retry_after } => {
                if let Some(answer) = open_answer(&h, url.as_deref(), "open") {
                    return Box::pin(async move { Ok(answer) });
                }
                if let Some(backup) = &h.answer.backup {
                    match redirect(call, backup) {
                        Ok(call) => return self.inner.send(call),
                        Err(e) => return Box::pin(async move { Err(SendError::Failed(e)) }),
                    }
                }
                let message = format!("circuit-open: {}; retry after {} ms", h.key, retry_after.as_millis());
                Box::pin(async move { Err(SendError::Failed(HttpError::InternalError(Some(message)))) })
            }
        }
    }
}

impl Guarded {
    /// A call no breaker guards, measured for the metrics.
    fn measured(&self, call: OutboundCall) -> BoxFuture<'_, Result<Exchange, SendError>> {
        if !matches!(*self.breakers.metrics, MetricsFormat::Otlp(_)) {
            return self.inner.send(call);
        }
        let host = format!(
            "{}:{}",
            call.target.host().trim_end_matches('.').to_ascii_lowercase(),
            call.target.port
        );
        let function = call.inv.function.clone();
        Box::pin(async move {
            let started = Instant::now();
            let sent = self.inner.send(call).await;
            let failed = sent.as_ref().map_or(true, |(r, _)| r.status().is_server_error());
            self.breakers
                .metrics
                .dependency_call(&function, &host, started.elapsed(), failed);
            sent
        })
    }
}

/// The host's declared answer while it is not called (`why`: `open`, or `jitter` for level 1): the cached
/// response to this GET, else the fallback; `None` when it declares neither.
fn open_answer(h: &HostBreaker, url: Option<&str>, why: &str) -> Option<Exchange> {
    let cached = url.and_then(|u| h.cache.lock().ok()?.get(u).cloned());
    if let Some(c) = cached {
        return Some(local(c.status, c.headers, c.body, &format!("{why}; cached")));
    }
    let fb = h.answer.fallback.as_ref()?;
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&fb.content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    let status = http::StatusCode::from_u16(fb.status).unwrap_or(http::StatusCode::OK);
    Some(local(
        status,
        headers,
        Bytes::from(fb.body.clone()),
        &format!("{why}; fallback"),
    ))
}

/// A response the layer answers with itself.
fn local(status: http::StatusCode, mut headers: http::HeaderMap, body: Bytes, circuit: &str) -> Exchange {
    headers.insert(http::header::CONTENT_LENGTH, body.len().into());
    if let Ok(v) = http::HeaderValue::from_str(circuit) {
        headers.insert("x-nimbus-circuit", v);
    }
    let mut res = http::Response::new(ResponseBody::local(body));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    (res, Box::new(async { Ok(()) }))
}

/// The call sent to the backup origin instead: same method, path, headers and body; the `Host` header and
/// the target replaced (the backup is in the allow-list, and its address is checked when connecting).
fn redirect(mut call: OutboundCall, backup: &Backup) -> Result<OutboundCall, HttpError> {
    let default_port = if backup.scheme == "http" { 80 } else { 443 };
    let authority = if backup.port == default_port {
        backup.host.clone()
    } else {
        format!("{}:{}", backup.host, backup.port)
    };
    let authority: http::uri::Authority = authority
        .parse()
        .map_err(|_| HttpError::InternalError(Some("backup origin".into())))?;
    let mut parts = call.request.uri().clone().into_parts();
    parts.scheme = Some(if backup.scheme == "http" {
        http::uri::Scheme::HTTP
    } else {
        http::uri::Scheme::HTTPS
    });
    parts.authority = Some(authority.clone());
    *call.request.uri_mut() =
        http::Uri::from_parts(parts).map_err(|_| HttpError::InternalError(Some("backup origin".into())))?;
    if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
        call.request.headers_mut().insert(http::header::HOST, v);
    }
    call.target = Target {
        authority,
        port: backup.port,
        tls: backup.scheme == "https",
        ip: crate::manifest::literal_ip(&backup.host),
        literal: backup.literal,
    };
    Ok(call)
}

/// Passes a good GET response on while keeping a copy of it (up to [`MAX_CACHED_BODY`]) for when the
/// circuit opens.
fn keep(
    h: &Arc<HostBreaker>,
    url: String,
    res: http::Response<ResponseBody>,
    io: crate::caps::outbound::send::Io,
) -> Exchange {
    let (parts, body) = res.into_parts();
    let head = (parts.status, parts.headers.clone());
    let h = h.clone();
    let body = ResponseBody::tee(body, MAX_CACHED_BODY, move |bytes| {
        if let Ok(mut cache) = h.cache.lock() {
            if cache.len() >= MAX_CACHED && !cache.contains_key(&url) {
                // Any entry will do: the cache is a last resort, not an LRU.
                if let Some(k) = cache.keys().next().cloned() {
                    cache.remove(&k);
                }
            }
            cache.insert(
                url,
                Cached {
                    status: head.0,
                    headers: head.1,
                    body: bytes,
                },
            );
        }
    });
    (http::Response::from_parts(parts, body), io)
}
