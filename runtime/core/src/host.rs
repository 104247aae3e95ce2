//! The host: boot once, then invoke many times.
//!
//! [`Host::invoke`] is the only per-invocation path. It takes a permit from
//! the function's semaphore (so a burst queues instead of failing), prepares
//! the store from cheap clones, instantiates from the cached `InstancePre`
//! through the pooling allocator, calls the export under both an epoch
//! deadline (for guest code) and a timer (for host waits), and classifies
//! any failure into an [`InvokeError`].

use crate::Body;
use crate::artifact::{self, LoadedFrom};
use crate::bindings::{
    EventFunction, EventFunctionPre, TaskFunction, TaskFunctionPre, TaskOutcome, WebsocketFunction,
    WebsocketFunctionPre, types,
};
use crate::caps::{self, limits::MemoryLimiter};
use crate::engine::{EngineOptions, NimbusEngine};
use crate::error::{BootError, InvokeError};
use crate::exports::Kind;
use crate::invocation::{DeadlineCause, Event, EventSource, Invocation, Outcome, Payload, TraceContext};
use crate::logs::LogSink;
use crate::manifest::{FunctionSpec, Limits, Manifest, Reuse, TaskSpec, WebSocketSpec};
use crate::metrics::{InvocationReport, MetricsFormat};
use crate::router::{RouteMatch, Router};
use crate::state::HostState;
use crate::telemetry::{FunctionMetrics, InvocationRecord, Measuring, Telemetry, Trigger};
use crate::websocket::{WsEvent, WsOutcome};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

/// Boot progress callback: function name, its index, and the total.
pub type BootProgress = Arc<dyn Fn(&str, usize, usize) + Send + Sync>;

/// Boot settings that are not in the manifest.
#[derive(Clone, Default)]
pub struct BootOptions {
    /// Engine settings (pool size is raised to fit the manifest: [`EngineOptions::fit_pool`]).
    pub engine: EngineOptions,
    /// Where guest logs go.
    pub log_sink: LogSink,
    /// Boot only these functions (e.g. `nimbus invoke hello`); `None` boots all.
    pub only: Option<Vec<String>>,
    /// Longest a request waits for a free instance before `Overloaded` (default 10 s).
    pub queue_timeout: Option<Duration>,
    /// Called before each function is loaded, with its name, index and the total.
    pub progress: Option<BootProgress>,
    /// At most this many concurrent invocations per function, whatever the
    /// manifest says: Lambda delivers one at a time, so `bootstrap` sets 1
    /// and the instance pool reserves no slot it will never use.
    pub concurrency_cap: Option<u32>,
    /// Per-invocation metrics (duration, cold-start init, peak memory).
    pub metrics: MetricsFormat,
    /// Span export ([`Telemetry::from_settings`]); `None`: trace headers are still
    /// propagated, nothing is exported.
    pub telemetry: Option<Telemetry>,
    /// How `connections` reaches WebSocket clients when the invocation brings no sender of its own: the
    /// local gateway's sockets, or a configured API Gateway Management endpoint. `None`: sends fail with
    /// `failed`.
    pub connections: Option<crate::websocket::Sender>,
    /// The store behind `wasi:keyvalue` (embedded under `nimbus serve`, DynamoDB on AWS); `None`: `open`
    /// answers `no-such-store`.
    pub keyvalue: Option<Arc<dyn nimbus_kv::KvStore>>,
    /// How guests' outbound requests reach the network: the resolver and connector (the system's by
    /// default) and the platform's control endpoints, which no allow-list entry opens (the Lambda
    /// adapter gives the Runtime API's address).
    pub outbound: caps::outbound::network::OutboundOptions,
}

/// A booted function.
pub struct Function {
    /// Its name.
    pub name: Arc<str>,
    /// HTTP or event.
    pub kind: Kind,
    /// Its limits.
    pub limits: Limits,
    /// Fresh instances, or warm ones reused.
    pub reuse: Reuse,
    /// How its code was loaded.
    pub loaded_from: LoadedFrom,
    /// Time spent loading and linking it at boot.
    pub load_time: Duration,
    /// Durable-task settings: `Some` exactly for task functions (the manifest's `task`, or its defaults).
    pub task: Option<TaskSpec>,
    /// WebSocket settings: `Some` exactly for WebSocket functions (the manifest's `websocket`, or its
    /// defaults).
    pub websocket: Option<WebSocketSpec>,
    pre: Pre,
    shared: caps::Shared,
    permits: Arc<Semaphore>,
    /// Its OTLP metric recorder (`NIMBUS_METRICS=otlp` only).
    metrics: Option<Arc<FunctionMetrics>>,
}

enum Pre {
    Http(ProxyPre<HostState>, Idle<Proxy>),
    Event(EventFunctionPre<HostState>, Idle<EventFunction>),
    Task(TaskFunctionPre<HostState>, Idle<TaskFunction>),
    WebSocket(WebsocketFunctionPre<HostState>, Idle<WebsocketFunction>),
}

/// An instance with its store, ready for (another) invocation.
struct Ready<I> {
    store: Store<HostState>,
    /// `None` until instantiated (a fresh store).
    instance: Option<I>,
    /// Invocations it has served.
    uses: u32,
}

/// The warm instances of a `reuse` function that are not serving anyone.
/// At most `concurrency` exist, so they always fit in the instance pool.
type Idle<I> = Arc<Mutex<Vec<Ready<I>>>>;

/// Instantiation from an `InstancePre`, for either kind of function.
trait Instantiate: Clone + Send + 'static {
    type Instance: Send + 'static;
    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;
}

impl Instantiate for ProxyPre<HostState> {
    type Instance = Proxy;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Proxy> {
        self.instantiate_async(store).await
    }
}

impl Instantiate for EventFunctionPre<HostState> {
    type Instance = EventFunction;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<EventFunction> {
        self.instantiate_async(store).await
    }
}

impl Instantiate for TaskFunctionPre<HostState> {
    type Instance = TaskFunction;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<TaskFunction> {
        self.instantiate_async(store).await
    }
}

impl Instantiate for WebsocketFunctionPre<HostState> {
    type Instance = WebsocketFunction;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<WebsocketFunction> {
        self.instantiate_async(store).await
    }
}

impl<I> Ready<I> {
    /// The instance (instantiated now if the store is fresh) and its store.
    async fn instance<P: Instantiate<Instance = I>>(
        &mut self,
        pre: &P,
    ) -> wasmtime::Result<(&I, &mut Store<HostState>)> {
        let instance = match self.instance.take() {
            Some(i) => i,
            None => pre.instantiate(&mut self.store).await?,
        };
        Ok((self.instance.insert(instance), &mut self.store))
    }

    /// After a successful invocation: back to the idle list while `reuse`
    /// allows, else dropped (its pool slot is reset for the next instance).
    fn release(mut self, reuse: Reuse, idle: &Idle<I>) {
        self.uses += 1;
        if reuse.keeps(self.uses)
            && let Ok(mut idle) = idle.lock()
        {
            idle.push(self);
        }
    }
}

/// The booted runtime: engine, functions and routes.
pub struct Host {
    engine: NimbusEngine,
    functions: Vec<Function>,
    router: Router,
    log_sink: LogSink,
    queue_timeout: Duration,
    /// Shared with each invocation's [`Meter`] without copying the namespace.
    metrics: Arc<MetricsFormat>,
    /// Until the first invocation: it is the cold start.
    cold: AtomicBool,
    telemetry: Option<Telemetry>,
    /// Time from `boot` start to ready.
    pub boot_time: Duration,
}

/// Deadline checks happen every this many epoch ticks; in between, a busy
/// guest yields to the executor so it cannot starve other requests.
const YIELD_TICKS: u64 = 10;

impl Host {
    /// Builds the engine, loads and links every function, and builds the route table.
    pub async fn boot(manifest: Manifest, opts: BootOptions) -> Result<Arc<Host>, BootError> {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let outbound = caps::outbound::send::Connector::new(&opts.outbound)
            .map_err(|e| BootError::Engine(format!("outbound HTTP: cannot set up TLS: {e}")))?;
        let boot = caps::Boot {
            telemetry: opts.telemetry.clone(),
            connections: opts.connections.clone(),
            keyvalue: opts.keyvalue.clone(),
            outbound: Arc::new(outbound),
            log_sink: opts.log_sink.clone(),
            // A new root trace (an empty parent is malformed), sampled.
            init: caps::propagate::SpanIds::child_of(""),
        };
        let specs: Vec<&FunctionSpec> = manifest
            .functions
            .iter()
            .filter(|f| opts.only.as_ref().is_none_or(|only| only.iter().any(|n| n == &f.name)))
            .collect();
        if let Some(only) = &opts.only
            && let Some(missing) = only.iter().find(|n| manifest.function(n).is_none())
        {
            return Err(BootError::Component {
                function: missing.clone(),
                message: format!("no such function in {}", manifest.path.display()),
            });
        }

        // Artifacts are read and decompressed on other threads while the engine is built.
        let mut unpacking: Vec<_> = specs
            .iter()
            .map(|s| {
                let (art, wasm) = (s.precompiled.clone()?, s.component.clone());
                Some(tokio::task::spawn_blocking(move || artifact::unpack_file(&art, &wasm)))
            })
            .collect();

        let mut eopts = opts.engine.clone();
        let cap = opts.concurrency_cap.unwrap_or(u32::MAX).max(1);
        let needed: u64 = specs.iter().map(|f| u64::from(f.limits.concurrency.min(cap))).sum();
        // `pool_instances` (NIMBUS_POOL_INSTANCES) is raised to what the functions need, never lowered.
        eopts.fit_pool(needed);
        eopts.max_memory = specs.iter().map(|f| f.limits.memory).max().unwrap_or(eopts.max_memory);
        let engine = NimbusEngine::new(&eopts)?;
        tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "boot: engine ready");

        let mut linker = Linker::<HostState>::new(engine.engine());
        caps::link_all(&mut linker).map_err(|e| BootError::Engine(format!("linking host capabilities: {e:#}")))?;
        tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "boot: linker ready");

        let mut functions = Vec::with_capacity(specs.len());
        let mut router = Router::default();
        let total = specs.len();
        for (i, spec) in specs.into_iter().enumerate() {
            if let Some(progress) = &opts.progress {
                progress(&spec.name, i, total);
            }
            let t = Instant::now();
            let unpacked = match unpacking[i].take() {
                Some(task) => Some(task.await.unwrap_or_else(|e| Err(format!("unpacking failed: {e}")))),
                None => None,
            };
            let precompiled = spec.precompiled.as_deref().zip(unpacked);
            let (component, loaded_from) = artifact::load(engine.engine(), &spec.name, &spec.component, precompiled)?;
            tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, function = %spec.name, "boot: component loaded");
            let comp_err = |message: String| BootError::Component {
                function: spec.name.clone(),
                message,
            };
            let kind = Kind::detect(&component, engine.engine()).ok_or_else(|| {
                comp_err(
                    "the component exports none of `wasi:http/incoming-handler@0.2` (HTTP function), \
                     `nimbus:function/events@0.1` (event function), `nimbus:function/task@0.1` (task function) \
                     and `nimbus:function/websocket@0.1` (WebSocket function)"
                        .into(),
                )
            })?;
            let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
                comp_err(format!(
                    "the component imports something Nimbus does not provide: {e:#}"
                ))
            })?;
            let pre = match kind {
                Kind::Http => Pre::Http(
                    ProxyPre::new(instance_pre).map_err(|e| comp_err(format!("{e:#}")))?,
                    Idle::default(),
                ),
                Kind::Event => Pre::Event(
                    EventFunctionPre::new(instance_pre).map_err(|e| comp_err(format!("{e:#}")))?,
                    Idle::default(),
                ),
                Kind::Task => Pre::Task(
                    TaskFunctionPre::new(instance_pre).map_err(|e| comp_err(format!("{e:#}")))?,
                    Idle::default(),
                ),
                Kind::WebSocket => Pre::WebSocket(
                    WebsocketFunctionPre::new(instance_pre).map_err(|e| comp_err(format!("{e:#}")))?,
                    Idle::default(),
                ),
            };
            tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, function = %spec.name, "boot: linked");
            let shared = caps::Shared::configure(spec, &boot).await?;
            let index = functions.len();
            for r in &spec.routes {
                router
                    .insert(r.method.as_ref(), &r.path, index)
                    .map_err(|e| BootError::Route {
                        function: spec.name.clone(),
                        route: format!("{} {}", r.method.as_ref().map_or("ANY", |m| m.as_str()), r.path),
                        line: r.line,
                        message: e.to_string(),
                    })?;
            }
            if kind != Kind::Http && !spec.routes.is_empty() {
                return Err(comp_err(format!(
                    "routes are for HTTP functions; this is {} function{}",
                    kind.with_article(),
                    if kind == Kind::Task {
                        " (started with POST /tasks/{name})"
                    } else if kind == Kind::WebSocket {
                        " (give it `websocket.path` instead)"
                    } else {
                        ""
                    }
                )));
            }
            // `task` and `websocket` are each their own kind's section, named after its export.
            let misplaced = |owner: Kind| {
                comp_err(format!(
                    "`{0}` settings are for {1} functions (exporting `nimbus:function/{0}@0.1`); \
                     this is {2} function",
                    owner.as_str(),
                    owner.label(),
                    kind.with_article()
                ))
            };
            let task = match (kind, spec.task) {
                (Kind::Task, t) => Some(t.unwrap_or_else(|| TaskSpec::defaults(spec.limits.timeout))),
                (_, None) => None,
                (_, Some(_)) => return Err(misplaced(Kind::Task)),
            };
            let websocket = match (kind, &spec.websocket) {
                (Kind::WebSocket, w) => Some(w.clone().unwrap_or_default()),
                (_, None) => None,
                (_, Some(_)) => return Err(misplaced(Kind::WebSocket)),
            };
            let mut limits = spec.limits;
            limits.concurrency = limits.concurrency.min(cap);
            let name: Arc<str> = Arc::from(spec.name.as_str());
            let metrics = match &opts.metrics {
                MetricsFormat::Otlp(m) => Some(Arc::new(m.function(&name))),
                _ => None,
            };
            functions.push(Function {
                name,
                kind,
                limits,
                reuse: spec.reuse,
                loaded_from,
                load_time: t.elapsed(),
                task,
                websocket,
                pre,
                shared,
                permits: Arc::new(Semaphore::new(limits.concurrency as usize)),
                metrics,
            });
        }

        if let Some(t) = &opts.telemetry {
            t.record_init(&boot.init, started_at, functions.len());
        }
        Ok(Arc::new(Host {
            engine,
            functions,
            router,
            log_sink: opts.log_sink,
            metrics: Arc::new(opts.metrics),
            cold: AtomicBool::new(true),
            queue_timeout: opts.queue_timeout.unwrap_or(Duration::from_secs(10)),
            telemetry: opts.telemetry,
            boot_time: started.elapsed(),
        }))
    }

    /// The span exporter, if tracing export is on.
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    /// Exports the spans and OTLP metrics recorded so far, both at once,
    /// each waiting at most its flush timeout; what is not done by then goes
    /// on in the background. Adapters whose environment may freeze between
    /// invocations (Lambda) call it after each one. Never fails.
    pub async fn flush_telemetry(&self) {
        let spans = async {
            if let Some(t) = &self.telemetry {
                t.flush().await;
            }
        };
        let metrics = async {
            if let MetricsFormat::Otlp(m) = &*self.metrics {
                m.flush().await;
            }
        };
        tokio::join!(spans, metrics);
    }

    /// Exports the last spans and metrics and stops their exporters (at
    /// shutdown), both at once, within `timeout`.
    pub async fn shutdown_telemetry(&self, timeout: Duration) {
        let spans = async {
            if let Some(t) = &self.telemetry {
                t.shutdown(timeout).await;
            }
        };
        let metrics = async {
            if let MetricsFormat::Otlp(m) = &*self.metrics {
                m.shutdown(timeout).await;
            }
        };
        tokio::join!(spans, metrics);
    }

    /// All booted functions.
    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// The function with this name.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| &*f.name == name)
    }

    /// Routes an HTTP request.
    pub fn route(&self, method: &http::Method, path: &str) -> RouteMatch {
        self.router.route(method, path)
    }

    /// Starts measuring one invocation of `f` for the configured metrics.
    fn meter(&self, f: &Function, trigger: Trigger, cold: bool) -> Meter {
        Meter {
            started: Instant::now(),
            cold_start_init: cold.then_some(self.boot_time),
            publish: matches!(*self.metrics, MetricsFormat::Emf { .. })
                .then(|| (self.metrics.clone(), self.log_sink.clone())),
            otlp: f.metrics.as_ref().map(|m| m.start(trigger)),
        }
    }

    /// A new invocation of `f` with its configured timeout, starting now.
    pub fn new_invocation(&self, f: &Function, request_id: Option<String>, trace: TraceContext) -> Invocation {
        Invocation::new(f.name.clone(), f.limits.timeout, request_id, trace)
    }

    /// Runs one invocation in a fresh instance (or a warm one, for `reuse` functions).
    ///
    /// With telemetry on, the invocation's span is exported when it ends: at
    /// the end of the response body for HTTP (so streaming is covered).
    pub async fn invoke(&self, f: &Function, inv: Invocation, payload: Payload) -> Result<Outcome, InvokeError> {
        // One cold-start flag for the process, read by metrics and spans alike.
        let cold = self.cold.swap(false, Ordering::Relaxed);
        let trigger = match &payload {
            Payload::Http(_) | Payload::WebSocket(..) => Trigger::Http,
            Payload::Event(ev) => Trigger::of(ev.source),
        };
        let meter = self.meter(f, trigger, cold);
        let inv = Arc::new(inv);
        let record = self.telemetry.as_ref().map(|t| {
            let mut r = InvocationRecord::start(t, &inv, trigger, cold);
            if let Payload::Http(req) = &payload {
                r.http_request(req);
            }
            r
        });
        let result = match (&f.pre, payload) {
            (Pre::Http(pre, idle), Payload::Http(req)) => self.invoke_http(f, pre, idle, inv, req, meter).await,
            (Pre::Event(pre, idle), Payload::Event(ev)) => self.invoke_event(f, pre, idle, inv, ev, meter).await,
            (Pre::WebSocket(pre, idle), Payload::WebSocket(ev, sender)) => {
                self.invoke_websocket(f, pre, idle, inv, ev, sender, meter).await
            }
            _ => Err(InvokeError::WrongKind {
                function: f.name.to_string(),
                kind: f.kind.as_str(),
            }),
        };
        let Some(mut record) = record else {
            return result;
        };
        match result {
            Ok(Outcome::Http(resp)) => {
                record.http_status(resp.status().as_u16());
                Ok(Outcome::Http(
                    resp.map(|body| RecordedBody { body, record }.boxed_unsync()),
                ))
            }
            Err(e) => {
                record.failed(e.error_type());
                Err(e)
            }
            ok => ok,
        }
    }

    /// Waits for a free instance slot, at most until the deadline or the queue timeout.
    async fn acquire(&self, f: &Function, inv: &Invocation) -> Result<tokio::sync::OwnedSemaphorePermit, InvokeError> {
        let overloaded = || InvokeError::Overloaded {
            concurrency: f.limits.concurrency,
            retry_after: Duration::from_secs(1),
        };
        if let Ok(p) = f.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let wait = self.queue_timeout.min(inv.remaining());
        match tokio::time::timeout(wait, f.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(overloaded()),
        }
    }

    /// A warm idle instance pointed at `inv`, or else a fresh store for one.
    fn ready<I>(&self, f: &Function, idle: &Idle<I>, inv: &Arc<Invocation>) -> Ready<I> {
        let warm = match f.reuse {
            Reuse::Fresh => None,
            Reuse::Warm { .. } => idle.lock().ok().and_then(|mut idle| idle.pop()),
        };
        let tick = self.engine.tick();
        match warm {
            Some(mut ready) => {
                ready.store.data_mut().begin(&f.shared, inv);
                ready.store.set_epoch_deadline(ticks_left(inv.deadline, tick));
                ready
            }
            None => Ready {
                store: self.new_store(f, inv),
                instance: None,
                uses: 0,
            },
        }
    }

    /// A store for one invocation, with its memory limit and deadline. The
    /// deadline is read from the store's current invocation, so a warm
    /// store keeps the same callback.
    fn new_store(&self, f: &Function, inv: &Arc<Invocation>) -> Store<HostState> {
        let state = HostState::prepare(&f.shared, inv, f.limits.memory, &self.log_sink, f.reuse);
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        let tick = self.engine.tick();
        store.set_epoch_deadline(ticks_left(inv.deadline, tick));
        store.epoch_deadline_callback(move |cx| {
            let deadline = cx.data().inv.deadline;
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(ticks_left(deadline, tick)))
            }
        });
        store
    }

    async fn invoke_http(
        &self,
        f: &Function,
        pre: &ProxyPre<HostState>,
        idle: &Idle<Proxy>,
        inv: Arc<Invocation>,
        req: http::Request<Body>,
        meter: Meter,
    ) -> Result<Outcome, InvokeError> {
        let limit = f.limits.max_request_body;
        if let Some(len) = content_length(req.headers())
            && len > limit
        {
            return Err(InvokeError::TooLarge {
                what: "request body",
                size: len,
                limit,
                quota: "max_request_body",
            });
        }
        let permit = self.acquire(f, &inv).await?;
        let mut ready = self.ready(f, idle, &inv);

        let too_large = Arc::new(AtomicBool::new(false));
        let req = req.map(|b| {
            LimitedBody::new(
                b,
                limit,
                too_large.clone(),
                wasmtime_wasi_http::Error::HttpRequestBodySize,
            )
            .boxed_unsync()
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Adapters that know the client's scheme (Lambda: `https://host/…`) put it in the URI.
        let scheme = match req.uri().scheme() {
            Some(s) if *s == http::uri::Scheme::HTTPS => Scheme::Https,
            _ => Scheme::Http,
        };
        let (req, out) = {
            let state = ready.store.data_mut();
            let req = crate::incoming::new_incoming_request(state, scheme, req).map_err(internal)?;
            let out = state.http().new_response_outparam(tx).map_err(internal)?;
            (req, out)
        };

        // The guest keeps running after it hands over the response head (it
        // streams the body), so it runs in its own task holding the permit.
        let (pre, idle) = (pre.clone(), idle.clone());
        let (deadline, cause, reuse) = (inv.deadline, inv.deadline_cause, f.reuse);
        let task_inv = inv.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            let run = async {
                let (proxy, store) = ready.instance(&pre).await?;
                proxy.wasi_http_incoming_handler().call_handle(store, req, out).await
            };
            let result = match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(classify(e, &ready.store.data().limits, cause)),
                Err(_) => Err(InvokeError::Deadline(cause)),
            };
            meter.finish(&task_inv, ready.store.data().limits.peak(), result.as_ref().err());
            if result.is_ok() {
                ready.release(reuse, &idle);
            }
            result
        });

        let answer = rx.await;
        // Whatever the guest made of a truncated request body, the answer is 413.
        if too_large.load(Ordering::Relaxed) {
            return Err(InvokeError::TooLarge {
                what: "request body",
                size: limit + 1,
                limit,
                quota: "max_request_body",
            });
        }
        let response = match answer {
            Ok(Ok(resp)) => resp,
            Ok(Err(code)) => {
                return Err(InvokeError::Guest(format!(
                    "the function answered with error code {code:?}"
                )));
            }
            Err(_) => {
                task.await
                    .map_err(|e| InvokeError::Internal(format!("invocation task failed: {e}")))??;
                return Err(InvokeError::NoResponse);
            }
        };

        let out_limit = f.limits.max_response_body;
        if let Some(len) = content_length(response.headers())
            && len > out_limit
        {
            return Err(InvokeError::TooLarge {
                what: "response body",
                size: len,
                limit: out_limit,
                quota: "max_response_body",
            });
        }
        let flag = Arc::new(AtomicBool::new(false));
        Ok(Outcome::Http(response.map(|b| {
            LimitedBody::new(b, out_limit, flag, wasmtime_wasi_http::Error::HttpResponseBodySize).boxed_unsync()
        })))
    }

    async fn invoke_event(
        &self,
        f: &Function,
        pre: &EventFunctionPre<HostState>,
        idle: &Idle<EventFunction>,
        inv: Arc<Invocation>,
        event: Event,
        meter: Meter,
    ) -> Result<Outcome, InvokeError> {
        let limit = f.limits.max_request_body;
        if event.payload.len() as u64 > limit {
            return Err(InvokeError::TooLarge {
                what: "event",
                size: event.payload.len() as u64,
                limit,
                quota: "max_request_body",
            });
        }
        let _permit = self.acquire(f, &inv).await?;
        let mut ready = self.ready(f, idle, &inv);
        let event = types::Event {
            source: event.source.into(),
            payload: event.payload,
        };
        let run = async {
            let (instance, store) = ready.instance(pre).await?;
            instance.nimbus_function_events().call_handle(store, &event).await
        };
        let result = tokio::time::timeout_at(inv.deadline.into(), run).await;
        let output = settle(f, idle, &inv, meter, ready, result)?;
        let out_limit = f.limits.max_response_body;
        if output.len() as u64 > out_limit {
            return Err(InvokeError::TooLarge {
                what: "response payload",
                size: output.len() as u64,
                limit: out_limit,
                quota: "max_response_body",
            });
        }
        Ok(Outcome::Event(output))
    }

    /// One lifecycle event of a WebSocket connection: `on-connect`, `on-message` or `on-disconnect`.
    #[allow(clippy::too_many_arguments)]
    async fn invoke_websocket(
        &self,
        f: &Function,
        pre: &WebsocketFunctionPre<HostState>,
        idle: &Idle<WebsocketFunction>,
        inv: Arc<Invocation>,
        event: WsEvent,
        sender: Option<crate::websocket::Sender>,
        meter: Meter,
    ) -> Result<Outcome, InvokeError> {
        let limit = f.limits.max_request_body;
        if event.size() as u64 > limit {
            return Err(InvokeError::TooLarge {
                what: "WebSocket message",
                size: event.size() as u64,
                limit,
                quota: "max_request_body",
            });
        }
        let _permit = self.acquire(f, &inv).await?;
        let mut ready = self.ready(f, idle, &inv);
        if sender.is_some() {
            ready.store.data_mut().connections = sender;
        }
        let run = async {
            let (instance, store) = ready.instance(pre).await?;
            let ws = instance.nimbus_function_websocket();
            Ok::<_, wasmtime::Error>(match &event {
                WsEvent::Connect(req) => match ws.call_on_connect(store, req).await? {
                    Ok(()) => Ok(WsOutcome::Accepted),
                    Err(mut rejection) => {
                        if !(400..500).contains(&rejection.status) {
                            rejection.status = 403;
                        }
                        Ok(WsOutcome::Rejected(rejection))
                    }
                },
                WsEvent::Message(msg) => ws.call_on_message(store, msg).await?.map(WsOutcome::Handled),
                WsEvent::Disconnect(info) => {
                    ws.call_on_disconnect(store, info).await?;
                    Ok(WsOutcome::Disconnected)
                }
            })
        };
        let result = tokio::time::timeout_at(inv.deadline.into(), run).await;
        let outcome = settle(f, idle, &inv, meter, ready, result)?;
        if let WsOutcome::Handled(Some(reply)) = &outcome {
            let size = crate::websocket::message_len(reply) as u64;
            if size > f.limits.max_response_body {
                return Err(InvokeError::TooLarge {
                    what: "WebSocket reply",
                    size,
                    limit: f.limits.max_response_body,
                    quota: "max_response_body",
                });
            }
        }
        Ok(Outcome::WebSocket(outcome))
    }
}

impl Host {
    /// Runs one invocation of a task function for `run` (from [`nimbus_checkpoint::Durable::begin`]) and ends
    /// the run in the store according to what happened:
    ///
    /// - the guest returned `done(output)`: [`Run::done`](nimbus_checkpoint::Run::done);
    /// - it returned `yielded`: [`Run::yielded`](nimbus_checkpoint::Run::yielded), the continuation is queued;
    /// - it returned an error value, trapped or ran out of memory:
    ///   [`Run::failed`](nimbus_checkpoint::Run::failed), retried from the last commit until
    ///   `task.max_attempts`, then the task is failed;
    /// - it hit its deadline (it ignored `should-yield`): if it committed a checkpoint in this run, that is
    ///   progress and the run ends like a yield (the next run resumes from the commit, attempts are not
    ///   counted); if it committed nothing it counts as a failed attempt, so a task that can never reach a
    ///   checkpoint within one timeout ends failed instead of looping forever;
    /// - a save was fenced (a newer run took the task over): nothing more is written, the newer run owns it.
    ///
    /// This is what a platform adapter calls with the run of each continuation message; `cx` carries the
    /// platform's deadline and trace when it has them (Lambda), so `should-yield` and the epoch deadline
    /// fire before the platform kills the environment.
    pub async fn run_task(
        &self,
        f: &Function,
        run: nimbus_checkpoint::Run,
        cx: RunContext,
    ) -> Result<RunEnd, TaskError> {
        let Pre::Task(pre, idle) = &f.pre else {
            return Err(TaskError::NotATask {
                function: f.name.to_string(),
                kind: f.kind.as_str(),
            });
        };
        let cold = self.cold.swap(false, Ordering::Relaxed);
        let meter = self.meter(f, Trigger::PubSub, cold);
        let request_id = cx
            .request_id
            .unwrap_or_else(|| format!("{}-{}", run.task_id(), run.seq()));
        let trace = cx.trace.unwrap_or_else(TraceContext::new_root);
        let inv = match cx.time_left {
            // The run ends with the platform invocation it happens in, and a deadline error names that one's cause.
            Some((left, cause)) if left < f.limits.timeout => {
                let mut inv = Invocation::new(f.name.clone(), left, Some(request_id), trace);
                inv.deadline_cause = cause;
                inv
            }
            _ => Invocation::new(f.name.clone(), f.limits.timeout, Some(request_id), trace),
        };
        let inv = Arc::new(inv);
        let mut record = self
            .telemetry
            .as_ref()
            .map(|t| InvocationRecord::start(t, &inv, Trigger::PubSub, cold));
        // No free instance in time is like a crash: the message is delivered again once the lease and its
        // visibility pass.
        let _permit = self.acquire(f, &inv).await.map_err(TaskError::Invoke)?;
        let input = run.input().to_vec();
        let mut ready = self.ready(f, idle, &inv);
        ready.store.data_mut().checkpoint.run = Some(run);
        let call = async {
            let (instance, store) = ready.instance(pre).await?;
            instance.nimbus_function_task().call_run(store, &input).await
        };
        let result = tokio::time::timeout_at(inv.deadline.into(), call).await;
        let peak = ready.store.data().limits.peak();
        let state = &mut ready.store.data_mut().checkpoint;
        let (run, saves, fenced) = (state.run.take(), state.saves, state.fenced);
        let returned = match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(classify(e, &ready.store.data().limits, inv.deadline_cause)),
            Err(_) => Err(InvokeError::Deadline(inv.deadline_cause)),
        };
        meter.finish(&inv, peak, returned.as_ref().err());
        if let (Some(rec), Err(e)) = (&mut record, &returned) {
            rec.failed(e.error_type());
        }
        if returned.is_ok() {
            ready.release(f.reuse, idle);
        }
        let Some(run) = run else {
            return Err(TaskError::Invoke(InvokeError::Internal("the task run was lost".into())));
        };
        let task_id = run.task_id().to_owned();
        if fenced {
            tracing::warn!(function = %f.name, task_id, "task run fenced: a newer run owns the task");
            return Ok(RunEnd::Fenced);
        }
        let end = match returned {
            Ok(Ok(TaskOutcome::Done(output))) => {
                run.done(output).await?;
                RunEnd::Done
            }
            Ok(Ok(TaskOutcome::Yielded)) => {
                run.yielded().await?;
                RunEnd::Yielded
            }
            Ok(Err(types::Error::Failed(m) | types::Error::InvalidEvent(m))) => {
                run.failed(m.clone()).await?;
                RunEnd::Failed(m)
            }
            Err(InvokeError::Deadline(d)) if saves > 0 => {
                tracing::warn!(function = %f.name, task_id, saves, timeout_ms = d.budget().as_millis() as u64,
                    "task run hit its deadline (it ignored should-yield); resuming from its last checkpoint");
                run.yielded().await?;
                RunEnd::DeadlineResumed
            }
            Err(e) => {
                let m = match &e {
                    InvokeError::Deadline(d) => format!(
                        "the run hit its {}ms deadline without committing a checkpoint",
                        d.budget().as_millis()
                    ),
                    e => e.to_string(),
                };
                tracing::warn!(function = %f.name, task_id, error = %m, "task run failed");
                run.failed(m.clone()).await?;
                RunEnd::Failed(m)
            }
        };
        Ok(end)
    }
}

/// What the platform knows about the invocation a task run happens in; all optional.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// Time until the deadline of the platform invocation the run happens in (less a margin), and what set
    /// that deadline: when it is sooner than the function's `timeout`, the run's deadline, `should-yield` and a
    /// deadline error follow it.
    pub time_left: Option<(Duration, DeadlineCause)>,
    /// The platform's trace (e.g. Lambda's X-Ray header); else the run starts a new trace.
    pub trace: Option<TraceContext>,
    /// The platform's request id; else `{task id}-{seq}`.
    pub request_id: Option<String>,
}

/// How one run of a task ended, once [`Host::run_task`] has committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The task finished; its result is committed.
    Done,
    /// The guest yielded; the continuation is queued.
    Yielded,
    /// The guest hit its deadline after committing a checkpoint; the continuation is queued and the next run
    /// resumes from that checkpoint.
    DeadlineResumed,
    /// The run failed with this error: retried from the last checkpoint, or the task is failed once
    /// `task.max_attempts` runs failed (the task's status says which).
    Failed(String),
    /// A newer run took the task over; this run wrote nothing more.
    Fenced,
}

/// Why [`Host::run_task`] could not run or end a task run.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The function does not export `nimbus:function/task`.
    #[error("function `{function}` is {kind} function, not a task function")]
    NotATask {
        /// The function.
        function: String,
        /// Its kind.
        kind: &'static str,
    },
    /// The invocation could not start (e.g. no free instance before the queue timeout); the run was dropped
    /// and resumes when its message is delivered again.
    #[error("task invocation could not start: {0}")]
    Invoke(#[source] InvokeError),
    /// The store failed ending the run; the message is delivered again after its visibility timeout.
    #[error("task store: {0}")]
    Durable(#[from] nimbus_checkpoint::DurableError),
}

/// Measures one invocation for [`MetricsFormat`]; publishes when the guest returns.
struct Meter {
    started: Instant,
    cold_start_init: Option<Duration>,
    /// EMF only; `None` when metrics are off: nothing is cloned or formatted.
    publish: Option<(Arc<MetricsFormat>, LogSink)>,
    /// OTLP only: the function's recorder, for this invocation.
    otlp: Option<Measuring>,
}

/// Ends a guest call that returns `result<T, error>` (events, WebSocket callbacks): an instance that returned
/// normally (even with an error value) is sound and may serve again; a trap, an exhausted memory limit or the
/// deadline are classified; the invocation is metered either way.
fn settle<T, I>(
    f: &Function,
    idle: &Idle<I>,
    inv: &Invocation,
    meter: Meter,
    ready: Ready<I>,
    result: Result<wasmtime::Result<Result<T, types::Error>>, tokio::time::error::Elapsed>,
) -> Result<T, InvokeError> {
    let peak = ready.store.data().limits.peak();
    let output = match result {
        Ok(Ok(result)) => {
            ready.release(f.reuse, idle);
            result.map_err(|e| match e {
                types::Error::InvalidEvent(m) => InvokeError::BadEvent(m),
                types::Error::Failed(m) => InvokeError::Guest(m),
            })
        }
        Ok(Err(e)) => Err(classify(e, &ready.store.data().limits, inv.deadline_cause)),
        Err(_) => Err(InvokeError::Deadline(inv.deadline_cause)),
    };
    meter.finish(inv, peak, output.as_ref().err());
    output
}

impl Meter {
    fn finish(self, inv: &Invocation, peak_memory: u64, error: Option<&InvokeError>) {
        if self.publish.is_none() && self.otlp.is_none() {
            return;
        }
        let report = InvocationReport {
            inv,
            duration: self.started.elapsed(),
            peak_memory,
            cold_start_init: self.cold_start_init,
            error_type: error.map(InvokeError::error_type),
        };
        if let Some((format, sink)) = &self.publish {
            format.publish(sink, &report);
        }
        if let Some(m) = self.otlp {
            m.record(&report);
        }
    }
}

/// Epoch ticks until the next deadline check: the time left, at most
/// `YIELD_TICKS` so a busy guest yields to the executor now and then.
fn ticks_left(deadline: Instant, tick: Duration) -> u64 {
    let tick_ms = tick.as_millis().max(1) as u64;
    (deadline.saturating_duration_since(Instant::now()).as_millis() as u64 / tick_ms).clamp(1, YIELD_TICKS)
}

fn internal(e: impl std::fmt::Display) -> InvokeError {
    InvokeError::Internal(e.to_string())
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Longest trap description kept: a deep recursion's backtrace has thousands of frames.
const MAX_TRAP_DETAIL: usize = 16 * 1024;

/// A failed guest call's error chain (the trap, then its wasm backtrace), at most [`MAX_TRAP_DETAIL`] bytes.
fn trap_detail(err: &wasmtime::Error) -> String {
    let mut text = format!("{err:#}");
    if text.len() > MAX_TRAP_DETAIL {
        let mut cut = MAX_TRAP_DETAIL;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!(" … ({dropped} more bytes)"));
    }
    text
}

/// Turns a failed guest call into the invocation's error.
fn classify(err: wasmtime::Error, limits: &MemoryLimiter, deadline: DeadlineCause) -> InvokeError {
    if limits.hit {
        return InvokeError::Memory {
            limit_mb: limits.limit_mb(),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Deadline(deadline),
        // The whole chain: the trap and the wasm backtrace (function names, offsets) for the log line.
        // Callers see only `InvokeError::public_message`.
        Some(_) => InvokeError::Trap(trap_detail(&err)),
        None => {
            let msg = trap_detail(&err);
            if msg.contains("maximum concurrent") || msg.contains("pooling allocator") {
                InvokeError::Overloaded {
                    concurrency: 0,
                    retry_after: Duration::from_secs(1),
                }
            } else {
                InvokeError::Trap(msg)
            }
        }
    }
}

impl From<EventSource> for types::EventSource {
    fn from(s: EventSource) -> Self {
        match s {
            EventSource::Direct => types::EventSource::Direct,
            EventSource::Sqs => types::EventSource::Sqs,
            EventSource::Sns => types::EventSource::Sns,
            EventSource::S3 => types::EventSource::S3,
            EventSource::EventBridge => types::EventSource::Eventbridge,
            EventSource::Schedule => types::EventSource::Schedule,
            EventSource::DynamoDb => types::EventSource::Dynamodb,
            EventSource::Kinesis => types::EventSource::Kinesis,
            EventSource::Other => types::EventSource::Other,
        }
    }
}

/// A response body that carries its invocation's span, exported when the
/// body is done with (sent, collected or dropped).
struct RecordedBody {
    body: Body,
    record: InvocationRecord,
}

impl http_body::Body for RecordedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled {
            this.record.failed(match e {
                wasmtime_wasi_http::Error::HttpResponseBodySize(_) => "Nimbus.PayloadTooLarge",
                _ => "Nimbus.Trap",
            });
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A body that fails once more than `limit` bytes have passed through it.
struct LimitedBody<B> {
    inner: B,
    seen: u64,
    limit: u64,
    tripped: Arc<AtomicBool>,
    error: fn(Option<u64>) -> wasmtime_wasi_http::Error,
}

impl<B> LimitedBody<B> {
    fn new(
        inner: B,
        limit: u64,
        tripped: Arc<AtomicBool>,
        error: fn(Option<u64>) -> wasmtime_wasi_http::Error,
    ) -> Self {
        LimitedBody {
            inner,
            seen: 0,
            limit,
            tripped,
            error,
        }
    }
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err((this.error)(Some(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
