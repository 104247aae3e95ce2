//! `nimbus serve`: the local gateway.

use crate::progress::{Step, boot_progress};
use nimbus_core::artifact::LoadedFrom;
use nimbus_core::telemetry::Platform;
use nimbus_core::{Host, Kind, Settings, Tasks};
use nimbus_platforms::listener::{self, ListenerLimits, ListenerSettings};
use nimbus_platforms::local::{Connections, Gateway, GatewayOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `nimbus serve` options.
#[derive(clap::Args)]
pub struct Args {
    /// The manifest [default: nimbus.toml] [env: NIMBUS_MANIFEST].
    #[arg(long, short)]
    manifest: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3000] [env: NIMBUS_LISTEN].
    #[arg(long, short)]
    listen: Option<SocketAddr>,
    /// Do not write a JSON access-log line per request.
    #[arg(long)]
    no_access_log: bool,
    #[command(flatten)]
    env: super::local_env::LocalEnv,
    /// Where durable tasks keep their records, checkpoints and queue (default: `.nimbus/state` next to the
    /// manifest). A restarted `nimbus serve` on the same directory resumes the tasks in it [env:
    /// NIMBUS_STATE_DIR].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    limits: Limits,
}

/// The listener's connection limits (README, "Limits"); each one not given is its variable's
/// ([`ListenerSettings`]), else its default.
#[derive(clap::Args)]
struct Limits {
    /// How long a client may take to send a request's head, from connecting (or from the first byte of a
    /// later request on the same connection) [default: 10s] [env: NIMBUS_HEADER_READ_TIMEOUT].
    #[arg(long, value_name = "DURATION", value_parser = listener::parse_timeout)]
    header_read_timeout: Option<Duration>,
    /// How long a kept-alive connection may sit without a request before it is closed [default: 60s]
    /// [env: NIMBUS_KEEP_ALIVE_IDLE].
    #[arg(long, value_name = "DURATION", value_parser = listener::parse_timeout)]
    keep_alive_idle: Option<Duration>,
    /// Open connections at most, WebSockets included; more are answered 503 [default: 1024, lowered to
    /// fit the open-file limit] [env: NIMBUS_MAX_CONNECTIONS].
    #[arg(long, value_name = "N", value_parser = listener::parse_max_connections)]
    max_connections: Option<u32>,
    /// Open HTTP connections per client address at most; more are answered 429; 0: no per-address bound
    /// [default: 256] [env: NIMBUS_MAX_CONNECTIONS_PER_IP].
    #[arg(long, value_name = "N", value_parser = listener::parse_max_connections_per_ip)]
    max_connections_per_ip: Option<u32>,
}

impl Limits {
    /// The limits given, else the ones `env` sets, else the defaults.
    fn resolve(&self, env: &ListenerSettings) -> ListenerLimits {
        let flags = ListenerSettings {
            header_read_timeout: self.header_read_timeout,
            keep_alive_idle: self.keep_alive_idle,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
        };
        ListenerLimits::from_settings(&flags.or(env))
    }
}

/// The state directory (tasks, and `kv/` for `wasi:keyvalue`): `--state-dir`, else `.nimbus/state` beside
/// the manifest.
pub fn state_dir(manifest: &std::path::Path, flag: Option<&std::path::Path>) -> PathBuf {
    match flag {
        Some(dir) => dir.to_path_buf(),
        None => manifest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .join(".nimbus/state"),
    }
}

/// Loads the environment file (before the runtime starts: see [`super::local_env::LocalEnv::load_env_file`]).
pub fn load_env_file(args: &Args) -> anyhow::Result<Option<PathBuf>> {
    args.env.load_env_file()
}

/// Boots the manifest's functions and serves until SIGINT/SIGTERM.
pub async fn run(args: Args, settings: &Settings) -> anyhow::Result<()> {
    tracing::debug!(
        since_start_us = crate::STARTED
            .get()
            .map(|t| t.elapsed().as_micros() as u64)
            .unwrap_or(0),
        "serve: start"
    );
    let manifest_path = super::manifest_path(args.manifest.as_deref(), settings);
    let state_dir_flag = args.state_dir.as_deref().or(settings.local.state_dir.as_deref());
    let listen = args
        .listen
        .or(settings.local.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));
    let manifest = super::load_manifest(&manifest_path);
    // Before a manifest error, so that a misspelt NIMBUS_MANIFEST is named.
    settings.warn(manifest.as_ref().ok());
    let manifest = manifest?;
    let ssm = args.env.ssm_provider(&manifest, settings)?;
    let step = Arc::new(Step::start(format!(
        "booting {} functions from {}",
        manifest.functions.len(),
        manifest_path.display()
    )));
    let platform = Platform::Local {
        service: super::service_name(&manifest_path),
        app: manifest.app_name.clone(),
    };
    let mut opts = settings.boot_options(&platform)?;
    // `wasi:keyvalue`: only when some function declares a bucket, so other apps create no state directory.
    let keyvalue: Option<Arc<dyn nimbus_kv::KvStore>> = if manifest.functions.iter().any(|f| !f.keyvalue.is_empty()) {
        let dir = state_dir(&manifest_path, state_dir_flag).join("kv");
        let store = nimbus_kv::Embedded::open(&dir)
            .map_err(|e| anyhow::anyhow!("cannot open the key-value store in {}: {e}", dir.display()))?;
        Some(Arc::new(store))
    } else {
        None
    };
    // The gateway's WebSocket clients, made before boot so that every function's `connections` reaches them.
    let connections = Arc::new(Connections::new());
    opts.progress = Some(boot_progress(step.clone()));
    opts.keyvalue = keyvalue;
    opts.connections = Some(connections.clone());
    opts.ssm = ssm;
    let host = Host::boot(manifest.clone(), opts).await?;
    step.finish(format!(
        "booted {} functions in {} ms",
        host.functions().len(),
        host.boot_time.as_millis()
    ));

    // Durable tasks: only when some function is a task function, so other apps create no state directory.
    let tasks = if host.functions().iter().any(|f| f.kind == Kind::Task) {
        let dir = state_dir(&manifest_path, state_dir_flag);
        let tasks = Tasks::embedded(host.clone(), &dir)
            .map_err(|e| anyhow::anyhow!("cannot open the task store in {}: {e}", dir.display()))?;
        eprintln!("task store: {}", dir.display());
        Some(Arc::new(tasks))
    } else {
        None
    };
    let (stop_tasks, tasks_stopped) = tokio::sync::watch::channel(false);
    let worker = tasks
        .clone()
        .map(|t| tokio::spawn(t.work(tasks_stopped, Duration::from_secs(10))));
    let gw_opts = GatewayOptions {
        access_log: !args.no_access_log,
        tasks,
        connections: Some(connections),
        limits: args.limits.resolve(&settings.listener),
        ..GatewayOptions::default()
    };
    let gateway = Gateway::start(host.clone(), listen, gw_opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let base = format!("http://{}", gateway.addr());
    for f in host.functions() {
        let routes = manifest
            .function(&f.name)
            .map(|s| s.routes.as_slice())
            .unwrap_or_default();
        let how = match &f.loaded_from {
            LoadedFrom::Precompiled => "precompiled".to_string(),
            LoadedFrom::Compiled => "compiled".to_string(),
            LoadedFrom::FellBack(_) => "compiled, artifact unusable".to_string(),
        };
        eprintln!(
            "  {} ({}, {how} in {} ms)",
            f.name,
            f.kind.as_str(),
            f.load_time.as_millis()
        );
        match f.kind {
            Kind::Http => {
                for r in routes {
                    eprintln!(
                        "    {:7} {base}{}",
                        r.method.as_ref().map_or("ANY", |m| m.as_str()),
                        r.path
                    );
                }
            }
            Kind::Event => eprintln!("    POST    {base}/2015-03-31/functions/{}/invocations", f.name),
            Kind::WebSocket => match f.websocket.as_ref().and_then(|w| w.path.as_deref()) {
                Some(path) => eprintln!("    {:7} ws://{}{path}", "WS", gateway.addr()),
                None => eprintln!(
                    "    (not served: give it a `websocket.path` in {})",
                    manifest_path.display()
                ),
            },
            Kind::Task => {
                eprintln!("    POST    {base}/tasks/{}", f.name);
                eprintln!("    GET     {base}/tasks/{}/{{task id}}", f.name);
            }
        }
    }
    let since_start = crate::STARTED
        .get()
        .map(|t| t.elapsed().as_micros() as u64)
        .unwrap_or(0);
    tracing::debug!(
        since_start_us = since_start,
        boot_us = host.boot_time.as_micros() as u64,
        "serve: listening"
    );
    eprintln!("listening on {base} (Ctrl-C to stop)");

    nimbus_platforms::serving::shutdown_signal().await;
    eprintln!("shutting down: finishing in-flight requests");
    gateway.shutdown().await;
    let _ = stop_tasks.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    // Spans and OTLP metrics are exported in the background; send the last ones.
    host.shutdown_telemetry(Duration::from_secs(5)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_flags_state_the_listeners_defaults() {
        let cmd = <Args as clap::Args>::augment_args(clap::Command::new("serve"));
        let help = |id: &str| {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).expect(id);
            arg.get_help().map(|h| h.to_string()).unwrap_or_default()
        };
        let d = ListenerLimits::default();
        let per_ip = d.max_connections_per_ip.unwrap_or(0);
        for (id, default) in [
            (
                "header_read_timeout",
                format!("[default: {}s]", d.header_read_timeout.as_secs()),
            ),
            (
                "keep_alive_idle",
                format!("[default: {}s]", d.keep_alive_idle.as_secs()),
            ),
            ("max_connections", format!("[default: {},", d.max_connections)),
            ("max_connections_per_ip", format!("[default: {per_ip}]")),
        ] {
            assert!(help(id).contains(&default), "--{id}: {:?} lacks {default:?}", help(id));
        }
        let none: [&str; 0] = [];
        let parsed = <Args as clap::FromArgMatches>::from_arg_matches(&cmd.clone().get_matches_from(none)).unwrap();
        assert_eq!(
            parsed.limits.resolve(&ListenerSettings::default()),
            d,
            "no flag: the defaults"
        );
    }
}
