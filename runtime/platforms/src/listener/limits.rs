//! The listener's limits, their defaults, and the parsers `nimbus serve` (and any adapter that reads them
//! from its environment) uses, so a bad value is an error naming the setting, never a panic.

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

/// The largest request head accepted (request line and headers; HTTP/2: the header list): larger ones get
/// `431`. 64 KiB is above every cloud gateway's own limit (API Gateway 10 KB, ALB 64 KB), so nothing that
/// passes them is refused here, and it bounds the memory a connection holds before it is answered.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Concurrent HTTP/2 streams per connection.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The accepted range of the two timeouts.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));

/// The accepted range of the connection bounds.
const MAX_CONNECTIONS: u32 = 1_000_000;

/// Parses a timeout (`"10s"`, `"500ms"`, `"1m"`): 100ms to 1h.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?} is not a duration ({e})"))?;
    let (lo, hi) = TIMEOUT_RANGE;
    if d < lo || d > hi {
        return Err(format!(
            "{text:?} is out of range ({}..={})",
            humantime::format_duration(lo),
            humantime::format_duration(hi)
        ));
    }
    Ok(d)
}

/// Parses `max_connections`: 1 to 1000000.
pub fn parse_max_connections(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of connections (1..={MAX_CONNECTIONS})"
        )),
    }
}

/// Parses `max_connections_per_ip`: 1 to 1000000, or 0 for no per-address bound (`None`).
pub fn parse_max_connections_per_ip(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n <= MAX_CONNECTIONS => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of connections (1..={MAX_CONNECTIONS}, or 0 for no per-address bound)"
        )),
    }
}

/// The per-address bound a parsed `max_connections_per_ip` stands for: 0 is none.
pub fn per_ip_bound(n: u32) -> Option<u32> {
    (n > 0).then_some(n)
}

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

    #[test]
    fn timeouts_parse_within_their_range() {
        assert_eq!(parse_timeout("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout(" 250ms "), Ok(Duration::from_millis(250)));
        assert!(parse_timeout("10").unwrap_err().contains("not a duration"));
        assert!(parse_timeout("50ms").unwrap_err().contains("out of range"));
        assert!(parse_timeout("2h").unwrap_err().contains("out of range"));
    }

    #[test]
    fn connection_bounds_parse_and_zero_turns_the_per_ip_bound_off() {
        assert_eq!(parse_max_connections("1024"), Ok(1024));
        assert!(parse_max_connections("0").is_err());
        assert!(parse_max_connections("-1").is_err());
        assert!(parse_max_connections("many").is_err());
        assert_eq!(parse_max_connections_per_ip("0").map(per_ip_bound), Ok(None));
        assert_eq!(parse_max_connections_per_ip("64").map(per_ip_bound), Ok(Some(64)));
        assert!(parse_max_connections_per_ip("2000000").is_err());
    }
}
