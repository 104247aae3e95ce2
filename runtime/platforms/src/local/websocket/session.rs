//! One client connection after the upgrade, from the first frame to `on-disconnect`.
//!
//! Two tasks per connection:
//! - the session (this module's [`Session::run`]) reads frames and invokes `on-message` for each data
//!   message, one at a time and in order; between frames it keeps the connection's clocks (heartbeat, idle
//!   timeout, lifetime) and watches for a function's close and the gateway's shutdown;
//! - the writer ([`write_loop`]) owns the socket's sending half and empties the client's bounded queue:
//!   replies, sends from any function, pings and the final close frame all go through it, in order.
//!
//! However the connection ends, the session removes it from the registry first (later sends are `gone`),
//! closes it with the code and reason of the [`Ending`], and invokes `on-disconnect` exactly once.

use super::registry::{Connections, Entry, Signals};
use super::{Live, Out};
use crate::listener::IpSlot;
use crate::local::websocket::limits::TokenBucket;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use nimbus_core::logs::{LogSink, format_record};
use nimbus_core::manifest::{ByteSize, WebSocketSpec};
use nimbus_core::websocket::{Disconnect, IncomingMessage, Message, WsEvent, WsOutcome, message_len};
use nimbus_core::{Host, InvokeError, Outcome, Payload, TraceContext};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame};

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// How long closing may take: queueing the close frame, the writer finishing, the client's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Bytes read from the socket at a time. tungstenite allocates it per connection up front, so it is small
/// (thousands of idle clients are the common case); a larger message grows it as it arrives.
const READ_BUFFER: usize = 8 << 10;

/// Frames are written out once this much is buffered, or at the end of each batch the writer takes from
/// the queue.
const WRITE_BUFFER: usize = 16 << 10;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    /// The client sent a close frame: its code (1005, "no status", when it gave none) and reason.
    Client(u16, String),
    /// The socket failed or closed without a close frame.
    Lost,
    /// The client did not answer a ping before the next one was due.
    Heartbeat,
    /// The client stopped reading: a write waited longer than two heartbeats, or a ping went unanswered
    /// while a write was waiting for the client.
    Stalled,
    /// No data message either way for `idle_timeout`.
    Idle,
    /// Open for `max_lifetime`.
    Lifetime,
    /// A message or frame over this many bytes (`max_message` or `max_frame`).
    TooBig(usize),
    /// Messages faster than `messages_per_second`.
    RateLimit,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// A frame RFC 6455 does not allow (unknown opcode, reserved bits, an unmasked client frame, …).
    ProtocolViolation,
    /// A function called `connections.close`.
    ByFunction,
    /// The gateway is shutting down.
    Shutdown,
    /// `on-message` could not get an instance: all `concurrency` were busy.
    Overloaded(u32),
}

impl Ending {
    /// The close code the gateway sends when it ends the connection itself, and the reason `on-disconnect`
    /// gets; `None` when the client closed or the connection is beyond a close frame.
    fn gateway_close(&self) -> Option<(u16, &'static str)> {
        Some(match self {
            Ending::Idle => (1001, "idle timeout"),
            Ending::Lifetime => (1001, "max lifetime"),
            Ending::TooBig(_) => (1009, "message too big"),
            Ending::RateLimit => (1008, "rate limit"),
            Ending::InvalidUtf8 => (1007, "invalid UTF-8"),
            Ending::ProtocolViolation => (1002, "protocol error"),
            Ending::ByFunction => (1000, "closed by the function"),
            Ending::Shutdown => (1001, "server shutting down"),
            Ending::Overloaded(_) => (1013, "try again later"),
            Ending::Client(..) | Ending::Lost | Ending::Heartbeat | Ending::Stalled => return None,
        })
    }

    /// The close code `on-disconnect` gets: the one of the close frame exchanged, if any was.
    pub(super) fn status_code(&self) -> Option<u16> {
        match self {
            Ending::Client(code, _) => Some(*code),
            other => other.gateway_close().map(|(code, _)| code),
        }
    }

    /// The reason `on-disconnect` gets: the client's, or what the gateway saw.
    pub(super) fn reason(&self) -> String {
        match self {
            Ending::Client(_, reason) => reason.clone(),
            Ending::Lost => "connection lost".into(),
            Ending::Heartbeat => "heartbeat timeout".into(),
            Ending::Stalled => "client not reading".into(),
            other => other.gateway_close().map(|(_, r)| r).unwrap_or_default().into(),
        }
    }

    /// The quota the gateway applied, as its manifest setting (`idle_timeout = 10m`).
    pub(super) fn quota(&self, spec: &WebSocketSpec) -> Option<String> {
        let secs = |d: Duration| humantime::format_duration(d).to_string();
        Some(match self {
            Ending::Idle => format!("idle_timeout = {}", secs(spec.idle_timeout)),
            Ending::Lifetime => format!("max_lifetime = {}", secs(spec.max_lifetime)),
            Ending::Heartbeat | Ending::Stalled => format!("heartbeat = {}", secs(spec.heartbeat)),
            Ending::TooBig(max) if *max as u64 == spec.max_message => {
                format!("max_message = {}", ByteSize(spec.max_message))
            }
            Ending::TooBig(_) => format!("max_frame = {}", ByteSize(spec.max_frame)),
            Ending::RateLimit => format!("messages_per_second = {}", spec.messages_per_second),
            Ending::Overloaded(n) => format!("concurrency = {n}"),
            _ => return None,
        })
    }

    /// The close frame the gateway sends, naming the quota it applied.
    fn close_frame(&self, spec: &WebSocketSpec) -> Option<CloseFrame> {
        let (code, reason) = self.gateway_close()?;
        let mut reason = match self.quota(spec) {
            Some(q) => format!("{reason} ({q})"),
            None => reason.to_owned(),
        };
        // A close frame's reason is at most 123 bytes.
        while reason.len() > 123 {
            reason.pop();
        }
        Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        })
    }
}

/// One accepted connection and what it needs, moved into its task.
pub(super) struct Session {
    pub(super) host: Arc<Host>,
    /// Index into `host.functions()`.
    pub(super) function: usize,
    pub(super) spec: Arc<WebSocketSpec>,
    pub(super) id: Arc<str>,
    pub(super) connections: Arc<Connections>,
    /// Turns true when the gateway shuts down.
    pub(super) stop: watch::Receiver<bool>,
    pub(super) log_sink: LogSink,
    pub(super) access_log: bool,
    /// Counted against the client's address until the session ends.
    pub(super) _slot: IpSlot,
    /// Counted as a live session until it ends (shutdown waits for none to be left).
    pub(super) _live: Live,
}

/// What a session did, for its log line.
struct Served {
    ending: Ending,
    received: u64,
    sent: u64,
}

impl Session {
    /// Serves the connection once hyper hands the socket over, then reports its end to the function.
    pub(super) async fn run(self, upgrade: hyper::upgrade::OnUpgrade) {
        let started = Instant::now();
        let served = match upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(WRITE_BUFFER)
                    .max_message_size(Some(usize::try_from(self.spec.max_message).unwrap_or(usize::MAX)))
                    .max_frame_size(Some(usize::try_from(self.spec.max_frame).unwrap_or(usize::MAX)));
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                self.serve(socket).await
            }
            Err(e) => {
                tracing::debug!(connection_id = %self.id, "websocket upgrade failed: {e}");
                Served {
                    ending: Ending::Lost,
                    received: 0,
                    sent: 0,
                }
            }
        };
        self.disconnect(&served.ending).await;
        if self.access_log {
            let f = &self.host.functions()[self.function];
            let mut fields: Vec<(&str, serde_json::Value)> = vec![
                ("path", self.spec.path.clone().unwrap_or_default().into()),
                ("app", self.host.app().to_string().into()),
                ("function", f.name.to_string().into()),
                ("connection_id", self.id.to_string().into()),
                ("duration_ms", (started.elapsed().as_millis() as u64).into()),
                ("messages_in", served.received.into()),
                ("messages_out", served.sent.into()),
                ("close_code", served.ending.status_code().into()),
                ("reason", served.ending.reason().into()),
            ];
            if let Some(q) = served.ending.quota(&self.spec) {
                fields.push(("quota", q.into()));
            }
            let line = format_record("INFO", "websocket closed", None, &fields);
            self.log_sink.write_line(&line);
        }
    }

    /// Registers the connection, reads until it ends, and closes it.
    async fn serve(&self, socket: Socket) -> Served {
        let (sink, mut stream) = socket.split();
        let (out, queue) = mpsc::channel(self.spec.send_queue as usize);
        let signals = Arc::new(Signals::new());
        self.connections.insert(
            self.id.clone(),
            Entry {
                out: out.clone(),
                signals: signals.clone(),
                max_message: self.spec.max_message,
            },
        );
        let stall = self.spec.heartbeat * 2;
        let mut writer = tokio::spawn(write_loop(sink, queue, signals.clone(), stall));

        let mut received = 0;
        let ending = self.read_loop(&mut stream, &out, &signals, &mut received).await;

        // From here on, sends to this id are `gone`.
        self.connections.remove(&self.id);
        let close = ending.close_frame(&self.spec);
        let handshake = close.is_some() || matches!(ending, Ending::Client(..));
        if let Some(frame) = close {
            // Behind whatever is queued: a function's last message arrives before the close.
            let _ = tokio::time::timeout(CLOSE_GRACE, out.send(Out::Close(frame))).await;
        }
        drop(out);
        if tokio::time::timeout(CLOSE_GRACE, &mut writer).await.is_err() {
            writer.abort();
        }
        if handshake {
            // Reading flushes tungstenite's reply to a client's close, and takes the client's reply to ours.
            let _ = tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = stream.next().await {} }).await;
        }
        Served {
            ending,
            received,
            sent: signals.sent.load(Ordering::Relaxed),
        }
    }

    /// Reads frames and keeps the clocks until the connection must end.
    async fn read_loop(
        &self,
        stream: &mut SplitStream<Socket>,
        out: &mpsc::Sender<Out>,
        signals: &Signals,
        received: &mut u64,
    ) -> Ending {
        let spec = &*self.spec;
        let mut stop = self.stop.clone();
        let stopping = async move {
            // A dropped gateway is a stopped one.
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        tokio::pin!(stopping);
        let lifetime = tokio::time::sleep(spec.max_lifetime);
        tokio::pin!(lifetime);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + spec.heartbeat, spec.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Whether anything came from the client since the last ping.
        let mut heard = true;
        let mut bucket = TokenBucket::new(spec.messages_per_second);
        loop {
            let idle_at = signals.last_data() + spec.idle_timeout;
            tokio::select! {
                biased;
                () = &mut stopping => return Ending::Shutdown,
                () = signals.close.notified() => return Ending::ByFunction,
                () = signals.writer_gone.notified() => {
                    return if signals.stalled() { Ending::Stalled } else { Ending::Lost };
                }
                () = &mut lifetime => return Ending::Lifetime,
                () = tokio::time::sleep_until(idle_at.into()) => {
                    // A message may have gone out since the deadline was computed.
                    if signals.last_data() + spec.idle_timeout <= Instant::now() {
                        return Ending::Idle;
                    }
                }
                _ = heartbeat.tick() => {
                    if !heard {
                        // Silent while a write waits on it: it stopped reading, pings included.
                        return if signals.write_pending() {
                            Ending::Stalled
                        } else {
                            Ending::Heartbeat
                        };
                    }
                    // With the queue full the ping is not sent: a client that far behind must still say
                    // something before the next tick.
                    let _ = out.try_send(Out::Ping);
                    heard = false;
                }
                frame = stream.next() => {
                    heard = true;
                    let message = match frame {
                        Some(Ok(Frame::Text(t))) => Message::Text(t.as_str().to_owned()),
                        Some(Ok(Frame::Binary(b))) => Message::Binary(b.into()),
                        Some(Ok(Frame::Close(c))) => {
                            return match c {
                                Some(c) => Ending::Client(c.code.into(), c.reason.as_str().to_owned()),
                                None => Ending::Client(1005, String::new()),
                            };
                        }
                        // Pings are answered by tungstenite; pongs only prove the client is there.
                        Some(Ok(_)) => continue,
                        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { max_size, .. }))) => {
                            return Ending::TooBig(max_size);
                        }
                        // The socket still works: the client gets a close frame saying why.
                        Some(Err(WsError::Utf8(_))) => return Ending::InvalidUtf8,
                        Some(Err(WsError::Protocol(e))) if e != ProtocolError::ResetWithoutClosingHandshake => {
                            tracing::debug!(connection_id = %self.id, "websocket protocol error: {e}");
                            return Ending::ProtocolViolation;
                        }
                        Some(Err(e)) => {
                            tracing::debug!(connection_id = %self.id, "websocket read failed: {e}");
                            return Ending::Lost;
                        }
                        None => return Ending::Lost,
                    };
                    if !bucket.take(Instant::now()) {
                        return Ending::RateLimit;
                    }
                    *received += 1;
                    signals.touch();
                    if let Err(ending) = self.on_message(message, out).await {
                        return ending;
                    }
                    // The client's frames waited in the socket while the function ran: not its silence.
                    heard = true;
                }
            }
        }
    }

    /// Invokes `on-message` and queues its reply; `Err` ends the connection (overload).
    async fn on_message(&self, message: Message, out: &mpsc::Sender<Out>) -> Result<(), Ending> {
        let f = &self.host.functions()[self.function];
        let route_key = self.spec.route_key(&message).to_owned();
        let inv = self.host.new_invocation(f, None, TraceContext::new_root());
        let request_id = inv.request_id.clone();
        let event = WsEvent::Message(IncomingMessage {
            connection_id: self.id.to_string(),
            route_key: route_key.clone(),
            message,
        });
        let error = match self.host.invoke(f, inv, self.payload(event)).await {
            Ok(Outcome::WebSocket(WsOutcome::Handled(None))) => return Ok(()),
            Ok(Outcome::WebSocket(WsOutcome::Handled(Some(reply)))) => {
                let size = message_len(&reply) as u64;
                if size <= self.spec.max_message {
                    // Waits while the client's queue is full: a client reads its replies before it is read
                    // again. A closed queue means the writer is gone, which the read loop sees next.
                    let _ = out.send(Out::Message(reply)).await;
                    return Ok(());
                }
                InvokeError::TooLarge {
                    direction: nimbus_core::error::Direction::Out,
                    what: "WebSocket reply",
                    size,
                    limit: self.spec.max_message,
                    quota: "websocket.max_message",
                }
            }
            Ok(other) => InvokeError::internal(format!("on-message answered {other:?}")),
            Err(e) => e,
        };
        self.log_failure("on-message", &request_id, Some(&route_key), &error);
        match error {
            InvokeError::Overloaded { concurrency, .. } => Err(Ending::Overloaded(concurrency)),
            _ => Ok(()),
        }
    }

    /// Invokes `on-disconnect`, once; a failure is logged, never retried.
    async fn disconnect(&self, ending: &Ending) {
        let f = &self.host.functions()[self.function];
        let inv = self.host.new_invocation(f, None, TraceContext::new_root());
        let request_id = inv.request_id.clone();
        let event = WsEvent::Disconnect(Disconnect {
            connection_id: self.id.to_string(),
            status_code: ending.status_code(),
            reason: ending.reason(),
        });
        if let Err(e) = self.host.invoke(f, inv, self.payload(event)).await {
            self.log_failure("on-disconnect", &request_id, None, &e);
        }
    }

    /// A WebSocket event whose `connections` calls reach this gateway's clients.
    fn payload(&self, event: WsEvent) -> Payload {
        Payload::WebSocket(event, Some(self.connections.clone()))
    }

    /// One error line in the access log's shape; the connection stays open.
    fn log_failure(&self, export: &str, request_id: &str, route_key: Option<&str>, e: &InvokeError) {
        let f = &self.host.functions()[self.function];
        let mut fields: Vec<(&str, serde_json::Value)> = vec![
            ("path", self.spec.path.clone().unwrap_or_default().into()),
            ("app", self.host.app().to_string().into()),
            ("function", f.name.to_string().into()),
            ("request_id", request_id.into()),
            ("connection_id", self.id.to_string().into()),
            ("export", export.into()),
            ("error_type", e.error_type().into()),
            ("error", e.to_string().into()),
        ];
        if let Some(r) = route_key {
            fields.push(("route_key", r.into()));
        }
        let line = format_record("ERROR", "websocket invocation failed", None, &fields);
        self.log_sink.write_line(&line);
    }
}

/// The writer: empties the client's queue into the socket, a batch per flush, until the close frame or
/// until the queue is closed. A write that waits longer than `stall` (the client stopped reading) or fails
/// ends it; either way the session hears of it.
async fn write_loop(
    mut sink: SplitSink<Socket, Frame>,
    mut queue: mpsc::Receiver<Out>,
    signals: Arc<Signals>,
    stall: Duration,
) {
    if let Err(stalled) = write_all(&mut sink, &mut queue, &signals, stall).await {
        signals.set_stalled(stalled);
    }
    signals.writer_gone.notify_one();
}

/// `Err(true)`: a write stalled; `Err(false)`: the socket failed.
async fn write_all(
    sink: &mut SplitSink<Socket, Frame>,
    queue: &mut mpsc::Receiver<Out>,
    signals: &Signals,
    stall: Duration,
) -> Result<(), bool> {
    async fn timed<T>(
        signals: &Signals,
        stall: Duration,
        f: impl Future<Output = Result<T, WsError>>,
    ) -> Result<T, bool> {
        signals.writing(true);
        let done = tokio::time::timeout(stall, f).await;
        signals.writing(false);
        match done {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(false),
            Err(_) => Err(true),
        }
    }
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            let frame = match item {
                Out::Message(m) => {
                    signals.touch();
                    signals.sent.fetch_add(1, Ordering::Relaxed);
                    match m {
                        Message::Text(t) => Frame::text(t),
                        Message::Binary(b) => Frame::Binary(Bytes::from(b)),
                    }
                }
                Out::Ping => Frame::Ping(Bytes::new()),
                Out::Close(frame) => return timed(signals, stall, sink.send(Frame::Close(Some(frame)))).await,
            };
            timed(signals, stall, sink.feed(frame)).await?;
            next = queue.try_recv().ok();
        }
        timed(signals, stall, sink.flush()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_give_on_disconnect_a_code_and_a_reason_and_the_client_the_quota() {
        let spec = WebSocketSpec::default();
        let idle = Ending::Idle;
        assert_eq!(
            (idle.status_code(), idle.reason().as_str()),
            (Some(1001), "idle timeout")
        );
        let frame = idle.close_frame(&spec).unwrap();
        assert_eq!(u16::from(frame.code), 1001);
        assert_eq!(frame.reason.as_str(), "idle timeout (idle_timeout = 10m)");
        let big = Ending::TooBig(32 << 10);
        assert_eq!(
            big.close_frame(&spec).unwrap().reason.as_str(),
            "message too big (max_frame = 32KiB)"
        );
        assert_eq!(
            Ending::TooBig(128 << 10).quota(&spec).as_deref(),
            Some("max_message = 128KiB")
        );
        assert_eq!(Ending::RateLimit.status_code(), Some(1008));
        assert_eq!(
            Ending::ByFunction.close_frame(&spec).unwrap().reason.as_str(),
            "closed by the function"
        );
        let client = Ending::Client(4000, "bye".into());
        assert_eq!((client.status_code(), client.reason().as_str()), (Some(4000), "bye"));
        assert!(
            client.close_frame(&spec).is_none(),
            "tungstenite answers a client's close itself"
        );
        for gone in [Ending::Lost, Ending::Heartbeat, Ending::Stalled] {
            assert_eq!(gone.status_code(), None, "{gone:?}");
            assert!(gone.close_frame(&spec).is_none());
        }
        assert_eq!(Ending::Lost.reason(), "connection lost");
        assert_eq!(Ending::Heartbeat.reason(), "heartbeat timeout");
        assert_eq!(
            Ending::InvalidUtf8.close_frame(&spec).map(|f| u16::from(f.code)),
            Some(1007)
        );
        assert_eq!(
            (
                Ending::ProtocolViolation.status_code(),
                Ending::ProtocolViolation.reason().as_str()
            ),
            (Some(1002), "protocol error")
        );
    }
}
