//! Idempotent writes: the `Idempotency-Key` header, the fingerprint of the request it came
//! with, and the replay of the first answer. A retry with the same key and the same request
//! gets the first response again; the same key with another request is refused (422).
//!
//! The claim itself is one row in `idempotency_keys`, inserted by the intake's first statement
//! (with the dedup area lock, in one round trip) and completed with the response by its last;
//! [`stored`] reads it back for a replay.

mod store;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// The header's name, as clients send it.
pub const HEADER: &str = "Idempotency-Key";

/// A client's `Idempotency-Key`: 1 to 255 printable ASCII characters, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why a header value is not a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    #[error(
        "this header is required: send a unique value (e.g. a UUID) per request, and the same value when retrying"
    )]
    Missing,
    #[error("must be printable ASCII")]
    NotAscii,
    #[error("must be 1 to 255 characters")]
    Length(usize),
}

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<Self, InvalidKey> {
        if !s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(InvalidKey::NotAscii);
        }
        let s = s.trim();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(InvalidKey::Length(s.len()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The key a request's headers carry, if any.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, InvalidKey> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let text = value.to_str().map_err(|_| InvalidKey::NotAscii)?;
        Self::parse(text).map(Some)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<InvalidKey> for AppError {
    fn from(e: InvalidKey) -> Self {
        AppError::bad_field(HEADER, e.to_string())
    }
}

/// A required `Idempotency-Key` header: 400 naming the header when it is missing or bad.
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        Self::from_headers(&parts.headers)?.ok_or_else(|| InvalidKey::Missing.into())
    }
}

/// An optional `Idempotency-Key` header: absent is `None`, present but bad is 400.
impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, AppError> {
        Ok(Self::from_headers(&parts.headers)?)
    }
}

/// The SHA-256 of a request in canonical JSON (object keys sorted at every depth, no
/// insignificant space), so a retry whose keys come in another order is the same request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(request: &impl Serialize) -> Result<Self, AppError> {
        let value = serde_json::to_value(request).map_err(AppError::internal)?;
        let mut out = Vec::with_capacity(256);
        canonical(&value, &mut out);
        Ok(Self(Sha256::digest(&out).into()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Writes `v` as JSON with every object's keys in byte order, whatever order the map keeps.
fn canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // A string always serializes.
                out.extend(serde_json::to_vec(k).unwrap_or_default());
                out.push(b':');
                canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

/// A key to claim for one caller: the scope keeps two callers' keys apart (`public` for
/// citizens, the token id for staff and clients).
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    pub scope: &'a str,
    pub key: &'a IdempotencyKey,
    pub fingerprint: Fingerprint,
}

/// The first answer to a key, to send again.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

/// The answer stored for a claim seen before: the first response when the request is the
/// same, 422 naming the header when it is not. Waits for a twin still in flight (its row
/// lock), so a retry racing the first request gets its answer, not a guess.
pub async fn stored(conn: &mut sqlx::PgConnection, claim: Claim<'_>) -> Result<Replay, AppError> {
    let (seen, status, body) = store::response(conn, claim.scope, claim.key.as_str())
        .await?
        .ok_or_else(|| AppError::internal("an idempotency key claimed by a twin vanished"))?;
    if seen != claim.fingerprint.as_bytes() {
        return Err(AppError::invalid(
            HEADER,
            "was already used with a different request body",
        ));
    }
    Ok(Replay {
        status: u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_trimmed() {
        assert_eq!(IdempotencyKey::parse(" k-1 ").unwrap().as_str(), "k-1");
    }

    #[test]
    fn two_hundred_fifty_five_characters_are_accepted() {
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
    }

    #[test]
    fn two_hundred_fifty_six_characters_are_refused() {
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(256)),
            Err(InvalidKey::Length(256))
        );
    }

    #[test]
    fn a_blank_key_is_refused() {
        assert_eq!(IdempotencyKey::parse("  "), Err(InvalidKey::Length(0)));
    }

    #[test]
    fn a_non_ascii_key_is_refused() {
        assert_eq!(IdempotencyKey::parse("clé"), Err(InvalidKey::NotAscii));
    }

    #[test]
    fn key_order_does_not_change_the_fingerprint() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":null}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(Fingerprint::of(&a).unwrap(), Fingerprint::of(&b).unwrap());
    }

    #[test]
    fn another_value_changes_the_fingerprint() {
        let a = serde_json::json!({"a": 1});
        let b = serde_json::json!({"a": 2});
        assert_ne!(Fingerprint::of(&a).unwrap(), Fingerprint::of(&b).unwrap());
    }

    #[test]
    fn array_order_matters() {
        let a = serde_json::json!([1, 2]);
        let b = serde_json::json!([2, 1]);
        assert_ne!(Fingerprint::of(&a).unwrap(), Fingerprint::of(&b).unwrap());
    }
}
