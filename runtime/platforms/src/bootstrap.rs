//! `bootstrap`: the executable Lambda starts for a custom runtime
//! (`provided.al2023`).
//!
//! It finds the manifest in the function package (`$LAMBDA_TASK_ROOT`) or a
//! runtime layer (`/opt`), boots one engine for one function, and serves
//! invocations through [`crate::lambda`] until the environment is shut down.
//! Anything that stops boot — a bad manifest, a bad artifact, a missing
//! required config value — is reported to `/init/error` with a message that
//! names the cause, and the process exits non-zero. So does a Runtime API
//! that cannot go on (see [`crate::lambda`]): one log line names the call and
//! what was wrong, and the process exits 1.
//!
//! Settings (environment variables; a bad value is an init error):
//! - `NIMBUS_MANIFEST`: the manifest (default: `$LAMBDA_TASK_ROOT/nimbus.toml`, then `/opt/nimbus.toml`);
//! - `NIMBUS_FUNCTION`: which function to serve when the manifest has several;
//! - `NIMBUS_DEADLINE_MARGIN_MS`: how long before Lambda's deadline the guest is stopped (default 100);
//! - `NIMBUS_METRICS=emf`: one CloudWatch Embedded Metric Format line per invocation
//!   (`NIMBUS_METRICS_NAMESPACE`, default `Nimbus`); `NIMBUS_METRICS=otlp`: the
//!   OpenTelemetry FaaS metrics over OTLP/HTTP to `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
//!   or `OTEL_EXPORTER_OTLP_ENDPOINT` (one of them is required), flushed with the spans;
//! - `NIMBUS_LOG`: host log filter (default `info`); the engine's `NIMBUS_*` settings;
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: export spans
//!   (OTLP/HTTP), flushed after each invocation within `NIMBUS_OTEL_FLUSH_TIMEOUT_MS`;
//! - `NIMBUS_WEBSOCKET_ENDPOINT`: the API Gateway Management API endpoint `connections` sends to
//!   (default for WebSocket invocations: the API the event came from);
//! - `NIMBUS_KV_TABLE`: the DynamoDB table behind `wasi:keyvalue` (partition key `bucket`, sort key `key`,
//!   both strings); without it `open` answers `no-such-store`;
//! - task functions: `NIMBUS_STATE_BUCKET`, `NIMBUS_TASK_TABLE`, `NIMBUS_TASK_QUEUE_URL` (the AWS task
//!   store, required; see [`crate::lambda::tasks`]).
//!
//! The Runtime API's address (`AWS_LAMBDA_RUNTIME_API`, set by Lambda) is a control endpoint of the
//! outbound policy: no guest request reaches it, whatever the allow-list says.

use crate::lambda::tasks::LambdaTasks;
use crate::lambda::{self, LambdaOptions};
use nimbus_core::engine::EngineOptions;
use nimbus_core::telemetry::{Platform, Telemetry, TelemetryError};
use nimbus_core::{BootError, BootOptions, Host, Kind, Manifest};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Why `bootstrap` could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// No manifest where one was looked for.
    #[error("no manifest found (looked for {0}); package the function with `nimbus package --target lambda`")]
    NoManifest(String),
    /// The manifest names several functions and `NIMBUS_FUNCTION` does not pick one.
    #[error("{0}")]
    WhichFunction(String),
    /// A `NIMBUS_*` setting of the bootstrap itself is bad.
    #[error("bad value {value:?} for {name}: {expected}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The host could not boot.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// An OpenTelemetry setting is bad.
    #[error(transparent)]
    Telemetry(TelemetryError),
    /// A task function's store is not configured.
    #[error(transparent)]
    TaskStore(#[from] crate::lambda::tasks::TaskStoreError),
}

impl InitError {
    /// The `errorType` reported to `/init/error`.
    pub fn error_type(&self) -> &'static str {
        match self {
            InitError::NoManifest(_) => "Nimbus.Init.NoManifest",
            InitError::WhichFunction(_) => "Nimbus.Init.Function",
            InitError::Setting { .. } => "Nimbus.Init.Setting",
            InitError::Boot(e) => e.error_type(),
            InitError::Telemetry(_) => "Nimbus.Init.Setting",
            InitError::TaskStore(_) => "Nimbus.Init.TaskStore",
        }
    }
}

/// The manifest to load: `NIMBUS_MANIFEST`, else the first of the package's
/// and the layer's `nimbus.toml` that exists.
pub fn find_manifest() -> Result<PathBuf, InitError> {
    if let Some(p) = std::env::var_os("NIMBUS_MANIFEST") {
        return Ok(PathBuf::from(p));
    }
    let task_root = std::env::var_os("LAMBDA_TASK_ROOT").map_or_else(|| PathBuf::from("/var/task"), PathBuf::from);
    let candidates = [task_root.join("nimbus.toml"), PathBuf::from("/opt/nimbus.toml")];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        InitError::NoManifest(
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and "),
        )
    })
}

/// Which of the manifest's functions this environment serves.
pub fn pick_function(manifest: &Manifest) -> Result<String, InitError> {
    let names: Vec<&str> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
    match std::env::var("NIMBUS_FUNCTION") {
        Ok(name) if names.contains(&name.as_str()) => Ok(name),
        Ok(name) => Err(InitError::WhichFunction(format!(
            "NIMBUS_FUNCTION={name:?} is not in {} (it has: {})",
            manifest.path.display(),
            names.join(", ")
        ))),
        Err(_) => match names.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(InitError::WhichFunction(format!(
                "{} declares no function",
                manifest.path.display()
            ))),
            many => Err(InitError::WhichFunction(format!(
                "{} declares {} functions ({}); set NIMBUS_FUNCTION to the one this Lambda serves",
                manifest.path.display(),
                many.len(),
                many.join(", ")
            ))),
        },
    }
}

fn margin_from_env() -> Result<Duration, InitError> {
    match std::env::var("NIMBUS_DEADLINE_MARGIN_MS") {
        Err(_) => Ok(LambdaOptions::default().deadline_margin),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| InitError::Setting {
                name: "NIMBUS_DEADLINE_MARGIN_MS",
                value: v,
                expected: "milliseconds, e.g. 100",
            }),
    }
}

/// Span export as `OTEL_*` configures it. A bad setting stops init; an
/// exporter that cannot be built is logged and export stays off, since
/// tracing must never take the function down.
pub fn telemetry_from_env(platform: Platform) -> Result<Option<Telemetry>, InitError> {
    match Telemetry::from_env(&platform) {
        Ok(t) => Ok(t),
        Err(e @ TelemetryError::Setting { .. }) => Err(InitError::Telemetry(e)),
        Err(e) => {
            tracing::warn!("span export is off: {e}");
            Ok(None)
        }
    }
}

/// Boots the host for the packaged function.
async fn init(started: Instant) -> Result<(std::sync::Arc<Host>, LambdaOptions), InitError> {
    let deadline_margin = margin_from_env()?;
    let manifest = Manifest::load(find_manifest()?).map_err(BootError::from)?;
    let function = pick_function(&manifest)?;
    let platform = Platform::Lambda {
        function: function.clone(),
        app: manifest.app_name.clone(),
    };
    let metrics = nimbus_core::metrics::MetricsFormat::from_env(&platform)?;
    let telemetry = telemetry_from_env(platform)?;
    // Any function may send to WebSocket clients of the API this names.
    let connections = match lambda::management::endpoint_from_env() {
        Some(endpoint) => {
            let sender: nimbus_core::websocket::Sender =
                std::sync::Arc::new(lambda::management::ManagementApi::new(&endpoint).await);
            Some(sender)
        }
        None => None,
    };
    let keyvalue: Option<std::sync::Arc<dyn nimbus_kv::KvStore>> = match std::env::var(nimbus_kv::dynamo::TABLE_ENV) {
        Ok(table) if !table.trim().is_empty() => {
            let sdk = nimbus_core::aws::sdk_config(&nimbus_core::aws::AwsSettings::default()).await;
            let client = nimbus_kv::dynamo::Client::new(&sdk);
            Some(std::sync::Arc::new(nimbus_kv::dynamo::Dynamo::new(client, table)))
        }
        _ => None,
    };
    // Guests never reach the Runtime API, whatever their allow-list says.
    let control_endpoints = lambda::runtime_api_endpoints()
        .await
        .map_err(|value| InitError::Setting {
            name: "AWS_LAMBDA_RUNTIME_API",
            value,
            expected: "host:port (e.g. 127.0.0.1:9001) or a URL, whose host resolves",
        })?;
    let opts = BootOptions {
        outbound: nimbus_core::caps::outbound::network::OutboundOptions {
            control_endpoints,
            ..Default::default()
        },
        connections,
        keyvalue,
        engine: EngineOptions::default().with_env_overrides()?,
        only: Some(vec![function]),
        concurrency_cap: Some(1),
        metrics,
        telemetry,
        ..BootOptions::default()
    };
    let host = Host::boot(manifest, opts).await?;
    let f = &host.functions()[0];
    let tasks = match f.kind {
        Kind::Task => Some(std::sync::Arc::new(LambdaTasks::from_env(host.clone(), &f.name).await?)),
        _ => None,
    };
    tracing::info!(
        app = %host.app(),
        function = %f.name,
        kind = f.kind.as_str(),
        loaded_from = ?f.loaded_from,
        load_ms = f.load_time.as_secs_f64() * 1e3,
        init_ms = started.elapsed().as_secs_f64() * 1e3,
        "init done"
    );
    Ok((
        host,
        LambdaOptions {
            deadline_margin,
            tasks,
            ..LambdaOptions::default()
        },
    ))
}

/// The whole program: boot, report init errors, serve.
pub fn main() -> ExitCode {
    let started = Instant::now();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NIMBUS_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .init();
    if let Err(e) = lambda::check_env() {
        eprintln!("bootstrap: {e}");
        return ExitCode::FAILURE;
    }
    // One invocation at a time: a single-threaded runtime has no cross-thread
    // hand-offs on the request path (the epoch ticker has its own thread).
    let rt = match crate::runtime::builder(true).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bootstrap: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let (host, opts) = match init(started).await {
            Ok(booted) => booted,
            Err(e) => {
                tracing::error!(error_type = e.error_type(), "init failed: {e}");
                if let Err(report) = lambda::report_init_error(e.error_type(), &e.to_string()).await {
                    tracing::error!("could not report the init error: {report}");
                }
                return ExitCode::FAILURE;
            }
        };
        match lambda::run(host, 0, opts).await {
            Ok(never) => match never {},
            // One line naming the Runtime API call and what was wrong; never a panic.
            Err(e) => {
                tracing::error!("stopping: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
