//! Level 5 of the ladder, infrastructure failure: memory pressure on the host process. A watchdog reads the
//! process's resident memory (`/proc/self/status`, `VmRSS`) and the cgroup's `memory.events` (`high`) every
//! [`PERIOD`]; when the RSS reaches `fraction` of the platform's memory size, or the cgroup reports new
//! `memory.high` events, the host stops taking work (every invocation answers 503 `Nimbus.Degraded`, level 5),
//! writes a fault snapshot to the log ([`snapshot`]: breaker states, each function's level and config version,
//! the last invocation errors, the faults injected, the fault plan's seed), waits a moment for the invocations in flight, flushes its telemetry and exits with
//! [`EXIT_CODE`], so the platform replaces the environment instead of letting it be OOM-killed mid-request.
//!
//! Off unless the memory size is known: `NIMBUS_MEMORY_LIMIT`, else the platform's
//! (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `FC_FUNCTION_MEMORY_SIZE`, in MB). `NIMBUS_MEMORY_PRESSURE` sets the
//! fraction (default 0.9; 0 turns the watchdog off).

use crate::host::Host;
use crate::logs::format_record;
use std::sync::Weak;
use std::time::Duration;

/// How often the watchdog looks.
pub const PERIOD: Duration = Duration::from_millis(250);
/// The exit status after a memory-pressure shutdown (`EX_TEMPFAIL`: try again, elsewhere).
pub const EXIT_CODE: i32 = 75;
/// The longest the host waits for the invocations in flight before it exits.
const DRAIN: Duration = Duration::from_secs(2);

/// When the watchdog acts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureSettings {
    /// The platform's memory size, in bytes.
    pub limit: u64,
    /// The share of it at which the host stops (0 to 1].
    pub fraction: f64,
}

/// The process's resident memory, in bytes.
pub fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The cgroup's count of `memory.high` events (cgroup v2), if it has one.
fn high_events() -> Option<u64> {
    let events = std::fs::read_to_string("/sys/fs/cgroup/memory.events").ok()?;
    events
        .lines()
        .find_map(|l| l.strip_prefix("high ")?.trim().parse().ok())
}

/// Starts the watchdog of `host`; it ends with the host (or the process).
pub fn watch(host: Weak<Host>, settings: PressureSettings) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let threshold = (settings.limit as f64 * settings.fraction) as u64;
        let high_at_start = high_events();
        loop {
            tokio::time::sleep(PERIOD).await;
            let Some(host) = host.upgrade() else { break };
            let rss = rss().unwrap_or(0);
            let high = high_events();
            let reason = if rss >= threshold {
                format!(
                    "resident memory {} MiB reached {:.0}% of the {} MiB memory size",
                    rss >> 20,
                    settings.fraction * 100.0,
                    settings.limit >> 20
                )
            } else if high > high_at_start {
                format!(
                    "the cgroup reported memory.high events ({} since boot)",
                    high.unwrap_or(0) - high_at_start.unwrap_or(0)
                )
            } else {
                continue;
            };
            shut_down(&host, &reason, rss, settings).await;
        }
    });
}

/// The fault snapshot of `host` as log fields: why it stops, its breakers' states, each function's level and
/// config version (not its values, which may be secret), the last invocation errors, the faults injected and
/// the fault plan's seed.
pub fn snapshot(host: &Host, reason: &str, rss: u64, limit: u64) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::{Value, json};
    let rfc3339 = |t: std::time::SystemTime| humantime::format_rfc3339_millis(t).to_string();
    let breakers: Vec<Value> = host
        .breakers()
        .states()
        .into_iter()
        .map(|(f, h, s)| json!({"function": f, "host": h, "state": s.as_str()}))
        .collect();
    let levels: serde_json::Map<String, Value> = host
        .functions()
        .iter()
        .map(|f| (f.name.to_string(), f.degradation_level().into()))
        .collect();
    let config: serde_json::Map<String, Value> = host
        .functions()
        .iter()
        .map(|f| {
            let v = f.config_version();
            (
                f.name.to_string(),
                json!({"version": v.version, "since": rfc3339(v.since)}),
            )
        })
        .collect();
    let errors: Vec<Value> = host
        .recent_errors()
        .into_iter()
        .map(|e| {
            json!({
                "at": rfc3339(e.at),
                "function": e.function,
                "request_id": e.request_id,
                "error_type": e.error_type,
                "message": e.message,
            })
        })
        .collect();
    let plan = host.faults().plan();
    vec![
        ("reason", reason.into()),
        ("level", 5.into()),
        ("rss_bytes", rss.into()),
        ("memory_limit_bytes", limit.into()),
        ("breakers", breakers.into()),
        ("levels", Value::Object(levels)),
        ("config", Value::Object(config)),
        ("recent_errors", errors.into()),
        ("faults_injected", host.faults().injected().into()),
        ("fault_plan_seed", plan.map_or(Value::Null, |p| p.seed.into())),
    ]
}

/// Stops taking work, writes the fault snapshot, drains, flushes and exits.
async fn shut_down(host: &Host, reason: &str, rss: u64, settings: PressureSettings) {
    host.stop_taking_work(reason);
    tracing::error!(reason, "memory pressure: the host stops taking work and exits");
    let fields = snapshot(host, reason, rss, settings.limit);
    host.log_sink()
        .write_line(&format_record("ERROR", "fault snapshot", None, &fields));
    let until = tokio::time::Instant::now() + DRAIN;
    while host.in_flight() > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.flush_telemetry().await;
    std::process::exit(EXIT_CODE);
}
