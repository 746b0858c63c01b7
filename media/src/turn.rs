//! STUN/TURN servers handed to clients: the static ones from configuration,
//! plus short-lived credentials for a TURN server speaking the TURN REST API
//! (coturn's `use-auth-secret`): the username is `<expiry unix time>:<identity>`
//! and the password the base64 HMAC-SHA1 of the username under the shared secret.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use switchboard_core::signal::IceServer;

/// A TURN server that accepts time-limited credentials from a shared secret.
#[derive(Clone)]
pub struct TurnRest {
    /// `turn:` / `turns:` URLs of the server.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (`static-auth-secret` in coturn).
    pub secret: String,
    /// How long issued credentials stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRest")
            .field("urls", &self.urls)
            .field("secret", &"***")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TurnRest {
    /// Credentials for `identity`, issued at `now_unix` (seconds).
    pub fn credentials(&self, identity: &str, now_unix: u64) -> IceServer {
        let username = format!("{}:{identity}", now_unix + self.ttl.as_secs());
        IceServer {
            urls: self.urls.clone(),
            credential: Some(password(&self.secret, &username)),
            username: Some(username),
        }
    }
}

/// The TURN REST password for `username`: base64(HMAC-SHA1(secret, username)).
pub fn password(secret: &str, username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1>>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Every server a client joining as `identity` at `now_unix` should use.
pub fn ice_servers_for(
    fixed: &[IceServer],
    turn: Option<&TurnRest>,
    identity: &str,
    now_unix: u64,
) -> Vec<IceServer> {
    let mut servers = fixed.to_vec();
    servers.extend(turn.map(|t| t.credentials(identity, now_unix)));
    servers
}

/// `Link` header values announcing `servers` to a WHIP or WHEP client (RFC 9725 §4.6).
pub fn link_headers(servers: &[IceServer]) -> Vec<String> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    servers
        .iter()
        .flat_map(|s| {
            s.urls.iter().map(move |url| {
                let mut link = format!("<{url}>; rel=\"ice-server\"");
                if let (Some(user), Some(cred)) = (&s.username, &s.credential) {
                    link.push_str(&format!(
                        "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        quote(user),
                        quote(cred)
                    ));
                }
                link
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_base64_hmac_sha1() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hex_bytes("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"));
        assert_eq!(password("Jefe", "what do ya want for nothing?"), expected);
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn credentials_expire_after_the_ttl_and_name_the_identity() {
        let turn = TurnRest {
            urls: vec!["turn:turn.example.com:3478".into()],
            secret: "s3cret".into(),
            ttl: Duration::from_secs(3600),
        };
        let fixed = [IceServer {
            urls: vec!["stun:stun.example.com".into()],
            username: None,
            credential: None,
        }];
        let servers = ice_servers_for(&fixed, Some(&turn), "ann", 1_000);
        assert_eq!(servers.len(), 2);
        let t = &servers[1];
        assert_eq!(t.username.as_deref(), Some("4600:ann"));
        assert_eq!(
            t.credential.as_deref(),
            Some(password("s3cret", "4600:ann").as_str())
        );
        assert_eq!(ice_servers_for(&fixed, None, "ann", 1_000).len(), 1);
        assert!(!format!("{turn:?}").contains("s3cret"));
    }

    #[test]
    fn link_headers_follow_rfc_9725() {
        let servers = [
            IceServer {
                urls: vec!["stun:stun.example.net".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec!["turn:t.example.net?transport=udp".into()],
                username: Some("1:a\"b".into()),
                credential: Some("pw".into()),
            },
        ];
        assert_eq!(
            link_headers(&servers),
            vec![
                r#"<stun:stun.example.net>; rel="ice-server""#.to_owned(),
                r#"<turn:t.example.net?transport=udp>; rel="ice-server"; username="1:a\"b"; credential="pw"; credential-type="password""#.to_owned(),
            ]
        );
    }
}
