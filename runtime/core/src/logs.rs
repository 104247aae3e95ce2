//! Structured logs: guest stdout/stderr and host request logs become one
//! JSON object per line on the host's stdout — the shape CloudWatch Logs and
//! Alibaba SLS index without a parser:
//!
//! ```json
//! {"ts":"2026-11-22T10:00:00.123Z","level":"INFO","msg":"hello","app":"shop","function":"hello",
//!  "request_id":"…","trace_id":"…","stream":"stdout"}
//! ```

use crate::invocation::Invocation;
use bytes::Bytes;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest guest log line; longer lines are split so one runaway print
/// cannot hold unbounded host memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Where log lines go.
#[derive(Clone, Default)]
pub enum LogSink {
    /// The process's stdout (the default everywhere).
    #[default]
    Stdout,
    /// The process's stderr (`nimbus invoke`, whose stdout is the result).
    Stderr,
    /// Kept in memory, for tests and `nimbus invoke --quiet`.
    Capture(Arc<Mutex<Vec<String>>>),
}

impl LogSink {
    /// Writes one finished line (without newline).
    pub fn write_line(&self, line: &str) {
        match self {
            LogSink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
            LogSink::Stderr => {
                let mut out = std::io::stderr().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.write_all(b"\n");
            }
            LogSink::Capture(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(line.to_owned());
                }
            }
        }
    }
}

/// Formats one record. `fields` are extra `"key": value` pairs (values already JSON).
pub fn format_record(level: &str, msg: &str, inv: Option<&Invocation>, extra: &[(&str, serde_json::Value)]) -> String {
    use serde_json::{Map, Value};
    let mut m = Map::with_capacity(7 + extra.len());
    m.insert(
        "ts".into(),
        Value::String(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()),
    );
    m.insert("level".into(), Value::String(level.into()));
    m.insert("msg".into(), Value::String(msg.into()));
    if let Some(inv) = inv {
        m.insert("app".into(), Value::String(inv.app.to_string()));
        m.insert("function".into(), Value::String(inv.function.to_string()));
        m.insert("request_id".into(), Value::String(inv.request_id.to_string()));
        m.insert("trace_id".into(), Value::String(inv.trace.trace_id().to_string()));
    }
    for (k, v) in extra {
        m.insert((*k).into(), v.clone());
    }
    Value::Object(m).to_string()
}

/// Most text a [`LogTap`] keeps; past it, lines are counted, not kept, so a chatty guest cannot make one
/// invocation's answer (Azure Functions' `Logs`) or the host's memory grow without bound.
pub const MAX_TAPPED: usize = 1024 * 1024;

/// The guest's log lines of ONE invocation, as text, for a platform that returns them with the invocation's
/// answer (an Azure Functions custom handler's `Logs`). An adapter puts one on the [`Invocation`]
/// ([`Invocation::tap_logs`]) before invoking; every guest line (stdout, stderr, `wasi:logging`) of that
/// invocation is kept here as well as written to the [`LogSink`]. A warm instance's next invocation has its
/// own tap (or none), because the streams ask the current invocation for it line by line.
#[derive(Clone, Default)]
pub struct LogTap(Arc<Mutex<Tapped>>);

/// What a [`LogTap`] holds.
#[derive(Default)]
struct Tapped {
    lines: Vec<String>,
    bytes: usize,
    dropped: usize,
}

impl LogTap {
    /// Keeps one line (its message text), unless [`MAX_TAPPED`] bytes are kept already.
    pub fn record(&self, msg: &str) {
        let Ok(mut t) = self.0.lock() else { return };
        // Once one line is over the limit, later ones are too, so the kept lines stay a prefix.
        if t.dropped > 0 || t.bytes + msg.len() > MAX_TAPPED {
            t.dropped += 1;
            return;
        }
        t.bytes += msg.len();
        t.lines.push(msg.to_owned());
    }

    /// The lines kept so far, in order; when some were over the limit, a last line says how many.
    pub fn lines(&self) -> Vec<String> {
        let Ok(t) = self.0.lock() else { return Vec::new() };
        let mut lines = t.lines.clone();
        if t.dropped > 0 {
            lines.push(format!(
                "[nimbus] {} more log lines not included (over {} KiB); every line is in the function's log",
                t.dropped,
                MAX_TAPPED / 1024
            ));
        }
        lines
    }
}

impl std::fmt::Debug for LogTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|t| t.lines.len() + t.dropped).unwrap_or(0);
        write!(f, "LogTap({n} lines)")
    }
}

/// Which guest stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// `wasi:cli/stdout`: level INFO.
    Stdout,
    /// `wasi:cli/stderr`: level WARN.
    Stderr,
}

/// The invocation a store serves right now. A warm instance (`reuse`) keeps
/// its stdout stream across invocations, so the stream asks here for the ids
/// to tag each line with instead of remembering the first invocation's.
#[derive(Clone)]
pub struct CurrentInvocation(Arc<Mutex<Arc<Invocation>>>);

impl CurrentInvocation {
    /// Starts with `inv`.
    pub fn new(inv: Arc<Invocation>) -> Self {
        CurrentInvocation(Arc::new(Mutex::new(inv)))
    }

    /// The invocation being served.
    pub fn get(&self) -> Arc<Invocation> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Switches to the next invocation.
    pub fn set(&self, inv: Arc<Invocation>) {
        match self.0.lock() {
            Ok(mut g) => *g = inv,
            Err(poisoned) => *poisoned.into_inner() = inv,
        }
    }
}

/// The guest's stdout or stderr.
#[derive(Clone)]
pub struct GuestLog {
    inv: CurrentInvocation,
    sink: LogSink,
    stream: Stream,
}

impl GuestLog {
    /// A stream that tags every line with the current invocation's ids.
    pub fn new(inv: CurrentInvocation, sink: LogSink, stream: Stream) -> Self {
        GuestLog { inv, sink, stream }
    }

    fn writer(&self) -> LineWriter {
        LineWriter {
            log: self.clone(),
            buf: Vec::new(),
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

/// Buffers partial lines; emits a record per complete line, and the rest on drop.
struct LineWriter {
    log: GuestLog,
    buf: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            self.buf.extend_from_slice(&bytes[..pos]);
            self.emit();
            bytes = &bytes[pos + 1..];
        }
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= MAX_LINE {
            let rest = self.buf.split_off(MAX_LINE);
            self.emit();
            self.buf = rest;
        }
    }

    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let (level, stream) = match self.log.stream {
            Stream::Stdout => ("INFO", "stdout"),
            Stream::Stderr => ("WARN", "stderr"),
        };
        let inv = self.log.inv.get();
        let line = format_record(level, text, Some(&inv), &[("stream", stream.into())]);
        self.log.sink.write_line(&line);
        if let Some(tap) = &inv.log_tap {
            tap.record(text);
        }
        self.buf.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.emit();
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::TraceContext;
    use std::time::Duration;

    #[test]
    fn lines_become_json_records_with_ids() {
        let inv = Arc::new(Invocation::new(
            "shop".into(),
            "f".into(),
            Duration::from_secs(1),
            Some("req-1".into()),
            TraceContext::new_root(),
        ));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = GuestLog::new(
            CurrentInvocation::new(inv),
            LogSink::Capture(lines.clone()),
            Stream::Stderr,
        );
        {
            let mut w = log.writer();
            w.push(b"one\ntw");
            w.push(b"o\r\nthree \"quoted\"");
        }
        let got = lines.lock().unwrap().clone();
        assert_eq!(got.len(), 3);
        let v: Vec<serde_json::Value> = got.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(v[0]["msg"], "one");
        assert_eq!(v[1]["msg"], "two");
        assert_eq!(v[2]["msg"], "three \"quoted\"");
        assert_eq!(v[0]["request_id"], "req-1");
        assert_eq!((&v[0]["app"], &v[0]["function"]), (&"shop".into(), &"f".into()));
        assert_eq!(v[0]["level"], "WARN");
        assert_eq!(v[0]["stream"], "stderr");
    }

    fn invocation(request_id: &str) -> Invocation {
        Invocation::new(
            "shop".into(),
            "f".into(),
            Duration::from_secs(1),
            Some(request_id.into()),
            TraceContext::new_root(),
        )
    }

    #[test]
    fn a_tap_keeps_its_own_invocations_lines_and_the_sink_gets_them_all() {
        let mut first = invocation("req-1");
        let tap = first.tap_logs();
        let current = CurrentInvocation::new(Arc::new(first));
        let sink = Arc::new(Mutex::new(Vec::new()));
        let out = GuestLog::new(current.clone(), LogSink::Capture(sink.clone()), Stream::Stdout);
        let err = GuestLog::new(current.clone(), LogSink::Capture(sink.clone()), Stream::Stderr);
        out.writer().push(b"one\ntwo\n");
        err.writer().push(b"three\npartial");
        // A warm instance's next invocation, without a tap: its lines are not the first one's.
        current.set(Arc::new(invocation("req-2")));
        out.writer().push(b"four\n");
        assert_eq!(tap.lines(), ["one", "two", "three", "partial"]);
        assert_eq!(sink.lock().unwrap().len(), 5);
    }

    #[test]
    fn a_tap_is_bounded_and_says_how_many_lines_it_left_out() {
        let tap = LogTap::default();
        let big = "x".repeat(MAX_TAPPED / 2);
        for _ in 0..3 {
            tap.record(&big);
        }
        // A short line after the limit is left out too: what is kept is a prefix of the log.
        tap.record("short");
        let lines = tap.lines();
        assert_eq!(
            lines.len(),
            3,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[..2], [big.clone(), big]);
        assert!(lines[2].contains("2 more log lines not included"), "{}", lines[2]);
    }
}
