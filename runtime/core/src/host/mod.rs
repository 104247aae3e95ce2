//! The host: boot once, then invoke many times.
//!
//! - `boot.rs`: [`Host::boot`] builds the engine, loads and links every function, builds the route table;
//! - `invoke.rs`: [`Host::invoke`], the one invocation path every kind of payload takes, and the event and
//!   WebSocket steps;
//! - `http.rs` and `http_body.rs`: the HTTP step and its body plumbing (quotas, the span carried to the
//!   end of a streamed body);
//! - `meter.rs`: per-invocation metrics, the same for every kind;
//! - `tasks.rs`: the task step, which commits a durable-task run, and [`Host::run_task`];
//! - `instances.rs`: admission, warm and fresh instances, the epoch deadline, and the classification of a
//!   failed guest call.

mod boot;
mod faults;
mod http;
mod http_body;
mod instances;
mod invoke;
mod meter;
mod recent;
mod tasks;

pub use crate::invocation::RunEnd;
pub use boot::{BootOptions, BootProgress};
pub use recent::RecentError;
pub use tasks::{RunContext, TaskError};

use crate::artifact::LoadedFrom;
use crate::bindings::{
    EventFunction, EventFunctionPre, TaskFunction, TaskFunctionPre, WebsocketFunction, WebsocketFunctionPre,
};
use crate::caps;
use crate::engine::NimbusEngine;
use crate::exports::Kind;
use crate::invocation::{Invocation, TraceContext};
use crate::logs::LogSink;
use crate::manifest::{Limits, Reuse, TaskSpec, WebSocketSpec};
use crate::metrics::MetricsFormat;
use crate::router::{RouteMatch, Router};
use crate::state::HostState;
use crate::telemetry::{FunctionMetrics, Telemetry};
use instances::Idle;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

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
    /// Its degradation ladder (`[function.NAME.degradation]`).
    ladder: Option<crate::degrade::Ladder>,
}

impl Function {
    /// Its degradation ladder's level now (0 without one).
    pub fn degradation_level(&self) -> u8 {
        self.ladder.as_ref().map_or(0, |l| l.level())
    }

    /// Which snapshot of its config is current (1 at boot, one more per refresh that changed a value).
    pub fn config_version(&self) -> crate::caps::config::ConfigVersion {
        self.shared.config.version()
    }
}

enum Pre {
    Http(ProxyPre<HostState>, Idle<Proxy>),
    Event(EventFunctionPre<HostState>, Idle<EventFunction>),
    Task(TaskFunctionPre<HostState>, Idle<TaskFunction>),
    WebSocket(WebsocketFunctionPre<HostState>, Idle<WebsocketFunction>),
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
    /// The manifest's `[app] name`: every invocation carries it into its log lines.
    app: Arc<str>,
    /// What wraps the host-call families: the fault layer, then [`BootOptions::intercept`].
    intercept: crate::caps::intercept::Interceptor,
    /// The fault plan running ([`crate::faults`]): the manifest's `[faults]`, `NIMBUS_FAULTS`, or a refresh.
    faults: Arc<crate::faults::Faults>,
    /// The functions' circuit breakers on their outbound hosts.
    breakers: Arc<crate::breaker::Breakers>,
    /// Set when the host stops taking work (memory pressure, level 5): why.
    stopping: std::sync::OnceLock<String>,
    /// The last few invocation errors, for the fault snapshot.
    recent_errors: recent::RecentErrors,
    /// Time from `boot` start to ready.
    pub boot_time: Duration,
}

impl Host {
    /// The app's name (the manifest's `[app] name`), for adapters' log lines about its functions.
    pub fn app(&self) -> &Arc<str> {
        &self.app
    }

    /// What wraps the calls guests make that leave the sandbox ([`BootOptions::intercept`]); the task
    /// driver wraps its checkpoint store with it.
    pub fn intercept(&self) -> &dyn crate::caps::Intercept {
        &*self.intercept
    }

    /// The fault switch: the plan running, which a refresh may replace.
    pub fn faults(&self) -> &Arc<crate::faults::Faults> {
        &self.faults
    }

    /// The circuit breakers: their states, and the operator's override.
    pub fn breakers(&self) -> &Arc<crate::breaker::Breakers> {
        &self.breakers
    }

    /// Stops taking work: every invocation from now on answers 503 (level 5), saying `reason`.
    pub fn stop_taking_work(&self, reason: &str) {
        let _ = self.stopping.set(reason.to_owned());
    }

    /// Why the host stopped taking work, if it did.
    pub fn stopping(&self) -> Option<&str> {
        self.stopping.get().map(String::as_str)
    }

    /// The last invocation errors (at most 16), oldest first; the ladder's own refusals are not
    /// among them.
    pub fn recent_errors(&self) -> Vec<RecentError> {
        self.recent_errors.list()
    }

    /// Invocations running now, over every function.
    pub fn in_flight(&self) -> usize {
        self.functions
            .iter()
            .map(|f| (f.limits.concurrency as usize).saturating_sub(f.permits.available_permits()))
            .sum()
    }

    /// Where the host's log lines go.
    pub fn log_sink(&self) -> &LogSink {
        &self.log_sink
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
    pub fn route(&self, method: &::http::Method, path: &str) -> RouteMatch {
        self.router.route(method, path)
    }

    /// A new invocation of `f` with its configured timeout, starting now.
    pub fn new_invocation(&self, f: &Function, request_id: Option<String>, trace: TraceContext) -> Invocation {
        Invocation::new(self.app.clone(), f.name.clone(), f.limits.timeout, request_id, trace)
    }
}
