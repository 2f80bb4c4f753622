//! The public base URL of a request: `CITYPIN_PUBLIC_URL`, or what a trusted reverse proxy says
//! in `Forwarded` (RFC 7239) or `X-Forwarded-Proto` / `X-Forwarded-Host`. A proxy is trusted only
//! when the connection comes from an address in `CITYPIN_TRUSTED_PROXIES`: anyone else could
//! make discovery and OGC links point wherever they like.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::app::AppState;

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

/// The address of the peer that sent the request (a proxy's, behind one), when the server
/// recorded it: `app::serve` does; a router driven in process does not.
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip()),
        ))
    }
}

/// The base URL links in this answer start with (no trailing slash).
pub struct PublicBase(pub String);

impl FromRequestParts<AppState> for PublicBase {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        let trusted = peer.is_some_and(|ip| {
            state
                .settings
                .trusted_proxies
                .iter()
                .any(|n| n.contains(ip))
        });
        let configured = state.settings.public_url.trim_end_matches('/');
        Ok(Self(
            trusted
                .then(|| forwarded_base(&parts.headers))
                .flatten()
                .unwrap_or_else(|| configured.to_owned()),
        ))
    }
}

/// `proto://host` from the first `Forwarded` element, else from `X-Forwarded-Proto` and
/// `X-Forwarded-Host`; `None` unless both are present and well formed.
fn forwarded_base(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (proto, host) = match text("forwarded") {
        Some(f) => {
            let first = f.split(',').next().unwrap_or("");
            let mut proto = None;
            let mut host = None;
            for pair in first.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "proto" => proto = Some(v.to_owned()),
                    "host" => host = Some(v.to_owned()),
                    _ => {}
                }
            }
            (proto?, host?)
        }
        None => (
            text("x-forwarded-proto")?
                .split(',')
                .next()?
                .trim()
                .to_owned(),
            text("x-forwarded-host")?
                .split(',')
                .next()?
                .trim()
                .to_owned(),
        ),
    };
    let proto = proto.to_ascii_lowercase();
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    (matches!(proto.as_str(), "http" | "https") && host_ok).then(|| format!("{proto}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

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
    fn a_prefix_past_the_address_length_is_refused() {
        assert!("10.0.0.0/33".parse::<ProxyNet>().is_err());
        assert!("::/129".parse::<ProxyNet>().is_err());
    }

    #[test]
    fn a_name_is_not_a_network() {
        assert_eq!(
            parse_list("127.0.0.1, proxy.local"),
            Err(InvalidProxyNet("proxy.local".into()))
        );
    }

    #[test]
    fn forwarded_names_the_scheme_and_host() {
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=https;host="city.example", for=10.0.0.1"#,
        )]);
        assert_eq!(forwarded_base(&h).as_deref(), Some("https://city.example"));
    }

    #[test]
    fn x_forwarded_headers_are_read_without_forwarded() {
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "311.city.example:8443"),
        ]);
        assert_eq!(
            forwarded_base(&h).as_deref(),
            Some("https://311.city.example:8443")
        );
    }

    #[test]
    fn a_host_with_a_path_or_a_strange_scheme_is_ignored() {
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example/x"),
        ]);
        assert_eq!(forwarded_base(&h), None);
        let h = headers(&[
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "a.example"),
        ]);
        assert_eq!(forwarded_base(&h), None);
    }
}
