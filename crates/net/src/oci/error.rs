//! Why an artifact could not be published, pulled or verified: each says
//! what is wrong and what to do.

use super::signature::SignatureError;
use crate::registry_api::RegistryApiError;

/// What to try when a registry spoken to over TLS cannot be reached.
const INSECURE_HINT: &str =
    " (if it serves plain HTTP, name it with --insecure-registry HOST[:PORT])";

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
    /// Classifies a failed request of a pull through the host's
    /// egress-checked client, for the source `reference` on `registry`.
    /// `insecure_hint`: the registry was spoken to over TLS, so a failure
    /// to reach it may be a plain-HTTP registry.
    pub(crate) fn from_registry_api(
        registry: &str,
        reference: &str,
        insecure_hint: bool,
        error: RegistryApiError,
    ) -> OciError {
        let registry = registry.to_string();
        match error {
            RegistryApiError::InvalidRepository(_)
            | RegistryApiError::OutsideRegistry { .. }
            | RegistryApiError::InvalidDomain { .. } => OciError::InvalidSource {
                source_text: reference.to_string(),
                reason: error.to_string(),
            },
            RegistryApiError::TimedOut { timeout, .. } => OciError::Unreachable {
                registry,
                message: format!("no answer within {timeout:?}"),
                hint: String::new(),
            },
            RegistryApiError::ExchangeLimit { limit, .. } => OciError::Unreachable {
                registry,
                message: format!("no answer within the egress policy's limit of {limit:?}"),
                hint: String::new(),
            },
            RegistryApiError::Refused { reason, .. } => OciError::Refused { registry, reason },
            RegistryApiError::Unreachable { message, .. } => OciError::Unreachable {
                registry,
                message,
                hint: match insecure_hint {
                    true => INSECURE_HINT.into(),
                    false => String::new(),
                },
            },
            RegistryApiError::Auth { message, .. } => OciError::Auth { registry, message },
            RegistryApiError::Protocol { message, .. } => OciError::Protocol { registry, message },
        }
    }

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
                hint: match insecure_hint {
                    true => INSECURE_HINT.into(),
                    false => String::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulls_failures_keep_their_kind_and_the_plain_http_hint_only_over_tls() {
        let domain = || "r.example:5000".to_string();
        let map =
            |hint, error| OciError::from_registry_api("r.example:5000", "oci://x", hint, error);
        let refused = map(
            true,
            RegistryApiError::Refused {
                domain: domain(),
                reason: "egress to 10.0.0.1:5000 refused".into(),
            },
        );
        assert!(
            matches!(&refused, OciError::Refused { reason, .. } if reason.starts_with("egress to")),
            "{refused}"
        );
        let unreachable = |hint| {
            map(
                hint,
                RegistryApiError::Unreachable {
                    domain: domain(),
                    message: "the registry could not be reached".into(),
                },
            )
            .to_string()
        };
        assert!(unreachable(true).ends_with("name it with --insecure-registry HOST[:PORT])"));
        assert_eq!(
            unreachable(false),
            "registry r.example:5000 is unreachable: the registry could not be reached"
        );
        let auth = map(
            false,
            RegistryApiError::Auth {
                domain: domain(),
                message: "HTTP 401".into(),
            },
        );
        assert!(
            auth.to_string()
                .starts_with("registry r.example:5000 refused the credentials (HTTP 401)"),
            "{auth}"
        );
        let timed_out = map(
            true,
            RegistryApiError::TimedOut {
                domain: domain(),
                timeout: std::time::Duration::from_secs(1),
            },
        );
        assert!(
            matches!(&timed_out, OciError::Unreachable { hint, .. } if hint.is_empty()),
            "{timed_out}"
        );
        let bad = map(
            false,
            RegistryApiError::InvalidDomain {
                domain: "r.example:99999".into(),
            },
        );
        assert!(matches!(bad, OciError::InvalidSource { .. }), "{bad}");
    }
}
