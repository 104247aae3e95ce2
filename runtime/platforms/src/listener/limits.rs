//! The listener's limits and their defaults. Their parsers are the settings' ([`nimbus_core::settings::listener`],
//! re-exported here), so a flag and its environment variable accept the same values, and a bad one is an error
//! naming the setting, never a panic.

pub use nimbus_core::settings::listener::{
    ListenerSettings, parse_max_connections, parse_max_connections_per_ip, parse_timeout, per_ip_bound,
};
use std::time::Duration;

/// How much a client may hold of a listener. Every connection is bounded in count (globally and per
/// client address) and in time (until its request head is complete, and while it sits idle), so no
/// client can hold the server by connecting and sending little or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// How long a client may take to send a whole request head (request line and headers), counted from
    /// the connection's accept for its first request and from the first byte of each later one. A
    /// connection that has not sent its head by then is closed without an answer.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may sit with no request in flight before it is closed (HTTP/2:
    /// with a GOAWAY).
    pub keep_alive_idle: Duration,
    /// Open connections at most, WebSockets included (each holds a file descriptor). Beyond it a new
    /// connection is answered `503` + `Retry-After` and closed at once. Lowered at start to fit under
    /// the process's open-file limit ([`super::nofile`]).
    pub max_connections: u32,
    /// Open HTTP connections per client address at most (`None`: no per-address bound, for a listener
    /// that only a platform's proxy reaches). Beyond it a new connection is answered `429` +
    /// `Retry-After` and closed at once.
    pub max_connections_per_ip: Option<u32>,
}

/// The defaults: what a public-facing gateway ships with.
impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            // Ample for any real client on any network (a request head is one or two packets); a
            // slow-loris connection is gone after this long.
            header_read_timeout: Duration::from_secs(10),
            // AWS ALB's default idle timeout: clients and proxies in front expect at least this much.
            keep_alive_idle: Duration::from_secs(60),
            // Comfortably under the usual open-file limits once the soft limit is raised to the hard
            // one; clamped further when the limit is lower.
            max_connections: 1024,
            // One client address may take a quarter of the connections, no more.
            max_connections_per_ip: Some(256),
        }
    }
}

impl ListenerLimits {
    /// The limits `settings` set (a flag's or its variable's: [`ListenerSettings::or`]), the defaults for
    /// the rest.
    pub fn from_settings(settings: &ListenerSettings) -> ListenerLimits {
        let d = ListenerLimits::default();
        ListenerLimits {
            header_read_timeout: settings.header_read_timeout.unwrap_or(d.header_read_timeout),
            keep_alive_idle: settings.keep_alive_idle.unwrap_or(d.keep_alive_idle),
            max_connections: settings.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: match settings.max_connections_per_ip {
                Some(n) => per_ip_bound(n),
                None => d.max_connections_per_ip,
            },
        }
    }
}

/// The largest request head accepted (request line and headers; HTTP/2: the header list): larger ones get
/// `431`. 64 KiB is above every cloud gateway's own limit (API Gateway 10 KB, ALB 64 KB), so nothing that
/// passes them is refused here, and it bounds the memory a connection holds before it is answered.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Concurrent HTTP/2 streams per connection.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let d = ListenerLimits::default();
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert_eq!(d.keep_alive_idle, Duration::from_secs(60));
        assert_eq!(d.max_connections, 1024);
        assert_eq!(d.max_connections_per_ip, Some(256));
    }
}
