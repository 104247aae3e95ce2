//! Which socket addresses an outbound request may connect to.
//!
//! The allow-list ([`crate::manifest::OutboundRule`]) matches what the guest *wrote*; this module judges
//! the address a request is about to be *connected* to, after name resolution, so no spelling of an
//! address (`2852039166`, `0xa9fea9fe`, `[::ffff:a9fe:a9fe]`, a DNS record pointing at it…) gets around it.
//!
//! Addresses fall into three classes:
//! - **never reachable**, whatever the allow-list says: the unspecified address (`0.0.0.0/8`, `::`,
//!   which Linux connects to the host itself), link-local (`169.254.0.0/16`, `fe80::/10`), multicast,
//!   reserved and broadcast, the cloud metadata services ([`METADATA_V4`], [`METADATA_V6`]), and the
//!   platform's own control endpoints (the Lambda Runtime API, …) given at boot;
//! - **internal**: loopback, private (RFC 1918), shared (CGNAT `100.64.0.0/10`), unique-local
//!   (`fc00::/7`) and the other ranges IANA marks as not globally reachable. Reachable only when the
//!   request names the address as an IP literal and an allow-list rule names that same IP;
//! - **public**: everything else.
//!
//! An IPv4 address embedded in an IPv6 one (mapped `::ffff:a.b.c.d`, translated `::ffff:0:a.b.c.d`,
//! compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) is judged as the
//! IPv4 address it reaches ([`canonical`]).
//!
//! Everything here is pure and allocation-free per check: the policy is built once at boot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Cloud instance metadata and credential services reachable over IPv4 that are not link-local:
/// Alibaba Cloud's metadata service and Azure's WireServer (the host agent's endpoint). The others (AWS
/// IMDS `169.254.169.254`, ECS `169.254.170.2`, EKS Pod Identity `169.254.170.23`, GCP, Azure IMDS, …) are
/// link-local and refused as such, but named here too so the log says what they are.
pub const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];

/// Cloud metadata services over IPv6: AWS IMDS `fd00:ec2::254`, EKS Pod Identity `fd00:ec2::23`, and
/// GCP's metadata server `fd20:ce::254`.
pub const METADATA_V6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
    Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),
];

/// Why an address may not be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A cloud metadata or credential service.
    Metadata,
    /// The platform's own control endpoint (the Lambda Runtime API, …).
    ControlEndpoint,
    /// `169.254.0.0/16` or `fe80::/10`.
    LinkLocal,
    /// `0.0.0.0/8` or `::`: Linux connects these to the host itself.
    Unspecified,
    /// Multicast, broadcast or reserved (`224.0.0.0/3`, `ff00::/8`).
    NotUnicast,
    /// `127.0.0.0/8` or `::1`, not allowed literally.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `100.64.0.0/10` or `fc00::/7`, not allowed literally.
    Private,
    /// Another range IANA marks as not globally reachable (documentation, benchmarking, …), not allowed
    /// literally.
    NotGlobal,
}

impl Refusal {
    /// Whether no allow-list entry can lift it.
    pub fn is_absolute(self) -> bool {
        matches!(
            self,
            Refusal::Metadata
                | Refusal::ControlEndpoint
                | Refusal::LinkLocal
                | Refusal::Unspecified
                | Refusal::NotUnicast
        )
    }

    /// The reason as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Metadata => "cloud metadata service",
            Refusal::ControlEndpoint => "platform control endpoint",
            Refusal::LinkLocal => "link-local address",
            Refusal::Unspecified => "unspecified address",
            Refusal::NotUnicast => "not a unicast address",
            Refusal::Loopback => "loopback address not allowed literally",
            Refusal::Private => "private address not allowed literally",
            Refusal::NotGlobal => "non-global address not allowed literally",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The address a packet to `ip` reaches: the IPv4 address embedded in an IPv6 one, else `ip` itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let v6 = match ip {
        IpAddr::V4(_) => return ip,
        IpAddr::V6(v6) => v6,
    };
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // Mapped `::ffff:a.b.c.d` and translated `::ffff:0:a.b.c.d`.
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => IpAddr::V4(low),
        // Compatible `::a.b.c.d` (deprecated); `::` and `::1` are themselves.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => IpAddr::V4(low),
        // NAT64, the well-known prefix `64:ff9b::/96`.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => IpAddr::V4(low),
        // 6to4 `2002:AABB:CCDD::/48`.
        [0x2002, hi, lo, ..] => IpAddr::V4(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        // Teredo `2001:0::/32`: the client's address, inverted, in the last 32 bits.
        [0x2001, 0, ..] => IpAddr::V4(Ipv4Addr::from(!u32::from(low))),
        _ => ip,
    }
}

/// What is wrong with connecting to `ip`, judged as the address it reaches ([`canonical`]); `None`: a
/// public address.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if METADATA_V4.contains(&ip) => Refusal::Metadata,
        (0, ..) => Refusal::Unspecified,
        (169, 254, _) => Refusal::LinkLocal,
        (224..=255, ..) => Refusal::NotUnicast,
        (127, ..) => Refusal::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) | (100, 64..=127, _) => Refusal::Private,
        // IETF protocol assignments, the three documentation ranges, benchmarking.
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (198, 18..=19, _) => Refusal::NotGlobal,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let s = ip.segments();
    Some(match s {
        _ if METADATA_V6.contains(&ip) => Refusal::Metadata,
        _ if ip.is_unspecified() => Refusal::Unspecified,
        _ if ip.is_loopback() => Refusal::Loopback,
        [first, ..] if first & 0xffc0 == 0xfe80 => Refusal::LinkLocal,
        [first, ..] if first & 0xff00 == 0xff00 => Refusal::NotUnicast,
        [first, ..] if first & 0xfe00 == 0xfc00 => Refusal::Private,
        // Deprecated site-local, documentation (`2001:db8::/32`, `3fff::/20`), discard-only `100::/64`,
        // local-use NAT64 `64:ff9b:1::/48` (where its IPv4 address sits depends on the prefix length).
        [first, ..] if first & 0xffc0 == 0xfec0 => Refusal::NotGlobal,
        [0x2001, 0xdb8, ..] | [0x100, 0, 0, 0, ..] | [0x64, 0xff9b, 1, ..] => Refusal::NotGlobal,
        [0x3fff, second, ..] if second & 0xf000 == 0 => Refusal::NotGlobal,
        _ => return None,
    })
}

/// The address-level outbound policy of a host: the fixed rules above plus the platform's control
/// endpoints. Built once at boot.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Never connected to, even when allowed literally. A loopback endpoint's port is refused on every
    /// loopback address (`127.0.0.2:9001` reaches a server listening on all of `127.0.0.0/8`).
    control: Vec<SocketAddr>,
}

impl AddressPolicy {
    /// A policy that also refuses the platform's `control` endpoints.
    pub fn new(control: impl IntoIterator<Item = SocketAddr>) -> AddressPolicy {
        AddressPolicy {
            control: control
                .into_iter()
                .map(|a| SocketAddr::new(canonical(a.ip()), a.port()))
                .collect(),
        }
    }

    /// The control endpoints refused.
    pub fn control_endpoints(&self) -> &[SocketAddr] {
        &self.control
    }

    /// Whether a connection to `addr` may be made. `literal` is the IP address the request named, when an
    /// allow-list rule that matched the request names that same IP: it lifts the refusal of an internal
    /// (loopback, private, non-global) address equal to it, and nothing else.
    pub fn check(&self, addr: SocketAddr, literal: Option<IpAddr>) -> Result<(), Refusal> {
        let ip = canonical(addr.ip());
        let port = addr.port();
        if self
            .control
            .iter()
            .any(|c| c.port() == port && (c.ip() == ip || (c.ip().is_loopback() && ip.is_loopback())))
        {
            return Err(Refusal::ControlEndpoint);
        }
        match classify(ip) {
            None => Ok(()),
            Some(r) if r.is_absolute() => Err(r),
            Some(r) => match literal {
                Some(l) if canonical(l) == ip => Ok(()),
                _ => Err(r),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn embedded_ipv4_is_judged_as_the_address_it_reaches() {
        for (v6, v4) in [
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("::ffff:a9fe:a9fe", "169.254.169.254"),
            ("::ffff:0:a9fe:a9fe", "169.254.169.254"),
            ("::169.254.169.254", "169.254.169.254"),
            ("::7f00:1", "127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b::100.100.100.200", "100.100.100.200"),
            ("2002:a9fe:a9fe::1", "169.254.169.254"),
            ("2002:7f00:1::", "127.0.0.1"),
            ("2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254"),
        ] {
            assert_eq!(canonical(ip(v6)), ip(v4), "{v6}");
        }
        // `::` and `::1` are IPv6's own, not `0.0.0.0` and `0.0.0.1`.
        assert_eq!(canonical(ip("::")), ip("::"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("2600:1f18::1")), ip("2600:1f18::1"));
    }

    #[test]
    fn every_class_of_address() {
        use Refusal::*;
        for (addr, want) in [
            ("169.254.169.254", Some(Metadata)),
            ("169.254.170.2", Some(Metadata)),
            ("169.254.170.23", Some(Metadata)),
            ("100.100.100.200", Some(Metadata)),
            ("168.63.129.16", Some(Metadata)),
            ("fd00:ec2::254", Some(Metadata)),
            ("fd00:ec2::23", Some(Metadata)),
            ("fd20:ce::254", Some(Metadata)),
            ("::ffff:169.254.169.254", Some(Metadata)),
            ("64:ff9b::6464:64c8", Some(Metadata)),
            ("169.254.1.1", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("224.0.0.1", Some(NotUnicast)),
            ("255.255.255.255", Some(NotUnicast)),
            ("240.0.0.1", Some(NotUnicast)),
            ("ff02::1", Some(NotUnicast)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("100.64.0.1", Some(Private)),
            ("100.127.255.254", Some(Private)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("192.0.2.1", Some(NotGlobal)),
            ("198.18.0.1", Some(NotGlobal)),
            ("203.0.113.9", Some(NotGlobal)),
            ("2001:db8::1", Some(NotGlobal)),
            ("fec0::1", Some(NotGlobal)),
            ("64:ff9b:1::a", Some(NotGlobal)),
            ("3fff::1", Some(NotGlobal)),
            ("3fff:1000::1", None),
            ("93.184.215.14", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
            ("64:ff9b::808:808", None),
        ] {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn a_literal_lifts_only_internal_refusals_of_that_same_address() {
        let p = AddressPolicy::default();
        assert_eq!(p.check(sock("127.0.0.1:8080"), None), Err(Refusal::Loopback));
        assert_eq!(p.check(sock("127.0.0.1:8080"), Some(ip("127.0.0.1"))), Ok(()));
        assert_eq!(
            p.check(sock("127.0.0.1:8080"), Some(ip("127.0.0.2"))),
            Err(Refusal::Loopback)
        );
        assert_eq!(p.check(sock("[::ffff:10.0.0.1]:80"), Some(ip("10.0.0.1"))), Ok(()));
        assert_eq!(p.check(sock("10.0.0.1:80"), None), Err(Refusal::Private));
        assert_eq!(p.check(sock("[fd12::1]:80"), Some(ip("fd12::1"))), Ok(()));
        for always in [
            "169.254.169.254:80",
            "100.100.100.200:80",
            "[fd00:ec2::254]:80",
            "0.0.0.0:80",
        ] {
            let a = sock(always);
            assert!(p.check(a, Some(a.ip())).is_err(), "{always}");
        }
        assert_eq!(p.check(sock("93.184.215.14:443"), None), Ok(()));
    }

    #[test]
    fn control_endpoints_are_refused_on_every_spelling_and_every_loopback_address() {
        let p = AddressPolicy::new([sock("127.0.0.1:9001")]);
        for a in [
            "127.0.0.1:9001",
            "127.0.0.2:9001",
            "[::1]:9001",
            "[::ffff:127.0.0.1]:9001",
        ] {
            let a = sock(a);
            assert_eq!(p.check(a, Some(a.ip())), Err(Refusal::ControlEndpoint), "{a}");
        }
        assert_eq!(p.check(sock("127.0.0.1:9002"), Some(ip("127.0.0.1"))), Ok(()));
        let p = AddressPolicy::new([sock("[::ffff:10.1.2.3]:9000")]);
        assert_eq!(p.control_endpoints(), &[sock("10.1.2.3:9000")]);
        assert_eq!(
            p.check(sock("10.1.2.3:9000"), Some(ip("10.1.2.3"))),
            Err(Refusal::ControlEndpoint)
        );
        assert_eq!(p.check(sock("10.1.2.4:9000"), Some(ip("10.1.2.4"))), Ok(()));
    }
}
