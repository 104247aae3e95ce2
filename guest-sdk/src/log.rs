//! Structured logs with levels, through the standard `wasi:logging`
//! interface: each call becomes one JSON record on the host's log stream,
//! tagged with the invocation's request id, trace id and function name.
//! (`println!` works too; its lines are recorded at level INFO, stderr's at WARN.)
//!
//! ```no_run
//! nimbus_sdk::log::info("order accepted");
//! nimbus_sdk::log::log(nimbus_sdk::log::Level::Error, "payments", "card declined");
//! ```

use crate::wit::wasi::logging::logging as wit;

/// A record's severity.
pub use wit::Level;

/// Emits one record; `context` groups related records (e.g. a module name),
/// and appears as the record's `context` field when not empty.
pub fn log(level: Level, context: &str, message: &str) {
    wit::log(level, context, message);
}

/// A TRACE record.
pub fn trace(message: &str) {
    log(Level::Trace, "", message);
}

/// A DEBUG record.
pub fn debug(message: &str) {
    log(Level::Debug, "", message);
}

/// An INFO record.
pub fn info(message: &str) {
    log(Level::Info, "", message);
}

/// A WARN record.
pub fn warn(message: &str) {
    log(Level::Warn, "", message);
}

/// An ERROR record.
pub fn error(message: &str) {
    log(Level::Error, "", message);
}
