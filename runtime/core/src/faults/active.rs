//! The running experiment: the host's switch ([`Faults`], replaced whole when `NIMBUS_FAULTS` or its SSM
//! parameter changes) and one invocation's share of it ([`InvocationFaults`]), which the fault layer of every
//! host-call family reads while the invocation runs ([`current`]).
//!
//! An invocation's share is set for the task that runs it ([`scope`]); the guest's host calls run in that
//! task, and an outbound exchange, which `wasi:http` drives in a task of its own, carries it in its
//! [`crate::caps::outbound::OutboundCall`]. With no plan, or no rule for the invocation's function (or for
//! every function), there is no share: a host call then pays one task-local read.

use super::decide::{Decider, InvocationDraw};
use super::plan::{Family, Fault, FaultPlan, Rule, Target};
use crate::invocation::Invocation;
use crate::logs::{LogSink, format_record};
use arc_swap::ArcSwapOption;
use futures_util::future::Either;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

tokio::task_local! {
    static CURRENT: Arc<InvocationFaults>;
}

/// The invocation share of the task this runs in, if any.
pub fn current() -> Option<Arc<InvocationFaults>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `fut` with `faults` as its invocation share (no share: `fut` as it is).
///
/// A plain function returning either future, not an `async fn`: an `async fn` would keep `fut` as its
/// argument and again as the future it awaits, doubling the size of what `tokio::spawn` copies (the HTTP
/// guest call's task). Measured with callgrind: the `async fn` cost 3.4k instructions per HTTP invocation,
/// mostly `memcpy` (BENCHMARKS.md, "Fault injection and breakers").
pub fn scope<F: Future>(faults: Option<Arc<InvocationFaults>>, fut: F) -> impl Future<Output = F::Output> {
    match faults {
        Some(f) => Either::Left(CURRENT.scope(f, fut)),
        None => Either::Right(fut),
    }
}

/// The host's fault switch: the plan running now (none by default), and the count of faults injected since
/// boot (every platform's log and metrics carry the per-invocation count; this one is for tests and the
/// fault snapshot).
#[derive(Default)]
pub struct Faults {
    running: ArcSwapOption<Decider>,
    injected: AtomicU64,
    /// What the host does with a newly installed document (the operator's breaker resets).
    on_replace: std::sync::OnceLock<ReplaceHook>,
}

/// What the host does with a newly installed document.
type ReplaceHook = Box<dyn Fn(&FaultPlan) + Send + Sync>;

impl Faults {
    /// A switch running `plan` from now (`None`: off).
    pub fn new(plan: Option<FaultPlan>) -> Faults {
        let faults = Faults::default();
        faults.replace(plan);
        faults
    }

    /// Replaces the running plan (`None`: switches injection off). A plan equal to the running one keeps its
    /// clock and count, so a refresh that changes nothing does not restart the experiment's schedule.
    pub fn replace(&self, plan: Option<FaultPlan>) {
        let Some(plan) = plan else {
            self.running.store(None);
            return;
        };
        if let Some(running) = &*self.running.load()
            && *running.plan() == plan
        {
            return;
        }
        if !plan.seeded {
            tracing::info!(
                seed = plan.seed,
                "fault plan without a seed: drew this one (set `seed` to replay the run)"
            );
        }
        tracing::info!(rules = plan.rules.len(), seed = plan.seed, "fault plan running");
        if let Some(hook) = self.on_replace.get() {
            hook(&plan);
        }
        self.running.store(Some(Arc::new(Decider::new(Arc::new(plan)))));
    }

    /// Sets what the host does with each newly installed document (once; later calls are ignored).
    pub fn on_replace(&self, hook: impl Fn(&FaultPlan) + Send + Sync + 'static) {
        let _ = self.on_replace.set(Box::new(hook));
    }

    /// The degradation level the operator forces on `function` through the running document.
    pub fn forced_level(&self, function: &str) -> Option<u8> {
        self.running.load().as_ref()?.plan().forced_level(function)
    }

    /// The plan running now.
    pub fn plan(&self) -> Option<Arc<FaultPlan>> {
        self.running.load().as_ref().map(|d| d.plan_arc())
    }

    /// Faults injected since boot.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// `inv`'s share of the running plan: `None` when no plan runs or no rule names its function or every
    /// function. Which of those rules apply to it is drawn at its first call of a family they target.
    pub fn draw(self: &Arc<Self>, inv: &Arc<Invocation>, sink: &LogSink) -> Option<Arc<InvocationFaults>> {
        let guard = self.running.load();
        let draw = guard.as_ref()?.invocation(&inv.function, Instant::now())?;
        Some(Arc::new(InvocationFaults {
            draw,
            inv: inv.clone(),
            sink: sink.clone(),
            switch: self.clone(),
            injected: Mutex::new(Vec::new()),
            memory: AtomicU64::new(0),
        }))
    }
}

/// One injected fault, as the invocation's span and metrics report it.
#[derive(Debug, Clone)]
pub struct Injected {
    /// When.
    pub at: SystemTime,
    /// The rule's name.
    pub rule: String,
    /// The call family (`outbound`, `config`, `keyvalue`, `checkpoint`, `websocket`, `invocation`).
    pub target: &'static str,
    /// What was injected (`latency`, `error`, `reset`, `timeout`, `trap`, `cpu`, `memory`, `respond`).
    pub kind: &'static str,
    /// The outbound client span it happened in, if any.
    pub span_id: Option<u64>,
}

/// One invocation's share of the running plan: the rules that may apply to it, and the seeded draw of which
/// do.
pub struct InvocationFaults {
    draw: InvocationDraw,
    inv: Arc<Invocation>,
    sink: LogSink,
    switch: Arc<Faults>,
    injected: Mutex<Vec<Injected>>,
    /// The memory limit an invocation rule lowered the instance's to (0: none).
    memory: AtomicU64,
}

/// A rule that fired on one call: what to inject.
pub struct Firing<'a> {
    /// The rule's index in the plan.
    pub index: usize,
    /// The rule.
    pub rule: &'a Rule,
    /// The call's ordinal within the invocation (for the latency draw).
    pub call: u64,
}

impl InvocationFaults {
    /// The invocation.
    pub fn invocation(&self) -> &Arc<Invocation> {
        &self.inv
    }

    /// The first applying rule of `family` whose target `matches` and that fires on this call. Each call asks
    /// once, so the n-th call of an invocation draws the same numbers in every run of the same seed. A call
    /// of a family none of the invocation's rules targets costs one check, and no draw.
    pub fn fire(&self, family: Family, matches: impl Fn(&Target) -> bool) -> Option<Firing<'_>> {
        if !self.draw.may_target(family) {
            return None;
        }
        let rules = &self.draw.plan().rules;
        let mut candidates = self
            .draw
            .applying()
            .iter()
            .map(|&i| (i, &rules[i]))
            .filter(|(_, r)| r.target.family() == family)
            .filter(|(_, r)| matches(&r.target))
            .peekable();
        candidates.peek()?;
        let call = self.draw.next_call();
        candidates
            .find(|(i, r)| self.draw.fires(*i, r, call))
            .map(|(index, rule)| Firing { index, rule, call })
    }

    /// The latency a firing latency rule adds (zero for other kinds).
    pub fn latency(&self, firing: &Firing<'_>) -> std::time::Duration {
        match &firing.rule.fault {
            Fault::Latency(l) => self.draw.latency(firing.index, l, firing.call),
            _ => std::time::Duration::ZERO,
        }
    }

    /// Makes an injection visible: a JSON log line now, and an event on the invocation's span (and on the
    /// outbound client span `span_id`, for an outbound call) and a count in its metrics when it ends.
    pub fn record(&self, firing: &Firing<'_>, span_id: Option<u64>, detail: Option<String>) {
        let kind = firing.rule.fault.kind();
        let target = firing.rule.target.family().name();
        let mut fields = vec![
            ("rule", firing.rule.name.clone().into()),
            ("target", target.into()),
            ("kind", kind.into()),
            ("seed", self.draw.plan().seed.into()),
            ("invocation_ordinal", self.draw.ordinal().into()),
        ];
        if let Some(d) = detail {
            fields.push(("detail", d.into()));
        }
        self.sink
            .write_line(&format_record("WARN", "fault injected", Some(&self.inv), &fields));
        self.switch.injected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut list) = self.injected.lock() {
            list.push(Injected {
                at: SystemTime::now(),
                rule: firing.rule.name.clone(),
                target,
                kind,
                span_id,
            });
        }
    }

    /// Lowers the instance's memory limit for this invocation to `bytes` (an invocation rule of kind
    /// `memory`).
    pub fn lower_memory(&self, bytes: u64) {
        self.memory.store(bytes, Ordering::Relaxed);
    }

    /// The lowered memory limit, if a rule set one.
    pub fn memory_limit(&self) -> Option<u64> {
        Some(self.memory.load(Ordering::Relaxed)).filter(|&b| b > 0)
    }

    /// The faults injected so far in this invocation.
    pub fn injected(&self) -> Vec<Injected> {
        self.injected.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How many faults were injected so far in this invocation.
    pub fn count(&self) -> usize {
        self.injected.lock().map_or(0, |l| l.len())
    }
}

/// What a span says of the faults `injected` into what it covers: the attribute `nimbus.fault.injected` (their
/// count) and one `nimbus.fault` event each (rule, target, kind). `None` when there were none.
pub fn span_telemetry(
    injected: &[Injected],
) -> Option<(
    crate::telemetry::opentelemetry::KeyValue,
    Vec<crate::telemetry::SpanEvent>,
)> {
    use crate::telemetry::opentelemetry::KeyValue;
    if injected.is_empty() {
        return None;
    }
    let events = injected
        .iter()
        .map(|i| crate::telemetry::SpanEvent {
            time: i.at,
            name: "nimbus.fault".into(),
            attributes: vec![
                KeyValue::new("nimbus.fault.rule", i.rule.clone()),
                KeyValue::new("nimbus.fault.target", i.target),
                KeyValue::new("nimbus.fault.kind", i.kind),
            ],
        })
        .collect();
    Some((KeyValue::new("nimbus.fault.injected", injected.len() as i64), events))
}

/// Puts the faults injected into an invocation on its span ([`span_telemetry`]).
pub fn annotate(record: &mut crate::telemetry::InvocationRecord, injected: &[Injected]) {
    if let Some((count, events)) = span_telemetry(injected) {
        record.attribute(count);
        for e in events {
            record.event(e);
        }
    }
}
