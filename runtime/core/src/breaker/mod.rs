//! Circuit breakers on outbound hosts ([`machine`]: one breaker's window and states; [`outbound`]: the layer
//! of the interception seam that keeps one per function and host and answers while a circuit is open).
//! A function turns them on with `[function.NAME.breaker]` ([`crate::manifest::BreakerSpec`]).

pub mod machine;
pub mod outbound;

pub use machine::{Admit, Breaker, BreakerSettings, Outcome, State, Transition};
pub use outbound::{BreakerIntercept, Breakers};
