//! Seeded fault decisions. Every decision is a pure function of the plan's seed, the rule's index, the
//! invocation's ordinal (its place in the sequence of invocations the plan has seen) and the call's ordinal within
//! the invocation: a counter-based generator (SplitMix64's finaliser over the four) rather than a shared
//! stateful one, so that concurrent invocations cannot change each other's draws, and the same seed over the
//! same request sequence injects exactly the same faults, whatever the timing.

use super::plan::{FaultPlan, Latency, Rule};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The call ordinal that stands for the invocation itself (the draw of whether a rule applies to it).
const INVOCATION_DRAW: u64 = u64::MAX;
/// The stream of latency draws, apart from the stream of whether a rule fires.
const LATENCY_STREAM: u64 = 0x6c61_7465_6e63_7921;

/// A plan being run: its rules, their clock and the count of invocations so far.
pub struct Decider {
    plan: Arc<FaultPlan>,
    started: Instant,
    invocations: AtomicU64,
}

impl Decider {
    /// Runs `plan` from now.
    pub fn new(plan: Arc<FaultPlan>) -> Decider {
        Decider::starting_at(plan, Instant::now())
    }

    /// Runs `plan` as if it had started at `started` (tests, and a plan replaced by a refresh, which keeps
    /// the experiment's clock).
    pub fn starting_at(plan: Arc<FaultPlan>, started: Instant) -> Decider {
        Decider {
            plan,
            started,
            invocations: AtomicU64::new(0),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// The plan, shared.
    pub fn plan_arc(&self) -> Arc<FaultPlan> {
        self.plan.clone()
    }

    /// The draws of the next invocation (of `function`, at `now`): which of the plan's rules apply to it (their
    /// schedule is running and the invocation is among their share). Invocations are numbered in the order
    /// they arrive, whatever their function.
    pub fn invocation(&self, function: &str, now: Instant) -> InvocationDraw {
        let ordinal = self.invocations.fetch_add(1, Ordering::Relaxed);
        let elapsed = now.saturating_duration_since(self.started);
        let applying = self
            .plan
            .rules_for(function)
            .filter(|(_, rule)| scheduled(rule, elapsed))
            .filter(|(i, rule)| unit(self.plan.seed, *i as u64, ordinal, INVOCATION_DRAW) < rule.invocations)
            .map(|(i, _)| i)
            .collect();
        InvocationDraw {
            seed: self.plan.seed,
            ordinal,
            applying,
            calls: AtomicU64::new(0),
        }
    }
}

/// One invocation's share of the plan: the rules that apply to it, and its calls' ordinals.
#[derive(Debug)]
pub struct InvocationDraw {
    seed: u64,
    ordinal: u64,
    applying: Vec<usize>,
    calls: AtomicU64,
}

impl InvocationDraw {
    /// The invocation's ordinal (0 for the plan's first).
    pub fn ordinal(&self) -> u64 {
        self.ordinal
    }

    /// Whether no rule applies (the common case: the seam then costs one check per call).
    pub fn is_empty(&self) -> bool {
        self.applying.is_empty()
    }

    /// The indexes of the rules that apply to this invocation.
    pub fn applying(&self) -> &[usize] {
        &self.applying
    }

    /// The next call's ordinal within the invocation; each host call a rule looks at takes one, so the
    /// n-th call of an invocation draws the same numbers in every run.
    pub fn next_call(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether rule `index` (one that applies) fires on call `call`.
    pub fn fires(&self, index: usize, rule: &Rule, call: u64) -> bool {
        unit(self.seed, index as u64, self.ordinal, call) < rule.probability
    }

    /// The latency rule `index` adds on call `call`.
    pub fn latency(&self, index: usize, latency: &Latency, call: u64) -> Duration {
        match *latency {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                let u = unit(self.seed ^ LATENCY_STREAM, index as u64, self.ordinal, call);
                min + (max - min).mul_f64(u)
            }
        }
    }
}

/// Whether `rule`'s schedule is running `elapsed` into the experiment.
fn scheduled(rule: &Rule, elapsed: Duration) -> bool {
    elapsed >= rule.start_after && rule.duration.is_none_or(|d| elapsed < rule.start_after + d)
}

/// A number in [0, 1) that depends on nothing but its four arguments.
fn unit(seed: u64, rule: u64, invocation: u64, call: u64) -> f64 {
    let mut x = mix(seed ^ mix(rule.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    x = mix(x ^ invocation);
    x = mix(x ^ call.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    // The top 53 bits, as the fraction of a double.
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::plan::{Fault, Target};

    fn rule(probability: f64, invocations: f64) -> Rule {
        Rule {
            name: "r".into(),
            function: None,
            target: Target::Config,
            fault: Fault::Error { status: 503 },
            probability,
            invocations,
            start_after: Duration::ZERO,
            duration: None,
        }
    }

    fn plan(seed: u64, rules: Vec<Rule>) -> Arc<FaultPlan> {
        Arc::new(FaultPlan {
            seed,
            seeded: true,
            rules,
            overrides: Vec::new(),
        })
    }

    /// Which of `calls` calls of each of `invocations` invocations rule 0 fires on.
    fn pattern(d: &Decider, invocations: usize, calls: usize) -> Vec<Vec<bool>> {
        let now = Instant::now();
        (0..invocations)
            .map(|_| {
                let inv = d.invocation("f", now);
                (0..calls)
                    .map(|_| {
                        let call = inv.next_call();
                        !inv.is_empty() && inv.fires(0, &d.plan().rules[0], call)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
        let a = pattern(&Decider::new(plan(42, vec![rule(0.3, 0.5)])), 200, 5);
        let b = pattern(&Decider::new(plan(42, vec![rule(0.3, 0.5)])), 200, 5);
        let c = pattern(&Decider::new(plan(43, vec![rule(0.3, 0.5)])), 200, 5);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn probability_and_share_of_invocations_hold_over_many_draws() {
        // Deterministic for the seed: these bounds are about the generator, not about luck.
        let d = Decider::new(plan(7, vec![rule(0.25, 0.4)]));
        let p = pattern(&d, 10_000, 4);
        let applied = p.iter().filter(|inv| inv.iter().any(|&f| f)).count();
        let fired: usize = p.iter().flatten().filter(|&&f| f).count();
        // 40% of invocations, of which 1 - 0.75^4 have a fired call: 27.3%; 10% of all calls.
        assert!((2_500..3_000).contains(&applied), "{applied}");
        assert!((3_700..4_300).contains(&fired), "{fired}");
        let none = Decider::new(plan(7, vec![rule(0.0, 1.0)]));
        assert!(pattern(&none, 1_000, 3).iter().flatten().all(|&f| !f));
        let all = Decider::new(plan(7, vec![rule(1.0, 1.0)]));
        assert!(pattern(&all, 1_000, 3).iter().flatten().all(|&f| f));
    }

    #[test]
    fn two_rules_on_the_same_call_decide_independently() {
        let d = Decider::new(plan(1, vec![rule(0.5, 1.0), rule(0.5, 1.0)]));
        let inv = d.invocation("f", Instant::now());
        let (mut same, n) = (0, 10_000);
        for call in 0..n {
            same += usize::from(inv.fires(0, &d.plan().rules[0], call) == inv.fires(1, &d.plan().rules[1], call));
        }
        assert!((4_500..5_500).contains(&same), "{same}");
    }

    #[test]
    fn a_rule_runs_only_in_its_window_and_for_its_function() {
        let mut r = rule(1.0, 1.0);
        r.start_after = Duration::from_secs(10);
        r.duration = Some(Duration::from_secs(5));
        let mut other = rule(1.0, 1.0);
        other.function = Some("g".into());
        let t0 = Instant::now();
        let d = Decider::starting_at(plan(3, vec![r, other]), t0);
        let at = |s: u64, f: &str| d.invocation(f, t0 + Duration::from_secs(s)).applying().to_vec();
        assert_eq!(at(9, "f"), Vec::<usize>::new());
        assert_eq!(at(10, "f"), vec![0]);
        assert_eq!(at(14, "f"), vec![0]);
        assert_eq!(at(15, "f"), Vec::<usize>::new());
        assert_eq!(at(12, "g"), vec![0, 1]);
    }

    #[test]
    fn uniform_latency_stays_in_its_range_and_is_reproducible() {
        let latency = Latency::Uniform {
            min: Duration::from_millis(50),
            max: Duration::from_millis(150),
        };
        let d = Decider::new(plan(9, vec![rule(1.0, 1.0)]));
        let inv = d.invocation("f", Instant::now());
        let draws: Vec<Duration> = (0..1_000).map(|c| inv.latency(0, &latency, c)).collect();
        assert!(
            draws
                .iter()
                .all(|l| (Duration::from_millis(50)..=Duration::from_millis(150)).contains(l))
        );
        let mean = draws.iter().sum::<Duration>() / 1_000;
        assert!(
            (Duration::from_millis(95)..Duration::from_millis(105)).contains(&mean),
            "{mean:?}"
        );
        let again = Decider::new(plan(9, vec![rule(1.0, 1.0)])).invocation("f", Instant::now());
        assert_eq!(draws[17], again.latency(0, &latency, 17));
        let fixed = Latency::Fixed(Duration::from_millis(80));
        assert_eq!(inv.latency(0, &fixed, 3), Duration::from_millis(80));
    }
}
