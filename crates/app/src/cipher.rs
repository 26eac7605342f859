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

/// What the canary holds, sealed under a row no tenant can name (tenant
/// names never hold a NUL).
const CANARY: (&str, &str, &str) = (
    "\0flavorbox",
    "secrets-key-canary",
    "flavorbox secrets key v1",
);

/// Checks that `key` is the key this database's secrets are sealed with, and
/// records a canary sealed with it the first time a key serves the database
/// (after checking it against a stored secret, for databases older than
/// the canary). Every server on one database must use one key: a start
/// with another refuses here, clearly, instead of failing secret by secret
/// at push time. Writes nothing on a read-only home.
pub(crate) async fn check_secrets_key(
    store: &flavorbox_store::Store,
    key: &SecretKey,
) -> Result<(), AppError> {
    let (tenant, name, text) = CANARY;
    let wrong_key = |what: String| {
        AppError::Config(format!(
            "the secrets key is not the key this database's secrets are sealed with ({what}): every server on one database must use the same key; start with that key (the file FLAVORBOX_SECRETS_KEY_FILE names), since another key cannot open the stored secrets"
        ))
    };
    let canary = match store.secrets_key_canary().await? {
        Some(canary) => canary,
        None => {
            if let Some(secret) = store.any_secret().await?
                && secret.stored.starts_with(PREFIX)
                && key
                    .open(&secret.tenant, &secret.name, &secret.stored)
                    .is_err()
            {
                return Err(wrong_key(format!(
                    "it cannot open tenant `{}`'s secret `{}`",
                    secret.tenant, secret.name
                )));
            }
            if store.is_read_only() {
                return Ok(());
            }
            store
                .keep_secrets_key_canary(&key.seal(tenant, name, text)?)
                .await?;
            // Another server may have kept its own first: check what was kept.
            store
                .secrets_key_canary()
                .await?
                .ok_or_else(|| AppError::Internal("the secrets key canary was not kept".into()))?
        }
    };
    match key.open(tenant, name, &canary) {
        Ok(opened) if opened == text => Ok(()),
        _ => Err(wrong_key(
            "it cannot open the canary the first key sealed".into(),
        )),
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

    /// Everything a database holds about its secrets, to compare before
    /// and after a refused start.
    async fn secrets_state(home: &std::path::Path) -> (Option<String>, Vec<(String, String)>) {
        let store = flavorbox_store::Store::open(home).await.expect("store");
        let canary = store.secrets_key_canary().await.expect("canary");
        let secrets = store
            .tenant(crate::Tenant::LOCAL)
            .list_secrets()
            .await
            .expect("secrets")
            .into_iter()
            .map(|s| (s.name, s.username))
            .collect();
        store.close().await;
        (canary, secrets)
    }

    #[tokio::test]
    async fn a_start_with_another_secrets_key_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let open = |key: [u8; 32]| {
            crate::App::open(
                crate::AppConfig::builder(&home)
                    .secrets_key(SecretKey::from_bytes(key))
                    .build()
                    .expect("config"),
            )
        };
        // The first key to serve the database leaves its canary; a secret
        // is sealed with it.
        let app = open([1; 32]).await.expect("first start");
        app.tenant(&crate::Tenant::local())
            .create_secret(crate::CreateSecret {
                name: "registry".into(),
                username: "me".into(),
                password: "hunter2".to_string().into(),
            })
            .await
            .expect("secret");
        app.close().await;
        drop(app);
        let before = secrets_state(&home).await;
        assert!(before.0.is_some(), "the canary is kept");

        // The same key starts again; another is refused, saying what to do,
        // and the database is as it was.
        open([1; 32]).await.expect("same key").close().await;
        let err = open([2; 32]).await.err().expect("another key is refused");
        let message = err.to_string();
        assert!(
            message.contains("not the key this database's secrets are sealed with")
                && message.contains("FLAVORBOX_SECRETS_KEY_FILE"),
            "{message}"
        );
        assert_eq!(secrets_state(&home).await, before);
    }

    #[tokio::test]
    async fn a_database_sealed_before_the_canary_is_checked_against_its_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        // A secret sealed with key 1 by a version that kept no canary.
        let store = flavorbox_store::Store::open(&home).await.expect("store");
        let sealed = SecretKey::from_bytes([1; 32])
            .seal(crate::Tenant::LOCAL, "registry", "hunter2")
            .expect("seal");
        store
            .tenant(crate::Tenant::LOCAL)
            .create_secret("registry", "me", &sealed)
            .await
            .expect("secret");
        store.close().await;
        drop(store);

        let store = flavorbox_store::Store::open(&home).await.expect("store");
        let err = check_secrets_key(&store, &SecretKey::from_bytes([2; 32]))
            .await
            .expect_err("the wrong key is refused");
        assert!(
            err.to_string()
                .contains("tenant `default`'s secret `registry`"),
            "{err}"
        );
        assert_eq!(
            store.secrets_key_canary().await.unwrap(),
            None,
            "no canary kept"
        );
        check_secrets_key(&store, &SecretKey::from_bytes([1; 32]))
            .await
            .expect("the right key passes and keeps its canary");
        assert!(store.secrets_key_canary().await.unwrap().is_some());
        store.close().await;
    }
}
