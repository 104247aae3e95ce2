//! Seeded fault decisions. Every decision is a pure function of the plan's seed, the rule's index, the
//! invocation's ordinal (its place in the sequence of invocations the plan has seen) and the call's ordinal within
//! the invocation: a counter-based generator (SplitMix64's finaliser over the four) rather than a shared
//! stateful one, so that concurrent invocations cannot change each other's draws, and the same seed over the
//! same request sequence injects exactly the same faults, whatever the timing.

use super::plan::{Family, FaultPlan, Latency, Rule};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The call ordinal that stands for the invocation itself (the draw of whether a rule applies to it).
const INVOCATION_DRAW: u64 = u64::MAX;
/// The stream of latency draws, apart from the stream of whether a rule fires.
const LATENCY_STREAM: u64 = 0x6c61_7465_6e63_7921;

/// A plan being run: its rules, indexed by the function they apply to, their clock and the count of
/// invocations so far.
pub struct Decider {
    plan: Arc<FaultPlan>,
    /// The rules of each function the plan names, then (last) those of every other function.
    sets: Vec<RuleSet>,
    /// The functions the plan names, with their set's index in `sets`.
    named: Vec<(Box<str>, usize)>,
    started: Instant,
    invocations: AtomicU64,
}

/// The rules that apply to one function, and the families of host calls they target.
#[derive(Debug, Default)]
struct RuleSet {
    rules: Vec<usize>,
    families: u8,
}

impl RuleSet {
    fn of<'a>(rules: impl Iterator<Item = (usize, &'a Rule)>) -> RuleSet {
        let mut set = RuleSet::default();
        for (i, rule) in rules {
            set.rules.push(i);
            set.families |= rule.target.family().bit();
        }
        set
    }
}

impl Decider {
    /// Runs `plan` from now.
    pub fn new(plan: Arc<FaultPlan>) -> Decider {
        Decider::starting_at(plan, Instant::now())
    }

    /// Runs `plan` as if it had started at `started` (tests, and a plan replaced by a refresh, which keeps
    /// the experiment's clock).
    pub fn starting_at(plan: Arc<FaultPlan>, started: Instant) -> Decider {
        // A plan names a handful of functions: a scan of their names is quicker than hashing one.
        let mut named: Vec<(Box<str>, usize)> = Vec::new();
        let mut sets = Vec::new();
        for f in plan.rules.iter().filter_map(|r| r.function.as_deref()) {
            if !named.iter().any(|(n, _)| &**n == f) {
                named.push((f.into(), sets.len()));
                sets.push(RuleSet::of(plan.rules_for(f)));
            }
        }
        let everyone = plan.rules.iter().enumerate().filter(|(_, r)| r.function.is_none());
        sets.push(RuleSet::of(everyone));
        Decider {
            plan,
            sets,
            named,
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

    /// The next invocation (of `function`, at `now`): its ordinal, and its share of the plan if any rule
    /// names it or every function (`None` else). Invocations are numbered in the order they arrive, whatever
    /// their function. Which of its rules apply (their schedule is running at `now` and the invocation is
    /// among their share) is drawn at the first call of a family they target ([`InvocationDraw::applying`]),
    /// from the same numbers as if it were drawn now.
    pub fn invocation(self: &Arc<Self>, function: &str, now: Instant) -> Option<InvocationDraw> {
        let ordinal = self.invocations.fetch_add(1, Ordering::Relaxed);
        let set = self
            .named
            .iter()
            .find(|(n, _)| &**n == function)
            .map_or(self.sets.len() - 1, |&(_, i)| i);
        if self.sets[set].rules.is_empty() {
            return None;
        }
        Some(InvocationDraw {
            decider: self.clone(),
            set,
            ordinal,
            elapsed: now.saturating_duration_since(self.started),
            applying: OnceLock::new(),
            calls: AtomicU64::new(0),
        })
    }
}

/// One invocation's share of the plan: the rules that may apply to it, the draw of which do (made once,
/// when first asked), and its calls' ordinals.
pub struct InvocationDraw {
    decider: Arc<Decider>,
    set: usize,
    ordinal: u64,
    /// How far into the experiment the invocation arrived (what the rules' schedules are judged at).
    elapsed: Duration,
    applying: OnceLock<Vec<usize>>,
    calls: AtomicU64,
}

impl std::fmt::Debug for InvocationDraw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationDraw")
            .field("ordinal", &self.ordinal)
            .field("elapsed", &self.elapsed)
            .field("applying", &self.applying.get())
            .finish_non_exhaustive()
    }
}

impl InvocationDraw {
    /// The plan.
    pub fn plan(&self) -> &FaultPlan {
        &self.decider.plan
    }

    /// The invocation's ordinal (0 for the plan's first).
    pub fn ordinal(&self) -> u64 {
        self.ordinal
    }

    /// Whether any rule that may apply targets `family` (no draw is made: calls of other families pay this
    /// check alone).
    pub fn may_target(&self, family: Family) -> bool {
        self.decider.sets[self.set].families & family.bit() != 0
    }

    /// Whether no rule applies.
    pub fn is_empty(&self) -> bool {
        self.applying().is_empty()
    }

    /// The indexes of the rules that apply to this invocation, drawn on the first call.
    pub fn applying(&self) -> &[usize] {
        self.applying.get_or_init(|| {
            let plan = &self.decider.plan;
            let seed = plan.seed;
            self.decider.sets[self.set]
                .rules
                .iter()
                .copied()
                .filter(|&i| scheduled(&plan.rules[i], self.elapsed))
                .filter(|&i| unit(seed, i as u64, self.ordinal, INVOCATION_DRAW) < plan.rules[i].invocations)
                .collect()
        })
    }

    /// The next call's ordinal within the invocation; each host call a rule looks at takes one, so the
    /// n-th call of an invocation draws the same numbers in every run.
    pub fn next_call(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether rule `index` (one that applies) fires on call `call`.
    pub fn fires(&self, index: usize, rule: &Rule, call: u64) -> bool {
        unit(self.plan().seed, index as u64, self.ordinal, call) < rule.probability
    }

    /// The latency rule `index` adds on call `call`.
    pub fn latency(&self, index: usize, latency: &Latency, call: u64) -> Duration {
        match *latency {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                let u = unit(self.plan().seed ^ LATENCY_STREAM, index as u64, self.ordinal, call);
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

    fn decider(plan: Arc<FaultPlan>) -> Arc<Decider> {
        Arc::new(Decider::new(plan))
    }

    /// Which of `calls` calls of each of `invocations` invocations rule 0 fires on.
    fn pattern(d: &Arc<Decider>, invocations: usize, calls: usize) -> Vec<Vec<bool>> {
        let now = Instant::now();
        (0..invocations)
            .map(|_| {
                let inv = d.invocation("f", now).expect("a rule for every function");
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
        let a = pattern(&decider(plan(42, vec![rule(0.3, 0.5)])), 200, 5);
        let b = pattern(&decider(plan(42, vec![rule(0.3, 0.5)])), 200, 5);
        let c = pattern(&decider(plan(43, vec![rule(0.3, 0.5)])), 200, 5);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn probability_and_share_of_invocations_hold_over_many_draws() {
        // Deterministic for the seed: these bounds are about the generator, not about luck.
        let d = decider(plan(7, vec![rule(0.25, 0.4)]));
        let p = pattern(&d, 10_000, 4);
        let applied = p.iter().filter(|inv| inv.iter().any(|&f| f)).count();
        let fired: usize = p.iter().flatten().filter(|&&f| f).count();
        // 40% of invocations, of which 1 - 0.75^4 have a fired call: 27.3%; 10% of all calls.
        assert!((2_500..3_000).contains(&applied), "{applied}");
        assert!((3_700..4_300).contains(&fired), "{fired}");
        let none = decider(plan(7, vec![rule(0.0, 1.0)]));
        assert!(pattern(&none, 1_000, 3).iter().flatten().all(|&f| !f));
        let all = decider(plan(7, vec![rule(1.0, 1.0)]));
        assert!(pattern(&all, 1_000, 3).iter().flatten().all(|&f| f));
    }

    #[test]
    fn two_rules_on_the_same_call_decide_independently() {
        let d = decider(plan(1, vec![rule(0.5, 1.0), rule(0.5, 1.0)]));
        let inv = d.invocation("f", Instant::now()).unwrap();
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
        let d = Arc::new(Decider::starting_at(plan(3, vec![r, other]), t0));
        let at = |s: u64, f: &str| {
            d.invocation(f, t0 + Duration::from_secs(s))
                .map_or(Vec::new(), |inv| inv.applying().to_vec())
        };
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
        let d = decider(plan(9, vec![rule(1.0, 1.0)]));
        let inv = d.invocation("f", Instant::now()).unwrap();
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
        let again = decider(plan(9, vec![rule(1.0, 1.0)]))
            .invocation("f", Instant::now())
            .unwrap();
        assert_eq!(draws[17], again.latency(0, &latency, 17));
        let fixed = Latency::Fixed(Duration::from_millis(80));
        assert_eq!(inv.latency(0, &fixed, 3), Duration::from_millis(80));
    }

    #[test]
    fn an_invocation_gets_only_its_functions_rules_and_draws_them_only_when_asked() {
        let t0 = Instant::now();
        let mut for_g = rule(1.0, 1.0);
        for_g.function = Some("g".into());
        for_g.target = Target::Outbound {
            host: None,
            method: None,
            path_prefix: None,
        };
        let mut everyone = rule(1.0, 1.0);
        everyone.target = Target::KeyValue;
        let mut window = rule(1.0, 1.0);
        window.function = Some("g".into());
        window.duration = Some(Duration::from_secs(1));
        let d = Arc::new(Decider::starting_at(plan(5, vec![for_g, everyone, window]), t0));

        // The rules of `g`, in the plan's order, and the families they target.
        let g = d.invocation("g", t0).unwrap();
        assert!(g.may_target(Family::Outbound) && g.may_target(Family::KeyValue) && g.may_target(Family::Config));
        assert!(!g.may_target(Family::Invocation) && !g.may_target(Family::Checkpoint));
        // Drawn later, still judged at the invocation's arrival: the one-second window was running then.
        assert!(g.applying.get().is_none(), "{g:?}");
        assert_eq!(g.applying(), &[0, 1, 2]);

        // Any other function has the rule for everyone alone.
        let f = d.invocation("f", t0 + Duration::from_secs(5)).unwrap();
        assert!(f.may_target(Family::KeyValue) && !f.may_target(Family::Outbound));
        assert_eq!(f.applying(), &[1]);
        assert_eq!((g.ordinal(), f.ordinal()), (0, 1));

        // A function no rule applies to has no share, and still takes its place in the sequence.
        let mut only_g = rule(1.0, 1.0);
        only_g.function = Some("g".into());
        let d = decider(plan(5, vec![only_g]));
        assert!(d.invocation("f", t0).is_none());
        assert_eq!(d.invocation("g", t0).unwrap().ordinal(), 1);
    }
}
