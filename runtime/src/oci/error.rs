//! Why an artifact could not be published, pulled or verified: each says
//! what is wrong and what to do.

use super::signature::SignatureError;

/// A failed exchange with a registry about a flavor artifact.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The `oci://` source does not parse.
    #[error("invalid OCI source `{source_text}`: {reason}")]
    InvalidSource {
        /// The source as given (cut to a printable length).
        source_text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No manifest under that tag or digest.
    #[error(
        "{reference} was not found in the registry: check the repository and tag, or publish it first with `flavorbox flavor publish`"
    )]
    NotFound {
        /// The source asked for.
        reference: String,
    },
    /// The registry refused the credentials, or wants some and none were given.
    #[error(
        "registry {registry} refused the credentials ({message}): check the username and password of the secret, or pass --secret NAME"
    )]
    Auth {
        /// The registry domain.
        registry: String,
        /// What the registry answered.
        message: String,
    },
    /// The artifact is not a Wasm component in the layout Flavorbox reads.
    #[error(
        "{reference} is not a Wasm component artifact: its {part} has media type `{found}`, expected `{expected}` (the layout `flavorbox flavor publish` and `wkg oci push` write)"
    )]
    WrongMediaType {
        /// The source.
        reference: String,
        /// Which part: manifest, config or layer.
        part: &'static str,
        /// The media type found.
        found: String,
        /// The media type required.
        expected: &'static str,
    },
    /// The manifest does not have the shape of a Wasm component artifact.
    #[error("{reference} is not a Wasm component artifact: {reason}")]
    BadManifest {
        /// The source.
        reference: String,
        /// What is wrong with the manifest.
        reason: String,
    },
    /// The component is larger than the limit; nothing more is downloaded.
    #[error(
        "{reference}: the component is {size} bytes, more than the limit of {max} bytes; nothing was stored (raise --max-wasm-mib, or ask the operator for a larger quota)"
    )]
    TooLarge {
        /// The source.
        reference: String,
        /// The size declared or seen so far.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// What the registry served does not hash to the digest that names it.
    #[error(
        "{reference}: the {part} the registry served does not match its digest (expected {expected}, got {actual}); the content was tampered with or corrupted, and nothing was stored"
    )]
    DigestMismatch {
        /// The source.
        reference: String,
        /// Which part: manifest, config or layer.
        part: &'static str,
        /// The digest that names it.
        expected: String,
        /// The digest of what was served.
        actual: String,
    },
    /// The egress policy does not allow this registry.
    #[error("registry {registry} is refused by the egress policy: {reason}")]
    Refused {
        /// The registry domain.
        registry: String,
        /// Why.
        reason: String,
    },
    /// The registry could not be reached (or spoke another protocol).
    #[error("registry {registry} is unreachable: {message}{hint}")]
    Unreachable {
        /// The registry domain.
        registry: String,
        /// What failed.
        message: String,
        /// What to try, if anything.
        hint: String,
    },
    /// The registry answered in a way the distribution API does not allow.
    #[error("registry {registry} answered unexpectedly: {message}")]
    Protocol {
        /// The registry domain.
        registry: String,
        /// What was unexpected.
        message: String,
    },
    /// A signature was required and none valid was found.
    #[error("{reference}: {error}; nothing was stored")]
    Signature {
        /// The source.
        reference: String,
        /// What is wrong with the signature.
        error: SignatureError,
    },
}

impl OciError {
    /// Classifies an `oci-client` failure for the source `reference` on `registry`.
    pub(crate) fn from_client(
        registry: &str,
        reference: &str,
        insecure_hint: bool,
        error: oci_client::errors::OciDistributionError,
    ) -> OciError {
        use oci_client::errors::{OciDistributionError as E, OciErrorCode as C};
        let registry = registry.to_string();
        match error {
            E::AuthenticationFailure(message) => OciError::Auth { registry, message },
            E::UnauthorizedError { .. } => OciError::Auth {
                registry,
                message: "HTTP 401 Unauthorized".into(),
            },
            E::ImageManifestNotFoundError(_) => OciError::NotFound {
                reference: reference.to_string(),
            },
            E::RegistryError { envelope, .. } => {
                let codes: Vec<&C> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, C::ManifestUnknown | C::NameUnknown | C::NotFound))
                {
                    OciError::NotFound {
                        reference: reference.to_string(),
                    }
                } else if codes
                    .iter()
                    .any(|c| matches!(c, C::Unauthorized | C::Denied))
                {
                    OciError::Auth {
                        registry,
                        message: envelope.to_string(),
                    }
                } else {
                    OciError::Protocol {
                        registry,
                        message: envelope.to_string(),
                    }
                }
            }
            E::ServerError { code: 401, .. } | E::ServerError { code: 403, .. } => OciError::Auth {
                registry,
                message: error_text(&error),
            },
            E::ServerError { code: 404, .. } => OciError::NotFound {
                reference: reference.to_string(),
            },
            E::RequestError(e) => OciError::Unreachable {
                registry,
                message: chain_text(&e),
                hint: if insecure_hint {
                    " (if it serves plain HTTP, name it with --insecure-registry HOST[:PORT])"
                        .into()
                } else {
                    String::new()
                },
            },
            other => OciError::Protocol {
                registry,
                message: error_text(&other),
            },
        }
    }
}

/// An error's text, cut to a length fit for one line.
fn error_text(error: &dyn std::error::Error) -> String {
    error.to_string().chars().take(400).collect()
}

/// An error and its causes on one line.
fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text.chars().take(400).collect()
}
