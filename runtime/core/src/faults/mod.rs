//! Fault injection: an experiment's rules ([`plan`]) and the seeded decisions that make every run of the
//! same experiment over the same requests inject exactly the same faults ([`decide`]).
//!
//! A plan comes from the manifest's `[faults]` section or from `NIMBUS_FAULTS` (a file, or inline TOML or
//! JSON). Each rule names what it targets (outbound HTTP by host, method and path prefix; `wasi:config`;
//! `wasi:keyvalue`; the checkpoint store; WebSocket sends; the invocation itself), what it injects (latency,
//! an error, a reset or timeout, a trap, CPU burn, a lower memory limit, a fixed response), how often (a
//! probability per call and a percentage of invocations) and when (a start and a duration).

pub mod active;
pub mod decide;
pub mod inject;
pub mod plan;
pub mod refresh;

pub use active::{Faults, Injected, InvocationFaults, annotate, current, scope, span_telemetry};
pub use decide::{Decider, InvocationDraw};
pub use inject::FaultIntercept;
pub use plan::{CheckpointOp, Family, Fault, FaultPlan, Latency, Override, PlanError, Rule, Target};
