//! Access tokens: the short-lived JWTs end users join rooms with.
//!
//! A token is an HS256 JWT signed with an API key's secret. Its header's `kid`
//! names the key, so a verifier finds the secret without trying each one. The
//! claims are standard (`iss` = key id, `sub` = identity, `exp`, `nbf`, `iat`)
//! plus a [`Grants`] object that says what the holder may do.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::name::{Identity, RoomName};
use crate::room::ParticipantPermissions;

/// Shortest token lifetime accepted, in seconds.
pub const MIN_TTL_S: u64 = 1;
/// Longest token lifetime accepted, in seconds (24 hours).
pub const MAX_TTL_S: u64 = 86_400;
/// Lifetime used when none is asked for, in seconds (6 hours).
pub const DEFAULT_TTL_S: u64 = 21_600;
/// Largest `metadata` a token may carry, in bytes.
pub const MAX_TOKEN_METADATA_BYTES: usize = 4096;

/// What the holder of a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// The only room the token can join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomName>,
    /// May publish audio and video tracks.
    #[serde(default = "yes")]
    pub can_publish: bool,
    /// May subscribe to other participants' tracks.
    #[serde(default = "yes")]
    pub can_subscribe: bool,
    /// May send data messages.
    #[serde(default = "yes")]
    pub can_publish_data: bool,
    /// May mute, remove and update other participants of the room.
    #[serde(default)]
    pub room_admin: bool,
    /// May create the room by joining it when it does not exist yet.
    #[serde(default)]
    pub room_create: bool,
    /// Joins as a recorder: hidden from other participants and not billed as one.
    #[serde(default)]
    pub recorder: bool,
    /// May change its own name and metadata (`update_metadata`); the app sets them otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub can_update_metadata: bool,
}

fn yes() -> bool {
    true
}

impl Grants {
    /// What a participant holding these grants may do in its room. A
    /// recorder only receives: what it sent would come from someone the room
    /// cannot see.
    pub fn permissions(&self) -> ParticipantPermissions {
        ParticipantPermissions {
            can_publish: self.can_publish && !self.recorder,
            can_subscribe: self.can_subscribe,
            can_publish_data: self.can_publish_data && !self.recorder,
        }
    }
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            room: None,
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            room_admin: false,
            room_create: false,
            recorder: false,
            can_update_metadata: false,
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key id that signed the token.
    pub iss: String,
    /// The participant identity.
    pub sub: Identity,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Not valid before, seconds since the Unix epoch.
    pub nbf: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Participant metadata the app attaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// What the holder may do.
    pub grants: Grants,
    /// The media node the API named for this join: it hosts the room too
    /// when the room is live on another node (that node was full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<crate::NodeId>,
    /// When the API named it, in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_at: Option<i64>,
}

impl Claims {
    /// Claims for `identity`, valid from `now` for `ttl_s` seconds.
    pub fn new(
        key_id: &str,
        identity: Identity,
        grants: Grants,
        now: DateTime<Utc>,
        ttl_s: u64,
    ) -> Self {
        let iat = now.timestamp();
        Self {
            iss: key_id.to_owned(),
            sub: identity,
            exp: iat.saturating_add(ttl_s as i64),
            nbf: iat,
            iat,
            name: None,
            metadata: None,
            grants,
            node: None,
            named_at: None,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or not one of ours.
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// The header names no key (`kid`).
    #[error("the access token names no signing key (header `kid` is missing)")]
    MissingKeyId,
    /// The signature does not match the key's secret.
    #[error("the access token's signature is invalid")]
    BadSignature,
    /// The token's `exp` has passed.
    #[error("the access token expired at {0}; ask your app for a new one")]
    Expired(DateTime<Utc>),
    /// The token's `nbf` is in the future.
    #[error("the access token is not valid before {0}")]
    NotYetValid(DateTime<Utc>),
    /// The requested lifetime is out of range.
    #[error("ttl_s must be between {MIN_TTL_S} and {MAX_TTL_S} seconds, got {0}")]
    TtlOutOfRange(u64),
    /// Signing failed.
    #[error("could not sign the access token: {0}")]
    Signing(String),
}

/// The token of an `Authorization` header's value, if it is `Bearer <token>`.
pub fn from_bearer(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks a requested token lifetime.
pub fn check_ttl(ttl_s: u64) -> Result<u64, TokenError> {
    if (MIN_TTL_S..=MAX_TTL_S).contains(&ttl_s) {
        Ok(ttl_s)
    } else {
        Err(TokenError::TtlOutOfRange(ttl_s))
    }
}

/// Signs `claims` with the secret of API key `key_id`.
pub fn sign(claims: &Claims, key_id: &str, secret: &str) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key_id.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| TokenError::Signing(e.to_string()))
}

/// The key id a token says it was signed with, read before verification.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Malformed(format!(
            "algorithm {:?} is not accepted; use HS256",
            header.alg
        )));
    }
    header.kid.ok_or(TokenError::MissingKeyId)
}

/// Verifies `token` against `secret` and the time `now`, returning its claims.
pub fn verify(token: &str, secret: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    // Time is checked below against the caller's clock, not the system's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims = ["exp", "nbf", "sub", "iss"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
        _ => TokenError::Malformed(e.to_string()),
    })?;
    let claims = data.claims;
    let t = now.timestamp();
    if t >= claims.exp {
        return Err(TokenError::Expired(
            DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
        ));
    }
    if t < claims.nbf {
        return Err(TokenError::NotYetValid(
            DateTime::from_timestamp(claims.nbf, 0).unwrap_or_default(),
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn claims(now: DateTime<Utc>, ttl: u64) -> Claims {
        let grants = Grants {
            room: Some(RoomName::new("r").unwrap()),
            ..Grants::default()
        };
        Claims::new("key1", Identity::new("ann").unwrap(), grants, now, ttl)
    }

    #[test]
    fn signs_and_verifies() {
        let now = Utc::now();
        let token = sign(&claims(now, 60), "key1", "s3cret").unwrap();
        assert_eq!(key_id(&token).unwrap(), "key1");
        let c = verify(&token, "s3cret", now).unwrap();
        assert_eq!(c.sub.as_str(), "ann");
        assert_eq!(c.grants.room.unwrap().as_str(), "r");
        assert!(c.grants.can_publish && !c.grants.room_admin);
    }

    #[test]
    fn refuses_wrong_secret_expired_and_early() {
        let now = Utc::now();
        let token = sign(&claims(now, 60), "key1", "s3cret").unwrap();
        assert_eq!(verify(&token, "other", now), Err(TokenError::BadSignature));
        assert!(matches!(
            verify(&token, "s3cret", now + Duration::seconds(60)),
            Err(TokenError::Expired(_))
        ));
        assert!(matches!(
            verify(&token, "s3cret", now - Duration::seconds(5)),
            Err(TokenError::NotYetValid(_))
        ));
    }

    #[test]
    fn refuses_garbage_and_other_algorithms() {
        assert!(matches!(key_id("not a jwt"), Err(TokenError::Malformed(_))));
        assert!(matches!(
            verify("a.b.c", "s", Utc::now()),
            Err(TokenError::Malformed(_))
        ));
        let mut header = Header::new(Algorithm::HS512);
        header.kid = Some("key1".into());
        let t = jsonwebtoken::encode(
            &header,
            &claims(Utc::now(), 60),
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert!(matches!(key_id(&t), Err(TokenError::Malformed(_))));
        assert!(verify(&t, "s", Utc::now()).is_err());
    }

    #[test]
    fn ttl_bounds() {
        assert!(check_ttl(0).is_err());
        assert!(check_ttl(MAX_TTL_S + 1).is_err());
        assert_eq!(check_ttl(60), Ok(60));
    }
}
