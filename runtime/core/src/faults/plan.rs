//! The fault plan: the file format (`[faults]` in the manifest, or `NIMBUS_FAULTS` as TOML or JSON) and its
//! validation into [`FaultPlan`]. A plan that parses is one every rule of which can be applied: a kind that
//! its target cannot take, a probability over 1 or an empty latency range is refused here, naming the rule.

use crate::manifest::units::{ByteSize, Dur};
use serde::Deserialize;
use std::time::Duration;

/// A validated fault experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// What every decision derives from.
    pub seed: u64,
    /// Whether the seed was given (else it was drawn at start, and is logged so that a run can be replayed).
    pub seeded: bool,
    /// The rules, in the file's order.
    pub rules: Vec<Rule>,
    /// The operator's overrides (`[[override]]`): a forced degradation level, breakers reset.
    pub overrides: Vec<Override>,
}

/// `[[override]]`: what the operator forces, through the same document (and refresh) as the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The function (`None`: every function).
    pub function: Option<String>,
    /// The degradation level forced (0 to 5), if any.
    pub level: Option<u8>,
    /// Close every breaker of the function(s) when the document is installed.
    pub reset_breakers: bool,
}

/// One rule: where, what, how often and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name in logs, spans and metrics (`rule-<n>`, from 1, unless named).
    pub name: String,
    /// The only function it applies to (`None`: every function).
    pub function: Option<String>,
    /// The calls it applies to.
    pub target: Target,
    /// What it injects.
    pub fault: Fault,
    /// The chance, from 0 to 1, that it fires on a call it applies to (an invocation, for the invocation).
    pub probability: f64,
    /// The share, from 0 to 1, of invocations it applies to at all.
    pub invocations: f64,
    /// How long after the experiment started it begins.
    pub start_after: Duration,
    /// How long it lasts once begun (`None`: until the experiment ends).
    pub duration: Option<Duration>,
}

/// The calls a rule applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Outbound HTTP requests, by host (exact, without port; `None`: any), method and path prefix.
    Outbound {
        /// The host, lowercase, without a trailing dot.
        host: Option<String>,
        /// The method, uppercase.
        method: Option<String>,
        /// The start of the path.
        path_prefix: Option<String>,
    },
    /// `wasi:config` reads.
    Config,
    /// `wasi:keyvalue` calls.
    KeyValue,
    /// Checkpoint store calls.
    Checkpoint(CheckpointOp),
    /// WebSocket sends (`connections.send`, `close`).
    WebSocket,
    /// The invocation itself, before the guest runs.
    Invocation,
}

/// Which checkpoint store calls a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointOp {
    /// Every call.
    Any,
    /// Reads (the task record, a checkpoint).
    Read,
    /// Writes of checkpoint data.
    Write,
    /// Commits (the conditional update of the task record).
    Commit,
}

/// What a rule injects.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Added latency before the call (or before the guest runs).
    Latency(Latency),
    /// An error: for outbound HTTP, a response with this status (default 503) without calling the host; for
    /// the other calls, the typed error of their interface.
    Error {
        /// The outbound response's status.
        status: u16,
    },
    /// Outbound only: the connection reset before a response.
    Reset,
    /// Outbound only: no answer until the request's timeout.
    Timeout,
    /// Invocation only: the guest traps before it runs.
    Trap,
    /// Invocation only: this much CPU burnt before the guest runs.
    CpuBurn(Duration),
    /// Invocation only: the instance's memory limit lowered to this many bytes for the invocation.
    Memory(u64),
    /// Invocation only: this response, without running the guest.
    Respond {
        /// The status.
        status: u16,
        /// The body.
        body: String,
    },
}

impl Fault {
    /// Its `kind` as the plan names it (and logs, spans and metrics report it).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Latency(_) => "latency",
            Fault::Error { .. } => "error",
            Fault::Reset => "reset",
            Fault::Timeout => "timeout",
            Fault::Trap => "trap",
            Fault::CpuBurn(_) => "cpu",
            Fault::Memory(_) => "memory",
            Fault::Respond { .. } => "respond",
        }
    }
}

/// The host-call family a target belongs to. An invocation's share draws which rules apply to it only at the
/// first call of a family one of its rules targets, so rules that could never match its calls cost no draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Outbound HTTP.
    Outbound,
    /// `wasi:config`.
    Config,
    /// `wasi:keyvalue`.
    KeyValue,
    /// The checkpoint store.
    Checkpoint,
    /// WebSocket sends.
    WebSocket,
    /// The invocation itself.
    Invocation,
}

impl Family {
    /// Its name in logs, spans and metrics (the `target` of an injected fault).
    pub fn name(self) -> &'static str {
        match self {
            Family::Outbound => "outbound",
            Family::Config => "config",
            Family::KeyValue => "keyvalue",
            Family::Checkpoint => "checkpoint",
            Family::WebSocket => "websocket",
            Family::Invocation => "invocation",
        }
    }

    /// Its bit in a set of families.
    pub(super) fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl Target {
    /// The family of host calls it names.
    pub fn family(&self) -> Family {
        match self {
            Target::Outbound { .. } => Family::Outbound,
            Target::Config => Family::Config,
            Target::KeyValue => Family::KeyValue,
            Target::Checkpoint(_) => Family::Checkpoint,
            Target::WebSocket => Family::WebSocket,
            Target::Invocation => Family::Invocation,
        }
    }

    /// Whether an outbound request to `host` (lowercase, without port) with `method` and `path` is one this
    /// target names.
    pub fn outbound_matches(&self, host: &str, method: &str, path: &str) -> bool {
        let Target::Outbound {
            host: h,
            method: m,
            path_prefix: p,
        } = self
        else {
            return false;
        };
        h.as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host.trim_end_matches('.')))
            && m.as_deref().is_none_or(|m| m == method)
            && p.as_deref().is_none_or(|p| path.starts_with(p))
    }
}

/// How much latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this.
    Fixed(Duration),
    /// Uniform between the two.
    Uniform {
        /// The least.
        min: Duration,
        /// The most.
        max: Duration,
    },
}

/// Why a fault plan was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Not TOML or JSON of the plan's shape (the message names the line or key).
    #[error("{source_name}: {message}")]
    Syntax {
        /// Where the plan came from (`NIMBUS_FAULTS`, a file, the manifest).
        source_name: String,
        /// What is wrong, with the key's path.
        message: String,
    },
    /// A rule that cannot be applied.
    #[error("{source_name}: fault rule `{rule}`: {message}")]
    Rule {
        /// Where the plan came from.
        source_name: String,
        /// The rule's name.
        rule: String,
        /// Why it cannot apply.
        message: String,
    },
}

/// `[faults]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    seed: Option<u64>,
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default, rename = "override")]
    overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    function: Option<String>,
    level: Option<u8>,
    #[serde(default)]
    reset_breakers: bool,
}

/// One `[[faults.rule]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    function: Option<String>,
    target: RawTarget,
    host: Option<String>,
    method: Option<String>,
    path_prefix: Option<String>,
    op: Option<CheckpointOp>,
    kind: RawKind,
    latency: Option<RawLatency>,
    status: Option<u16>,
    body: Option<String>,
    burn: Option<Dur>,
    memory: Option<ByteSize>,
    probability: Option<f64>,
    percent: Option<f64>,
    start_after: Option<Dur>,
    duration: Option<Dur>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawTarget {
    Outbound,
    Config,
    Keyvalue,
    Checkpoint,
    Websocket,
    Invocation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Latency,
    Error,
    Reset,
    Timeout,
    Trap,
    Cpu,
    Memory,
    Respond,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLatency {
    Fixed(Dur),
    Range { min: Dur, max: Dur },
}

/// Whether the top level of a TOML document beside its `faults` is a manifest's (`manifest_version`) or a
/// `nimbus chaos` experiment's (`[target]` and `[load]`). Any other key beside `faults` is refused: in a plain
/// fault document it is a plan key written outside its table, which would otherwise be ignored.
fn embeds_plan(rest: &toml::Table) -> bool {
    rest.contains_key("manifest_version") || (rest.contains_key("target") && rest.contains_key("load"))
}

impl FaultPlan {
    /// The plan of a `NIMBUS_FAULTS` document, TOML or JSON (told apart by its first character), with or
    /// without a `faults` key around it. A TOML manifest or `nimbus chaos` experiment gives its `[faults]`
    /// section, so the experiment run locally is the file an operator sets on a platform. `source_name` names
    /// it in errors (with the path of the key at fault); `draw_seed` gives the seed when the document has none.
    pub fn parse(text: &str, source_name: &str, draw_seed: impl FnOnce() -> u64) -> Result<FaultPlan, PlanError> {
        let syntax = |message: String| PlanError::Syntax {
            source_name: source_name.to_owned(),
            message,
        };
        let raw: RawFaults = if text.trim_start().starts_with('{') {
            let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
            if let Some(object) = value.as_object_mut()
                && let Some(inner) = object.remove("faults")
            {
                if !object.is_empty() {
                    return Err(syntax(
                        "a document with `faults` has nothing else at its top level".into(),
                    ));
                }
                value = inner;
            }
            serde_path_to_error::deserialize(value).map_err(|e| syntax(e.to_string()))?
        } else {
            let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
            let value = match table.remove("faults") {
                Some(inner) if table.is_empty() || embeds_plan(&table) => inner,
                Some(_) => {
                    return Err(syntax(
                        "a document with `faults` has nothing else at its top level (unless it is a manifest or \
                         a `nimbus chaos` experiment, whose `[faults]` section is the plan)"
                            .into(),
                    ));
                }
                None => toml::Value::Table(table),
            };
            serde_path_to_error::deserialize(value).map_err(|e| syntax(e.to_string()))?
        };
        FaultPlan::from_raw(raw, source_name, draw_seed)
    }

    /// The plan `NIMBUS_FAULTS` names: inline TOML or JSON (a value that starts with `{` or `[`, or holds a `=`
    /// or a line break), else the path of a file holding one. An unseeded plan gets a random seed.
    pub fn from_setting(value: &str) -> Result<FaultPlan, String> {
        let v = value.trim();
        let inline = v.starts_with('{') || v.starts_with('[') || v.contains('=') || v.contains('\n');
        let (text, source) = if inline {
            (v.to_owned(), "NIMBUS_FAULTS".to_owned())
        } else {
            let text = std::fs::read_to_string(v)
                .map_err(|e| format!("a fault plan: inline TOML or JSON, or a file (cannot read {v}: {e})"))?;
            (text, v.to_owned())
        };
        FaultPlan::parse(&text, &source, draw_seed).map_err(|e| format!("a valid fault plan ({e})"))
    }

    /// The plan of a manifest's `[faults]` section, already read.
    pub fn from_raw(
        raw: RawFaults,
        source_name: &str,
        draw_seed: impl FnOnce() -> u64,
    ) -> Result<FaultPlan, PlanError> {
        let mut rules = Vec::with_capacity(raw.rule.len());
        for (i, r) in raw.rule.into_iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("rule-{}", i + 1));
            let rule = rule(r, name.clone()).map_err(|message| PlanError::Rule {
                source_name: source_name.to_owned(),
                rule: name.clone(),
                message,
            })?;
            if rules.iter().any(|other: &Rule| other.name == rule.name) {
                return Err(PlanError::Rule {
                    source_name: source_name.to_owned(),
                    rule: name,
                    message: "another rule has this name".into(),
                });
            }
            rules.push(rule);
        }
        let mut overrides = Vec::with_capacity(raw.overrides.len());
        for o in raw.overrides {
            if let Some(l) = o.level.filter(|l| *l > 5) {
                return Err(PlanError::Syntax {
                    source_name: source_name.to_owned(),
                    message: format!("override level {l} is not a degradation level (0 to 5)"),
                });
            }
            overrides.push(Override {
                function: o.function,
                level: o.level,
                reset_breakers: o.reset_breakers,
            });
        }
        Ok(FaultPlan {
            seed: raw.seed.unwrap_or_else(draw_seed),
            seeded: raw.seed.is_some(),
            rules,
            overrides,
        })
    }

    /// The level the operator forces on `function`, if any (the last override naming it, or every function).
    pub fn forced_level(&self, function: &str) -> Option<u8> {
        self.overrides
            .iter()
            .rev()
            .filter(|o| o.function.as_deref().is_none_or(|f| f == function))
            .find_map(|o| o.level)
    }

    /// The rules that apply to `function`, with their indexes in the plan (the index is part of each
    /// decision, so that two rules on the same call decide independently).
    pub fn rules_for<'a>(&'a self, function: &'a str) -> impl Iterator<Item = (usize, &'a Rule)> + 'a {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.function.as_deref().is_none_or(|f| f == function))
    }
}

/// A seed for a plan that names none (logged when the plan starts, so the run can be replayed).
pub fn draw_seed() -> u64 {
    fastrand::u64(..)
}

fn rule(r: RawRule, name: String) -> Result<Rule, String> {
    let outbound_only = [
        ("host", r.host.is_some()),
        ("method", r.method.is_some()),
        ("path_prefix", r.path_prefix.is_some()),
    ];
    if r.target != RawTarget::Outbound
        && let Some((key, _)) = outbound_only.iter().find(|(_, set)| *set)
    {
        return Err(format!("`{key}` applies to target = \"outbound\" only"));
    }
    if r.target != RawTarget::Checkpoint && r.op.is_some() {
        return Err("`op` applies to target = \"checkpoint\" only".into());
    }
    let target = match r.target {
        RawTarget::Outbound => Target::Outbound {
            host: r.host.map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
            method: r.method.map(|m| m.to_ascii_uppercase()),
            path_prefix: r.path_prefix,
        },
        RawTarget::Config => Target::Config,
        RawTarget::Keyvalue => Target::KeyValue,
        RawTarget::Checkpoint => Target::Checkpoint(r.op.unwrap_or(CheckpointOp::Any)),
        RawTarget::Websocket => Target::WebSocket,
        RawTarget::Invocation => Target::Invocation,
    };
    let is = |t: RawTarget| r.target == t;
    let only = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "kind = {:?} applies to {what} only",
                format!("{:?}", r.kind).to_lowercase()
            ))
        }
    };
    let unused = |key: &str, set: bool| {
        if set {
            Err(format!(
                "`{key}` does not apply to kind = {:?}",
                format!("{:?}", r.kind).to_lowercase()
            ))
        } else {
            Ok(())
        }
    };
    unused("latency", r.latency.is_some() && r.kind != RawKind::Latency)?;
    unused("burn", r.burn.is_some() && r.kind != RawKind::Cpu)?;
    unused("memory", r.memory.is_some() && r.kind != RawKind::Memory)?;
    unused("body", r.body.is_some() && r.kind != RawKind::Respond)?;
    let fault = match r.kind {
        RawKind::Latency => Fault::Latency(match r.latency {
            None => {
                return Err(
                    "kind = \"latency\" needs `latency` (\"200ms\", or { min = \"50ms\", max = \"500ms\" })".into(),
                );
            }
            Some(RawLatency::Fixed(d)) => Latency::Fixed(d.0),
            Some(RawLatency::Range { min, max }) if min.0 > max.0 => {
                return Err(format!("the latency range's min ({min}) is over its max ({max})"));
            }
            Some(RawLatency::Range { min, max }) => Latency::Uniform { min: min.0, max: max.0 },
        }),
        RawKind::Error => {
            let status = r.status.unwrap_or(503);
            if !(400..=599).contains(&status) {
                return Err(format!("status {status} is no error status (400 to 599)"));
            }
            if r.status.is_some() && !is(RawTarget::Outbound) {
                return Err("`status` applies to outbound errors and responses only; other calls fail with their interface's error".into());
            }
            Fault::Error { status }
        }
        RawKind::Reset => {
            only("target = \"outbound\"", is(RawTarget::Outbound))?;
            Fault::Reset
        }
        RawKind::Timeout => {
            only("target = \"outbound\"", is(RawTarget::Outbound))?;
            Fault::Timeout
        }
        RawKind::Trap => {
            only("target = \"invocation\"", is(RawTarget::Invocation))?;
            Fault::Trap
        }
        RawKind::Cpu => {
            only("target = \"invocation\"", is(RawTarget::Invocation))?;
            Fault::CpuBurn(r.burn.ok_or("kind = \"cpu\" needs `burn` (how long, e.g. \"50ms\")")?.0)
        }
        RawKind::Memory => {
            only("target = \"invocation\"", is(RawTarget::Invocation))?;
            let bytes = r
                .memory
                .ok_or("kind = \"memory\" needs `memory` (the lowered limit, e.g. \"16MiB\")")?
                .0;
            if bytes == 0 {
                return Err("`memory` must be over 0".into());
            }
            Fault::Memory(bytes)
        }
        RawKind::Respond => {
            only("target = \"invocation\"", is(RawTarget::Invocation))?;
            let status = r.status.unwrap_or(503);
            if !(100..=599).contains(&status) {
                return Err(format!("status {status} is no HTTP status"));
            }
            Fault::Respond {
                status,
                body: r.body.unwrap_or_default(),
            }
        }
    };
    if r.kind != RawKind::Error && r.kind != RawKind::Respond && r.status.is_some() {
        return Err(format!(
            "`status` does not apply to kind = {:?}",
            format!("{:?}", r.kind).to_lowercase()
        ));
    }
    let probability = r.probability.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&probability) {
        return Err(format!("probability {probability} is not from 0 to 1"));
    }
    let percent = r.percent.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("percent {percent} is not from 0 to 100"));
    }
    if r.duration.is_some_and(|d| d.0.is_zero()) {
        return Err("`duration` must be over 0 (leave it out for a rule that lasts)".into());
    }
    Ok(Rule {
        name,
        function: r.function,
        target,
        fault,
        probability,
        invocations: percent / 100.0,
        start_after: r.start_after.map_or(Duration::ZERO, |d| d.0),
        duration: r.duration.map(|d| d.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FaultPlan, PlanError> {
        FaultPlan::parse(text, "NIMBUS_FAULTS", || 99)
    }

    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(p) => panic!("accepted {text}: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A manifest or a `nimbus chaos` experiment set as `NIMBUS_FAULTS` gives its `[faults]` section.
    #[test]
    fn a_manifest_or_an_experiment_gives_its_faults_section() {
        let section = "[faults]\nseed = 5\n[[faults.rule]]\ntarget = \"config\"\nkind = \"error\"\n";
        let alone = parse(section).unwrap();
        let manifest = format!("manifest_version = 1\n[function.f]\ncomponent = \"f.wasm\"\n{section}");
        let experiment =
            format!("name = \"x\"\n[target]\nmanifest = \"m.toml\"\n[load]\nrate = 1\n{section}[sla]\np99 = \"1s\"\n");
        assert_eq!(parse(&manifest).unwrap(), alone);
        assert_eq!(parse(&experiment).unwrap(), alone);
        assert_eq!(alone.seed, 5);
    }

    #[test]
    fn toml_and_json_give_the_same_plan() {
        let toml = r#"
            [faults]
            seed = 7
            [[faults.rule]]
            name = "payments-down"
            target = "outbound"
            host = "API.Payments.example."
            method = "post"
            path_prefix = "/v1/"
            kind = "error"
            status = 502
            probability = 0.4
            percent = 25
            start_after = "10s"
            duration = "30s"
            [[faults.rule]]
            target = "invocation"
            kind = "latency"
            latency = { min = "50ms", max = "300ms" }
        "#;
        let json = r#"{"seed": 7, "rule": [
            {"name": "payments-down", "target": "outbound", "host": "API.Payments.example.", "method": "post",
             "path_prefix": "/v1/", "kind": "error", "status": 502, "probability": 0.4, "percent": 25,
             "start_after": "10s", "duration": "30s"},
            {"target": "invocation", "kind": "latency", "latency": {"min": "50ms", "max": "300ms"}}]}"#;
        let a = parse(toml).unwrap();
        assert_eq!(a, parse(json).unwrap());
        assert!(a.seeded);
        assert_eq!(a.seed, 7);
        assert_eq!(
            a.rules[0].target,
            Target::Outbound {
                host: Some("api.payments.example".into()),
                method: Some("POST".into()),
                path_prefix: Some("/v1/".into())
            }
        );
        assert_eq!(a.rules[0].fault, Fault::Error { status: 502 });
        assert_eq!(a.rules[0].invocations, 0.25);
        assert_eq!(a.rules[0].duration, Some(Duration::from_secs(30)));
        assert_eq!(a.rules[1].name, "rule-2");
        assert_eq!(
            a.rules[1].fault,
            Fault::Latency(Latency::Uniform {
                min: Duration::from_millis(50),
                max: Duration::from_millis(300)
            })
        );
        assert_eq!((a.rules[1].probability, a.rules[1].invocations), (1.0, 1.0));
    }

    #[test]
    fn a_plan_without_a_seed_draws_one_and_says_so() {
        let p = parse("[[rule]]\ntarget = \"config\"\nkind = \"error\"\n").unwrap();
        assert_eq!((p.seed, p.seeded), (99, false));
        assert_eq!(p.rules[0].fault, Fault::Error { status: 503 });
        let empty = parse("").unwrap();
        assert!(empty.rules.is_empty());
    }

    #[test]
    fn rules_apply_to_their_function_or_to_all() {
        let p = parse(
            "[[rule]]\ntarget = \"config\"\nkind = \"error\"\nfunction = \"a\"\n[[rule]]\ntarget = \"keyvalue\"\nkind = \"error\"\n",
        )
        .unwrap();
        let a: Vec<usize> = p.rules_for("a").map(|(i, _)| i).collect();
        let b: Vec<usize> = p.rules_for("b").map(|(i, _)| i).collect();
        assert_eq!((a, b), (vec![0, 1], vec![1]));
    }

    #[test]
    fn rules_that_cannot_apply_are_refused_by_name() {
        let cases = [
            (
                "target = \"config\"\nkind = \"reset\"",
                "kind = \"reset\" applies to target = \"outbound\" only",
            ),
            (
                "target = \"outbound\"\nkind = \"trap\"",
                "applies to target = \"invocation\" only",
            ),
            (
                "target = \"config\"\nkind = \"error\"\nhost = \"x\"",
                "`host` applies to target = \"outbound\" only",
            ),
            (
                "target = \"config\"\nkind = \"error\"\nstatus = 500",
                "`status` applies to outbound",
            ),
            (
                "target = \"outbound\"\nkind = \"error\"\nstatus = 200",
                "no error status",
            ),
            ("target = \"outbound\"\nkind = \"latency\"", "needs `latency`"),
            (
                "target = \"outbound\"\nkind = \"latency\"\nlatency = { min = \"2s\", max = \"1s\" }",
                "over its max",
            ),
            (
                "target = \"outbound\"\nkind = \"reset\"\nlatency = \"1s\"",
                "`latency` does not apply",
            ),
            (
                "target = \"outbound\"\nkind = \"reset\"\nprobability = 1.5",
                "probability 1.5",
            ),
            (
                "target = \"outbound\"\nkind = \"reset\"\nprobability = nan",
                "probability NaN",
            ),
            ("target = \"outbound\"\nkind = \"reset\"\npercent = -1", "percent -1"),
            ("target = \"invocation\"\nkind = \"cpu\"", "needs `burn`"),
            ("target = \"invocation\"\nkind = \"memory\"\nmemory = \"0\"", "over 0"),
            ("target = \"config\"\nkind = \"error\"\nop = \"read\"", "`op` applies"),
            (
                "target = \"config\"\nkind = \"error\"\nduration = \"0s\"",
                "`duration` must be over 0",
            ),
            (
                "target = \"invocation\"\nkind = \"respond\"\nstatus = 42",
                "no HTTP status",
            ),
        ];
        for (rule, expected) in cases {
            let e = refused(&format!("[[rule]]\nname = \"r\"\n{rule}\n"));
            assert!(e.starts_with("NIMBUS_FAULTS: fault rule `r`: "), "{e}");
            assert!(e.contains(expected), "{rule}: {e}");
        }
        let e = refused(
            "[[rule]]\nname = \"r\"\ntarget = \"config\"\nkind = \"error\"\n[[rule]]\nname = \"r\"\ntarget = \"config\"\nkind = \"error\"\n",
        );
        assert!(e.contains("another rule has this name"), "{e}");
    }

    #[test]
    fn bad_documents_name_what_is_wrong() {
        for (text, expected) in [
            (
                "[[rule]]\ntarget = \"dns\"\nkind = \"error\"\n",
                "rule[0].target: unknown variant `dns`",
            ),
            (
                "[[rule]]\ntarget = \"config\"\nkind = \"error\"\nprobabilty = 0.5\n",
                "unknown field `probabilty`",
            ),
            ("{\"rule\": [", "EOF"),
            ("seed = -1", "seed"),
            (
                "[[rule]]\ntarget = \"config\"\nkind = \"latency\"\nlatency = \"soon\"\n",
                "rule[0].latency",
            ),
            ("[faults]\nseed = 1\n[other]\nx = 1\n", "nothing else at its top level"),
            (
                "seed = 1\n[faults]\n[[faults.rule]]\ntarget = \"config\"\nkind = \"error\"\n",
                "nothing else",
            ),
            (
                "[target]\nurl = \"x\"\n[faults]\nseed = 1\n",
                "nothing else at its top level",
            ),
            ("{\"seed\": 1, \"faults\": {}}", "nothing else at its top level"),
            (
                "{\"faults\": {\"rule\": [{\"target\": \"config\"}]}}",
                "missing field `kind`",
            ),
        ] {
            let e = refused(text);
            assert!(e.starts_with("NIMBUS_FAULTS: "), "{e}");
            assert!(e.contains(expected));
        }
    }
}
