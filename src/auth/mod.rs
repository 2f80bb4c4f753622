//! API tokens (stored as SHA-256 hashes, shown once), roles, and the `Caller` extractor.
//!
//! Citizens need no token; staff and Open311 clients present one (`Authorization: Bearer`,
//! or Open311's `api_key`).

pub mod store;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::app::AppState;
use crate::domain::{Actor, Channel, Source};
use crate::error::AppError;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Open311Client,
    Agent,
    Crew,
    Analyst,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Open311Client,
        Role::Agent,
        Role::Crew,
        Role::Analyst,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open311Client => "open311-client",
            Self::Agent => "agent",
            Self::Crew => "crew",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Staff who may change a report's status, merge and unmerge.
    pub fn is_field_staff(self) -> bool {
        matches!(self, Self::Agent | Self::Crew | Self::Admin)
    }

    /// Staff who may read operational fields and ask `PostGIS` directly (`source=postgis`).
    pub fn is_analyst(self) -> bool {
        matches!(self, Self::Analyst | Self::Admin)
    }
}

/// Who is making a request: a citizen (no token) or the holder of a token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token: Option<TokenHolder>,
}

#[derive(Clone, Debug)]
pub struct TokenHolder {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn citizen() -> Self {
        Self { token: None }
    }

    pub fn role(&self) -> Option<Role> {
        self.token.as_ref().map(|t| t.role)
    }

    /// The role written into history events ("citizen" for anonymous callers).
    pub fn actor_role(&self) -> &'static str {
        self.role().map_or("citizen", Role::as_str)
    }

    pub fn token_id(&self) -> Option<Uuid> {
        self.token.as_ref().map(|t| t.id)
    }

    /// The channel a report comes by when the body names none: citizens report from the web;
    /// staff entering a report on someone's behalf take it by phone (agents) or in the field
    /// (crews); Open311 clients by Open311.
    pub fn default_channel(&self) -> Channel {
        match self.role() {
            Some(Role::Agent) => Channel::Phone,
            Some(Role::Crew) => Channel::Field,
            Some(Role::Open311Client) => Channel::Open311,
            _ => Channel::Web,
        }
    }

    /// The caller as history records it.
    pub fn actor(&self) -> Actor<'static> {
        Actor {
            role: self.actor_role(),
            token: self.token_id(),
        }
    }

    /// The one check on `source=`: the index is for anyone, `PostGIS` for analysts and admins
    /// only (a public slow path invites abuse). `what` completes "may not …" in the 403.
    pub fn require_source(&self, source: Source, what: &str) -> Result<(), AppError> {
        match source {
            Source::Index => Ok(()),
            Source::Postgis => self.require(Role::is_analyst, what).map(|_| ()),
        }
    }

    /// Fails with 401 without a token, 403 with a token of another role.
    pub fn require(
        &self,
        allowed: impl Fn(Role) -> bool,
        what: &str,
    ) -> Result<&TokenHolder, AppError> {
        let token = self.token.as_ref().ok_or(AppError::Unauthorized)?;
        if allowed(token.role) {
            Ok(token)
        } else {
            Err(AppError::Forbidden(format!(
                "a token with role {} may not {what}",
                token.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Self::citizen());
        };
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| AppError::bad_field("Authorization", "expected `Bearer <token>`"))?;
        let token = lookup(&state.pool, bearer)
            .await?
            .ok_or(AppError::Unauthorized)?;
        Ok(Self { token: Some(token) })
    }
}

/// Creates a token and returns its secret, which is never stored and shown only now.
pub async fn create_token(pool: &PgPool, role: Role, name: &str) -> Result<String, sqlx::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let secret = format!("cp_{}", hex(&raw));
    store::insert_token(pool, Uuid::now_v7(), name, role.as_str(), &hash(&secret)).await?;
    Ok(secret)
}

/// Finds the live token with this secret.
pub async fn lookup(pool: &PgPool, secret: &str) -> Result<Option<TokenHolder>, AppError> {
    let row = store::live_token(pool, &hash(secret)).await?;
    Ok(row
        .and_then(|(id, name, role)| Role::parse(&role).map(|role| TokenHolder { id, name, role })))
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn hashes_differ_for_different_secrets() {
        assert_ne!(hash("cp_a"), hash("cp_b"));
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }
}
