//! `[function.NAME.breaker]`: circuit breakers on the function's outbound hosts ([`crate::breaker`]). Present
//! (even empty: `breaker = {}`) turns them on, one breaker per host and port the function calls, all with
//! the function's thresholds; `hosts."HOST"` (or `"HOST:PORT"`) declares what answers while that host's
//! circuit is open.
//!
//! ```toml
//! [function.shop.breaker]
//! window = "30s"          # the sliding window the rates are computed over
//! minimum_calls = 10      # calls in the window before a rate can open the circuit
//! failure_rate = 0.5      # errors and 5xx
//! slow_call = "2s"
//! slow_call_rate = 0.8
//! open_for = "5s"         # doubled at each reopening, up to max_open_for
//! max_open_for = "60s"
//! probes = 3              # half-open calls that must all succeed to close
//!
//! [function.shop.breaker.hosts."api.payments.example"]
//! fallback = { status = 200, body = '{"status":"queued"}', content_type = "application/json" }
//! cache_get = true        # while open, a GET is answered with the last good response to the same URL
//! backup = "https://backup.payments.example:8443"
//! ```

use super::OutboundRule;
use super::units::{Count, Dur};
use crate::breaker::BreakerSettings;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `breaker = { ... }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreaker {
    window: Option<Dur>,
    minimum_calls: Option<Count>,
    failure_rate: Option<f64>,
    slow_call: Option<Dur>,
    slow_call_rate: Option<f64>,
    open_for: Option<Dur>,
    max_open_for: Option<Dur>,
    probes: Option<Count>,
    jitter_p95: Option<Dur>,
    jitter_windows: Option<Count>,
    jitter_window: Option<Dur>,
    #[serde(default)]
    hosts: BTreeMap<String, RawBreakerHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreakerHost {
    fallback: Option<RawFallback>,
    cache_get: Option<bool>,
    backup: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFallback {
    status: Option<u16>,
    #[serde(default)]
    body: String,
    content_type: Option<String>,
}

/// Level 1 of the ladder, transient jitter: a host whose p95 stays over `p95` for `windows` consecutive
/// windows of `window` is answered from its declared fallback (or cache) for the next window, without an
/// alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterSpec {
    /// The p95 over which a window counts as slow.
    pub p95: std::time::Duration,
    /// Consecutive slow windows before the fallback is served.
    pub windows: u32,
    /// How long a window lasts.
    pub window: std::time::Duration,
}

/// A function's breakers, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSpec {
    /// The thresholds of every host's breaker.
    pub settings: BreakerSettings,
    /// Level 1: serving fallbacks while a host's latency jitters (`jitter_p95`).
    pub jitter: Option<JitterSpec>,
    /// What answers for a host while its circuit is open, by `host` or `host:port` (lowercase).
    pub hosts: BTreeMap<String, OpenAnswer>,
}

impl BreakerSpec {
    /// What answers for `host` (lowercase) on `port` while its circuit is open.
    pub fn answer(&self, host: &str, port: u16) -> Option<&OpenAnswer> {
        self.hosts
            .get(&format!("{host}:{port}"))
            .or_else(|| self.hosts.get(host))
    }
}

/// What answers while a host's circuit is open; with none of these, the call fails at once with
/// `internal-error("circuit-open: …")`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenAnswer {
    /// A fixed response.
    pub fallback: Option<Fallback>,
    /// Answer a GET with the last good (2xx) response to the same URL, kept while the circuit was closed.
    pub cache_get: bool,
    /// Send the call to this origin instead (it must be in `allowed_outbound_hosts`).
    pub backup: Option<Backup>,
}

/// A declared fallback response.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    /// Its status.
    pub status: u16,
    /// Its body.
    pub body: String,
    /// Its `content-type`.
    pub content_type: String,
}

/// A backup origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    /// `http` or `https`.
    pub scheme: String,
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The IP the host is written as, when an allow-list entry names that same IP (only then may a
    /// loopback or private address be reached, as for the guest's own requests).
    pub literal: Option<std::net::IpAddr>,
}

/// Validates `raw` for a function allowed to call `allowed`; errors name the key under `prefix`.
pub(super) fn resolve(
    raw: &RawBreaker,
    allowed: &[OutboundRule],
    prefix: &str,
) -> Result<BreakerSpec, (String, String)> {
    let d = BreakerSettings::default();
    let key = |k: &str| format!("{prefix}.breaker.{k}");
    let rate = |k: &str, v: Option<f64>, default: f64| match v {
        None => Ok(default),
        Some(r) if r > 0.0 && r <= 1.0 => Ok(r),
        Some(r) => Err((key(k), format!("{r} is not a rate over 0 and at most 1"))),
    };
    let positive = |k: &str, v: Option<Dur>, default| match v {
        None => Ok(default),
        Some(Dur(d)) if !d.is_zero() => Ok(d),
        Some(_) => Err((key(k), "must be over 0".to_owned())),
    };
    let settings = BreakerSettings {
        window: positive("window", raw.window, d.window)?,
        minimum_calls: raw.minimum_calls.map_or(d.minimum_calls, |c| c.0).max(1),
        failure_rate: rate("failure_rate", raw.failure_rate, d.failure_rate)?,
        slow_call: positive("slow_call", raw.slow_call, d.slow_call)?,
        slow_call_rate: rate("slow_call_rate", raw.slow_call_rate, d.slow_call_rate)?,
        open_for: positive("open_for", raw.open_for, d.open_for)?,
        max_open_for: positive("max_open_for", raw.max_open_for, d.max_open_for)?,
        probes: raw.probes.map_or(d.probes, |c| c.0).max(1),
    };
    if settings.max_open_for < settings.open_for {
        return Err((key("max_open_for"), "is under open_for".into()));
    }
    let jitter = match raw.jitter_p95 {
        None if raw.jitter_windows.is_some() || raw.jitter_window.is_some() => {
            return Err((
                key("jitter_p95"),
                "is needed by jitter_windows and jitter_window".into(),
            ));
        }
        None => None,
        Some(p95) => Some(JitterSpec {
            p95: positive("jitter_p95", Some(p95), p95.0)?,
            windows: raw.jitter_windows.map_or(3, |c| c.0).max(1),
            window: positive("jitter_window", raw.jitter_window, std::time::Duration::from_secs(5))?,
        }),
    };
    let mut hosts = BTreeMap::new();
    for (host, h) in &raw.hosts {
        let hkey = |k: &str| key(&format!("hosts.{host:?}.{k}"));
        let fallback = match &h.fallback {
            None => None,
            Some(f) => {
                let status = f.status.unwrap_or(200);
                if !(100..=599).contains(&status) {
                    return Err((hkey("fallback.status"), format!("{status} is no HTTP status")));
                }
                Some(Fallback {
                    status,
                    body: f.body.clone(),
                    content_type: f
                        .content_type
                        .clone()
                        .unwrap_or_else(|| "text/plain; charset=utf-8".into()),
                })
            }
        };
        let backup = match &h.backup {
            None => None,
            Some(url) => Some(backup(url, allowed).map_err(|m| (hkey("backup"), m))?),
        };
        if fallback.is_some() && backup.is_some() {
            return Err((
                key(&format!("hosts.{host:?}")),
                "has both a fallback and a backup: choose one".into(),
            ));
        }
        hosts.insert(
            host.trim_end_matches('.').to_ascii_lowercase(),
            OpenAnswer {
                fallback,
                cache_get: h.cache_get.unwrap_or(false),
                backup,
            },
        );
    }
    Ok(BreakerSpec {
        settings,
        jitter,
        hosts,
    })
}

/// A backup origin (`scheme://host[:port]`, nothing else) that the allow-list lets the function call.
fn backup(url: &str, allowed: &[OutboundRule]) -> Result<Backup, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url:?} is no URL: {e}"))?;
    let scheme = uri.scheme_str().filter(|s| *s == "http" || *s == "https");
    let (Some(scheme), Some(authority)) = (scheme, uri.authority()) else {
        return Err(format!("{url:?} is no http:// or https:// origin"));
    };
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return Err(format!(
            "{url:?} has a path; a backup is an origin (scheme, host, port)"
        ));
    }
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
    let matching: Vec<&OutboundRule> = allowed.iter().filter(|r| r.matches(scheme, &host, port)).collect();
    if matching.is_empty() {
        return Err(format!("{url:?} is not in allowed_outbound_hosts"));
    }
    let ip = super::literal_ip(&host);
    let literal = ip.filter(|ip| matching.iter().any(|r| r.ip == Some(*ip)));
    Ok(Backup {
        scheme: scheme.into(),
        host,
        port,
        literal,
    })
}
