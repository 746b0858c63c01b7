//! Signing in and out.
//!
//! A wrong address and a wrong password get the same answer in the same
//! time (an unknown address is checked against a decoy hash). Failures back
//! off per account, per account and client, and per client
//! ([`crate::limiter`]); a client that must wait is told how long.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::{html, Markup};
use serde::Deserialize;

use super::CsrfOnly;
use crate::error::PageError;
use crate::limiter::Backoff;
use crate::session::{self, SignedIn, COOKIE, LIFETIME, LOGIN_CSRF_COOKIE};
use crate::{layout, password, Dashboard};

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    csrf: String,
}

/// The client's address, when the server knows it: the last entry of the
/// trusted proxy's header when one is configured, else the connection's peer.
pub struct ClientIp(Option<IpAddr>);

impl FromRequestParts<Dashboard> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, d: &Dashboard) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(match &d.client_ip_header {
            Some(name) => switchboard_core::node::last_forwarded_ip(
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ),
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        }))
    }
}

/// The client a sign-in is limited by: its IPv4 address, or its IPv6 /64
/// (one host usually has a whole /64 to pick addresses from).
fn client_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => String::new(),
    }
}

/// A wait as a person reads it: seconds under two minutes, then minutes.
fn describe_wait(wait: std::time::Duration) -> String {
    let secs = wait.as_secs_f64().ceil() as u64;
    if secs < 120 {
        format!("{} s", secs.max(1))
    } else {
        format!("{} min", secs.div_ceil(60))
    }
}

fn login_page(csrf: &str, email: &str, error: Option<&str>) -> Markup {
    layout::shell(
        "Sign in",
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/dashboard/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input id="email" type="email" name="email" value=(email) autocomplete="username" required;
                label for="password" { "Password" }
                input id="password" type="password" name="password" autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// A fresh sign-in form, with its CSRF cookie.
fn fresh_form(
    d: &Dashboard,
    jar: CookieJar,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let token = session::new_token();
    let cookie = session::cookie(LOGIN_CSRF_COOKIE, token.clone(), d.secure_cookies);
    (status, jar.add(cookie), login_page(&token, email, error)).into_response()
}

/// `GET /dashboard/login`.
pub async fn form(State(d): State<Dashboard>, jar: CookieJar) -> Response {
    fresh_form(&d, jar, StatusCode::OK, "", None)
}

/// `POST /dashboard/login`.
pub async fn submit(
    State(d): State<Dashboard>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Form(c): Form<Credentials>,
) -> Result<Response, PageError> {
    let expected = jar
        .get(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !session::tokens_match(&expected, &c.csrf) {
        return Ok(fresh_form(
            &d,
            jar,
            StatusCode::FORBIDDEN,
            &c.email,
            Some("This form expired. Sign in again."),
        ));
    }
    let email = c.email.trim().to_lowercase();
    let client = client_key(ip);
    let keys = [
        (format!("email:{email}"), Backoff::ACCOUNT),
        (
            format!("email:{email} ip:{client}"),
            Backoff::ACCOUNT_FROM_CLIENT,
        ),
        (format!("ip:{client}"), Backoff::CLIENT),
    ];
    let now = Instant::now();
    if let Some(wait) = keys
        .iter()
        .filter_map(|(k, b)| d.limiter.wait(k, *b, now))
        .max()
    {
        let msg = format!(
            "Too many failed sign-ins. Try again in {}.",
            describe_wait(wait)
        );
        return Ok(fresh_form(
            &d,
            jar,
            StatusCode::TOO_MANY_REQUESTS,
            &c.email,
            Some(&msg),
        ));
    }
    // Counted as a failure before the check, so attempts in flight at once
    // cannot all slip under the limit; a success takes it back.
    for (k, _) in &keys {
        d.limiter.failed(k, now);
    }
    let found = d.store.users().by_email(&email).await?;
    let hash = found
        .as_ref()
        .map_or_else(|| password::decoy().to_owned(), |(_, h)| h.clone());
    let given = c.password;
    let ok = {
        // Each check takes 19 MiB and a core for a moment: a few at a time.
        let _permit = d.password_checks.acquire().await;
        tokio::task::spawn_blocking(move || password::verify(&given, &hash))
            .await
            .unwrap_or(false)
    };
    let user = match found {
        Some((user, _)) if ok => user,
        _ => {
            tracing::info!(email = %email, "dashboard sign-in refused");
            return Ok(fresh_form(
                &d,
                jar,
                StatusCode::UNAUTHORIZED,
                &c.email,
                Some("Wrong email or password."),
            ));
        }
    };
    // The account and this client's tries at it start afresh; the client's
    // failures at other accounts still count.
    d.limiter.succeeded(&keys[0].0);
    d.limiter.succeeded(&keys[1].0);
    d.limiter.forgive(&keys[2].0, now);
    let (token, csrf) = (session::new_token(), session::new_token());
    let now = d.clock.now();
    d.store
        .users()
        .start_session(
            user.id,
            &session::token_hash(&token),
            &csrf,
            now,
            now + LIFETIME,
        )
        .await?;
    tracing::info!(user = %user.id, "signed in to the dashboard");
    let jar = jar
        .remove(session::removal(LOGIN_CSRF_COOKIE))
        .add(session::cookie(COOKIE, token, d.secure_cookies));
    Ok((jar, Redirect::to("/dashboard")).into_response())
}

/// `POST /dashboard/logout`.
pub async fn logout(
    State(d): State<Dashboard>,
    who: SignedIn,
    jar: CookieJar,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    who.check_csrf(&f.csrf)?;
    d.store
        .users()
        .end_session(&who.token_hash, d.clock.now())
        .await?;
    Ok((
        jar.remove(session::removal(COOKIE)),
        Redirect::to("/dashboard/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_limited_by_address_or_ipv6_slash_64() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(Some(v4)), "192.0.2.7");
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_eq!(client_key(Some(a)), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(Some(mapped)), "192.0.2.7");
    }
}
