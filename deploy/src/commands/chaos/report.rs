//! What a chaos run measured: the report `nimbus chaos` prints, writes as JSON, and draws as HTML
//! ([`super::html`]). Times are seconds from the start of the load.

use serde::{Deserialize, Serialize};

/// One chaos run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The experiment's name.
    pub name: String,
    /// What was loaded: the URL requests went to.
    pub target: String,
    /// When the load started (RFC 3339).
    pub started_at: String,
    /// How long the load ran, in seconds.
    pub duration_s: f64,
    /// The load profile.
    pub load: Load,
    /// The fault plan's seed (`None`: no faults were injected, e.g. against a remote URL).
    pub seed: Option<u64>,
    /// When each fault rule was active.
    pub faults: Vec<FaultWindow>,
    /// One entry per second of the run.
    pub timeline: Vec<Second>,
    /// The run cut at every fault window's start and end: before, during, after.
    pub phases: Vec<Phase>,
    /// Every circuit-breaker transition seen (served locally only).
    pub breakers: Vec<BreakerEvent>,
    /// Seconds from the end of the last fault window until the service was back within its targets
    /// (`None`: it never was, or no fault window ended during the run).
    pub recovery_s: Option<f64>,
    /// The SLA targets and how the run did against each.
    pub sla: Vec<SlaCheck>,
    /// Whether every target was met.
    pub passed: bool,
}

/// The load profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Load {
    /// Requests started per second.
    pub rate: f64,
    /// Most requests in flight at once.
    pub concurrency: u32,
    /// Seconds of load.
    pub duration_s: f64,
    /// The request: method and path.
    pub request: String,
}

/// When a fault rule was active.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultWindow {
    /// The rule's name.
    pub rule: String,
    /// Its target (`outbound`, `invocation`, …) and, for outbound, the host.
    pub target: String,
    /// What it injects (`error`, `latency`, …) and how often.
    pub kind: String,
    /// When it started.
    pub start_s: f64,
    /// When it ended (`None`: it lasted to the end of the run).
    pub end_s: Option<f64>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// The second's start.
    pub t_s: f64,
    /// Requests that completed in it.
    pub requests: u64,
    /// Of which failed (no response, or a 5xx).
    pub errors: u64,
    /// Latency percentiles of those requests, in milliseconds (0 when there were none).
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p95_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
}

/// A stretch of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    /// `before faults`, `during <rules>`, `after faults`.
    pub name: String,
    /// Its start.
    pub start_s: f64,
    /// Its end.
    pub end_s: f64,
    /// Requests completed in it.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// `errors / requests` (0 when none).
    pub error_rate: f64,
    /// Latency percentiles, in milliseconds.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p95_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// The slowest request.
    pub max_ms: f64,
}

/// A circuit breaker changing state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BreakerEvent {
    /// When.
    pub t_s: f64,
    /// The function.
    pub function: String,
    /// The host and port.
    pub host: String,
    /// Before (`closed`, `open`, `half_open`).
    pub from: String,
    /// After.
    pub to: String,
}

/// One SLA target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlaCheck {
    /// `p99`, `error_rate` or `recovery`.
    pub name: String,
    /// The target, as written (`250ms`, `5%`, `10s`).
    pub target: String,
    /// What the run did (`180.2ms`, `3.1%`, `4.2s`, or `never`).
    pub actual: String,
    /// Whether it met the target.
    pub passed: bool,
}
