//! Secrets at rest: a server encrypts every password with XChaCha20-Poly1305
//! under the operator's key (`FLAVORBOX_SECRETS_KEY_FILE`, 32 random bytes)
//! before the store sees it. The tenant and secret name are the associated
//! data, so a ciphertext copied to another row or tenant does not decrypt.
//! The local CLI keeps its secrets in its owner-only state directory and
//! configures no key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret as _, SecretBox};

use super::AppError;

/// Prefix of an encrypted password in the store (scheme and version).
const PREFIX: &str = "xc20p1:";

/// The operator's key for secrets at rest.
#[derive(Debug)]
pub struct SecretKey(SecretBox<[u8; 32]>);

/// `secrecy` clones only its `CloneableSecret`s, which a byte array is not:
/// the copy goes straight into a new box.
impl Clone for SecretKey {
    fn clone(&self) -> SecretKey {
        SecretKey(SecretBox::new(Box::new(*self.0.expose_secret())))
    }
}

impl SecretKey {
    /// Reads the key file: exactly 32 bytes, readable by its owner only.
    pub fn from_file(path: &std::path::Path) -> Result<SecretKey, AppError> {
        let bad = |why: String| {
            AppError::Config(format!(
                "secrets key file {}: {why}; create one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`",
                path.display()
            ))
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| bad(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "group or others may read it (mode {:o})",
                    mode & 0o777
                )));
            }
        }
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| bad(format!("it holds {} bytes, not 32", bytes.len())))?;
        Ok(SecretKey::from_bytes(key))
    }

    /// A key from bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> SecretKey {
        SecretKey(SecretBox::new(Box::new(key)))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.expose_secret().into())
    }

    /// Encrypts `password` for the secret `name` of `tenant`.
    pub fn seal(&self, tenant: &str, name: &str, password: &str) -> Result<String, AppError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce)
            .map_err(|e| AppError::Internal(format!("no randomness for a nonce: {e}")))?;
        let aad = associated_data(tenant, name);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: password.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| AppError::Internal("cannot encrypt a secret".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", BASE64.encode(out)))
    }

    /// Decrypts what [`seal`](Self::seal) stored for the same tenant and name.
    pub fn open(&self, tenant: &str, name: &str, stored: &str) -> Result<String, AppError> {
        let unusable = |why: &str| {
            AppError::Internal(format!(
                "secret `{name}` cannot be decrypted ({why}): the server's secrets key changed or the row was altered; delete the secret and create it again"
            ))
        };
        let encoded = stored
            .strip_prefix(PREFIX)
            .ok_or_else(|| unusable("it was stored without encryption"))?;
        let bytes = BASE64.decode(encoded).map_err(|_| unusable("not base64"))?;
        if bytes.len() < 24 {
            return Err(unusable("too short"));
        }
        let (nonce, sealed) = bytes.split_at(24);
        let aad = associated_data(tenant, name);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| unusable("authentication failed"))?;
        String::from_utf8(plain).map_err(|_| unusable("not UTF-8"))
    }
}

fn associated_data(tenant: &str, name: &str) -> Vec<u8> {
    format!("flavorbox-secret\0{tenant}\0{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_secrets_key_shows_no_key_bytes() {
        let key = SecretKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?} {key:#?} {:?}", key.clone());
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn sealed_secrets_open_only_for_their_row_and_key() {
        let key = SecretKey::from_bytes([7; 32]);
        let sealed = key.seal("acme", "hub", "s3cret").expect("seal");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.open("acme", "hub", &sealed).expect("open"), "s3cret");
        assert!(key.open("other", "hub", &sealed).is_err(), "another tenant");
        assert!(key.open("acme", "hub2", &sealed).is_err(), "another name");
        let other = SecretKey::from_bytes([8; 32]);
        assert!(other.open("acme", "hub", &sealed).is_err(), "another key");
        assert!(key.open("acme", "hub", "s3cret").is_err(), "plaintext");
        assert_ne!(
            sealed,
            key.seal("acme", "hub", "s3cret").unwrap(),
            "fresh nonce"
        );
    }
}
