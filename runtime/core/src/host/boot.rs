//! Boot: the engine, every function loaded and linked, the route table.

use super::instances::Idle;
use super::{Function, Host, Pre};
use crate::artifact;
use crate::bindings::{EventFunctionPre, TaskFunctionPre, WebsocketFunctionPre};
use crate::caps;
use crate::caps::trace::propagate::ChildOf as _;
use crate::engine::{EngineOptions, NimbusEngine};
use crate::error::BootError;
use crate::exports::Kind;
use crate::logs::LogSink;
use crate::manifest::{FunctionSpec, Manifest, TaskSpec};
use crate::metrics::MetricsFormat;
use crate::router::Router;
use crate::state::HostState;
use crate::telemetry::Telemetry;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

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
    /// Where `ssm` / `ssm_path` config keys are read from: SSM Parameter Store as the AWS environment
    /// configures it (the default), or a local overrides file (`nimbus serve --ssm-overrides`).
    pub ssm: caps::config::SsmProvider,
    /// Where `oos` / `oos_path` config keys are read from: Alibaba Cloud OOS Parameter Store with the
    /// region, endpoint and credentials of the settings ([`crate::Settings::boot_options`]; by default none,
    /// so a fetch fails saying what to set), or a local overrides file (`nimbus serve --ssm-overrides`).
    /// Its [`caps::config::OosProvider::credentials`] can be replaced while the host runs.
    pub oos: caps::config::OosProvider,
    /// What wraps the calls guests make that leave the sandbox (outbound HTTP, config, key-value, the
    /// checkpoint store, WebSocket sends): the seam fault injection and circuit breakers plug into; wraps
    /// nothing by default. The fault layer ([`crate::faults::FaultIntercept`]) is always innermost.
    pub intercept: caps::intercept::Interceptor,
    /// A fault plan that replaces the manifest's `[faults]` (`NIMBUS_FAULTS`).
    pub faults: Option<crate::faults::FaultPlan>,
    /// An SSM parameter holding the fault plan (`NIMBUS_FAULTS_PARAMETER`), read through [`BootOptions::ssm`]
    /// at boot and every `config_refresh`; it replaces `faults` and the manifest's `[faults]`.
    pub faults_parameter: Option<String>,
    /// The memory-pressure watchdog (level 5 of the ladder); `None` (the default): none.
    pub pressure: Option<crate::degrade::pressure::PressureSettings>,
}

impl Host {
    /// Builds the engine, loads and links every function, and builds the route table.
    pub async fn boot(manifest: Manifest, opts: BootOptions) -> Result<Arc<Host>, BootError> {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let outbound = caps::outbound::send::Connector::new(&opts.outbound)
            .map_err(|e| BootError::Engine(format!("outbound HTTP: cannot set up TLS: {e}")))?;
        let app: Arc<str> = Arc::from(manifest.app_name.as_str());
        // Innermost the fault layer, then the breakers (an injected fault counts as the upstream's), then
        // what the embedder installs.
        let metrics = Arc::new(opts.metrics.clone());
        let breakers = Arc::new(crate::breaker::Breakers::new(
            &manifest.functions,
            opts.log_sink.clone(),
            metrics.clone(),
        ));
        let intercept = caps::intercept::Interceptor(Arc::new(caps::intercept::Layered {
            inner: Arc::new(caps::intercept::Layered {
                inner: Arc::new(crate::faults::FaultIntercept),
                outer: Arc::new(crate::breaker::BreakerIntercept(breakers.clone())),
            }),
            outer: opts.intercept.0.clone(),
        }));
        let mut plan = opts.faults.clone().or_else(|| manifest.faults.clone());
        if let Some(name) = &opts.faults_parameter {
            plan = crate::faults::refresh::fetch(&opts.ssm, name)
                .await
                .map_err(BootError::Faults)?;
        }
        let faults = Arc::new(crate::faults::Faults::new(None));
        // The operator's breaker resets ride the plan's document: applied whenever a plan is installed.
        let reset = Arc::downgrade(&breakers);
        faults.on_replace(move |plan| {
            if let Some(b) = reset.upgrade() {
                for o in plan.overrides.iter().filter(|o| o.reset_breakers) {
                    b.reset(o.function.as_deref());
                }
            }
        });
        faults.replace(plan);
        if let Some(name) = &opts.faults_parameter {
            let every = manifest
                .functions
                .iter()
                .filter_map(|f| f.config_refresh)
                .min()
                .unwrap_or(crate::manifest::DEFAULT_CONFIG_REFRESH);
            crate::faults::refresh::spawn(Arc::downgrade(&faults), opts.ssm.clone(), name.clone(), every);
        }
        let boot = caps::Boot {
            telemetry: opts.telemetry.clone(),
            connections: opts.connections.clone().map(|c| intercept.connections(c)),
            keyvalue: opts.keyvalue.clone().map(|kv| intercept.keyvalue(kv)),
            outbound: intercept.outbound(Arc::new(outbound)),
            log_sink: opts.log_sink.clone(),
            ssm: opts.ssm.clone(),
            oos: opts.oos.clone(),
            app: app.clone(),
            // A new root trace (an empty parent is malformed), sampled.
            init: caps::trace::SpanIds::child_of(""),
            intercept: intercept.clone(),
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
            tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, app = %app, function = %spec.name, "boot: component loaded");
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
            tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, app = %app, function = %spec.name, "boot: linked");
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
                ladder: spec
                    .degradation
                    .clone()
                    .map(|l| crate::degrade::Ladder::new(&spec.name, l)),
            });
        }

        if let Some(t) = &opts.telemetry {
            t.record_init(&boot.init, started_at, functions.len());
        }
        let host = Arc::new(Host {
            engine,
            functions,
            router,
            log_sink: opts.log_sink,
            metrics,
            cold: AtomicBool::new(true),
            queue_timeout: opts.queue_timeout.unwrap_or(Duration::from_secs(10)),
            telemetry: opts.telemetry,
            app,
            intercept,
            faults,
            breakers,
            stopping: std::sync::OnceLock::new(),
            recent_errors: Default::default(),
            boot_time: started.elapsed(),
        });
        if let Some(p) = opts.pressure {
            crate::degrade::pressure::watch(Arc::downgrade(&host), p);
        }
        Ok(host)
    }
}
