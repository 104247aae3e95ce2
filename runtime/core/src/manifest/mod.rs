//! `nimbus.toml`: the one file that drives `serve`, `invoke`, `compile` and packaging.
//!
//! Parsing is strict: unknown keys, bad sizes, bad durations, bad routes and
//! missing required fields are all errors that name the file, the line and
//! the key, so a typo never silently becomes a default. It runs in three
//! stages: `raw` reads the TOML into types that mirror it (with spans),
//! `validate` checks each value and `resolve` assembles the [`Manifest`]
//! (inheritance from `[defaults]`, defaults, paths), running each check as it
//! reaches the value so the first mistake in the file is the one reported.
//! `runtime/core/tests/invalid_manifests/` holds the exact error of every way
//! a manifest can be wrong.

mod breaker;
mod degradation;
mod error;
mod outbound;
mod raw;
mod resolve;
pub(crate) mod units;
mod validate;
mod websocket;

pub use breaker::{Backup, BreakerSpec, Fallback, JitterSpec, OpenAnswer};
pub use error::ManifestError;
pub use outbound::{OutboundRule, literal_ip};
pub use units::{ByteSize, Count, Dur};
pub use websocket::{
    DEFAULT_HEARTBEAT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_FRAME, DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_MESSAGE, DEFAULT_MESSAGES_PER_SECOND, DEFAULT_ROUTE, DEFAULT_ROUTE_SELECTION, DEFAULT_SEND_QUEUE,
    RouteSelection, WebSocketSpec, offered_subprotocols,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The only manifest format version this build understands.
pub const MANIFEST_VERSION: u32 = 1;

/// The most `outbound_concurrency` may be: beyond it the instance's resource table
/// (`MAX_GUEST_RESOURCES` handles) runs out first.
pub const MAX_OUTBOUND_CONCURRENCY: u32 = 4096;

/// A parsed and validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it was read from (or a label such as `<inline>`).
    pub path: PathBuf,
    /// Relative paths in the manifest resolve against this directory.
    pub dir: PathBuf,
    /// The application's name (`app.name`; `nimbus` without one): the `app` field of the host's log lines,
    /// the OpenTelemetry `service.namespace`, and the `app` of each function's deployment description.
    pub app_name: String,
    /// The declared functions, ordered by name.
    pub functions: Vec<FunctionSpec>,
    /// `[faults]`: the fault-injection experiment the host runs unless `NIMBUS_FAULTS` replaces it.
    pub faults: Option<crate::faults::FaultPlan>,
}

/// One function: the unit of deployment.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function's id: kebab-case, unique in the manifest.
    pub name: String,
    /// The `.wasm` component (resolved path).
    pub component: PathBuf,
    /// An optional precompiled artifact made by `nimbus compile` (resolved path).
    pub precompiled: Option<PathBuf>,
    /// HTTP routes served by `nimbus serve` and the HTTP adapters.
    pub routes: Vec<RouteSpec>,
    /// Resource limits, after applying `[defaults]`.
    pub limits: Limits,
    /// Declared configuration keys: the only ones the guest can see.
    pub config: BTreeMap<String, ConfigKeySpec>,
    /// Origins the guest may call over `wasi:http` (none by default).
    pub allowed_outbound_hosts: Vec<OutboundRule>,
    /// Fresh instance per invocation (the default), or warm instances reused.
    pub reuse: Reuse,
    /// How often `ssm` / `ssm_path` / `oos` / `oos_path` values are fetched again (`config_refresh`,
    /// default 5 minutes); `None` (`"0s"`) fetches them once at boot. Where they are
    /// fetched from is not the manifest's business: see [`crate::BootOptions::ssm`] and
    /// [`crate::BootOptions::oos`].
    pub config_refresh: Option<Duration>,
    /// Durable-task settings (`task = { ... }`); `None` when the section is absent. Only task components
    /// (exporting `nimbus:function/task`) may have one; they get [`TaskSpec::defaults`] without it.
    pub task: Option<TaskSpec>,
    /// `wasi:keyvalue` buckets the guest may open (`keyvalue = ["default", "rooms"]`; none by default).
    pub keyvalue: Vec<String>,
    /// WebSocket settings (`[function.NAME.websocket]`); `None` when the section is absent. Only WebSocket
    /// components (exporting `nimbus:function/websocket`) may have one; they get [`WebSocketSpec::default`]
    /// without it.
    pub websocket: Option<WebSocketSpec>,
    /// Circuit breakers on its outbound hosts (`[function.NAME.breaker]`); `None`: none.
    pub breaker: Option<BreakerSpec>,
    /// Its degradation ladder (`[function.NAME.degradation]`); `None`: none.
    pub degradation: Option<crate::degrade::LadderSpec>,
}

/// `task = { max_checkpoint = "8MiB", yield_margin = "20s", max_attempts = 3 }`: how a long task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSpec {
    /// Largest state one checkpoint may hold (default 8 MiB); a larger save is refused, never retried.
    pub max_checkpoint: u64,
    /// `should-yield` turns true this long before the invocation's deadline (default: 20 s, or a quarter of
    /// the timeout when that is shorter).
    pub yield_margin: Duration,
    /// Attempts without progress before the task is marked failed (default 3): runs that failed (including
    /// hitting the deadline without saving) since the last yield, and runs that died without committing a
    /// checkpoint since the last commit; a run killed after saving is not counted.
    pub max_attempts: u32,
}

/// `task.max_checkpoint` when the manifest does not set it.
pub const DEFAULT_MAX_CHECKPOINT: u64 = 8 << 20;
/// `task.yield_margin` when the manifest does not set it (and the timeout is long enough).
pub const DEFAULT_YIELD_MARGIN: Duration = Duration::from_secs(20);
/// `task.max_attempts` when the manifest does not set it.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

impl TaskSpec {
    /// The settings of a task function with no `task` section (or unset keys), for its `timeout`.
    pub fn defaults(timeout: Duration) -> TaskSpec {
        TaskSpec {
            max_checkpoint: DEFAULT_MAX_CHECKPOINT,
            yield_margin: DEFAULT_YIELD_MARGIN.min(timeout / 4),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// `config_refresh` when the manifest does not set it.
pub const DEFAULT_CONFIG_REFRESH: Duration = Duration::from_secs(5 * 60);

/// The shortest non-zero `config_refresh`: SSM's default throughput is 40
/// calls per second per account, shared by every function.
pub const MIN_CONFIG_REFRESH: Duration = Duration::from_millis(100);

/// Whether an instance serves one invocation or several (`reuse` in the manifest).
///
/// Fresh instances are the safe default: nothing leaks from one request to
/// the next. Reuse is for handlers whose start-up work (parsing a model,
/// building a cache) dominates, the way a Lambda execution environment keeps
/// globals between warm invocations: `reuse = true` keeps an instance for as
/// long as it succeeds, `reuse = 1000` replaces it after 1000 invocations.
/// An instance that traps, times out or fails is always discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reuse {
    /// A new instance for every invocation (`reuse = false`, the default).
    #[default]
    Fresh,
    /// Keep instances warm; replace each after `max_uses` invocations, if set.
    Warm {
        /// Invocations one instance serves at most (`None`: no limit).
        max_uses: Option<u32>,
    },
}

impl Reuse {
    /// Whether an instance that has served `uses` invocations may serve another.
    pub fn keeps(self, uses: u32) -> bool {
        match self {
            Reuse::Fresh => false,
            Reuse::Warm { max_uses } => max_uses.is_none_or(|m| uses < m),
        }
    }
}

/// Per-invocation resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory of one instance, in bytes.
    pub memory: u64,
    /// Wall-clock deadline of one invocation.
    pub timeout: Duration,
    /// Invocations running at once; more wait in a queue.
    pub concurrency: u32,
    /// Outbound HTTP requests one invocation may have in flight at once (connecting, waiting or
    /// streaming); more fail at once with `connection-limit-reached`. Bounds what a guest that fans out
    /// without limit (an outbound fork-bomb) costs the host: `concurrency` × this many connections at most.
    pub outbound_concurrency: u32,
    /// Largest request body accepted (413 beyond).
    pub max_request_body: u64,
    /// Largest response body a guest may send.
    pub max_response_body: u64,
}

impl Default for Limits {
    /// Lambda-like defaults: 128 MiB, 30 s, 64 concurrent, 6 MB payloads
    /// (the synchronous Lambda invocation payload quota).
    fn default() -> Self {
        Limits {
            memory: 128 << 20,
            timeout: Duration::from_secs(30),
            concurrency: 64,
            outbound_concurrency: 64,
            max_request_body: 6 << 20,
            max_response_body: 6 << 20,
        }
    }
}

/// `"GET /hello"` or `"/hello/{name}"` (any method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `None` matches any method (`ANY` or no method written).
    pub method: Option<http::Method>,
    /// A path with `{param}` segments and an optional trailing `{*rest}`.
    pub path: String,
    /// Line in the manifest, for error messages.
    pub line: usize,
}

/// Where one declared config value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A literal value written in the manifest.
    Value(String),
    /// An environment variable of the host process.
    Env(String),
    /// A file's contents (one trailing newline removed).
    File(PathBuf),
    /// One SSM parameter (String, StringList as its comma-separated text, or
    /// SecureString decrypted), by name, ARN or `name:version` / `name:label`.
    Ssm(String),
    /// Every SSM parameter under a path, recursively: key `db` with path
    /// `/shop/db/` gives the guest `db.host` for `/shop/db/host`. Always ends in `/`.
    SsmPath(String),
    /// One parameter of Alibaba Cloud's OOS Parameter Store (Function Compute's SSM), plain or secret
    /// (decrypted), by name.
    Oos(String),
    /// Every OOS parameter under a path, plain and secret, recursively, named like [`ConfigSource::SsmPath`]'s.
    /// Always ends in `/`.
    OosPath(String),
}

/// A declared config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKeySpec {
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Used when the source has no value.
    pub default: Option<String>,
    /// Boot fails when the value is missing and there is no default (default: true).
    pub required: bool,
    /// Never logged; shown as `***` (default: false).
    pub secret: bool,
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read manifest: {e}"),
        })?;
        let dir = path
            .parent()
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .unwrap_or(Path::new("."));
        Manifest::parse(&text, path, dir)
    }

    /// Parses manifest text; `file` names it in errors, `dir` anchors relative paths.
    pub fn parse(text: &str, file: &Path, dir: &Path) -> Result<Manifest, ManifestError> {
        raw::read(text)
            .and_then(|raw| resolve::manifest(raw, text, file, dir))
            .map_err(|p| p.locate(file, text))
    }

    /// The function with this name.
    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// Whether any function reads SSM: only then is an SSM client ever built.
    pub fn uses_ssm(&self) -> bool {
        self.functions.iter().any(|f| {
            f.config
                .values()
                .any(|k| matches!(k.source, ConfigSource::Ssm(_) | ConfigSource::SsmPath(_)))
        })
    }

    /// Whether any function reads OOS Parameter Store: only then are OOS requests ever made.
    pub fn uses_oos(&self) -> bool {
        self.functions.iter().any(|f| {
            f.config
                .values()
                .any(|k| matches!(k.source, ConfigSource::Oos(_) | ConfigSource::OosPath(_)))
        })
    }
}

#[cfg(test)]
mod tests;
