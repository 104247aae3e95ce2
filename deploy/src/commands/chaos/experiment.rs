//! The experiment file `nimbus chaos` runs (TOML): what to load, how hard, which faults to inject when, and
//! the targets the service must meet.
//!
//! ```toml
//! name = "the quote upstream starts failing"
//!
//! [target]
//! manifest = "../../nimbus.toml"  # served in-process (relative to this file); or: url = "http://host:port"
//! path = "/quote"
//! method = "GET"
//!
//! [dependency]                    # a stand-in upstream started for the run (optional)
//! listen = "127.0.0.1:3901"
//! body = "Simplicity is prerequisite for reliability."
//! latency = "2ms"
//!
//! [load]
//! rate = 50                       # requests started per second
//! concurrency = 32                # most in flight; a tick with none free is skipped and counted
//! duration = "30s"
//! [[load.stage]]                  # optional: another rate for a while (a burst)
//! start = "10s"
//! duration = "5s"
//! rate = 400
//!
//! [faults]                        # a fault plan, as `[faults]` in nimbus.toml; its clock starts with the load
//! seed = 7
//! [[faults.rule]]
//! target = "outbound"
//! host = "127.0.0.1"
//! kind = "error"
//! start_after = "8s"
//! duration = "10s"
//!
//! [sla]
//! p99 = "250ms"                   # over the whole run
//! error_rate = 0.02               # over the whole run
//! recovery = "10s"                # from the end of the last fault window back within the targets
//! ```

use nimbus_core::faults::FaultPlan;
use nimbus_core::faults::plan::RawFaults;
use nimbus_core::manifest::Dur;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An experiment, validated.
#[derive(Debug)]
pub struct Experiment {
    /// Its name.
    pub name: String,
    /// What to load.
    pub target: Target,
    /// The request path (with query) and method.
    pub path: String,
    /// See `path`.
    pub method: http::Method,
    /// A stand-in upstream for the run.
    pub dependency: Option<Dependency>,
    /// The load profile.
    pub load: Load,
    /// The fault plan (`None`: none).
    pub faults: Option<FaultPlan>,
    /// The targets.
    pub sla: Sla,
}

/// What the load goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A manifest served in-process (faults injected, breakers watched).
    Manifest(PathBuf),
    /// Any URL (only the load and its measurements).
    Url(String),
}

/// A stand-in upstream.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// Where it listens.
    pub listen: SocketAddr,
    /// What it answers (200).
    pub body: String,
    /// How long it takes.
    pub latency: Duration,
}

/// The load profile.
#[derive(Debug, Clone)]
pub struct Load {
    /// Requests started per second.
    pub rate: f64,
    /// Most in flight.
    pub concurrency: u32,
    /// How long.
    pub duration: Duration,
    /// Other rates for a while.
    pub stages: Vec<Stage>,
}

impl Load {
    /// The rate at `t` into the run.
    pub fn rate_at(&self, t: Duration) -> f64 {
        self.stages
            .iter()
            .rev()
            .find(|s| t >= s.start && t < s.start + s.duration)
            .map_or(self.rate, |s| s.rate)
    }
}

/// A stretch of the run with its own rate.
#[derive(Debug, Clone)]
pub struct Stage {
    /// When it starts.
    pub start: Duration,
    /// How long.
    pub duration: Duration,
    /// Requests per second.
    pub rate: f64,
}

/// The targets; each is optional.
#[derive(Debug, Clone, Default)]
pub struct Sla {
    /// 99th-percentile latency over the run.
    pub p99: Option<Duration>,
    /// Failed share of requests over the run (0 to 1).
    pub error_rate: Option<f64>,
    /// Time from the end of the last fault window back within the targets.
    pub recovery: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    target: RawTarget,
    dependency: Option<RawDependency>,
    load: RawLoad,
    faults: Option<RawFaults>,
    #[serde(default)]
    sla: RawSla,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    manifest: Option<PathBuf>,
    url: Option<String>,
    path: Option<String>,
    method: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    listen: SocketAddr,
    #[serde(default)]
    body: String,
    latency: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    rate: f64,
    concurrency: Option<u32>,
    duration: Dur,
    #[serde(default)]
    stage: Vec<RawStage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    start: Dur,
    duration: Dur,
    rate: f64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSla {
    p99: Option<Dur>,
    error_rate: Option<f64>,
    recovery: Option<Dur>,
}

/// The most requests per second and in flight a run may ask for (a typo should not become a flood).
const MAX_RATE: f64 = 100_000.0;
const MAX_CONCURRENCY: u32 = 10_000;

impl Experiment {
    /// Reads and checks the experiment at `path`; `seed` replaces the plan's (`--seed`).
    pub fn load(path: &Path, seed: Option<u64>) -> anyhow::Result<Experiment> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the experiment {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Experiment::parse(&text, &path.display().to_string(), dir, seed)
    }

    /// Checks the experiment `text` (named `source` in errors; relative paths from `dir`).
    pub fn parse(text: &str, source: &str, dir: &Path, seed: Option<u64>) -> anyhow::Result<Experiment> {
        let de = toml::de::Deserializer::parse(text).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        let raw: Raw = serde_path_to_error::deserialize(de).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        let bad = |what: String| anyhow::anyhow!("{source}: {what}");
        let target = match (raw.target.manifest, raw.target.url) {
            (Some(m), None) => Target::Manifest(dir.join(m)),
            (None, Some(u)) if u.starts_with("http://") => Target::Url(u.trim_end_matches('/').to_owned()),
            (None, Some(u)) => return Err(bad(format!("target.url {u:?} is not an http:// URL"))),
            _ => return Err(bad("[target] needs `manifest` or `url` (one of them)".into())),
        };
        let path = raw.target.path.unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            return Err(bad(format!("target.path {path:?} does not start with /")));
        }
        let method = raw.target.method.as_deref().unwrap_or("GET");
        let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad(format!("target.method {method:?} is not an HTTP method")))?;
        let rate = |key: &str, r: f64| {
            if r > 0.0 && r <= MAX_RATE {
                Ok(r)
            } else {
                Err(bad(format!("{key} = {r}: a rate over 0 and at most {MAX_RATE}")))
            }
        };
        let load = Load {
            rate: rate("load.rate", raw.load.rate)?,
            concurrency: match raw.load.concurrency.unwrap_or(32) {
                c @ 1..=MAX_CONCURRENCY => c,
                c => return Err(bad(format!("load.concurrency = {c}: 1 to {MAX_CONCURRENCY}"))),
            },
            duration: match raw.load.duration.0 {
                d if d.is_zero() => return Err(bad("load.duration must be over 0".into())),
                d => d,
            },
            stages: raw
                .load
                .stage
                .iter()
                .map(|s| {
                    Ok(Stage {
                        start: s.start.0,
                        duration: s.duration.0,
                        rate: rate("load.stage.rate", s.rate)?,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let faults = match raw.faults {
            None => None,
            Some(f) => {
                let mut plan =
                    FaultPlan::from_raw(f, &format!("{source} [faults]"), nimbus_core::faults::plan::draw_seed)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                if let Some(s) = seed {
                    plan.seed = s;
                    plan.seeded = true;
                }
                Some(plan)
            }
        };
        if faults.is_some() && matches!(target, Target::Url(_)) {
            return Err(bad(
                "[faults] needs a served manifest (target.manifest): faults are injected inside the host".into(),
            ));
        }
        if let Some(e) = raw.sla.error_rate
            && !(0.0..=1.0).contains(&e)
        {
            return Err(bad(format!("sla.error_rate = {e}: from 0 to 1")));
        }
        Ok(Experiment {
            name: raw.name.unwrap_or_else(|| source.to_owned()),
            target,
            path,
            method,
            dependency: raw.dependency.map(|d| Dependency {
                listen: d.listen,
                body: d.body,
                latency: d.latency.map_or(Duration::ZERO, |l| l.0),
            }),
            load,
            faults,
            sla: Sla {
                p99: raw.sla.p99.map(|d| d.0),
                error_rate: raw.sla.error_rate,
                recovery: raw.sla.recovery.map(|d| d.0),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Experiment> {
        Experiment::parse(text, "x.toml", Path::new("/exp"), None)
    }

    /// Every shipped experiment is also a fault file: set as `NIMBUS_FAULTS` (under `bootstrap` on any
    /// platform, or `nimbus serve`) it gives the plan `nimbus chaos` injects.
    #[test]
    fn every_shipped_experiment_is_the_fault_file_for_a_platform() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chaos");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let e = Experiment::load(&path, None).unwrap();
            let plan = FaultPlan::from_setting(path.to_str().unwrap()).unwrap();
            assert_eq!(e.faults.as_ref(), Some(&plan), "{}", path.display());
            assert!(plan.seeded && !plan.rules.is_empty(), "{}", path.display());
            n += 1;
        }
        assert!(n >= 4, "{n} experiments in {}", dir.display());
    }

    #[test]
    fn an_experiment_reads_with_its_defaults_and_stages() {
        let e = parse(
            r#"
            [target]
            manifest = "../nimbus.toml"
            path = "/quote"
            [load]
            rate = 20
            duration = "10s"
            [[load.stage]]
            start = "2s"
            duration = "3s"
            rate = 200
            [faults]
            seed = 4
            [[faults.rule]]
            target = "outbound"
            kind = "error"
            [sla]
            p99 = "100ms"
            error_rate = 0.01
            "#,
        )
        .unwrap();
        assert_eq!(e.target, Target::Manifest(PathBuf::from("/exp/../nimbus.toml")));
        assert_eq!((e.method.as_str(), e.load.concurrency), ("GET", 32));
        assert_eq!(e.load.rate_at(Duration::from_secs(1)), 20.0);
        assert_eq!(e.load.rate_at(Duration::from_secs(3)), 200.0);
        assert_eq!(e.load.rate_at(Duration::from_secs(5)), 20.0);
        assert_eq!(e.faults.unwrap().seed, 4);
        assert_eq!(e.name, "x.toml");
        let seeded = Experiment::parse(
            "[target]\nmanifest = \"m.toml\"\n[load]\nrate = 1\nduration = \"1s\"\n[faults]\n[[faults.rule]]\ntarget = \"config\"\nkind = \"error\"",
            "x",
            Path::new("."),
            Some(99),
        )
        .unwrap();
        assert_eq!(seeded.faults.unwrap().seed, 99, "--seed wins");
    }

    #[test]
    fn bad_experiments_say_what_is_wrong() {
        let base = "[load]\nrate = 1\nduration = \"1s\"\n";
        for (text, says) in [
            (format!("[target]\n{base}"), "needs `manifest` or `url`"),
            (format!("[target]\nurl = \"ftp://x\"\n{base}"), "not an http:// URL"),
            (
                format!("[target]\nurl = \"http://x\"\npath = \"q\"\n{base}"),
                "does not start with /",
            ),
            (
                "[target]\nurl = \"http://x\"\n[load]\nrate = 0\nduration = \"1s\"".into(),
                "load.rate = 0",
            ),
            (
                "[target]\nurl = \"http://x\"\n[load]\nrate = 1\nduration = \"0s\"".into(),
                "load.duration",
            ),
            (
                format!(
                    "[target]\nurl = \"http://x\"\n{base}[faults]\n[[faults.rule]]\ntarget = \"config\"\nkind = \"error\""
                ),
                "needs a served manifest",
            ),
            (
                format!(
                    "[target]\nmanifest = \"m\"\n{base}[faults]\n[[faults.rule]]\ntarget = \"config\"\nkind = \"reset\""
                ),
                "applies to target = \"outbound\" only",
            ),
            (
                format!("[target]\nurl = \"http://x\"\n{base}[sla]\nerror_rate = 5"),
                "sla.error_rate",
            ),
            (
                format!("[target]\nurl = \"http://x\"\n{base}[sla]\np90 = \"1s\""),
                "p90",
            ),
        ] {
            let e = parse(&text).expect_err(&text).to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
