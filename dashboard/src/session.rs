//! Signed-in sessions: a random token in an `HttpOnly`, same-site cookie,
//! kept in the database only as its SHA-256, with the CSRF token every form
//! of the session must send back. The sign-in form, which has no session
//! yet, gets its CSRF token from a cookie of its own (double submit).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_store::users::User;

use crate::error::PageError;
use crate::Dashboard;

/// The session cookie.
pub const COOKIE: &str = "sb_session";
/// The sign-in form's CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "sb_login_csrf";
/// How long a session lasts.
pub const LIFETIME: chrono::Duration = chrono::Duration::days(7);
/// The path every dashboard cookie is scoped to.
const PATH: &str = "/dashboard";

/// A new random token (256 bits, URL-safe base64).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a session token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether the token a form sent is the one expected (in constant time).
pub fn tokens_match(expected: &str, sent: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes()))
}

/// A dashboard cookie: `HttpOnly`, `SameSite=Strict`, scoped to `/dashboard`,
/// `Secure` unless the server is reached over plain HTTP. It lasts as long
/// as the browser session; the server ends sessions after [`LIFETIME`].
pub fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build()
}

/// The cookie that removes cookie `name` (same attributes, expired).
pub fn removal(name: &'static str) -> Cookie<'static> {
    Cookie::build((name, ""))
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .build()
}

/// The signed-in user of a request; a request without a live session is
/// sent to the sign-in page.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub user: User,
    /// The token this session's forms carry.
    pub csrf: String,
    /// The SHA-256 of the session's cookie token.
    pub token_hash: Vec<u8>,
}

impl SignedIn {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if tokens_match(&self.csrf, sent) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }
}

impl FromRequestParts<Dashboard> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Dashboard) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
            return Err(Redirect::to("/dashboard/login").into_response());
        };
        let hash = token_hash(&token);
        match state.store.users().session(&hash, state.clock.now()).await {
            Ok(Some(s)) => Ok(SignedIn {
                user: s.user,
                csrf: s.csrf_token,
                token_hash: hash,
            }),
            Ok(None) => {
                Err((jar.add(removal(COOKIE)), Redirect::to("/dashboard/login")).into_response())
            }
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(tokens_match(&a, &a));
        assert!(!tokens_match(&a, &b));
        assert!(!tokens_match(&a, &a[..42]));
        assert!(!tokens_match("", ""), "an empty token matches nothing");
        assert_eq!(token_hash(&a).len(), 32);
    }
}
