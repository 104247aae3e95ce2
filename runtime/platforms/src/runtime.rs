//! The tokio runtime every Nimbus entry point (`bootstrap`, `nimbus serve`)
//! runs on.
//!
//! Guests that compute for long stretches yield to the executor only every
//! few milliseconds (the epoch ticks in `nimbus-core`), and each of those
//! slices is one task poll. A yielded guest goes back on its worker's own
//! queue; tokio looks at its I/O driver and at the shared queue (where work
//! woken from elsewhere lands) only once every 61 polls by default. With as
//! many busy guests as worker threads, a new request therefore waited until
//! a guest hit its deadline (measured: 440 ms behind two looping guests on
//! two workers). Looking every [`EVENT_INTERVAL`] polls bounds that wait to
//! a few slices (measured: 30–90 ms behind four looping guests); the price
//! is a non-blocking `epoll_wait` and a queue check per few polls.

/// Task polls between two checks of the I/O driver and of the shared queue.
pub const EVENT_INTERVAL: u32 = 4;

/// A runtime builder with Nimbus's settings: multi-threaded (or current-thread), I/O and time enabled.
pub fn builder(current_thread: bool) -> tokio::runtime::Builder {
    let mut b = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    b.enable_all()
        .event_interval(EVENT_INTERVAL)
        .global_queue_interval(EVENT_INTERVAL);
    b
}
