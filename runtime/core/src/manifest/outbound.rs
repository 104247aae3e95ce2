//! `allowed_outbound_hosts`: the origins a guest may call, and how a request is matched against them.

use std::fmt;
use std::net::IpAddr;

/// One allowed outbound origin: `https://api.example.com`, `http://127.0.0.1:8080`,
/// `https://*.example.com`, `http://[::1]:*`.
///
/// A rule matches what a request *names*; the address the name resolves to is checked separately
/// ([`crate::caps::outbound::address`]): loopback and private addresses are reached only through a rule
/// whose host is that IP, written as an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRule {
    /// `http` or `https`.
    pub scheme: String,
    /// Exact host (an IPv6 address in brackets), `*`, or `*.suffix`.
    pub host: String,
    /// The host, when it is an IP literal.
    pub ip: Option<IpAddr>,
    /// `None` means any port.
    pub port: Option<u16>,
}

/// The IP address `host` names when it is written as one (`127.0.0.1`, `[::1]`): dotted-quad IPv4 and
/// standard IPv6 only. Other spellings (`2130706433`, `0x7f.1`, `127.1`) are names here; they reach the
/// resolver, and the address it returns is what the policy checks.
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

impl OutboundRule {
    /// Parses `scheme://host[:port]` (`:*` for any port; an IPv6 host in brackets; `*` or a leading `*.`
    /// label for any host or any subdomain). The error says what is wrong and shows the accepted forms.
    pub fn parse(text: &str) -> Result<OutboundRule, String> {
        let bad = |why: &str| {
            format!(
                "invalid outbound host {text:?}: {why} (e.g. \"https://api.example.com\", \"http://127.0.0.1:8080\", \
                 \"https://*.example.com\" or \"http://[::1]:*\")"
            )
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("it must start with `http://` or `https://`"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be `http` or `https`"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(bad("a rule is an origin and cannot have a path"));
        }
        // An IPv6 host is bracketed, so its colons are not a port separator.
        let (host, port) = match rest.find(']') {
            Some(end) if rest.starts_with('[') => (&rest[..=end], rest[end + 1..].strip_prefix(':')),
            _ => match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let port = match port {
            Some("*") => None,
            Some("") => return Err(bad("the port after ':' is missing")),
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| bad(&format!("the port must be 0 to 65535 or `*`, not {p:?}")))?,
            ),
            None if rest.len() > host.len() => return Err(bad("only `:port` may follow `]`")),
            None => Some(if scheme == "http" { 80 } else { 443 }),
        };
        let ip = literal_ip(host);
        if ip.is_none() {
            check_name(host).map_err(|why| bad(&why))?;
        }
        Ok(OutboundRule {
            scheme: scheme.into(),
            host: host.to_ascii_lowercase(),
            ip,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` matches this rule (`host` as in the URL, an IPv6
    /// address in brackets). An IP rule matches that IP however it is written in standard form;
    /// `*.suffix` matches names only, never an IP literal.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme != scheme || self.port.is_some_and(|p| p != port) {
            return false;
        }
        if let Some(ip) = self.ip {
            return literal_ip(host) == Some(ip);
        }
        if self.host == "*" {
            return true;
        }
        if let Some(suffix) = self.host.strip_prefix("*.") {
            let (h, s) = (host.as_bytes(), suffix.as_bytes());
            return h.len() > s.len() + 1
                && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
                && h[h.len() - s.len() - 1] == b'.'
                && literal_ip(host).is_none();
        }
        self.host.eq_ignore_ascii_case(host)
    }
}

/// A host that is not an IP literal: `*`, or a DNS name whose first label may be `*`. Anything else could
/// never match a request, so it is refused rather than silently allowing nothing.
fn check_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host.starts_with('[') {
        return Err(format!("{host:?} is not an IPv6 address"));
    }
    if host.contains([':', ']']) {
        return Err("a host name cannot contain ':' (an IPv6 address goes in brackets: \"http://[::1]:8080\")".into());
    }
    if host == "*" {
        return Ok(());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.is_empty() || name.contains('*') {
        return Err("`*` must be the whole host or the first label of a domain (`*.example.com`)".into());
    }
    let labels_ok = name
        .split('.')
        .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if !labels_ok {
        return Err("a host name is dot-separated labels of ASCII letters, digits, `-` and `_`".into());
    }
    Ok(())
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
        }
    }
}
