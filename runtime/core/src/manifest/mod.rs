//! `nimbus.toml`: the one file that drives `serve`, `invoke`, `compile` and packaging.
//!
//! Parsing is strict: unknown keys, bad sizes, bad durations, bad routes and
//! missing required fields are all errors that name the file, the line and
//! the key, so a typo never silently becomes a default.

mod units;
mod websocket;

pub use units::{ByteSize, Dur};
pub use websocket::{
    DEFAULT_HEARTBEAT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_FRAME, DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_MESSAGE, DEFAULT_MESSAGES_PER_SECOND, DEFAULT_ROUTE, DEFAULT_ROUTE_SELECTION, DEFAULT_SEND_QUEUE,
    RouteSelection, WebSocketSpec, offered_subprotocols,
};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub use crate::caps::config::SsmProvider;

/// The only manifest format version this build understands.
pub const MANIFEST_VERSION: u32 = 1;

/// A parsed and validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it was read from (or a label such as `<inline>`).
    pub path: PathBuf,
    /// Relative paths in the manifest resolve against this directory.
    pub dir: PathBuf,
    /// The application's name (`app.name`), used in logs and packaging.
    pub app_name: String,
    /// The declared functions, ordered by name.
    pub functions: Vec<FunctionSpec>,
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
    /// How often `ssm` / `ssm_path` values are fetched again (`config_refresh`,
    /// default 5 minutes); `None` (`"0s"`) fetches them once at boot.
    pub config_refresh: Option<Duration>,
    /// Where `ssm` / `ssm_path` keys are read from. Not written in the TOML: AWS
    /// by default, replaced with [`Manifest::set_ssm_provider`] (e.g. by a local
    /// overrides file) before boot. Every function of a manifest shares one.
    pub ssm: SsmProvider,
    /// Durable-task settings (`task = { ... }`); `None` when the section is absent. Only task components
    /// (exporting `nimbus:function/task`) may have one; they get [`TaskSpec::defaults`] without it.
    pub task: Option<TaskSpec>,
    /// `wasi:keyvalue` buckets the guest may open (`keyvalue = ["default", "rooms"]`; none by default).
    pub keyvalue: Vec<String>,
    /// WebSocket settings (`[function.NAME.websocket]`); `None` when the section is absent. Only WebSocket
    /// components (exporting `nimbus:function/websocket`) may have one; they get [`WebSocketSpec::default`]
    /// without it.
    pub websocket: Option<WebSocketSpec>,
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

impl<'de> Deserialize<'de> for Reuse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Reuse;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or the number of invocations an instance may serve (at least 1)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Reuse, E> {
                Ok(if v {
                    Reuse::Warm { max_uses: None }
                } else {
                    Reuse::Fresh
                })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Reuse, E> {
                match u32::try_from(v) {
                    Ok(0) | Err(_) => Err(E::custom(format!(
                        "reuse = {v} is out of range: use false, true, or 1..={}",
                        u32::MAX
                    ))),
                    Ok(1) => Ok(Reuse::Fresh),
                    Ok(n) => Ok(Reuse::Warm { max_uses: Some(n) }),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Reuse, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

/// One allowed outbound origin: `https://api.example.com`, `http://127.0.0.1:8080`,
/// `https://*.example.com`, `http://[::1]:*`.
///
/// A rule matches what a request *names*; the address the name resolves to is checked separately
/// ([`crate::caps::outbound::address`]): loopback and private addresses are reached only through a rule
/// whose host is that IP, written as an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRule {
    /// `http` or `https`.
    pub scheme: String,
    /// Exact host (an IPv6 address in brackets), `*`, or `*.suffix`.
    pub host: String,
    /// The host, when it is an IP literal.
    pub ip: Option<IpAddr>,
    /// `None` means any port.
    pub port: Option<u16>,
}

/// The IP address `host` names when it is written as one (`127.0.0.1`, `[::1]`): dotted-quad IPv4 and
/// standard IPv6 only. Other spellings (`2130706433`, `0x7f.1`, `127.1`) are names here; they reach the
/// resolver, and the address it returns is what the policy checks.
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

impl OutboundRule {
    /// Parses `scheme://host[:port]` (`:*` for any port; an IPv6 host in brackets).
    pub fn parse(text: &str) -> Result<OutboundRule, String> {
        let bad = || {
            format!(
                "invalid outbound host {text:?}: expected e.g. \"https://api.example.com\", \"http://127.0.0.1:8080\" \
                 or \"http://[::1]:*\""
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad());
        }
        // An IPv6 host is bracketed, so its colons are not a port separator.
        let (host, port) = match rest.find(']') {
            Some(end) if rest.starts_with('[') => (&rest[..=end], rest[end + 1..].strip_prefix(':')),
            _ => match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let port = match port {
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None if rest.len() > host.len() => return Err(bad()),
            None => Some(if scheme == "http" { 80 } else { 443 }),
        };
        let ip = literal_ip(host);
        if host.is_empty() || (ip.is_none() && (host.contains(':') || host.contains('[') || host.contains(']'))) {
            return Err(bad());
        }
        Ok(OutboundRule {
            scheme: scheme.into(),
            host: host.to_ascii_lowercase(),
            ip,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` matches this rule (`host` as in the URL, an IPv6
    /// address in brackets). An IP rule matches that IP however it is written in standard form;
    /// `*.suffix` matches names only, never an IP literal.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme != scheme || self.port.is_some_and(|p| p != port) {
            return false;
        }
        if let Some(ip) = self.ip {
            return literal_ip(host) == Some(ip);
        }
        if self.host == "*" {
            return true;
        }
        if let Some(suffix) = self.host.strip_prefix("*.") {
            let (h, s) = (host.as_bytes(), suffix.as_bytes());
            return h.len() > s.len() + 1
                && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
                && h[h.len() - s.len() - 1] == b'.'
                && literal_ip(host).is_none();
        }
        self.host.eq_ignore_ascii_case(host)
    }
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
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

/// A manifest problem, pointing at the file, line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `function.hello.memory`, when known.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ManifestError {}

// ---- raw serde shapes: exactly the TOML, nothing inferred ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    manifest_version: Spanned<u32>,
    #[serde(default)]
    app: Option<RawApp>,
    #[serde(default)]
    defaults: RawLimits,
    #[serde(default)]
    function: BTreeMap<String, Spanned<RawFunction>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<Spanned<ByteSize>>,
    timeout: Option<Spanned<Dur>>,
    concurrency: Option<Spanned<u32>>,
    max_request_body: Option<Spanned<ByteSize>>,
    max_response_body: Option<Spanned<ByteSize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    component: String,
    precompiled: Option<String>,
    #[serde(default)]
    routes: Vec<Spanned<String>>,
    memory: Option<Spanned<ByteSize>>,
    timeout: Option<Spanned<Dur>>,
    concurrency: Option<Spanned<u32>>,
    max_request_body: Option<Spanned<ByteSize>>,
    max_response_body: Option<Spanned<ByteSize>>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<RawConfigKey>>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    reuse: Reuse,
    config_refresh: Option<Spanned<Dur>>,
    task: Option<Spanned<RawTask>>,
    #[serde(default)]
    keyvalue: Vec<Spanned<String>>,
    websocket: Option<Spanned<websocket::RawWebSocket>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    max_checkpoint: Option<Spanned<ByteSize>>,
    yield_margin: Option<Spanned<Dur>>,
    max_attempts: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfigKey {
    value: Option<String>,
    env: Option<String>,
    file: Option<String>,
    ssm: Option<String>,
    ssm_path: Option<String>,
    default: Option<String>,
    required: Option<bool>,
    secret: Option<bool>,
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
        let err = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| ManifestError {
            file: file.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            key,
            message,
        };
        let de = toml::de::Deserializer::parse(text).map_err(|e| err(e.span(), None, e.message().to_string()))?;
        let raw: RawManifest = serde_path_to_error::deserialize(de).map_err(|e| {
            // Spanned<T> shows up as a private segment; it means nothing to a user.
            let path = e.path().to_string().replace(".$__serde_spanned_private_value", "");
            let path = path.replace("$__serde_spanned_private_value", "");
            let inner = e.into_inner();
            let key = (path != "." && !path.is_empty()).then_some(path);
            err(inner.span(), key, inner.message().to_string())
        })?;

        if *raw.manifest_version.get_ref() != MANIFEST_VERSION {
            return Err(err(
                Some(raw.manifest_version.span()),
                Some("manifest_version".into()),
                format!(
                    "unsupported manifest_version {}: this nimbus understands version {MANIFEST_VERSION}",
                    raw.manifest_version.get_ref()
                ),
            ));
        }

        let defaults = apply_limits(Limits::default(), &raw.defaults, "defaults")
            .map_err(|(span, key, msg)| err(Some(span), Some(key), msg))?;

        let ssm = SsmProvider::default();
        let mut functions = Vec::with_capacity(raw.function.len());
        // WebSocket paths seen so far, with their function: two functions cannot share one.
        let mut ws_paths: BTreeMap<String, String> = BTreeMap::new();
        for (fname, f) in raw.function {
            let fspan = f.span();
            let f = f.into_inner();
            if !is_kebab_id(&fname) {
                return Err(err(
                    Some(fspan),
                    Some(format!("function.{fname}")),
                    "function names must be kebab-case: lowercase letters, digits and '-', starting with a letter"
                        .into(),
                ));
            }
            let prefix = format!("function.{fname}");
            let overrides = RawLimits {
                memory: f.memory.clone(),
                timeout: f.timeout.clone(),
                concurrency: f.concurrency.clone(),
                max_request_body: f.max_request_body.clone(),
                max_response_body: f.max_response_body.clone(),
            };
            let limits = apply_limits(defaults, &overrides, &prefix)
                .map_err(|(span, key, msg)| err(Some(span), Some(key), msg))?;

            let mut routes = Vec::with_capacity(f.routes.len());
            for r in &f.routes {
                let route =
                    parse_route(r.get_ref()).map_err(|m| err(Some(r.span()), Some(format!("{prefix}.routes")), m))?;
                routes.push(RouteSpec {
                    line: line_of(text, r.span().start),
                    ..route
                });
            }

            let mut config = BTreeMap::new();
            for (kname, spec) in f.config {
                let kspan = spec.span();
                let spec = spec.into_inner();
                let at = |m: String| err(Some(kspan.clone()), Some(format!("{prefix}.config.{kname}")), m);
                if kname.is_empty() || !kname.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                    return Err(at("config keys may use letters, digits, '_', '-' and '.' only".into()));
                }
                let source = match (spec.value, spec.env, spec.file, spec.ssm, spec.ssm_path) {
                    (Some(v), None, None, None, None) => ConfigSource::Value(v),
                    (None, Some(v), None, None, None) => ConfigSource::Env(v),
                    (None, None, Some(v), None, None) => ConfigSource::File(dir.join(v)),
                    (None, None, None, Some(v), None) => ConfigSource::Ssm(check_ssm_name(&v).map_err(at)?),
                    (None, None, None, None, Some(v)) => {
                        if spec.default.is_some() {
                            return Err(at("an `ssm_path` key has no single value to default: use \
                                 `required = false` to allow an empty path"
                                .into()));
                        }
                        ConfigSource::SsmPath(check_ssm_path(&v).map_err(at)?)
                    }
                    _ => {
                        return Err(at(
                            "give exactly one source: `value`, `env`, `file`, `ssm` or `ssm_path`".into(),
                        ));
                    }
                };
                config.insert(
                    kname,
                    ConfigKeySpec {
                        source,
                        default: spec.default,
                        required: spec.required.unwrap_or(true),
                        secret: spec.secret.unwrap_or(false),
                    },
                );
            }

            let mut allowed_outbound_hosts = Vec::new();
            for h in &f.allowed_outbound_hosts {
                let rule = OutboundRule::parse(h.get_ref())
                    .map_err(|m| err(Some(h.span()), Some(format!("{prefix}.allowed_outbound_hosts")), m))?;
                allowed_outbound_hosts.push(rule);
            }

            let config_refresh = match &f.config_refresh {
                None => Some(DEFAULT_CONFIG_REFRESH),
                Some(d) if d.get_ref().0.is_zero() => None,
                Some(d) if d.get_ref().0 < MIN_CONFIG_REFRESH => {
                    return Err(err(
                        Some(d.span()),
                        Some(format!("{prefix}.config_refresh")),
                        format!(
                            "config_refresh is too short: use \"0s\" (never refresh) or at least {}ms",
                            MIN_CONFIG_REFRESH.as_millis()
                        ),
                    ));
                }
                Some(d) => Some(d.get_ref().0),
            };

            let task = match &f.task {
                None => None,
                Some(t) => Some(
                    parse_task(t.get_ref(), limits.timeout, &prefix)
                        .map_err(|(span, key, msg)| err(Some(span), Some(key), msg))?,
                ),
            };

            let mut keyvalue = Vec::new();
            for b in &f.keyvalue {
                let name = b.get_ref();
                let ok = !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    return Err(err(
                        Some(b.span()),
                        Some(format!("{prefix}.keyvalue")),
                        format!("bad bucket name {name:?}: use 1-64 ASCII letters, digits, `-` or `_`"),
                    ));
                }
                keyvalue.push(name.clone());
            }
            let websocket = match &f.websocket {
                None => None,
                Some(w) => {
                    let w = w.get_ref();
                    let spec = w
                        .parse(&prefix)
                        .map_err(|(span, key, msg)| err(Some(span), Some(key), msg))?;
                    if let Some(p) = w.path()
                        && let Some(other) = ws_paths.insert(p.get_ref().clone(), fname.clone())
                    {
                        return Err(err(
                            Some(p.span()),
                            Some(format!("{prefix}.websocket.path")),
                            format!("websocket path {:?} is already function `{other}`'s", p.get_ref()),
                        ));
                    }
                    Some(spec)
                }
            };

            functions.push(FunctionSpec {
                name: fname,
                component: dir.join(&f.component),
                precompiled: f.precompiled.map(|p| dir.join(p)),
                routes,
                limits,
                config,
                allowed_outbound_hosts,
                reuse: f.reuse,
                config_refresh,
                ssm: ssm.clone(),
                task,
                keyvalue,
                websocket,
            });
        }

        Ok(Manifest {
            path: file.to_path_buf(),
            dir: dir.to_path_buf(),
            app_name: raw.app.map(|a| a.name).unwrap_or_else(|| "nimbus".into()),
            functions,
        })
    }

    /// The function with this name.
    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// Reads every function's `ssm` / `ssm_path` keys from `provider`
    /// instead of AWS with its default settings (a local overrides file, a
    /// test endpoint). Call before boot.
    pub fn set_ssm_provider(&mut self, provider: SsmProvider) {
        for f in &mut self.functions {
            f.ssm = provider.clone();
        }
    }

    /// Whether any function reads SSM: only then is an SSM client ever built.
    pub fn uses_ssm(&self) -> bool {
        self.functions.iter().any(|f| {
            f.config
                .values()
                .any(|k| matches!(k.source, ConfigSource::Ssm(_) | ConfigSource::SsmPath(_)))
        })
    }
}

/// SSM parameter names: letters, digits, `_.-/` (AWS's alphabet), plus `:` for
/// ARNs and `name:version` / `name:label` selectors.
fn check_ssm_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 2048
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/:".contains(c));
    if !ok {
        return Err(format!(
            "invalid SSM parameter name {name:?}: use letters, digits and `_.-/` (e.g. \"/shop/db-url\")"
        ));
    }
    Ok(name.to_string())
}

/// An SSM path: starts with `/`, SSM's alphabet; returned with a trailing `/`.
fn check_ssm_path(path: &str) -> Result<String, String> {
    let ok = path.starts_with('/')
        && path.len() <= 2048
        && !path.contains("//")
        && path.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if !ok {
        return Err(format!(
            "invalid SSM path {path:?}: it starts with '/' and uses letters, digits and `_.-/` (e.g. \"/shop/db/\")"
        ));
    }
    Ok(format!("{}/", path.trim_end_matches('/')))
}

type LimitError = (std::ops::Range<usize>, String, String);

/// Applies overrides to `base`, checking each against its allowed range.
fn apply_limits(mut base: Limits, o: &RawLimits, prefix: &str) -> Result<Limits, LimitError> {
    fn check<T: Copy + PartialOrd>(v: &Spanned<T>, lo: T, hi: T, key: String, what: &str) -> Result<T, LimitError> {
        let x = *v.get_ref();
        if x < lo || x > hi {
            return Err((v.span(), key, format!("{what} is out of range")));
        }
        Ok(x)
    }
    if let Some(m) = &o.memory {
        base.memory = check(
            m,
            ByteSize(1 << 20),
            ByteSize(4 << 30),
            format!("{prefix}.memory"),
            "memory (1MiB..=4GiB)",
        )?
        .0;
    }
    if let Some(t) = &o.timeout {
        base.timeout = check(
            t,
            Dur(Duration::from_millis(1)),
            Dur(Duration::from_secs(15 * 60)),
            format!("{prefix}.timeout"),
            "timeout (1ms..=15m)",
        )?
        .0;
    }
    if let Some(c) = &o.concurrency {
        base.concurrency = check(c, 1, 10_000, format!("{prefix}.concurrency"), "concurrency (1..=10000)")?;
    }
    let body = |b: &Spanned<ByteSize>, name: &str| {
        check(
            b,
            ByteSize(0),
            ByteSize(1 << 30),
            format!("{prefix}.{name}"),
            &format!("{name} (..=1GiB)"),
        )
        .map(|s| s.0)
    };
    if let Some(b) = &o.max_request_body {
        base.max_request_body = body(b, "max_request_body")?;
    }
    if let Some(b) = &o.max_response_body {
        base.max_response_body = body(b, "max_response_body")?;
    }
    Ok(base)
}

/// Checks a `task` section against its ranges and the function's timeout.
fn parse_task(t: &RawTask, timeout: Duration, prefix: &str) -> Result<TaskSpec, LimitError> {
    let mut spec = TaskSpec::defaults(timeout);
    if let Some(m) = &t.max_checkpoint {
        let v = m.get_ref().0;
        if !(1024..=1 << 30).contains(&v) {
            return Err((
                m.span(),
                format!("{prefix}.task.max_checkpoint"),
                "max_checkpoint (1KiB..=1GiB) is out of range".into(),
            ));
        }
        spec.max_checkpoint = v;
    }
    if let Some(y) = &t.yield_margin {
        let v = y.get_ref().0;
        if v >= timeout {
            return Err((
                y.span(),
                format!("{prefix}.task.yield_margin"),
                format!(
                    "yield_margin must be shorter than the function's timeout ({}ms), or should-yield is always true",
                    timeout.as_millis()
                ),
            ));
        }
        spec.yield_margin = v;
    }
    if let Some(a) = &t.max_attempts {
        let v = *a.get_ref();
        if !(1..=100).contains(&v) {
            return Err((
                a.span(),
                format!("{prefix}.task.max_attempts"),
                "max_attempts (1..=100) is out of range".into(),
            ));
        }
        spec.max_attempts = v;
    }
    Ok(spec)
}

fn is_kebab_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

/// Parses `"GET /a/{id}"`, `"ANY /x/{*rest}"` or `"/path"`.
fn parse_route(text: &str) -> Result<RouteSpec, String> {
    let text = text.trim();
    let (method, path) = match text.split_once(char::is_whitespace) {
        Some((m, p)) => (Some(m), p.trim()),
        None => (None, text),
    };
    let method = match method {
        None | Some("ANY") | Some("*") => None,
        Some(m) => {
            const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
            if !KNOWN.contains(&m) {
                return Err(format!(
                    "unknown method {m:?} in route {text:?}: use one of {KNOWN:?} or ANY"
                ));
            }
            Some(http::Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string())?)
        }
    };
    if !path.starts_with('/') {
        return Err(format!("route path must start with '/': {text:?}"));
    }
    crate::router::check_path(path).map_err(|e| format!("bad route {text:?}: {e}"))?;
    Ok(RouteSpec {
        method,
        path: path.to_string(),
        line: 0,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
