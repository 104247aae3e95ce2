//! The span export pipeline. The invocation path encodes each finished
//! span straight to its OTLP bytes ([`span_field`]), appends them to a
//! bounded queue of batches and moves on; one export thread, at a lower
//! priority ([`super::priority`]), takes the batches, wraps each in its
//! request ([`Envelope`]) and POSTs it ([`OtlpHttp`]).
//!
//! Encoding on the invocation path (about a quarter of a microsecond) is
//! cheaper for it than handing the span's own data (an attribute vector,
//! strings) to another thread: memory freed by the export thread is not
//! reused by the invocation's, which then allocates afresh each time. A
//! guest span with export on costs 510–570 ns this way, ~660 ns as a queued
//! record (`call_cost`); on a busy 2-core machine queued records cost an
//! empty handler about 4% more than queued bytes (`trace_cost`).
//!
//! The thread does not wake per span: it sleeps until the schedule delay
//! passes, a batch fills, or a flush or shutdown asks for an export.
//! Batching follows the SDK's `OTEL_BSP_*` variables ([`BatchSettings`]).

use super::otlp_encode::{Envelope, span_field};
use super::otlp_http::{OtlpHttp, PostError};
use super::spans::FinishedSpan;
use super::warn_once::Warnings;
use crate::settings::{BatchSettings, OtlpHttpSettings};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Wake-ups, flushes and shutdowns not yet taken: a flush is in flight at
/// most once per caller (the [`super::warn_once::Guard`] sees to it), and a
/// wake-up lost to a full queue is made up for by the next one.
const CONTROL_QUEUE: usize = 64;
/// Emptied batch buffers kept for reuse (each holds a full batch's bytes).
const SPARE_BUFFERS: usize = 2;

/// Why an export, a flush or a shutdown failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ExportError {
    /// A batch could not be delivered.
    #[error(transparent)]
    Post(#[from] PostError),
    /// The export thread is gone (shut down already).
    #[error("the span export thread has stopped")]
    Stopped,
    /// The export thread did not answer in time (it goes on exporting).
    #[error("no answer from the span export thread within {} ms", .0.as_millis())]
    NoAnswer(Duration),
}

/// Why the export thread could not start.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// The OS would not start a thread.
    #[error("cannot start the span export thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The thread ended before saying whether its client was built.
    #[error("the span export thread ended while starting")]
    Ended,
}

/// What the export thread is asked.
enum Control {
    /// A batch is full.
    FullBatch,
    /// Export everything queued, then answer.
    Flush(SyncSender<Result<(), ExportError>>),
    /// Export everything queued, answer, and stop.
    Shutdown(SyncSender<Result<(), ExportError>>),
}

/// Encoded spans waiting for the export thread, in batches.
#[derive(Default)]
struct Queue {
    /// The batch spans are appended to.
    filling: Batch,
    /// Full batches, oldest first.
    full: VecDeque<Batch>,
    /// Spans in `filling` and `full`.
    spans: usize,
    /// Emptied buffers, for the next batches.
    spare: Vec<Vec<u8>>,
    /// The export thread has stopped: spans are no longer queued.
    stopped: bool,
}

/// Some spans, encoded one after the other as [`span_field`]s.
#[derive(Default)]
struct Batch {
    spans: usize,
    bytes: Vec<u8>,
}

impl Queue {
    /// Ends the filling batch (if it has spans) and starts another in a spare buffer.
    fn close_filling(&mut self) {
        if self.filling.spans > 0 {
            let next = Batch {
                spans: 0,
                bytes: self.spare.pop().unwrap_or_default(),
            };
            self.full.push_back(std::mem::replace(&mut self.filling, next));
        }
    }
}

/// The queue, even if a thread panicked holding it (it is consistent at every step).
fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The invocation path's end of the pipeline; the thread stops when it is dropped.
pub(super) struct SpanExport {
    queue: Arc<Mutex<Queue>>,
    control: SyncSender<Control>,
    settings: BatchSettings,
    /// Spans dropped on a full queue.
    dropped: AtomicU64,
    warnings: Warnings,
}

impl SpanExport {
    /// Starts the export thread, which POSTs to `url` as `http` says; returns
    /// once its HTTP client is built (so a failure to build it is reported here).
    pub(super) fn start(
        url: reqwest::Url,
        http: OtlpHttpSettings,
        settings: BatchSettings,
        envelope: Envelope,
        warnings: Warnings,
    ) -> Result<SpanExport, StartError> {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let (control, control_rx) = sync_channel(CONTROL_QUEUE);
        let (started, started_rx) = sync_channel(1);
        let worker = Worker {
            queue: queue.clone(),
            control: control_rx,
            settings,
            envelope,
            endpoint: url.to_string(),
            warnings: warnings.clone(),
        };
        std::thread::Builder::new()
            .name("nimbus-span-export".into())
            .spawn(move || {
                // Lowered first: reqwest's own I/O thread, started with the
                // client, inherits the priority.
                super::priority::yield_to_invocations();
                match OtlpHttp::new(url, &http) {
                    Ok(client) => {
                        let _ = started.send(Ok(()));
                        worker.run(&client);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            })?;
        started_rx.recv().map_err(|_| StartError::Ended)??;
        Ok(SpanExport {
            queue,
            control,
            settings,
            dropped: AtomicU64::new(0),
            warnings,
        })
    }

    /// Encodes `span` onto the queue; never blocks for longer than that.
    /// On a full queue the span is dropped and counted (the first drop is
    /// warned about).
    pub(super) fn send(&self, span: &FinishedSpan<'_>) {
        let filled = {
            let mut q = lock(&self.queue);
            if q.stopped {
                return;
            }
            if q.spans >= self.settings.max_queue {
                drop(q);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.warnings.warn(format_args!(
                    "the queue of {} spans is full (see OTEL_BSP_MAX_QUEUE_SIZE); spans are dropped",
                    self.settings.max_queue
                ));
                return;
            }
            span_field(&mut q.filling.bytes, span);
            q.filling.spans += 1;
            q.spans += 1;
            let filled = q.filling.spans >= self.settings.max_batch;
            if filled {
                q.close_filling();
            }
            filled
        };
        if filled {
            // If the control queue is full, the thread is awake already.
            let _ = self.control.try_send(Control::FullBatch);
        }
    }

    /// Spans dropped so far because the queue was full.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exports every span queued before the call; blocks until that is done
    /// or `wait` has passed.
    pub(super) fn flush(&self, wait: Duration) -> Result<(), ExportError> {
        self.ask(Control::Flush, wait)
    }

    /// Exports every span queued before the call and stops the thread;
    /// blocks until that is done or `wait` has passed.
    pub(super) fn shutdown(&self, wait: Duration) -> Result<(), ExportError> {
        self.ask(Control::Shutdown, wait)
    }

    fn ask(
        &self,
        request: fn(SyncSender<Result<(), ExportError>>) -> Control,
        wait: Duration,
    ) -> Result<(), ExportError> {
        let (answer, answer_rx) = sync_channel(1);
        self.control.send(request(answer)).map_err(|_| ExportError::Stopped)?;
        match answer_rx.recv_timeout(wait) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(ExportError::NoAnswer(wait)),
            Err(RecvTimeoutError::Disconnected) => Err(ExportError::Stopped),
        }
    }
}

/// The export thread's state.
struct Worker {
    queue: Arc<Mutex<Queue>>,
    control: Receiver<Control>,
    settings: BatchSettings,
    envelope: Envelope,
    /// For the warning.
    endpoint: String,
    warnings: Warnings,
}

impl Worker {
    /// Exports on each wake-up until shut down or disconnected.
    fn run(self, client: &OtlpHttp) {
        let mut due = Instant::now() + self.settings.delay;
        loop {
            let (everything, answer, stop) =
                match self.control.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    // Only full batches: the filling one has time to fill.
                    Ok(Control::FullBatch) => (false, None, false),
                    Ok(Control::Flush(answer)) => (true, Some(answer), false),
                    Ok(Control::Shutdown(answer)) => (true, Some(answer), true),
                    Err(RecvTimeoutError::Timeout) => (true, None, false),
                    // Every handle is gone: a last export, then stop.
                    Err(RecvTimeoutError::Disconnected) => (true, None, true),
                };
            if everything {
                due = Instant::now() + self.settings.delay;
            }
            let result = self.export(client, everything);
            if let Some(answer) = answer {
                let _ = answer.send(result);
            }
            if stop {
                // What is queued from now on would never be exported.
                *lock(&self.queue) = Queue {
                    stopped: true,
                    ..Queue::default()
                };
                return;
            }
        }
    }

    /// Exports the full batches, and the filling one too if `everything`
    /// (not what is queued meanwhile, so a busy host cannot keep a flush
    /// waiting). Every batch is tried; the result is the last failure, if any.
    fn export(&self, client: &OtlpHttp, everything: bool) -> Result<(), ExportError> {
        let batches: Vec<Batch> = {
            let mut q = lock(&self.queue);
            if everything {
                q.close_filling();
            }
            let batches: Vec<Batch> = q.full.drain(..).collect();
            q.spans -= batches.iter().map(|b| b.spans).sum::<usize>();
            batches
        };
        let mut result = Ok(());
        for mut batch in batches {
            let body = self.envelope.request(&batch.bytes);
            batch.bytes.clear();
            {
                let mut q = lock(&self.queue);
                if q.spare.len() < SPARE_BUFFERS {
                    q.spare.push(batch.bytes);
                }
            }
            if let Err(e) = client.post(body.into()) {
                self.warnings.export_failed(&self.endpoint, &e);
                result = Err(e.into());
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpanIds;
    use crate::spans::Kind;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::SystemTime;

    /// What [`collector`] received.
    #[derive(Default)]
    struct Received {
        /// Each request's span ids, in order.
        requests: Vec<Vec<u64>>,
        /// Each request's header lines, lowercased.
        headers: Vec<Vec<String>>,
        /// Connections accepted.
        connections: usize,
    }

    /// A minimal OTLP/HTTP endpoint: answers with `statuses` in turn (the
    /// last one from then on) and keeps what it received.
    fn collector(statuses: &'static [u16]) -> (reqwest::Url, Arc<Mutex<Received>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Received::default()));
        let seen = received.clone();
        std::thread::spawn(move || {
            while let Ok((stream, _)) = listener.accept() {
                seen.lock().unwrap().connections += 1;
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut length = 0;
                        let mut headers = Vec::new();
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            let line = line.trim_end().to_ascii_lowercase();
                            if let Some(v) = line.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap();
                            }
                            headers.push(line);
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        if headers.iter().any(|h| h == "content-encoding: gzip") {
                            let mut plain = Vec::new();
                            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
                            body = plain;
                        }
                        let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
                        let ids = request.resource_spans[0].scope_spans[0]
                            .spans
                            .iter()
                            .map(|s| u64::from_be_bytes(s.span_id[..].try_into().unwrap()))
                            .collect();
                        let mut seen = seen.lock().unwrap();
                        seen.requests.push(ids);
                        seen.headers.push(headers);
                        let status = statuses[(seen.requests.len() - 1).min(statuses.len() - 1)];
                        drop(seen);
                        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                        stream.write_all(answer.as_bytes()).unwrap();
                    }
                });
            }
        });
        (url.parse().unwrap(), received)
    }

    /// The tests' HTTP settings: a header to check, bodies compressed or not.
    fn http(gzip: bool) -> OtlpHttpSettings {
        OtlpHttpSettings {
            timeout: Duration::from_secs(5),
            headers: vec![("x-api-key".into(), "s3cret".into())],
            gzip,
        }
    }

    fn start(url: reqwest::Url, max_queue: usize, max_batch: usize) -> SpanExport {
        start_with(url, max_queue, max_batch, http(false))
    }

    fn start_with(url: reqwest::Url, max_queue: usize, max_batch: usize, http: OtlpHttpSettings) -> SpanExport {
        let settings = BatchSettings {
            max_queue,
            max_batch,
            delay: Duration::from_secs(600),
        };
        let guard = super::super::warn_once::Guard::new("spans", Duration::from_secs(5));
        SpanExport::start(url, http, settings, Envelope::new(&[], "nimbus", "0"), guard.warnings()).unwrap()
    }

    fn span(id: u64) -> FinishedSpan<'static> {
        let trace = SpanIds::child(Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1)));
        FinishedSpan::new(&trace, (id, 0), Kind::Internal, "test", SystemTime::now())
    }

    #[test]
    fn batches_fill_and_a_flush_sends_the_rest() {
        let (url, received) = collector(&[200]);
        let export = start(url, 100, 3);
        for id in 1..=7 {
            export.send(&span(id));
        }
        // Two full batches go without a flush (the schedule delay is 10 minutes).
        let until = Instant::now() + Duration::from_secs(10);
        while received.lock().unwrap().requests.len() < 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(received.lock().unwrap().requests, [vec![1, 2, 3], vec![4, 5, 6]]);
        export.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(
            received.lock().unwrap().requests[2..],
            [vec![7]],
            "flushed: the filling batch"
        );
        export.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(received.lock().unwrap().requests.len(), 3, "nothing left to send");
        {
            let r = received.lock().unwrap();
            assert_eq!(r.connections, 1, "one connection, kept alive");
            for h in ["content-type: application/x-protobuf", "x-api-key: s3cret"] {
                assert!(
                    r.headers.iter().all(|hs| hs.iter().any(|l| l == h)),
                    "{h}: {:?}",
                    r.headers
                );
            }
        }

        export.shutdown(Duration::from_secs(10)).unwrap();
        export.send(&span(8));
        assert!(matches!(
            export.flush(Duration::from_secs(1)),
            Err(ExportError::Stopped)
        ));
        assert_eq!(export.dropped(), 0, "after shutdown a span is ignored, not dropped");
    }

    #[test]
    fn gzip_bodies_say_so_and_decode_to_the_same_spans() {
        let (url, received) = collector(&[200]);
        let export = start_with(url, 100, 100, http(true));
        for id in 1..=50 {
            export.send(&span(id));
        }
        export.flush(Duration::from_secs(10)).unwrap();
        let r = received.lock().unwrap();
        assert_eq!(r.requests, [(1..=50).collect::<Vec<u64>>()]);
        assert!(
            r.headers[0].iter().any(|l| l == "content-encoding: gzip"),
            "{:?}",
            r.headers
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (url, received) = collector(&[200]);
        let export = start(url, 4, 10);
        for id in 1..=6 {
            export.send(&span(id));
        }
        assert_eq!(export.dropped(), 2);
        export.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(received.lock().unwrap().requests, [vec![1, 2, 3, 4]]);
        // Room again once exported.
        export.send(&span(9));
        export.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(received.lock().unwrap().requests[1..], [vec![9]]);
    }

    #[test]
    fn an_unavailable_collector_is_retried() {
        let (url, received) = collector(&[503, 502, 200]);
        let export = start(url, 10, 10);
        export.send(&span(1));
        export.flush(Duration::from_secs(10)).unwrap();
        assert_eq!(received.lock().unwrap().requests, [vec![1], vec![1], vec![1]]);
    }

    #[test]
    fn a_refusing_collector_is_an_error_not_retried() {
        let (url, received) = collector(&[400]);
        let export = start(url, 10, 10);
        export.send(&span(1));
        let e = export.flush(Duration::from_secs(10)).unwrap_err();
        assert!(e.to_string().contains("HTTP 400"), "{e}");
        assert_eq!(received.lock().unwrap().requests.len(), 1);
    }
}
