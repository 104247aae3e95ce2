//! The degradation ladder of a function (`[function.NAME.degradation]`): at admission, before an instance is
//! taken, the host decides how degraded the function is and what that means for the invocation.
//!
//! | level | trigger | response |
//! |---|---|---|
//! | 0 normal | — | the invocation runs |
//! | 1 transient jitter | a dependency's p95 over `jitter_p95` for `jitter_windows` windows | the invocation runs; that host's declared fallback answers its calls for a window, no alarm |
//! | 2 local overload | `max_in_flight` invocations already running, or over `rate_limit` per second | shed at once: 503 with `Retry-After`, before any instance is taken |
//! | 3 dependency failure | a breaker of the function is open ([`crate::breaker`]) | the invocation runs; calls to that host get its open-circuit answer |
//! | 4 cascading failure | `cascade` or more of its breakers open at once | 503 with `Retry-After` without running the guest; one invocation per `probe_every` runs, to probe recovery |
//! | 5 infrastructure failure | memory pressure ([`pressure`]) | the host stops taking work, writes a fault snapshot and exits |
//!
//! Level 1 (transient jitter) is the breaker layer's: a host whose p95 stays high is answered from its
//! declared fallback for a window (`jitter_p95` in the `breaker` section); the function runs as usual.
//! Level 5 (infrastructure failure) is the memory-pressure watchdog's ([`pressure`]): the whole host stops. A level can be forced by the operator (`[[override]] level = N` in the
//! fault plan's document, hot-refreshed like the plan). Each change of level is a JSON log line
//! (`degradation level`), a `tracing` event, a count ([`Ladder::transitions`]) and a `nimbus.degradation`
//! event on the span of the invocation whose admission made it ([`Transition::span_event`]).

pub mod pressure;

use crate::breaker::Breakers;
use crate::error::InvokeError;
use crate::logs::{LogSink, format_record};
use crate::metrics::MetricsFormat;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// `[function.NAME.degradation]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderSpec {
    /// Level 2: invocations running at once before more are shed.
    pub max_in_flight: Option<u32>,
    /// Level 2: invocations admitted per second (a token bucket holding one second's worth).
    pub rate_limit: Option<f64>,
    /// Level 4: open breakers at which the whole function answers 503.
    pub cascade: Option<u32>,
    /// Level 4: how often one invocation runs anyway, to probe recovery.
    pub probe_every: Duration,
    /// The `Retry-After` of a shed or refused invocation.
    pub retry_after: Duration,
}

impl Default for LadderSpec {
    fn default() -> Self {
        LadderSpec {
            max_in_flight: None,
            rate_limit: None,
            cascade: None,
            probe_every: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// A level's name in logs and errors.
pub fn level_name(level: u8) -> &'static str {
    match level {
        0 => "normal",
        1 => "transient jitter",
        2 => "local overload",
        3 => "dependency failure",
        4 => "cascading failure",
        _ => "infrastructure failure",
    }
}

/// `last_probe` before any probe.
const NEVER: u64 = u64::MAX;

/// One function's ladder: its counters and its current level.
pub struct Ladder {
    function: String,
    spec: LadderSpec,
    origin: Instant,
    in_flight: AtomicU32,
    bucket: Mutex<(f64, Duration)>,
    level: AtomicU8,
    /// Nanoseconds since `origin` of the last level-4 probe ([`NEVER`]: none yet, so the first may run).
    last_probe: AtomicU64,
    transitions: AtomicU64,
}

/// An admitted invocation's place in the ladder's count; released when dropped.
pub struct Admitted<'a>(&'a Ladder);

/// What one admission decided: the invocation's place (or its refusal), and the change of level it made,
/// if it made one, for that invocation's span.
pub struct Admission<'a> {
    /// `Ok`: the invocation runs, holding its place until dropped; `Err`: it is answered at once.
    pub place: Result<Admitted<'a>, InvokeError>,
    /// The change of level this admission made.
    pub transition: Option<Transition>,
}

/// A change of a function's level, as its span records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The level before.
    pub from: u8,
    /// The level after.
    pub to: u8,
    /// Why, in words.
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

impl Transition {
    /// The `nimbus.degradation` span event: `nimbus.degradation.from`, `.to`, `.level` (the new level's name)
    /// and `.reason`.
    pub fn span_event(&self) -> crate::telemetry::SpanEvent {
        use crate::telemetry::opentelemetry::KeyValue;
        crate::telemetry::SpanEvent {
            time: self.at,
            name: "nimbus.degradation".into(),
            attributes: vec![
                KeyValue::new("nimbus.degradation.from", i64::from(self.from)),
                KeyValue::new("nimbus.degradation.to", i64::from(self.to)),
                KeyValue::new("nimbus.degradation.level", level_name(self.to)),
                KeyValue::new("nimbus.degradation.reason", self.reason.clone()),
            ],
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Ladder {
    /// The ladder of `function`.
    pub fn new(function: &str, spec: LadderSpec) -> Ladder {
        let burst = spec.rate_limit.unwrap_or(0.0).max(1.0);
        Ladder {
            function: function.to_owned(),
            spec,
            origin: Instant::now(),
            in_flight: AtomicU32::new(0),
            bucket: Mutex::new((burst, Duration::ZERO)),
            level: AtomicU8::new(0),
            last_probe: AtomicU64::new(NEVER),
            transitions: AtomicU64::new(0),
        }
    }

    /// The level now.
    pub fn level(&self) -> u8 {
        self.level.load(Ordering::Relaxed)
    }

    /// Changes of level since boot.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    /// Decides an invocation's admission ([`Admission`]). `forced` is the operator's level, if any;
    /// `breakers` tells how many of the function's circuits are open.
    pub fn admit(
        &self,
        forced: Option<u8>,
        breakers: &Breakers,
        sink: &LogSink,
        metrics: &MetricsFormat,
    ) -> Admission<'_> {
        let now = self.origin.elapsed();
        let open = breakers.open_count(&self.function);
        let cascading = self.spec.cascade.is_some_and(|n| open >= n);
        let in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let admitted = Admitted(self);
        let over_flight = self.spec.max_in_flight.is_some_and(|m| in_flight > m);
        let (level, reason) = match forced {
            Some(l) => (l, format!("forced to {l} by the operator")),
            None if cascading => (4, format!("{open} dependencies have their circuit open")),
            None if over_flight => (2, format!("{in_flight} invocations in flight")),
            None if !self.take_token(now) => (2, "over the rate limit".to_owned()),
            None if open > 0 => (3, format!("{open} dependency circuit(s) open")),
            None if breakers.jittering_count(&self.function) > 0 => {
                (1, "a dependency's latency jitters: its fallback is served".to_owned())
            }
            None => (0, "recovered".to_owned()),
        };
        let transition = self.note(level, &reason, sink, metrics);
        let place = match level {
            2 => Err(self.refuse(2, reason)),
            l if l >= 4 && !self.probe(now) => Err(self.refuse(l, reason)),
            _ => Ok(admitted),
        };
        Admission { place, transition }
    }

    /// Whether a level-4 probe may run now (one per `probe_every`).
    fn probe(&self, now: Duration) -> bool {
        let now_ns = now.as_nanos() as u64;
        let last = self.last_probe.load(Ordering::Relaxed);
        (last == NEVER || now_ns.saturating_sub(last) >= self.spec.probe_every.as_nanos() as u64)
            && self
                .last_probe
                .compare_exchange(last, now_ns, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn take_token(&self, now: Duration) -> bool {
        let Some(rate) = self.spec.rate_limit else {
            return true;
        };
        let Ok(mut b) = self.bucket.lock() else {
            return true;
        };
        let (tokens, last) = *b;
        let refilled = (tokens + (now.saturating_sub(last)).as_secs_f64() * rate).min(rate.max(1.0));
        if refilled >= 1.0 {
            *b = (refilled - 1.0, now);
            true
        } else {
            *b = (refilled, now);
            false
        }
    }

    fn refuse(&self, level: u8, reason: String) -> InvokeError {
        InvokeError::Degraded {
            level,
            reason,
            retry_after: self.spec.retry_after,
        }
    }

    /// Records the level an admission decided, logging and returning a change.
    fn note(&self, level: u8, reason: &str, sink: &LogSink, metrics: &MetricsFormat) -> Option<Transition> {
        let before = self.level.swap(level, Ordering::Relaxed);
        if before == level {
            return None;
        }
        self.transitions.fetch_add(1, Ordering::Relaxed);
        metrics.degradation_level(sink, &self.function, level);
        tracing::info!(function = %self.function, from = before, to = level, reason, "degradation level");
        sink.write_line(&format_record(
            if level > before { "WARN" } else { "INFO" },
            "degradation level",
            None,
            &[
                ("function", self.function.clone().into()),
                ("from", before.into()),
                ("to", level.into()),
                ("level", level_name(level).into()),
                ("reason", reason.into()),
            ],
        ));
        Some(Transition {
            from: before,
            to: level,
            reason: reason.to_owned(),
            at: SystemTime::now(),
        })
    }
}
