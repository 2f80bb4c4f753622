//! Networks of trusted reverse proxies (`CITYPIN_TRUSTED_PROXIES`): parsed once at start-up,
//! asked whether a peer address is one of theirs.

use std::net::IpAddr;

/// One trusted address or network (`10.0.0.0/8`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyNet {
    addr: IpAddr,
    prefix: u8,
}

/// A text that is not an address or network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a network such as 10.0.0.0/8")]
pub struct InvalidProxyNet(pub String);

impl std::str::FromStr for ProxyNet {
    type Err = InvalidProxyNet;

    fn from_str(s: &str) -> Result<Self, InvalidProxyNet> {
        let bad = || InvalidProxyNet(s.to_owned());
        let (addr, prefix) = s
            .trim()
            .split_once('/')
            .map_or((s.trim(), None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }
}

impl ProxyNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses `CITYPIN_TRUSTED_PROXIES`: comma-separated addresses or networks.
pub fn parse_list(s: &str) -> Result<Vec<ProxyNet>, InvalidProxyNet> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_holds_its_addresses_and_no_others() {
        let net: ProxyNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let one: ProxyNet = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_its_ipv4_network() {
        let net: ProxyNet = "127.0.0.0/8".parse().unwrap();
        assert!(net.contains("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_prefix_past_32_bits_is_refused() {
        assert!("10.0.0.0/33".parse::<ProxyNet>().is_err());
    }

    #[test]
    fn an_ipv6_prefix_past_128_bits_is_refused() {
        assert!("::/129".parse::<ProxyNet>().is_err());
    }

    #[test]
    fn a_name_is_not_a_network() {
        assert_eq!(
            parse_list("127.0.0.1, proxy.local"),
            Err(InvalidProxyNet("proxy.local".into()))
        );
    }
}
