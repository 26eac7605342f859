//! Cosign-compatible signatures of an artifact's manifest digest, with
//! offline keys.
//!
//! A signature is what `cosign sign --key` stores: a "simple signing"
//! payload naming the repository and the manifest digest, signed with ECDSA
//! P-256 over SHA-256 (ASN.1 DER, base64 in the layer annotation
//! `dev.cosignproject.cosign/signature`), pushed under the tag
//! `sha256-<hex>.sig` beside the artifact. Keys are PEM: a public key as
//! `-----BEGIN PUBLIC KEY-----` (what `cosign generate-key-pair` writes to
//! `cosign.pub`, or `openssl pkey -pubout`), a private key unencrypted as
//! PKCS#8 or SEC1 (`openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`).
//!
//! Why not the `sigstore` crate: offline verification of a key signature is
//! this one ECDSA check over a JSON payload, and that crate brings OIDC,
//! TUF, Rekor and X.509 clients for the keyless flows Flavorbox does not
//! offer; RustCrypto's `p256` is the same primitive it uses underneath.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use sha2::{Digest as _, Sha256};

/// The `type` of a cosign image signature payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// Why a signature was refused, or a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A key file could not be read or is not a key Flavorbox reads.
    #[error("cannot use key {path}: {reason}")]
    BadKey {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No signature is stored for the digest.
    #[error(
        "no signature found for {digest} (looked for tag `{tag}`); sign it with `flavorbox flavor sign` or `cosign sign --key`, or register it without --verify-key if you trust it unsigned"
    )]
    Missing {
        /// The manifest digest.
        digest: String,
        /// The signature tag looked at.
        tag: String,
    },
    /// Signatures exist, none valid for any trusted key.
    #[error(
        "no valid signature for {digest} from a trusted key ({keys}): {reasons}; check that it was signed with the private key of one of these"
    )]
    Untrusted {
        /// The manifest digest.
        digest: String,
        /// The trusted keys' ids.
        keys: String,
        /// Why each signature was refused.
        reasons: String,
    },
}

/// A public key signatures are verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
}

impl PublicKey {
    /// Reads a PEM public key (`-----BEGIN PUBLIC KEY-----`, ECDSA P-256).
    pub fn from_pem(pem: &str, path: &str) -> Result<PublicKey, SignatureError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| SignatureError::BadKey {
            path: path.to_string(),
            reason: format!(
                "not a PEM ECDSA P-256 public key ({e}); cosign.pub, or `openssl pkey -in KEY -pubout`, has this form"
            ),
        })?;
        PublicKey::new(key, path)
    }

    /// Reads a public key file.
    pub fn read(path: &Path) -> Result<PublicKey, SignatureError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SignatureError::BadKey {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        PublicKey::from_pem(&text, &shown)
    }

    /// The key with its id; `path` names it if its DER cannot be written
    /// (an empty DER would give every such key the same id).
    fn new(key: VerifyingKey, path: &str) -> Result<PublicKey, SignatureError> {
        let der = key
            .to_public_key_der()
            .map_err(|e| SignatureError::BadKey {
                path: path.to_string(),
                reason: format!("its public key cannot be encoded as DER: {e}"),
            })?;
        Ok(PublicKey {
            id: format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes()))),
            key,
        })
    }

    /// The key's id: SHA-256 of its DER SubjectPublicKeyInfo.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's id cut to 12 hex digits, for messages.
    pub fn short_id(&self) -> String {
        self.id.chars().take(7 + 12).collect()
    }
}

/// A private key that signs manifest digests.
///
/// Not a `secrecy` box: `p256`'s key is already a secret type of its own
/// (zeroed on drop, `Debug` prints `SigningKey { .. }`), and it has no
/// `Zeroize` for a `SecretBox` to hold it by.
#[derive(Debug)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
    /// The matching public key, made once when the key is read.
    public: PublicKey,
}

impl SigningKey {
    /// Reads an unencrypted PEM ECDSA P-256 private key (PKCS#8 or SEC1).
    pub fn from_pem(pem: &str, path: &str) -> Result<SigningKey, SignatureError> {
        let bad = |reason: String| SignatureError::BadKey {
            path: path.to_string(),
            reason,
        };
        let pem = pem.trim();
        if pem.contains("ENCRYPTED") {
            return Err(bad("it is encrypted (cosign's key format); Flavorbox reads an unencrypted PEM P-256 key, e.g. from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`".into()));
        }
        let secret = if pem.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(pem).map_err(|e| bad(e.to_string()))?
        } else {
            p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| {
                bad(format!(
                    "not a PEM ECDSA P-256 private key ({e}); make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`"
                ))
            })?
        };
        let key = p256::ecdsa::SigningKey::from(secret);
        let public = PublicKey::new(*key.verifying_key(), path)?;
        Ok(SigningKey { key, public })
    }

    /// Reads a private key file.
    pub fn read(path: &Path) -> Result<SigningKey, SignatureError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SignatureError::BadKey {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        SigningKey::from_pem(&text, &shown)
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// Signs `payload`: the base64 of the ASN.1 DER ECDSA signature, as cosign stores it.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: Signature = self.key.sign(payload);
        BASE64.encode(signature.to_der().as_bytes())
    }
}

/// Cosign's simple-signing payload for `digest` of `repository` (`host/path`).
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    let doc = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    // A `Value` always writes (its keys are strings, its numbers finite):
    // `to_string` is serde_json's infallible form, the bytes `to_vec` gives.
    doc.to_string().into_bytes()
}

/// Checks one signature: its payload names `digest` as a cosign image
/// signature, and `signature_base64` is a valid signature of the payload by
/// `key`. Returns why not.
pub fn verify(
    key: &PublicKey,
    digest: &str,
    payload: &[u8],
    signature_base64: &str,
) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Payload {
        critical: Critical,
    }
    #[derive(serde::Deserialize)]
    struct Critical {
        image: Image,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(serde::Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    let raw = BASE64
        .decode(signature_base64.trim())
        .map_err(|_| "the signature is not base64".to_string())?;
    let signature = Signature::from_der(&raw)
        .map_err(|_| "the signature is not an ASN.1 DER ECDSA signature".to_string())?;
    key.key
        .verify(payload, &signature)
        .map_err(|_| format!("the signature does not verify with key {}", key.short_id()))?;
    let parsed: Payload = serde_json::from_slice(payload)
        .map_err(|e| format!("the signed payload is not a cosign payload: {e}"))?;
    if parsed.critical.kind != PAYLOAD_TYPE {
        return Err(format!(
            "the signed payload's type is `{}`, not `{PAYLOAD_TYPE}`",
            parsed.critical.kind
        ));
    }
    if parsed.critical.image.digest != digest {
        return Err(format!(
            "the signature is for {}, not {digest}",
            parsed.critical.image.digest
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        let secret = p256::SecretKey::from_slice(&[seed; 32]).expect("a valid scalar");
        let key = p256::ecdsa::SigningKey::from(secret);
        let public = PublicKey::new(*key.verifying_key(), "test").expect("a public key");
        SigningKey { key, public }
    }

    #[test]
    fn debug_of_a_signing_key_shows_no_private_key() {
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let signer = key(5);
        let scalar = hex::encode(signer.key.to_bytes());
        let pem = signer.key.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let shown = format!("{signer:?} {signer:#?}");
        assert!(!shown.to_lowercase().contains(&scalar), "{shown}");
        assert!(!shown.contains(&body), "{shown}");
        assert!(shown.contains(signer.public().id()), "{shown}");
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_and_digest() {
        let d1 = format!("sha256:{}", "a".repeat(64));
        let d2 = format!("sha256:{}", "b".repeat(64));
        let signer = key(7);
        let other = key(9);
        let p = payload("127.0.0.1:5000/acme", &d1);
        let sig = signer.sign(&p);
        assert_eq!(verify(&signer.public(), &d1, &p, &sig), Ok(()));
        let wrong_key = verify(&other.public(), &d1, &p, &sig).expect_err("other key");
        assert!(wrong_key.contains("does not verify"), "{wrong_key}");
        let wrong_digest = verify(&signer.public(), &d2, &p, &sig).expect_err("other digest");
        assert!(wrong_digest.contains("is for"), "{wrong_digest}");
        let tampered = payload("127.0.0.1:5000/acme", &d2);
        assert!(verify(&signer.public(), &d2, &tampered, &sig).is_err());
        assert!(verify(&signer.public(), &d1, &p, "!!").is_err());
    }

    #[test]
    fn keys_round_trip_through_pem_and_encrypted_keys_are_named() {
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let signer = key(3);
        let private = signer.key.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let public = signer
            .public()
            .key
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let read = SigningKey::from_pem(&private, "k").expect("pkcs8");
        assert_eq!(
            read.public(),
            PublicKey::from_pem(&public, "k.pub").expect("spki")
        );
        let err = SigningKey::from_pem(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nxx\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----",
            "cosign.key",
        )
        .expect_err("encrypted");
        assert!(err.to_string().contains("encrypted"), "{err}");
        assert!(PublicKey::from_pem("nope", "x.pub").is_err());
    }
}
