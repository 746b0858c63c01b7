//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`
//! keyed with the base64 bytes after `whsec_`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a secret cannot sign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook secret must be `whsec_` followed by base64")]
pub struct BadSecret;

/// One `v1,<signature>` of `body` sent as message `msg_id` at `timestamp` (Unix seconds).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = B64
        .decode(secret.strip_prefix("whsec_").ok_or(BadSecret)?)
        .map_err(|_| BadSecret)?;
    if key.is_empty() {
        return Err(BadSecret);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: one signature per secret, space-separated,
/// so a receiver holding either the new or the rotated-out secret verifies it.
pub fn header(
    secrets: &[String],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let signatures = secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn each_secret_adds_a_signature() {
        let secrets = vec![
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            "whsec_c2Vjb25kIHNlY3JldA==".to_owned(),
        ];
        let h = header(&secrets, "ev_1", 1, b"{}").unwrap();
        let parts: Vec<_> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in ["", "whsec_", "sk_abc", "whsec_!!!"] {
            assert_eq!(sign(bad, "m", 1, b""), Err(BadSecret), "{bad}");
        }
    }
}
