//! Trusted reverse proxies (`http.trustedProxies`): which address a client is counted
//! under when its connection comes through a proxy that names the client in
//! `X-Forwarded-For`. Every per-address bound (pending handshakes, `maxConnectionsPerIp`,
//! failed logins, the console's file limit, heavy reads of anonymous clients) and
//! `server.connections` use that address; without the setting, or for a connection
//! from any other address, the header is ignored (a client could write anything in it).

use std::net::IpAddr;

/// One trusted network: an address and how many leading bits of it must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `"10.0.0.1"`, `"10.0.0.0/8"`, `"::1"` or `"fd00::/8"`.
    fn parse(text: &str) -> Option<Net> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = canonical(addr.parse().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of the `width` low bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(width - prefix.min(width));
    (a >> shift) == (b >> shift)
}

/// An IPv4 address arriving IPv4-mapped over IPv6 is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The configured proxies (none by default).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    nets: Vec<Net>,
}

impl TrustedProxies {
    /// Parses `http.trustedProxies`; the error names the entry that is not an address or
    /// a network.
    pub(crate) fn parse(list: &[String]) -> Result<Self, String> {
        let nets = list
            .iter()
            .map(|entry| {
                Net::parse(entry).ok_or_else(|| {
                    format!("{entry:?} is not an IP address or a network such as 10.0.0.0/8")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// Whether a connection from `ip` comes from a trusted proxy.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The client behind a connection from `peer`: `peer` itself unless it is a trusted
    /// proxy; else the right-most address of `forwarded_for` (the `X-Forwarded-For`
    /// values, in order) that is not a trusted proxy — each proxy appends the address it
    /// saw, so entries left of the last untrusted one may be forged. An entry that is not
    /// an address stops the walk at the last trusted address seen.
    pub(crate) fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for entry in forwarded_for.unwrap_or_default().rsplit(',') {
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]` or with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip())
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn networks_match_by_prefix() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]);
        assert!(p.trusts(ip("10.200.3.4")));
        assert!(!p.trusts(ip("11.0.0.1")));
        assert!(p.trusts(ip("192.168.1.7")));
        assert!(!p.trusts(ip("192.168.1.8")));
        assert!(p.trusts(ip("fd12::1")));
        assert!(!p.trusts(ip("fe80::1")));
        // IPv4-mapped IPv6 is the IPv4 address.
        assert!(p.trusts(ip("::ffff:10.1.2.3")));
        assert!(proxies(&["0.0.0.0/0"]).trusts(ip("8.8.8.8")));
        assert!(!proxies(&[]).trusts(ip("127.0.0.1")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "1.2.3",
        ] {
            assert!(
                TrustedProxies::parse(&[bad.to_owned()]).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_address() {
        let p = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        // Not from a proxy: the header is ignored, whatever it says.
        assert_eq!(
            p.client(ip("203.0.113.9"), Some("1.1.1.1")),
            ip("203.0.113.9")
        );
        // From a proxy: the address it appended.
        assert_eq!(
            p.client(ip("127.0.0.1"), Some("198.51.100.4")),
            ip("198.51.100.4")
        );
        // A forged left part is skipped: the right-most untrusted entry counts.
        assert_eq!(
            p.client(ip("127.0.0.1"), Some("6.6.6.6, 198.51.100.4, 10.1.1.1")),
            ip("198.51.100.4")
        );
        // Ports and brackets.
        assert_eq!(
            p.client(ip("127.0.0.1"), Some("198.51.100.4:5555")),
            ip("198.51.100.4")
        );
        assert_eq!(
            p.client(ip("127.0.0.1"), Some("[2001:db8::1]")),
            ip("2001:db8::1")
        );
        // No header, or garbage: the proxy (or the last trusted hop) itself.
        assert_eq!(p.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(p.client(ip("127.0.0.1"), Some("unknown")), ip("127.0.0.1"));
        assert_eq!(
            p.client(ip("127.0.0.1"), Some("junk, 10.2.2.2")),
            ip("10.2.2.2")
        );
        // Only proxies in the chain: the left-most of them.
        assert_eq!(
            p.client(ip("127.0.0.1"), Some("10.3.3.3, 10.2.2.2")),
            ip("10.3.3.3")
        );
    }
}
