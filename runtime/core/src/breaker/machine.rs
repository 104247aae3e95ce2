//! One circuit breaker: a sliding time window of call outcomes and the closed → open → half-open → closed
//! state machine over it. Pure (the caller passes the time), so every transition is unit-tested without
//! sleeping; the outbound layer ([`super::outbound`]) keeps one per (function, host) behind a mutex.
//!
//! - **Closed**: calls pass; each outcome lands in the window's current bucket. Once the window holds at
//!   least `minimum_calls`, a failure rate or a slow-call rate at or over its threshold opens the circuit.
//! - **Open**: calls are refused at once until `open_for` has passed; each time the circuit opens again
//!   without having closed, the wait doubles, up to `max_open_for`.
//! - **Half-open**: `probes` calls pass, one at a time each taking a permit; if they all succeed the circuit
//!   closes (and the window starts empty), and the first failure opens it again.

use std::time::Duration;

/// A breaker's thresholds (the manifest's `breaker`, validated).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// The window the rates are computed over.
    pub window: Duration,
    /// Calls the window must hold before a rate can open the circuit.
    pub minimum_calls: u32,
    /// Failure rate (0 to 1] at which the circuit opens.
    pub failure_rate: f64,
    /// A call at least this slow counts as slow.
    pub slow_call: Duration,
    /// Slow-call rate (0 to 1] at which the circuit opens.
    pub slow_call_rate: f64,
    /// How long the circuit stays open the first time.
    pub open_for: Duration,
    /// The longest it stays open, however many times it reopened.
    pub max_open_for: Duration,
    /// Calls let through while half-open; all must succeed to close.
    pub probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            window: Duration::from_secs(30),
            minimum_calls: 10,
            failure_rate: 0.5,
            slow_call: Duration::from_secs(5),
            slow_call_rate: 1.0,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
            probes: 3,
        }
    }
}

/// Where the circuit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls pass.
    Closed,
    /// Calls are refused.
    Open,
    /// A few probe calls pass.
    HalfOpen,
}

impl State {
    /// Its name in logs, spans and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> u8 {
        match self {
            State::Closed => 0,
            State::HalfOpen => 1,
            State::Open => 2,
        }
    }
}

/// A change of state and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// Why, for the log line.
    pub reason: String,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// It may; report its outcome with [`Breaker::record`].
    Pass {
        /// It is a half-open probe.
        probe: bool,
    },
    /// It may not: the circuit is open (or its probes are all out) for at least this long.
    Refuse {
        /// Time until the circuit lets a probe through.
        retry_after: Duration,
    },
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// It failed (no response, or a response the breaker counts as a failure).
    pub failed: bool,
    /// How long it took.
    pub took: Duration,
}

/// Buckets the window is cut into: the window slides by one bucket's width.
const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket-width slot of time this bucket counts (stale when older than the window).
    slot: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

/// One breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    buckets: [Bucket; BUCKETS],
    /// Open: when it may go half-open. (Times are durations since an origin the caller chooses.)
    open_until: Duration,
    /// Times it opened since it last closed (the backoff's exponent).
    reopens: u32,
    /// Half-open: probes handed out, and how many succeeded.
    probes_out: u32,
    probes_ok: u32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Breaker {
        Breaker {
            settings,
            state: State::Closed,
            buckets: [Bucket::default(); BUCKETS],
            open_until: Duration::ZERO,
            reopens: 0,
            probes_out: 0,
            probes_ok: 0,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// Where it is (an open circuit whose wait is over is reported open until a call asks).
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a call at `now` may go ahead; an open circuit whose wait is over goes half-open here.
    pub fn admit(&mut self, now: Duration) -> (Admit, Option<Transition>) {
        match self.state {
            State::Closed => (Admit::Pass { probe: false }, None),
            State::Open if now < self.open_until => (
                Admit::Refuse {
                    retry_after: self.open_until - now,
                },
                None,
            ),
            State::Open => {
                let t = self.go(State::HalfOpen, "the open wait is over: probing".into());
                self.probes_out = 1;
                self.probes_ok = 0;
                (Admit::Pass { probe: true }, Some(t))
            }
            State::HalfOpen if self.probes_out < self.settings.probes => {
                self.probes_out += 1;
                (Admit::Pass { probe: true }, None)
            }
            // Every probe is out: wait for their outcomes.
            State::HalfOpen => (
                Admit::Refuse {
                    retry_after: self.settings.open_for.min(Duration::from_secs(1)),
                },
                None,
            ),
        }
    }

    /// Records how a call that was let through at `admit` ended, at `now`.
    pub fn record(&mut self, now: Duration, probe: bool, outcome: Outcome) -> Option<Transition> {
        let slow = outcome.took >= self.settings.slow_call;
        match self.state {
            State::HalfOpen if probe => {
                if outcome.failed || slow {
                    let what = if outcome.failed { "failed" } else { "was slow" };
                    return Some(self.open(now, format!("a probe {what}")));
                }
                self.probes_ok += 1;
                if self.probes_ok >= self.settings.probes {
                    self.reopens = 0;
                    self.buckets = [Bucket::default(); BUCKETS];
                    return Some(self.go(
                        State::Closed,
                        format!("{} probes in a row succeeded", self.settings.probes),
                    ));
                }
                None
            }
            // An outcome of a call let through before the circuit opened: the window is already judged.
            State::Open | State::HalfOpen => None,
            State::Closed => {
                let b = self.bucket(now);
                b.calls += 1;
                b.failures += u32::from(outcome.failed);
                b.slow += u32::from(slow);
                self.judge(now)
            }
        }
    }

    /// Opens the circuit at once (the manual override), or closes it and forgets the window.
    pub fn force(&mut self, now: Duration, open: bool) -> Option<Transition> {
        match (open, self.state) {
            (true, State::Open) | (false, State::Closed) => None,
            (true, _) => Some(self.open(now, "forced open".into())),
            (false, _) => {
                self.reopens = 0;
                self.buckets = [Bucket::default(); BUCKETS];
                Some(self.go(State::Closed, "reset by the operator".into()))
            }
        }
    }

    /// The window's totals at `now`: calls, failures, slow calls.
    pub fn window(&self, now: Duration) -> (u32, u32, u32) {
        let current = self.slot(now);
        self.buckets
            .iter()
            .filter(|b| b.calls > 0 && current.saturating_sub(b.slot) < BUCKETS as u64)
            .fold((0, 0, 0), |(c, f, s), b| (c + b.calls, f + b.failures, s + b.slow))
    }

    fn judge(&mut self, now: Duration) -> Option<Transition> {
        let (calls, failures, slow) = self.window(now);
        if calls < self.settings.minimum_calls.max(1) {
            return None;
        }
        let failure_rate = f64::from(failures) / f64::from(calls);
        let slow_rate = f64::from(slow) / f64::from(calls);
        if failure_rate >= self.settings.failure_rate {
            Some(self.open(
                now,
                format!(
                    "{failures} of the last {calls} calls failed ({:.0}%)",
                    failure_rate * 100.0
                ),
            ))
        } else if slow_rate >= self.settings.slow_call_rate {
            Some(self.open(
                now,
                format!(
                    "{slow} of the last {calls} calls took {:?} or more ({:.0}%)",
                    self.settings.slow_call,
                    slow_rate * 100.0
                ),
            ))
        } else {
            None
        }
    }

    fn open(&mut self, now: Duration, reason: String) -> Transition {
        let wait = self
            .settings
            .open_for
            .saturating_mul(1u32 << self.reopens.min(16))
            .min(self.settings.max_open_for.max(self.settings.open_for));
        self.reopens = self.reopens.saturating_add(1);
        self.open_until = now + wait;
        self.probes_out = 0;
        self.probes_ok = 0;
        self.go(State::Open, format!("{reason}; open for {wait:?}"))
    }

    fn go(&mut self, to: State, reason: String) -> Transition {
        let from = std::mem::replace(&mut self.state, to);
        Transition { from, to, reason }
    }

    fn slot(&self, now: Duration) -> u64 {
        let width = (self.settings.window.as_nanos() / BUCKETS as u128).max(1);
        (now.as_nanos() / width) as u64
    }

    /// The bucket counting `now`, emptied first if it held an older slot.
    fn bucket(&mut self, now: Duration) -> &mut Bucket {
        let slot = self.slot(now);
        let b = &mut self.buckets[(slot % BUCKETS as u64) as usize];
        if b.slot != slot {
            *b = Bucket {
                slot,
                ..Bucket::default()
            };
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn settings() -> BreakerSettings {
        BreakerSettings {
            window: ms(1_000),
            minimum_calls: 4,
            failure_rate: 0.5,
            slow_call: ms(200),
            slow_call_rate: 0.75,
            open_for: ms(100),
            max_open_for: ms(350),
            probes: 2,
        }
    }

    const OK: Outcome = Outcome {
        failed: false,
        took: Duration::from_millis(1),
    };
    const FAIL: Outcome = Outcome {
        failed: true,
        took: Duration::from_millis(1),
    };
    const SLOW: Outcome = Outcome {
        failed: false,
        took: Duration::from_millis(300),
    };

    /// Lets a call through at `t` and records `o`; the transitions it caused.
    fn call(b: &mut Breaker, t: u64, o: Outcome) -> Vec<(State, State)> {
        let mut seen = Vec::new();
        let (admit, tr) = b.admit(ms(t));
        seen.extend(tr.map(|t| (t.from, t.to)));
        if let Admit::Pass { probe } = admit {
            seen.extend(b.record(ms(t), probe, o).map(|t| (t.from, t.to)));
        }
        seen
    }

    #[test]
    fn it_opens_at_the_failure_rate_only_past_the_minimum_calls() {
        let mut b = Breaker::new(settings());
        assert!(call(&mut b, 0, FAIL).is_empty());
        assert!(call(&mut b, 1, FAIL).is_empty());
        assert!(call(&mut b, 2, OK).is_empty(), "3 calls are under the minimum");
        assert_eq!(
            call(&mut b, 3, OK),
            [(State::Closed, State::Open)],
            "2 of 4 failed: 50%"
        );
        assert!(matches!(b.admit(ms(50)).0, Admit::Refuse { retry_after } if retry_after == ms(53)));
    }

    #[test]
    fn it_opens_on_slow_calls_and_old_outcomes_leave_the_window() {
        let mut b = Breaker::new(settings());
        for t in 0..3 {
            call(&mut b, t, SLOW);
        }
        // A second later those three have left the window: three more slow and one fast is 75% again.
        for t in [1_500, 1_501, 1_502] {
            assert!(call(&mut b, t, SLOW).is_empty(), "{:?}", b.window(ms(t)));
        }
        assert_eq!(b.window(ms(1_502)), (3, 0, 3));
        assert_eq!(call(&mut b, 1_503, OK), [(State::Closed, State::Open)]);
    }

    #[test]
    fn half_open_probes_close_it_or_reopen_it_with_a_longer_wait() {
        let mut b = Breaker::new(settings());
        for t in 0..4 {
            call(&mut b, t, FAIL);
        }
        assert_eq!(b.state(), State::Open);
        // The wait (100 ms) is over: the first call is a probe, and it fails: open for 200 ms.
        assert_eq!(
            call(&mut b, 110, FAIL),
            [(State::Open, State::HalfOpen), (State::HalfOpen, State::Open)]
        );
        assert!(matches!(b.admit(ms(300)).0, Admit::Refuse { .. }));
        // Again: 350 ms, the cap (not 400).
        call(&mut b, 310, FAIL);
        assert!(matches!(b.admit(ms(650)).0, Admit::Refuse { retry_after } if retry_after == ms(10)));
        // Two probes out at once: a third caller is refused until they report.
        let (first, _) = b.admit(ms(700));
        let (second, _) = b.admit(ms(701));
        assert_eq!(
            (first, second),
            (Admit::Pass { probe: true }, Admit::Pass { probe: true })
        );
        assert!(matches!(b.admit(ms(702)).0, Admit::Refuse { .. }));
        assert!(b.record(ms(710), true, OK).is_none());
        let closed = b.record(ms(720), true, OK).expect("closes");
        assert_eq!((closed.from, closed.to), (State::HalfOpen, State::Closed));
        // Closed with an empty window and the backoff forgotten.
        assert_eq!(b.window(ms(720)), (0, 0, 0));
        for t in 800..804 {
            call(&mut b, t, FAIL);
        }
        assert!(matches!(b.admit(ms(810)).0, Admit::Refuse { retry_after } if retry_after == ms(93)));
    }

    #[test]
    fn late_outcomes_and_the_manual_override() {
        let mut b = Breaker::new(settings());
        let (pass, _) = b.admit(ms(0));
        assert_eq!(pass, Admit::Pass { probe: false });
        b.force(ms(1), true);
        // The call let through before the circuit opened reports late: it changes nothing.
        assert!(b.record(ms(2), false, FAIL).is_none());
        assert_eq!(b.state(), State::Open);
        let reset = b.force(ms(3), false).expect("reset");
        assert_eq!(reset.to, State::Closed);
        assert_eq!(b.admit(ms(4)).0, Admit::Pass { probe: false });
        assert!(b.force(ms(5), false).is_none());
    }
}
