//! The public base URL of a request: `CITYPIN_PUBLIC_URL`, or what a trusted reverse proxy says
//! in `Forwarded` (RFC 7239) or `X-Forwarded-Proto` / `X-Forwarded-Host`. A proxy is trusted only
//! when the connection comes from an address in `CITYPIN_TRUSTED_PROXIES`: anyone else could
//! make discovery and OGC links point wherever they like.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::app::AppState;

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
    fn a_forwarded_host_with_a_path_is_ignored() {
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example/x"),
        ]);
        assert_eq!(forwarded_base(&h), None);
    }

    #[test]
    fn a_forwarded_scheme_other_than_http_or_https_is_ignored() {
        let h = headers(&[
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "a.example"),
        ]);
        assert_eq!(forwarded_base(&h), None);
    }
}
