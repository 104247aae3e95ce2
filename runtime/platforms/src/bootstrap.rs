//! `bootstrap`: the executable a FaaS platform starts for a custom runtime: AWS Lambda (`provided.al2023`),
//! and the platforms that call in over HTTP (Function Compute, Cloud Run / Knative, Azure custom handlers).
//!
//! Its first log line names the platform it chose and why ([`nimbus_core::settings::platform`]):
//! `--platform` or `NIMBUS_PLATFORM`, else the variables the platform sets.
//!
//! Init is the same on every platform ([`init`]): find the manifest (`NIMBUS_MANIFEST`; on Lambda the
//! function package `$LAMBDA_TASK_ROOT` or a runtime layer `/opt`; elsewhere `nimbus.toml` next to the
//! executable, where every `nimbus package` target puts it), pick the function, boot one engine for it.
//! Only the platform's own part differs: Lambda's Runtime API, WebSocket, key-value and task store; the
//! others serve over HTTP through [`crate::serving`]. Task functions need the AWS checkpoint store, so they
//! are refused at init anywhere else. Lambda serves invocations through [`crate::lambda`] until the
//! environment is shut down.
//! Anything that stops boot — a bad manifest, a bad artifact, a missing
//! required config value — is reported to `/init/error` with a message that
//! names the cause, and the process exits non-zero. So does a Runtime API
//! that cannot go on (see [`crate::lambda`]): one log line names the call and
//! what was wrong, and the process exits 1.
//!
//! Settings: the environment, read once at start ([`nimbus_core::Settings`]; README, "Settings
//! (environment)", lists them all). A bad value is an init error naming the variable. Besides the ones every
//! entry point honours (engine, metrics, OpenTelemetry export, `NIMBUS_LOG`), `bootstrap` reads:
//! - `NIMBUS_MANIFEST`: the manifest (default: `$LAMBDA_TASK_ROOT/nimbus.toml`, then `/opt/nimbus.toml`);
//! - `NIMBUS_FUNCTION`: which function to serve when the manifest has several;
//! - `NIMBUS_DEADLINE_MARGIN_MS`: how long before Lambda's deadline the guest is stopped (default 100);
//! - `NIMBUS_OTEL_FLUSH_TIMEOUT_MS`: how long the flush after each invocation may hold up its result;
//! - `NIMBUS_WEBSOCKET_ENDPOINT`: the API Gateway Management API endpoint `connections` sends to
//!   (default for WebSocket invocations: the API the event came from);
//! - `NIMBUS_KV_TABLE`: the DynamoDB table behind `wasi:keyvalue` (partition key `bucket`, sort key `key`,
//!   both strings); without it `open` answers `no-such-store`;
//! - task functions: `NIMBUS_STATE_BUCKET`, `NIMBUS_TASK_TABLE`, `NIMBUS_TASK_QUEUE_URL` (the AWS task
//!   store, required; see [`crate::lambda::tasks`]).
//!
//! One invocation at a time: the instance pool is the least that fits ([`MIN_POOL_INSTANCES`] slots) unless
//! `NIMBUS_POOL_INSTANCES` asks for more.
//!
//! The Runtime API's address (`AWS_LAMBDA_RUNTIME_API`, set by Lambda) is a control endpoint of the
//! outbound policy: no guest request reaches it, whatever the allow-list says.

use crate::lambda::tasks::LambdaTasks;
use crate::lambda::{self, LambdaOptions};
use nimbus_core::caps::config::OosCredentials;
use nimbus_core::engine::MIN_POOL_INSTANCES;
use nimbus_core::settings::{PlatformChoice, PlatformKind, PlatformSettings};
use nimbus_core::telemetry::{Cloud, Platform};
use nimbus_core::{BootError, Host, Kind, Manifest, Settings, SettingsError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Why `bootstrap` could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// No manifest where one was looked for.
    #[error("no manifest found (looked for {0}); package the function with `nimbus package --target lambda`")]
    NoManifest(String),
    /// The manifest names several functions and `NIMBUS_FUNCTION` does not pick one.
    #[error("{0}")]
    WhichFunction(String),
    /// A setting is bad (a `NIMBUS_*` or `OTEL_*` variable, or Lambda's `AWS_LAMBDA_RUNTIME_API`).
    #[error(transparent)]
    Setting(#[from] SettingsError),
    /// The host could not boot.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// A task function's store is not configured.
    #[error(transparent)]
    TaskStore(#[from] crate::lambda::tasks::TaskStoreError),
    /// The function's kind cannot be served on this platform.
    #[error("function `{function}` is a {kind} function, which {platform} cannot serve: {why} (README, \"Platforms\")")]
    Unsupported {
        /// The function.
        function: String,
        /// Its kind.
        kind: &'static str,
        /// The platform's name.
        platform: &'static str,
        /// What is missing.
        why: &'static str,
    },
}

impl InitError {
    /// The `errorType` reported to `/init/error`.
    pub fn error_type(&self) -> &'static str {
        match self {
            InitError::NoManifest(_) => "Nimbus.Init.NoManifest",
            InitError::WhichFunction(_) => "Nimbus.Init.Function",
            InitError::Setting(_) => "Nimbus.Init.Setting",
            InitError::Boot(e) => e.error_type(),
            InitError::TaskStore(_) => "Nimbus.Init.TaskStore",
            InitError::Unsupported { .. } => "Nimbus.Init.Unsupported",
        }
    }
}

/// The manifest to load: `NIMBUS_MANIFEST`, else the first that exists of the package's and the layer's
/// `nimbus.toml` on Lambda, or of the one next to the executable elsewhere.
pub fn find_manifest(settings: &Settings, platform: PlatformKind) -> Result<PathBuf, InitError> {
    if let Some(p) = &settings.manifest {
        return Ok(p.clone());
    }
    let candidates = match platform {
        PlatformKind::Lambda => {
            let task_root =
                std::env::var_os("LAMBDA_TASK_ROOT").map_or_else(|| PathBuf::from("/var/task"), PathBuf::from);
            vec![task_root.join("nimbus.toml"), PathBuf::from("/opt/nimbus.toml")]
        }
        _ => {
            let beside = std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.join("nimbus.toml")));
            vec![beside.unwrap_or_else(|| PathBuf::from("nimbus.toml"))]
        }
    };
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

/// Which of the manifest's functions this environment serves: `asked` (`NIMBUS_FUNCTION`), else the only one.
pub fn pick_function(manifest: &Manifest, asked: Option<&str>) -> Result<String, InitError> {
    let names: Vec<&str> = manifest.functions.iter().map(|f| f.name.as_str()).collect();
    match asked {
        Some(name) if names.contains(&name) => Ok(name.to_owned()),
        Some(name) => Err(InitError::WhichFunction(format!(
            "NIMBUS_FUNCTION={name:?} is not in {} (it has: {})",
            manifest.path.display(),
            names.join(", ")
        ))),
        None => match names.as_slice() {
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

/// What init booted: the host serving one function, and Lambda's options when on Lambda.
struct Booted {
    host: Arc<Host>,
    lambda: Option<LambdaOptions>,
    /// The credentials `oos` config keys are fetched with, which Function Compute refreshes per request.
    oos_credentials: OosCredentials,
}

/// Boots the host for the packaged function on `platform`.
async fn init(started: Instant, settings: &Settings, platform: PlatformKind) -> Result<Booted, InitError> {
    let manifest =
        find_manifest(settings, platform).and_then(|path| Manifest::load(path).map_err(|e| BootError::from(e).into()));
    // Before a manifest error, so that a misspelt NIMBUS_MANIFEST is named.
    settings.warn(manifest.as_ref().ok());
    let manifest = manifest?;
    let function = pick_function(&manifest, settings.lambda.function.as_deref())?;
    let only = vec![function.clone()];
    let app = manifest.app_name.clone();
    let resource = match platform {
        PlatformKind::Lambda => Platform::Lambda { function, app },
        PlatformKind::FunctionCompute => Platform::Hosted {
            cloud: Cloud::FunctionCompute,
            function,
            app,
        },
        PlatformKind::Knative => Platform::Hosted {
            cloud: Cloud::Knative,
            function,
            app,
        },
        PlatformKind::Azure => Platform::Hosted {
            cloud: Cloud::Azure,
            function,
            app,
        },
    };
    let mut opts = settings.boot_options(&resource)?;
    opts.only = Some(only);
    if platform == PlatformKind::Lambda {
        lambda_boot_options(&mut opts, settings).await?;
    }
    let oos_credentials = opts.oos.credentials().cloned().unwrap_or_default();
    let host = Host::boot(manifest, opts).await?;
    let f = &host.functions()[0];
    let unsupported = |why| InitError::Unsupported {
        function: f.name.to_string(),
        kind: f.kind.as_str(),
        platform: platform.title(),
        why,
    };
    let lambda = match (platform, f.kind) {
        (PlatformKind::Lambda, kind) => {
            let tasks = match kind {
                Kind::Task => Some(Arc::new(
                    LambdaTasks::new(host.clone(), &f.name, &settings.lambda.task_store).await?,
                )),
                _ => None,
            };
            let (aws, defaults) = (&settings.lambda, LambdaOptions::default());
            Some(LambdaOptions {
                deadline_margin: aws.deadline_margin.unwrap_or(defaults.deadline_margin),
                tasks,
                ws_endpoint: aws.websocket_endpoint.clone(),
                ..defaults
            })
        }
        (_, Kind::Task) => {
            return Err(unsupported(
                "durable tasks checkpoint to the AWS store (S3 + DynamoDB + SQS), which is not ported to it; \
                 serve task functions on AWS Lambda or with `nimbus serve`",
            ));
        }
        (_, Kind::WebSocket) => {
            return Err(unsupported(
                "WebSocket functions are served through API Gateway's WebSocket API on Lambda and by `nimbus serve`",
            ));
        }
        (_, Kind::Http | Kind::Event) => None,
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
    Ok(Booted {
        host,
        lambda,
        oos_credentials,
    })
}

/// Lambda's part of the boot options: WebSocket sends, key-value on DynamoDB, the Runtime API closed to
/// guests, and one invocation at a time.
async fn lambda_boot_options(opts: &mut nimbus_core::BootOptions, settings: &Settings) -> Result<(), InitError> {
    let aws = &settings.lambda;
    // Any function may send to WebSocket clients of the API this names.
    if let Some(endpoint) = &aws.websocket_endpoint {
        let sender: nimbus_core::websocket::Sender = Arc::new(lambda::management::ManagementApi::new(endpoint).await);
        opts.connections = Some(sender);
    }
    if let Some(table) = &aws.kv_table {
        let sdk = nimbus_core::aws::sdk_config(&nimbus_core::aws::AwsSettings::default()).await;
        let client = nimbus_kv::dynamo::Client::new(&sdk);
        opts.keyvalue = Some(Arc::new(nimbus_kv::dynamo::Dynamo::new(client, table.clone())));
    }
    // Guests never reach the Runtime API, whatever their allow-list says.
    opts.outbound.control_endpoints =
        lambda::runtime_api_endpoints()
            .await
            .map_err(|value| SettingsError::Invalid {
                name: "AWS_LAMBDA_RUNTIME_API",
                value,
                expected: "host:port (e.g. 127.0.0.1:9001) or a URL, whose host resolves".into(),
            })?;
    // Lambda delivers one invocation at a time: no more instances, and the least pool that fits them unless
    // NIMBUS_POOL_INSTANCES asks for more.
    opts.concurrency_cap = Some(1);
    opts.engine.pool_instances = settings.engine.pool_instances.unwrap_or(MIN_POOL_INSTANCES);
    Ok(())
}

/// Serves the booted function on `platform` until the platform stops the environment: Lambda through its
/// Runtime API (which never ends but on an error), the others over HTTP with their adapter.
async fn serve(platform: PlatformKind, booted: Booted, settings: &Settings) -> Result<(), String> {
    match (platform, booted.lambda) {
        (PlatformKind::Lambda, Some(opts)) => match lambda::run(booted.host, 0, opts).await {
            Ok(never) => match never {},
            Err(e) => Err(e.to_string()),
        },
        (PlatformKind::Lambda, None) => Err("init prepared no Lambda options".into()),
        (PlatformKind::FunctionCompute, _) => crate::fc::serve(booted.host, settings, booted.oos_credentials)
            .await
            .map_err(|e| e.to_string()),
        (PlatformKind::Knative, _) => crate::knative::serve(booted.host, settings)
            .await
            .map_err(|e| e.to_string()),
        (PlatformKind::Azure, _) => crate::azure::serve(booted.host, settings)
            .await
            .map_err(|e| e.to_string()),
    }
}

/// The platform to serve: `flag`, else the settings' choice. With settings that could not be read, the
/// flag or Lambda's own variable decides, so that Lambda still receives the init error naming the setting.
fn choose_platform(
    settings: &Result<Settings, SettingsError>,
    flag: Option<PlatformKind>,
) -> Result<PlatformChoice, String> {
    match settings {
        Ok(settings) => settings.platform.choose(flag).map_err(|e| e.to_string()),
        Err(e) => {
            let lambda = PlatformKind::Lambda.markers();
            let fallback = PlatformSettings {
                asked: None,
                markers: lambda
                    .iter()
                    .copied()
                    .filter(|v| std::env::var_os(v).is_some())
                    .collect(),
            };
            fallback.choose(flag).map_err(|_| e.to_string())
        }
    }
}

/// The whole program: choose the platform, boot, report init errors, serve. `platform`: the `--platform`
/// flag.
pub fn main(platform: Option<PlatformKind>) -> ExitCode {
    let started = Instant::now();
    let settings = Settings::from_env();
    // A bad setting is reported as an init error below: log with the default filter meanwhile.
    let filter = settings
        .as_ref()
        .map_or_else(|_| Settings::default().log_filter(), Settings::log_filter);
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_current_span(false)
        .with_env_filter(filter)
        .init();
    let chosen = match choose_platform(&settings, platform) {
        Ok(chosen) => chosen,
        Err(e) => {
            eprintln!("bootstrap: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(platform = chosen.kind.as_str(), reason = %chosen.reason, "platform: {}", chosen.kind.title());
    let platform = chosen.kind;
    if platform == PlatformKind::Lambda
        && let Err(e) = lambda::check_env()
    {
        eprintln!("bootstrap: {e}");
        return ExitCode::FAILURE;
    }
    // Lambda delivers one invocation at a time: a single-threaded runtime has no cross-thread hand-offs on
    // the request path (the epoch ticker has its own thread). The others call in concurrently.
    let rt = match crate::runtime::builder(platform == PlatformKind::Lambda).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bootstrap: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let booted = match &settings {
            Ok(settings) => init(started, settings, platform).await.map(|b| (b, settings)),
            Err(e) => Err(InitError::Setting(e.clone())),
        };
        let (booted, settings) = match booted {
            Ok(booted) => booted,
            Err(e) => {
                tracing::error!(error_type = e.error_type(), "init failed: {e}");
                if platform == PlatformKind::Lambda
                    && let Err(report) = lambda::report_init_error(e.error_type(), &e.to_string()).await
                {
                    tracing::error!("could not report the init error: {report}");
                }
                return ExitCode::FAILURE;
            }
        };
        // Lambda's errors are one line naming the Runtime API call and what was wrong; never a panic.
        match serve(platform, booted, settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("stopping: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
