//! The lines Function Compute's console and log tooling look for on a custom runtime's stdout, around each
//! invocation and lifecycle hook (`FC Invoke Start RequestId: <id>` ... `FC Invoke End RequestId: <id>`),
//! written beside Nimbus's JSON log lines.

use nimbus_core::logs::LogSink;

/// What a pair of marker lines surrounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// An `/invoke` or `/http-invoke` request.
    Invoke,
    /// The `/initialize` hook.
    Initialize,
    /// The `/pre-freeze` hook.
    PreFreeze,
    /// The `/pre-stop` hook.
    PreStop,
}

impl Phase {
    /// The word Function Compute's specification uses.
    pub fn word(self) -> &'static str {
        match self {
            Phase::Invoke => "Invoke",
            Phase::Initialize => "Initialize",
            Phase::PreFreeze => "PreFreeze",
            Phase::PreStop => "PreStop",
        }
    }
}

/// `FC <Phase> Start RequestId: <id>`.
pub fn start_line(phase: Phase, request_id: &str) -> String {
    format!("FC {} Start RequestId: {request_id}", phase.word())
}

/// `FC <Phase> End RequestId: <id>`.
pub fn end_line(phase: Phase, request_id: &str) -> String {
    format!("FC {} End RequestId: {request_id}", phase.word())
}

/// Writes the start line now and the end line when dropped, so that the pair is complete whatever way the
/// request ends (an error, a panic unwinding, a client gone).
pub struct Marked<'a> {
    sink: &'a LogSink,
    phase: Phase,
    request_id: &'a str,
}

impl<'a> Marked<'a> {
    /// Writes the start line.
    pub fn start(sink: &'a LogSink, phase: Phase, request_id: &'a str) -> Marked<'a> {
        sink.write_line(&start_line(phase, request_id));
        Marked {
            sink,
            phase,
            request_id,
        }
    }
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        self.sink.write_line(&end_line(self.phase, self.request_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn lines_are_spelled_as_the_specification_spells_them() {
        assert_eq!(start_line(Phase::Invoke, "r-1"), "FC Invoke Start RequestId: r-1");
        assert_eq!(end_line(Phase::Invoke, "r-1"), "FC Invoke End RequestId: r-1");
        assert_eq!(start_line(Phase::Initialize, "r"), "FC Initialize Start RequestId: r");
        assert_eq!(end_line(Phase::PreFreeze, "r"), "FC PreFreeze End RequestId: r");
        assert_eq!(start_line(Phase::PreStop, "r"), "FC PreStop Start RequestId: r");
    }

    #[test]
    fn the_end_line_is_written_however_the_scope_ends() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink::Capture(lines.clone());
        {
            let _m = Marked::start(&sink, Phase::Invoke, "abc");
            sink.write_line("{\"msg\":\"guest\"}");
        }
        assert_eq!(
            *lines.lock().unwrap(),
            [
                "FC Invoke Start RequestId: abc",
                "{\"msg\":\"guest\"}",
                "FC Invoke End RequestId: abc"
            ]
        );
    }
}
