//! The config snapshot a function's invocations read, and the background task
//! that refreshes its remote (SSM and OOS) values every `config_refresh`.
//!
//! Invocations only load the current `Arc` (no lock, no I/O). A refresh builds
//! a whole new snapshot and swaps it in; one that fails keeps the last good
//! values, as does a parameter that disappears.

use super::fetched::{Failure, Fetched, Lookup, path_key};
use super::oos::OosProvider;
use super::ssm::SsmProvider;
use super::store::ConfigValues;
use crate::caps::Boot;
use crate::caps::trace::propagate::{ChildOf, SpanIds, new_span_id};
use crate::error::BootError;
use crate::telemetry::opentelemetry::KeyValue;
use crate::telemetry::opentelemetry_semantic_conventions::attribute as semconv;
use crate::telemetry::{SpanRecord, Telemetry};
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

/// A function's config: the current snapshot, its version, and the refresh task if any
/// (stopped when this is dropped, i.e. with its `Host`).
pub struct ConfigShared {
    snapshot: Arc<ArcSwap<ConfigValues>>,
    version: Arc<Mutex<ConfigVersion>>,
    refresher: Option<tokio::task::AbortHandle>,
}

/// Which of a function's config snapshots is current: 1 at boot, one more each time a refresh changed a
/// value. What an operator compares (the level-5 fault snapshot reports it) without the values, which may be
/// secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigVersion {
    /// 1 at boot, then one more per refresh that changed the values.
    pub version: u64,
    /// When this version was loaded.
    pub since: SystemTime,
}

impl Drop for ConfigShared {
    fn drop(&mut self) {
        if let Some(task) = &self.refresher {
            task.abort();
        }
    }
}

impl ConfigShared {
    /// The values an invocation sees: a clone of the current snapshot.
    pub fn current(&self) -> Arc<ConfigValues> {
        self.snapshot.load_full()
    }

    /// The current snapshot's version.
    pub fn version(&self) -> ConfigVersion {
        match self.version.lock() {
            Ok(v) => *v,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Fetches the remote keys, builds the first snapshot and, if `refresh` is
    /// set and there are remote keys, starts the refresh task.
    pub(super) async fn boot(
        function: &str,
        fixed: BTreeMap<String, String>,
        remote: Vec<RemoteKey>,
        providers: Providers,
        refresh: Option<Duration>,
        boot: &Boot,
    ) -> Result<ConfigShared, BootError> {
        let mut resolver = Resolver {
            app: boot.app.clone(),
            function: function.to_string(),
            fixed,
            keys: remote,
            providers,
            telemetry: boot.telemetry.clone(),
        };
        if !resolver.keys.is_empty() {
            let fetched = resolver.fetch(&boot.init, boot.init.span_id).await;
            resolver.apply_boot(&fetched)?;
        }
        let snapshot = Arc::new(ArcSwap::from_pointee(resolver.snapshot()));
        let version = Arc::new(Mutex::new(ConfigVersion {
            version: 1,
            since: SystemTime::now(),
        }));
        let refresher = match refresh {
            Some(every) if !resolver.keys.is_empty() => {
                spawn_refresh(resolver, Arc::downgrade(&snapshot), version.clone(), every)
            }
            _ => None,
        };
        Ok(ConfigShared {
            snapshot,
            version,
            refresher,
        })
    }
}

/// The refresh loop. It holds only a weak reference to the snapshot, so it
/// also ends by itself once the function is gone; it never panics.
fn spawn_refresh(
    mut resolver: Resolver,
    snapshot: Weak<ArcSwap<ConfigValues>>,
    version: Arc<Mutex<ConfigVersion>>,
    every: Duration,
) -> Option<tokio::task::AbortHandle> {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(app = %resolver.app, function = %resolver.function, "no async runtime: remote config values will not be refreshed");
        return None;
    };
    let task = rt.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if snapshot.strong_count() == 0 {
                break;
            }
            // Each refresh is a trace of its own.
            let trace = SpanIds::child_of("");
            let fetched = resolver.fetch(&trace, 0).await;
            resolver.apply_refresh(&fetched);
            let Some(s) = snapshot.upgrade() else { break };
            let next = resolver.snapshot();
            if **s.load() != next {
                s.store(Arc::new(next));
                if let Ok(mut v) = version.lock() {
                    *v = ConfigVersion {
                        version: v.version + 1,
                        since: SystemTime::now(),
                    };
                }
            }
        }
    });
    Some(task.abort_handle())
}

/// The parameter stores remote keys are read from: one provider each, shared by every function.
#[derive(Debug, Clone, Default)]
pub(super) struct Providers {
    /// `ssm` / `ssm_path` keys.
    pub ssm: SsmProvider,
    /// `oos` / `oos_path` keys.
    pub oos: OosProvider,
}

/// A parameter store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Store {
    /// AWS SSM Parameter Store.
    Ssm,
    /// Alibaba Cloud OOS Parameter Store.
    Oos,
}

impl Store {
    /// The store's short name, for messages ("SSM parameter ...").
    fn label(self) -> &'static str {
        match self {
            Store::Ssm => "SSM",
            Store::Oos => "OOS",
        }
    }

    /// The manifest key of its paths, for messages.
    fn path_source(self) -> &'static str {
        match self {
            Store::Ssm => "ssm_path",
            Store::Oos => "oos_path",
        }
    }
}

impl Providers {
    fn describe(&self, store: Store) -> String {
        match store {
            Store::Ssm => self.ssm.describe(),
            Store::Oos => self.oos.describe(),
        }
    }

    async fn fetch(&self, store: Store, names: &[String], paths: &[String]) -> Fetched {
        match store {
            Store::Ssm => self.ssm.fetch(names, paths).await,
            Store::Oos => self.oos.fetch(names, paths).await,
        }
    }
}

/// What one fetch of every store found.
#[derive(Debug, Default)]
struct Fetches {
    ssm: Fetched,
    oos: Fetched,
}

impl Fetches {
    fn of(&self, store: Store) -> &Fetched {
        match store {
            Store::Ssm => &self.ssm,
            Store::Oos => &self.oos,
        }
    }

    fn failed(&self) -> impl Iterator<Item = &Failure> {
        self.ssm.failed.iter().chain(&self.oos.failed)
    }
}

/// One remote (SSM- or OOS-backed) key of a function.
#[derive(Debug, Clone)]
pub(super) struct RemoteKey {
    /// The key the guest reads (for a path: the prefix of its keys).
    pub key: String,
    /// The store it is read from.
    pub store: Store,
    /// A parameter name, or a path.
    pub param: Param,
    /// Used when the parameter does not exist (never for a path).
    pub default: Option<String>,
    /// Boot fails without a value.
    pub required: bool,
    /// What the guest currently sees from this key.
    pub current: Current,
}

impl RemoteKey {
    /// A key as the manifest declares it; nothing fetched yet.
    pub(super) fn new(key: &str, store: Store, param: Param, decl: &crate::manifest::ConfigKeySpec) -> RemoteKey {
        RemoteKey {
            key: key.to_string(),
            store,
            param,
            default: decl.default.clone(),
            required: decl.required,
            current: Current::Absent,
        }
    }
}

/// What a remote key reads.
#[derive(Debug, Clone)]
pub(super) enum Param {
    /// One parameter.
    Name(String),
    /// Every parameter under a path (ends with `/`).
    Path(String),
}

/// A remote key's current value(s).
#[derive(Debug, Clone, Default)]
pub(super) enum Current {
    /// None: not required, and nothing fetched.
    #[default]
    Absent,
    /// The manifest's default.
    Default(String),
    /// A parameter's value (or, for a path, the guest key to value of each parameter).
    Fetched(BTreeMap<String, String>),
}

struct Resolver {
    /// The app and function the keys belong to, for log lines.
    app: Arc<str>,
    function: String,
    /// Values from `value`, `env` and `file`, resolved at boot.
    fixed: BTreeMap<String, String>,
    keys: Vec<RemoteKey>,
    providers: Providers,
    /// Where `nimbus.config.fetch` spans go.
    telemetry: Option<Telemetry>,
}

impl Resolver {
    /// Fetches every remote key, each store's as a `nimbus.config.fetch` span in `trace` under `parent`;
    /// the stores are asked at the same time.
    async fn fetch(&self, trace: &SpanIds, parent: u64) -> Fetches {
        // Boxed: the SDK's and the OOS client's futures nest deep, and every caller of `Host::boot`
        // would otherwise carry their whole layout (past the compiler's default query depth).
        let (ssm, oos) = tokio::join!(
            Box::pin(self.fetch_store(Store::Ssm, trace, parent)),
            Box::pin(self.fetch_store(Store::Oos, trace, parent))
        );
        Fetches { ssm, oos }
    }

    /// Fetches the keys read from `store` (none: nothing is asked, no span).
    async fn fetch_store(&self, store: Store, trace: &SpanIds, parent: u64) -> Fetched {
        let started = SystemTime::now();
        let mut names = Vec::new();
        let mut paths = Vec::new();
        for k in self.keys.iter().filter(|k| k.store == store) {
            let (list, p) = match &k.param {
                Param::Name(n) => (&mut names, n),
                Param::Path(p) => (&mut paths, p),
            };
            if !list.contains(p) {
                list.push(p.clone());
            }
        }
        if names.is_empty() && paths.is_empty() {
            return Fetched::default();
        }
        let fetched = self.providers.fetch(store, &names, &paths).await;
        if let Some(t) = &self.telemetry {
            let attributes = vec![
                KeyValue::new(semconv::FAAS_NAME, self.function.clone()),
                KeyValue::new("nimbus.config.source", self.providers.describe(store)),
                KeyValue::new("nimbus.config.parameters", names.len() as i64),
                KeyValue::new("nimbus.config.paths", paths.len() as i64),
                KeyValue::new("nimbus.config.missing", fetched.missing.len() as i64),
            ];
            let error = fetched.failed.first().map(|f| {
                let what = f.parameters.join(", ");
                ("config_fetch", format!("{what}: {}", f.error))
            });
            t.record_internal(
                trace,
                None,
                SpanRecord {
                    span_id: new_span_id(),
                    parent_id: parent,
                    name: "nimbus.config.fetch".into(),
                    started,
                    attributes,
                    error,
                },
            );
        }
        fetched
    }

    fn apply_boot(&mut self, fetched: &Fetches) -> Result<(), BootError> {
        for k in &mut self.keys {
            let source = self.providers.describe(k.store);
            let store = k.store.label();
            let fetched = fetched.of(k.store);
            let err = |message: String| BootError::Config {
                function: self.function.clone(),
                key: k.key.clone(),
                message,
            };
            let unavailable = match (&k.param, fetched) {
                (Param::Name(n), f) => match f.name(n) {
                    Lookup::Found(v) => {
                        k.current = Current::Fetched(BTreeMap::from([(k.key.clone(), v.to_string())]));
                        continue;
                    }
                    Lookup::Missing => format!("{store} parameter {n} does not exist in {source}"),
                    Lookup::Failed(e) => {
                        let why = format!("cannot fetch {store} parameter {n} from {source}: {e}");
                        tracing::warn!(app = %self.app, function = %self.function, key = %k.key, store, parameter = %n, error = %e, "config: parameter fetch failed at boot");
                        why
                    }
                },
                (Param::Path(p), f) => match f.path(p) {
                    Lookup::Found(list) if !list.is_empty() => {
                        let map = list
                            .iter()
                            .filter_map(|(name, v)| Some((path_key(&k.key, p, name)?, v.clone())))
                            .collect();
                        k.current = Current::Fetched(map);
                        continue;
                    }
                    Lookup::Found(_) | Lookup::Missing => {
                        format!("there are no {store} parameters under {p} in {source}")
                    }
                    Lookup::Failed(e) => format!("cannot fetch the {store} parameters under {p} from {source}: {e}"),
                },
            };
            k.current = match (&k.default, k.required) {
                (Some(d), _) => Current::Default(d.clone()),
                (None, false) => Current::Absent,
                (None, true) => {
                    return Err(err(format!(
                        "{unavailable} and the key has no default (set `required = false` to allow)"
                    )));
                }
            };
        }
        Ok(())
    }

    /// Takes what a refresh got; keeps the last good values of whatever it
    /// could not get, and says so (parameter names only: values are never logged).
    fn apply_refresh(&mut self, fetched: &Fetches) {
        for f in fetched.failed() {
            tracing::warn!(app = %self.app, function = %self.function, parameters = ?f.parameters, error = %f.error,
                "config refresh failed; keeping the last good values");
        }
        for k in &mut self.keys {
            let store = k.store.label();
            let fetched = fetched.of(k.store);
            match &k.param {
                Param::Name(n) => match fetched.name(n) {
                    Lookup::Found(v) => {
                        k.current = Current::Fetched(BTreeMap::from([(k.key.clone(), v.to_string())]));
                    }
                    Lookup::Missing => {
                        if matches!(k.current, Current::Fetched(_)) {
                            tracing::warn!(app = %self.app, function = %self.function, key = %k.key, store, parameter = %n,
                                "config refresh: the parameter no longer exists; keeping its last value");
                        }
                    }
                    Lookup::Failed(_) => {}
                },
                Param::Path(p) => {
                    if let Lookup::Found(list) = fetched.path(p) {
                        let mut now: BTreeMap<String, String> = list
                            .iter()
                            .filter_map(|(name, v)| Some((path_key(&k.key, p, name)?, v.clone())))
                            .collect();
                        if let Current::Fetched(before) = &k.current {
                            let gone: Vec<&String> = before.keys().filter(|key| !now.contains_key(*key)).collect();
                            if !gone.is_empty() {
                                tracing::warn!(app = %self.app, function = %self.function, store, path = %p, keys = ?gone,
                                    "config refresh: parameters no longer exist under the path; keeping their last values");
                            }
                            for (key, v) in before {
                                now.entry(key.clone()).or_insert_with(|| v.clone());
                            }
                        }
                        if !now.is_empty() {
                            k.current = Current::Fetched(now);
                        }
                    }
                }
            }
        }
    }

    /// The guest's view: fixed keys, then remote keys. A key under a path never
    /// replaces a key declared on its own.
    fn snapshot(&self) -> ConfigValues {
        self.view().into_iter().collect()
    }

    fn view(&self) -> BTreeMap<String, String> {
        let mut all = self.fixed.clone();
        let declared: Vec<&str> = self.keys.iter().map(|k| k.key.as_str()).collect();
        for k in &self.keys {
            match &k.current {
                Current::Absent => {}
                Current::Default(v) => {
                    all.insert(k.key.clone(), v.clone());
                }
                Current::Fetched(map) => {
                    for (key, v) in map {
                        let path_clash = matches!(k.param, Param::Path(_))
                            && (self.fixed.contains_key(key) || declared.contains(&key.as_str()));
                        if path_clash {
                            tracing::warn!(app = %self.app, function = %self.function, key = %key, source = k.store.path_source(),
                                "config: a parameter under a path maps to a declared key; the declared key wins");
                            continue;
                        }
                        all.insert(key.clone(), v.clone());
                    }
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str, param: Param, default: Option<&str>, required: bool) -> RemoteKey {
        RemoteKey {
            key: key.into(),
            store: Store::Ssm,
            param,
            default: default.map(Into::into),
            required,
            current: Current::Absent,
        }
    }

    fn overrides(dir: &std::path::Path, text: &str) -> SsmProvider {
        let file = dir.join("ssm.toml");
        std::fs::write(&file, text).unwrap();
        SsmProvider::overrides_file(file).unwrap()
    }

    fn resolver(provider: SsmProvider) -> Resolver {
        Resolver {
            app: "shop".into(),
            function: "f".into(),
            fixed: BTreeMap::from([("fixed".into(), "1".into())]),
            keys: vec![
                key("url", Param::Name("/app/url".into()), None, true),
                key("opt", Param::Name("/app/opt".into()), None, false),
                key("def", Param::Name("/app/def".into()), Some("d"), true),
                key("db", Param::Path("/app/db/".into()), None, true),
            ],
            providers: Providers {
                ssm: provider,
                oos: OosProvider::default(),
            },
            telemetry: None,
        }
    }

    fn no_boot() -> Boot {
        Boot {
            telemetry: None,
            init: SpanIds::child_of(""),
            connections: None,
            keyvalue: None,
            outbound: std::sync::Arc::new(
                crate::caps::outbound::send::Connector::new(&Default::default()).expect("TLS settings"),
            ),
            log_sink: Default::default(),
            ssm: Default::default(),
            oos: Default::default(),
            app: "shop".into(),
            intercept: Default::default(),
        }
    }

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "nimbus-cache-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn boot_then_refresh_keeps_last_good_values() {
        let d = dir();
        let p = overrides(
            &d,
            r#""/app/url" = "u1"
"/app/db/host" = "h1"
"/app/db/replica/port" = "5432"
"/app/db" = "not under the path"
"/app/dbx/host" = "not under the path either"
"#,
        );
        let mut r = resolver(p.clone());
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        r.apply_boot(&f).unwrap();
        let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            r.view(),
            want(&[
                ("db.host", "h1"),
                ("db.replica.port", "5432"),
                ("def", "d"),
                ("fixed", "1"),
                ("url", "u1")
            ])
        );

        // New values, one path parameter and the url parameter gone, the optional one appears.
        overrides(
            &d,
            "\"/app/url\" = \"x\"\n\"/app/opt\" = \"o\"\n\"/app/db/host\" = \"h2\"\n",
        );
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        r.apply_refresh(&f);
        assert_eq!(
            r.view(),
            want(&[
                ("db.host", "h2"),
                ("db.replica.port", "5432"),
                ("def", "d"),
                ("fixed", "1"),
                ("opt", "o"),
                ("url", "x")
            ])
        );
        overrides(&d, "\"/app/db/host\" = \"h3\"\n");
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        r.apply_refresh(&f);
        assert_eq!(r.view()["url"], "x", "a parameter that disappears keeps its last value");
        assert_eq!(r.view()["db.host"], "h3");

        // A failing fetch (unreadable file) changes nothing.
        std::fs::remove_file(d.join("ssm.toml")).unwrap();
        let before = r.view();
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        assert_eq!(f.failed().count(), 1);
        r.apply_refresh(&f);
        assert_eq!(r.view(), before);
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn missing_required_parameter_fails_boot_naming_it() {
        let d = dir();
        let mut r = resolver(overrides(&d, "\"/app/db/host\" = \"h\"\n"));
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        let e = r.apply_boot(&f).unwrap_err().to_string();
        assert!(
            e.contains("`f`") && e.contains("`url`") && e.contains("/app/url"),
            "{e}"
        );
        let mut r = resolver(overrides(&d, "\"/app/url\" = \"u\"\n"));
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        let e = r.apply_boot(&f).unwrap_err().to_string();
        assert!(
            e.contains("`db`") && e.contains("no SSM parameters under /app/db/"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn oos_keys_follow_the_same_rules_from_their_own_store() {
        let d = dir();
        let ssm = overrides(&d, "\"/app/url\" = \"from-ssm\"\n\"/app/db/host\" = \"h\"\n");
        let oos_file = d.join("oos.toml");
        std::fs::write(&oos_file, "\"/app/url\" = \"from-oos\"\n\"/app/cfg/a\" = \"1\"\n").unwrap();
        let oos = |key: &str, param: Param| RemoteKey {
            store: Store::Oos,
            ..self::key(key, param, None, true)
        };
        let mut r = resolver(ssm.clone());
        r.providers.oos = OosProvider::overrides_file(&oos_file).unwrap();
        r.keys.push(oos("ourl", Param::Name("/app/url".into())));
        r.keys.push(oos("cfg", Param::Path("/app/cfg/".into())));
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        r.apply_boot(&f).unwrap();
        let view = r.view();
        assert_eq!(view["url"], "from-ssm");
        assert_eq!(view["ourl"], "from-oos", "each key reads its own store");
        assert_eq!(view["cfg.a"], "1");
        assert!(!view.contains_key("db.a"));

        let mut r = resolver(ssm);
        r.providers.oos = OosProvider::overrides_file(&oos_file).unwrap();
        r.keys.push(oos("gone", Param::Name("/app/gone".into())));
        let f = r.fetch(&SpanIds::child_of(""), 0).await;
        let e = r.apply_boot(&f).unwrap_err().to_string();
        assert!(
            e.contains("`gone`") && e.contains("OOS parameter /app/gone does not exist in the overrides file"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[tokio::test]
    async fn refresh_task_swaps_values_and_stops_with_its_owner() {
        let d = dir();
        let p = overrides(&d, "\"/app/url\" = \"1\"\n\"/app/db/host\" = \"h\"\n");
        let Resolver {
            fixed, keys, providers, ..
        } = resolver(p.clone());
        let shared = ConfigShared::boot("f", fixed, keys, providers, Some(Duration::from_millis(20)), &no_boot())
            .await
            .unwrap();
        let first = shared.current();
        assert_eq!(shared.version().version, 1);
        // Refreshes that find the same values keep the snapshot and its version.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(Arc::ptr_eq(&first, &shared.current()));
        assert_eq!(shared.version().version, 1);
        overrides(&d, "\"/app/url\" = \"2\"\n\"/app/db/host\" = \"h\"\n");
        let mut seen = false;
        for _ in 0..250 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if !Arc::ptr_eq(&first, &shared.current()) {
                seen = true;
                break;
            }
        }
        assert!(seen, "the refresh task must swap in a new snapshot");
        assert_eq!(shared.current().value("url"), Some("2"));
        assert_eq!(shared.version().version, 2);
        drop(shared);
        let mut stopped = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            // The test's own clone is the last holder once the task is gone.
            if p.holders() == 1 {
                stopped = true;
                break;
            }
        }
        assert!(stopped, "the refresh task must end when its ConfigShared is dropped");
        std::fs::remove_dir_all(&d).ok();
    }
}
