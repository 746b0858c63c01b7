//! The server's master key, which seals API key secrets at rest.
//!
//! HS256 access tokens are verified with the API key's secret itself, so the
//! server must be able to recover it; it keeps it sealed (XChaCha20-Poly1305)
//! under a 32-byte master key that never enters the database. Every node of a
//! fleet needs the same master key (`SWITCHBOARD_MASTER_KEY`).

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::StoreError;

const NONCE_LEN: usize = 24;

/// A 32-byte key that seals secrets (and, through a key derived from it, signs URLs).
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    mac: Hmac<Sha256>,
}

impl MasterKey {
    /// A key from its base64 form (44 characters, 32 bytes).
    pub fn from_base64(s: &str) -> Result<Self, StoreError> {
        let bytes = B64.decode(s.trim()).map_err(|_| bad_key())?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| bad_key())?;
        // A separate key for signatures, so nothing signed reveals anything about the sealing key.
        let derived = Sha256::new()
            .chain_update(b"switchboard: signed URLs\0")
            .chain_update(bytes)
            .finalize();
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&derived).map_err(|_| bad_key())?;
        Ok(Self { cipher, mac })
    }

    /// A fresh random key and its base64 form.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let encoded = B64.encode(bytes);
        (
            Self::from_bytes(&bytes).expect("32 bytes is a valid key length"),
            encoded,
        )
    }

    /// Reads the key stored at `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(s) => Self::from_base64(&s).map_err(|_| {
                StoreError::MasterKey(format!(
                    "{} does not hold a valid master key (32 bytes, base64); restore it from backup",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, encoded) = Self::generate();
                write_private(path, &encoded).map_err(|e| {
                    StoreError::MasterKey(format!("cannot write master key to {}: {e}", path.display()))
                })?;
                Ok(key)
            }
            Err(e) => Err(StoreError::MasterKey(format!("cannot read master key {}: {e}", path.display()))),
        }
    }

    /// HMAC-SHA256 of `message` under the signing key.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        self.mac
            .clone()
            .chain_update(message)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `signature` is [`MasterKey::sign`] of `message`, in constant time.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.mac
            .clone()
            .chain_update(message)
            .verify_slice(signature)
            .is_ok()
    }

    /// Encrypts `plaintext`; the result carries its own nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`MasterKey::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Corrupt("sealed secret is too short".into()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher.decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| {
            StoreError::Corrupt(
                "a sealed secret does not open with this master key; all nodes must share SWITCHBOARD_MASTER_KEY".into(),
            )
        })
    }
}

fn bad_key() -> StoreError {
    StoreError::MasterKey(
        "the master key must be 32 bytes in base64 (generate one with `openssl rand -base64 32`)"
            .into(),
    )
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens() {
        let (key, _) = MasterKey::generate();
        let sealed = key.seal(b"hunter2");
        assert_ne!(&sealed[NONCE_LEN..], b"hunter2");
        assert_eq!(key.open(&sealed).unwrap(), b"hunter2");
    }

    #[test]
    fn another_key_or_tampering_fails_to_open() {
        let (a, _) = MasterKey::generate();
        let (b, _) = MasterKey::generate();
        let mut sealed = a.seal(b"x");
        assert!(b.open(&sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(a.open(&sealed).is_err());
        assert!(a.open(b"short").is_err());
    }

    #[test]
    fn load_or_create_persists_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(b.open(&a.seal(b"same")).unwrap(), b"same");
        std::fs::write(&path, "garbage").unwrap();
        assert!(MasterKey::load_or_create(&path).is_err());
    }
}
