//! The span export pipeline: the invocation path puts each finished span on
//! a bounded queue and moves on; one export thread, at a lower priority
//! ([`super::priority`]), takes them in batches, encodes each batch
//! ([`Encoder`]) and POSTs it ([`OtlpHttp`]).
//!
//! The thread does not wake per span: it sleeps until the schedule delay
//! passes, a full batch is queued, or a flush or shutdown asks for an
//! export. Batching follows the SDK's `OTEL_BSP_*` variables.

use super::otlp_encode::Encoder;
use super::otlp_http::{HttpSettings, OtlpHttp, PostError};
use super::spans::FinishedSpan;
use super::warn_once::Warnings;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Spans a batch holds at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` overrides it).
pub(super) const DEFAULT_MAX_BATCH: usize = 512;
/// How long a span waits for a batch to fill (`OTEL_BSP_SCHEDULE_DELAY`, in ms, overrides it).
pub(super) const DEFAULT_DELAY: Duration = Duration::from_secs(5);
/// Flushes and shutdowns waiting for their answer: at most one per caller
/// is in flight (the [`super::warn_once::Guard`] sees to it), so a few slots do.
const CONTROL_QUEUE: usize = 64;

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

/// Queue and batch sizes and the schedule, as the `OTEL_BSP_*` variables give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchSettings {
    /// Spans queued before new ones are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub(super) max_queue: usize,
    /// See [`DEFAULT_MAX_BATCH`]; never more than `max_queue`.
    pub(super) max_batch: usize,
    /// See [`DEFAULT_DELAY`].
    pub(super) delay: Duration,
}

impl BatchSettings {
    /// The settings the variables `env` reads give, over `max_queue` by
    /// default. As in the SDK, an unparsable value is ignored; zeros, which
    /// would never export or spin, are raised to the least that works.
    pub(super) fn read(max_queue: usize, env: &dyn Fn(&str) -> Option<String>) -> BatchSettings {
        let number = |name: &str| env(name).and_then(|v| v.trim().parse::<u64>().ok());
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE")
            .map_or(max_queue, |n| n as usize)
            .max(1);
        let max_batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
            .map_or(DEFAULT_MAX_BATCH, |n| n as usize)
            .clamp(1, max_queue);
        let delay = number("OTEL_BSP_SCHEDULE_DELAY")
            .map_or(DEFAULT_DELAY, Duration::from_millis)
            .max(Duration::from_millis(1));
        BatchSettings {
            max_queue,
            max_batch,
            delay,
        }
    }
}

/// What the export thread is asked, besides taking spans.
enum Control {
    /// A full batch is queued.
    FullBatch,
    /// Export everything queued, then answer.
    Flush(SyncSender<Result<(), ExportError>>),
    /// Export everything queued, answer, and stop.
    Shutdown(SyncSender<Result<(), ExportError>>),
}

/// The invocation path's end of the pipeline; the thread stops when it is dropped.
#[derive(Debug)]
pub(super) struct SpanExport {
    spans: SyncSender<FinishedSpan>,
    control: SyncSender<Control>,
    /// Spans queued and not yet taken by the thread (an upper bound).
    queued: Arc<AtomicUsize>,
    /// A [`Control::FullBatch`] is on its way.
    woken: Arc<AtomicBool>,
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
        http: HttpSettings,
        settings: BatchSettings,
        encoder: Encoder,
        warnings: Warnings,
    ) -> Result<SpanExport, StartError> {
        let (spans, spans_rx) = sync_channel(settings.max_queue);
        let (control, control_rx) = sync_channel(CONTROL_QUEUE);
        let (started, started_rx) = sync_channel(1);
        let queued = Arc::new(AtomicUsize::new(0));
        let woken = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            spans: spans_rx,
            control: control_rx,
            queued: queued.clone(),
            woken: woken.clone(),
            settings,
            encoder,
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
            spans,
            control,
            queued,
            woken,
            settings,
            dropped: AtomicU64::new(0),
            warnings,
        })
    }

    /// Queues `span` for export; never blocks. On a full queue the span is
    /// dropped and counted (the first drop is warned about).
    pub(super) fn send(&self, span: FinishedSpan) {
        // Counted before it is sent, so the thread never counts it out first.
        let before = self.queued.fetch_add(1, Ordering::AcqRel);
        match self.spans.try_send(span) {
            Ok(()) => {
                if before + 1 >= self.settings.max_batch && !self.woken.swap(true, Ordering::AcqRel) {
                    let sent = self.control.try_send(Control::FullBatch);
                    if sent.is_err() {
                        self.woken.store(false, Ordering::Release);
                    }
                }
            }
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                if let TrySendError::Full(_) = e {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.warnings.warn(format_args!(
                        "the queue of {} spans is full (set OTEL_BSP_MAX_QUEUE_SIZE); spans are dropped",
                        self.settings.max_queue
                    ));
                }
                // Disconnected: shut down, nothing exports any more.
            }
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
    spans: Receiver<FinishedSpan>,
    control: Receiver<Control>,
    queued: Arc<AtomicUsize>,
    woken: Arc<AtomicBool>,
    settings: BatchSettings,
    encoder: Encoder,
    /// For the warning.
    endpoint: String,
    warnings: Warnings,
}

impl Worker {
    /// Exports on each wake-up until shut down or disconnected.
    fn run(mut self, client: &OtlpHttp) {
        let mut due = Instant::now() + self.settings.delay;
        loop {
            let (answer, stop) = match self.control.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(Control::FullBatch) => {
                    self.woken.store(false, Ordering::Release);
                    (None, false)
                }
                Ok(Control::Flush(answer)) => (Some(answer), false),
                Ok(Control::Shutdown(answer)) => (Some(answer), true),
                Err(RecvTimeoutError::Timeout) => (None, false),
                // Every handle is gone: a last export, then stop.
                Err(RecvTimeoutError::Disconnected) => (None, true),
            };
            let result = self.export_queued(client);
            due = Instant::now() + self.settings.delay;
            if let Some(answer) = answer {
                let _ = answer.send(result);
            }
            if stop {
                return;
            }
        }
    }

    /// Exports the spans queued now, in batches (not those queued meanwhile,
    /// so a busy host cannot keep a flush waiting). Every batch is tried;
    /// the result is the last failure, if any.
    fn export_queued(&mut self, client: &OtlpHttp) -> Result<(), ExportError> {
        let mut left = self.queued.load(Ordering::Acquire);
        let mut result = Ok(());
        let mut batch = Vec::with_capacity(self.settings.max_batch.min(left));
        while left > 0 {
            batch.extend(self.spans.try_iter().take(self.settings.max_batch.min(left)));
            if batch.is_empty() {
                break;
            }
            left -= batch.len();
            self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
            let body = self.encoder.request(&batch);
            batch.clear();
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

    #[test]
    fn batch_settings_follow_the_bsp_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            BatchSettings::read(16_384, &vars(&[])),
            BatchSettings {
                max_queue: 16_384,
                max_batch: 512,
                delay: Duration::from_secs(5)
            }
        );
        assert_eq!(
            BatchSettings::read(
                16_384,
                &vars(&[
                    ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
                    ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
                ])
            ),
            BatchSettings {
                max_queue: 100,
                max_batch: 100,
                delay: Duration::from_secs(60)
            },
            "a batch is never larger than the queue"
        );
        assert_eq!(
            BatchSettings::read(
                16_384,
                &vars(&[
                    ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
                    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "lots"),
                    ("OTEL_BSP_SCHEDULE_DELAY", "0"),
                ])
            ),
            BatchSettings {
                max_queue: 1,
                max_batch: 1,
                delay: Duration::from_millis(1)
            }
        );
    }
}
