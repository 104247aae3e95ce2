//! The listener's limits as the environment gives them (`NIMBUS_HEADER_READ_TIMEOUT`, `NIMBUS_KEEP_ALIVE_IDLE`,
//! `NIMBUS_MAX_CONNECTIONS`, `NIMBUS_MAX_CONNECTIONS_PER_IP`), and the parsers the matching `nimbus serve`
//! flags use too, so a flag and its variable accept exactly the same values. The limits themselves, and their
//! defaults, are the listener's (`nimbus_platforms::listener::ListenerLimits`).

use super::SettingsError;
use super::vars::Vars;
use std::borrow::Cow;
use std::time::Duration;

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

/// The listener limits the environment sets; `None`: the flag's, else the listener's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSettings {
    /// `NIMBUS_HEADER_READ_TIMEOUT` (`--header-read-timeout`).
    pub header_read_timeout: Option<Duration>,
    /// `NIMBUS_KEEP_ALIVE_IDLE` (`--keep-alive-idle`).
    pub keep_alive_idle: Option<Duration>,
    /// `NIMBUS_MAX_CONNECTIONS` (`--max-connections`).
    pub max_connections: Option<u32>,
    /// `NIMBUS_MAX_CONNECTIONS_PER_IP` (`--max-connections-per-ip`); 0: no per-address bound
    /// ([`per_ip_bound`]).
    pub max_connections_per_ip: Option<u32>,
}

impl ListenerSettings {
    /// These limits, with `fallback`'s where these set none (a flag given over its variable).
    pub fn or(self, fallback: &ListenerSettings) -> ListenerSettings {
        ListenerSettings {
            header_read_timeout: self.header_read_timeout.or(fallback.header_read_timeout),
            keep_alive_idle: self.keep_alive_idle.or(fallback.keep_alive_idle),
            max_connections: self.max_connections.or(fallback.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.or(fallback.max_connections_per_ip),
        }
    }

    pub(super) fn read(vars: &Vars) -> Result<ListenerSettings, SettingsError> {
        /// One limit: `what` its flag `flag` takes, parsed as the flag parses it.
        fn limit<T>(
            vars: &Vars,
            (name, flag, what): (&'static str, &'static str, &'static str),
            parse: fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, SettingsError> {
            vars.parse_with(name, what, |v| {
                parse(v).map_err(|why| Cow::Owned(format!("{what}, as {flag} takes: {why}")))
            })
        }
        const DURATION: &str = "a duration such as 10s";
        const CONNECTIONS: &str = "a number of connections";
        Ok(ListenerSettings {
            header_read_timeout: limit(
                vars,
                ("NIMBUS_HEADER_READ_TIMEOUT", "--header-read-timeout", DURATION),
                parse_timeout,
            )?,
            keep_alive_idle: limit(
                vars,
                ("NIMBUS_KEEP_ALIVE_IDLE", "--keep-alive-idle", DURATION),
                parse_timeout,
            )?,
            max_connections: limit(
                vars,
                ("NIMBUS_MAX_CONNECTIONS", "--max-connections", CONNECTIONS),
                parse_max_connections,
            )?,
            max_connections_per_ip: limit(
                vars,
                ("NIMBUS_MAX_CONNECTIONS_PER_IP", "--max-connections-per-ip", CONNECTIONS),
                parse_max_connections_per_ip,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
