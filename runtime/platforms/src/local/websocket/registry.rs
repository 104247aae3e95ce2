//! The gateway's open connections by id: what `connections.send` and `connections.close` reach under
//! `nimbus serve`, from any function.
//!
//! A send never waits: the message goes into the client's bounded queue, which one writer task per
//! connection empties in order (so frames never interleave), or the guest gets `throttled` at once when
//! the client is too slow to keep up.

use super::Out;
use nimbus_core::websocket::{BoxFuture, ConnectionError, ConnectionSender, Message, message_len};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// The open WebSocket connections of a local gateway, by connection id.
///
/// Give the same one to [`nimbus_core::BootOptions::connections`] and to the gateway
/// ([`super::super::GatewayOptions::connections`]) so that every function (HTTP, event, task or WebSocket)
/// can send to the gateway's clients.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<Arc<str>, Entry>>,
}

/// How to reach one connection's session and writer.
#[derive(Clone)]
pub(super) struct Entry {
    /// The client's outgoing queue (bounded by `send_queue`).
    pub(super) out: mpsc::Sender<Out>,
    /// Its session's signals.
    pub(super) signals: Arc<Signals>,
    /// The largest message a client takes (`max_message`).
    pub(super) max_message: u64,
}

/// What the registry, the writer and the session of one connection tell each other.
pub(super) struct Signals {
    /// A function asked to close the connection.
    pub(super) close: Notify,
    /// The writer stopped (the socket failed or the client stopped reading).
    pub(super) writer_gone: Notify,
    /// When it started; activity times are counted from it.
    started: Instant,
    /// Milliseconds after `started` of the last data message either way (the idle timeout's clock).
    last_data_ms: AtomicU64,
    /// Data messages written to the client.
    pub(super) sent: AtomicU64,
    /// The writer stopped because the client did not take its data in time (not a socket error).
    stalled: AtomicBool,
    /// A write to the socket is in progress.
    writing: AtomicBool,
}

impl Signals {
    pub(super) fn new() -> Signals {
        Signals {
            close: Notify::new(),
            writer_gone: Notify::new(),
            started: Instant::now(),
            last_data_ms: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            writing: AtomicBool::new(false),
        }
    }

    /// The writer starts (`true`) or ends a write to the socket.
    pub(super) fn writing(&self, on: bool) {
        self.writing.store(on, Ordering::Relaxed);
    }

    /// Whether a write is waiting for the socket now.
    pub(super) fn write_pending(&self) -> bool {
        self.writing.load(Ordering::Relaxed)
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Records why the writer stopped: stalled (`true`) or a socket error.
    pub(super) fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    /// Whether the writer stopped because the client did not read.
    pub(super) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// A data message went either way now.
    pub(super) fn touch(&self) {
        self.last_data_ms.fetch_max(self.ms(), Ordering::Relaxed);
    }

    /// When the last data message went either way (the connection's start if none has).
    pub(super) fn last_data(&self) -> Instant {
        self.started + Duration::from_millis(self.last_data_ms.load(Ordering::Relaxed))
    }
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Connections {
        Connections::default()
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        // Entries are inserted and removed whole: a panic elsewhere cannot leave the map inconsistent.
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn insert(&self, id: Arc<str>, entry: Entry) {
        self.lock().insert(id, entry);
    }

    /// Forgets `id`: from now on sends to it are `gone`.
    pub(super) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn get(&self, id: &str) -> Option<Entry> {
        self.lock().get(id).cloned()
    }

    /// Queues `message` for `id` without waiting.
    pub fn try_send(&self, id: &str, message: Message) -> Result<(), ConnectionError> {
        let entry = self.get(id).ok_or(ConnectionError::Gone)?;
        if message_len(&message) as u64 > entry.max_message {
            return Err(ConnectionError::TooLarge(entry.max_message));
        }
        entry.out.try_send(Out::Message(message)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ConnectionError::Throttled,
            mpsc::error::TrySendError::Closed(_) => ConnectionError::Gone,
        })
    }

    /// Asks the connection `id` to close (code 1000, `closed by the function`); its `on-disconnect` follows.
    pub fn request_close(&self, id: &str) -> Result<(), ConnectionError> {
        let entry = self.get(id).ok_or(ConnectionError::Gone)?;
        entry.signals.close.notify_one();
        Ok(())
    }
}

impl ConnectionSender for Connections {
    fn send<'a>(&'a self, connection_id: &'a str, message: Message) -> BoxFuture<'a, Result<(), ConnectionError>> {
        let sent = self.try_send(connection_id, message);
        Box::pin(std::future::ready(sent))
    }

    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), ConnectionError>> {
        let closed = self.request_close(connection_id);
        Box::pin(std::future::ready(closed))
    }
}
