//! Every way an application operation can fail, each saying what is wrong
//! and what to do, and the [`ErrorCode`] of each. The CLI prints these; the
//! server answers with the code and picks the HTTP status from it.

use flavorbox_grammar::ReferenceError;
use flavorbox_net::push::PushError;
use flavorbox_sandbox::flavor::ConfigIssue;
use flavorbox_sandbox::{CallError, LoadError};
use flavorbox_store::StoreError;

/// Declares [`ErrorCode`] from one list, so its variants, their wire words
/// and [`ErrorCode::ALL`] cannot drift apart.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $word:literal,)*) => {
        /// The stable, machine-readable code of a failure: the `code` of the
        /// API's error bodies and of a job's error. The server picks the
        /// HTTP status from it, by an exhaustive `match`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The word on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $word,)*
                }
            }
        }
    };
}

error_codes! {
    /// The request is malformed (a name, a reference, a query, a body).
    BadRequest => "bad_request",
    /// The uploaded image archive is not one image the host can push.
    BadArchive => "bad_archive",
    /// No valid bearer token.
    Unauthorized => "unauthorized",
    /// The flavor denied the push.
    Denied => "denied",
    /// No such resource (or another tenant's).
    NotFound => "not_found",
    /// The endpoint does not take that method.
    MethodNotAllowed => "method_not_allowed",
    /// The request body stalled.
    RequestTimeout => "request_timeout",
    /// The name is taken.
    AlreadyExists => "already_exists",
    /// The state changed meanwhile, or the request contradicts it.
    Conflict => "conflict",
    /// Registry components still use it.
    InUse => "in_use",
    /// A body, upload, component or artifact past its bound.
    TooLarge => "too_large",
    /// The config was rejected.
    InvalidConfig => "invalid_config",
    /// The component is no flavor the host can load.
    InvalidFlavor => "invalid_flavor",
    /// A flavor call failed (trap, limit, bad output).
    FlavorFailed => "flavor_failed",
    /// The image lies outside the component's registry, or is a digest.
    InvalidTarget => "invalid_target",
    /// The component names a secret the tenant does not have.
    UnknownSecret => "unknown_secret",
    /// The egress policy refuses the registry.
    EgressRefused => "egress_refused",
    /// An OCI artifact's signature does not verify.
    SignatureRefused => "signature_refused",
    /// A quota of the tenant is reached.
    QuotaExceeded => "quota_exceeded",
    /// Too many failed authentications from this address.
    RateLimited => "rate_limited",
    /// The server is at its bound of concurrent or queued work.
    Overloaded => "overloaded",
    /// The state is unavailable (read-only, database gone), or the server is stopping.
    Unavailable => "unavailable",
    /// A job the server stopped before it ended.
    Interrupted => "interrupted",
    /// A job stopped at the server's job deadline.
    JobTimeout => "job_timeout",
    /// A job not pushed because a newer push of the same tag finished
    /// first: pushing it would have moved the tag back to an older image.
    Superseded => "superseded",
    /// The disk is full.
    InsufficientStorage => "insufficient_storage",
    /// The registry refused the credentials.
    RegistryAuth => "registry_auth",
    /// The push to the registry failed.
    PushFailed => "push_failed",
    /// The registry could not be reached or answered wrongly.
    RegistryFailed => "registry_failed",
    /// Anything else: the log has the details.
    Internal => "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code equals its word on the wire (what clients and tests compare).
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

/// Every failure of an application operation, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The component could not be loaded as a flavor.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A flavor call failed (trap, limit, bad output).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An audit query the server cannot answer as asked.
    #[error("{0}")]
    BadAuditQuery(String),
    /// The config was rejected (by the host's base rules or the flavor).
    #[error("invalid config for flavor `{flavor}`:{}", list_issues(.issues))]
    InvalidConfig {
        /// The flavor that judged it.
        flavor: String,
        /// Every issue found.
        issues: Vec<ConfigIssue>,
    },
    /// A registered flavor may not take a built-in's name.
    #[error("flavor `{0}` is built in; give your flavor another name in its metadata")]
    BuiltinName(String),
    /// The component calls itself something other than the name it was uploaded under.
    #[error(
        "the component calls itself `{name}` in its metadata, not `{path}`: upload it as `{name}`"
    )]
    NameMismatch {
        /// The name in the request.
        path: String,
        /// The name in the component's metadata.
        name: String,
    },
    /// Built-in flavors cannot be deleted.
    #[error("flavor `{0}` is built in and cannot be deleted")]
    BuiltinDelete(String),
    /// A flavor with this name but other content is registered.
    #[error(
        "a different flavor named `{name}` is already registered (sha256 {sha256}); delete it first with `flavorbox flavor delete {name}`"
    )]
    FlavorExists {
        /// The flavor name.
        name: String,
        /// The registered content's hash.
        sha256: String,
    },
    /// A registered flavor no longer describes itself as it did when registered.
    #[error(
        "flavor `{0}` now reports a different name or capabilities than when it was registered; it is not trusted to run: delete and register it again"
    )]
    FlavorChanged(String),
    /// The registered flavor is not the content that validated the component.
    #[error(
        "flavor `{flavor}` was replaced since registry component `{component}` was validated; validate it again with `flavorbox registry update {component}`"
    )]
    FlavorReplaced {
        /// The flavor name.
        flavor: String,
        /// The component.
        component: String,
    },
    /// No such flavor.
    #[error("no flavor named `{0}`; see `flavorbox flavor list`")]
    UnknownFlavor(String),
    /// No such registry component.
    #[error("no registry component named `{0}`; see `flavorbox registry list`")]
    UnknownComponent(String),
    /// A name is not acceptable.
    #[error(
        "invalid {kind} name `{name}`: use letters, digits, `.`, `-`, `_` (1 to 128 characters, starting with a letter or digit)"
    )]
    InvalidName {
        /// What is being named.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// The image reference does not parse.
    #[error("invalid image reference `{image}`: {reason}")]
    BadReference {
        /// The text given.
        image: String,
        /// Why it is invalid.
        reason: ReferenceError,
    },
    /// The image is not inside the component's registry.
    #[error(
        "image `{image}` does not belong to registry component `{component}` (uri `{uri}`); tag it under `{uri}/...` first, e.g. `docker tag {image} {uri}/<name>:<tag>`"
    )]
    OutsideRegistry {
        /// The normalised image reference.
        image: String,
        /// The component name.
        component: String,
        /// The component's registry URI.
        uri: String,
    },
    /// Pushes go by tag, not by digest.
    #[error("cannot push by digest (`{0}`): push a tag, e.g. `{1}:latest`")]
    DigestPush(String, String),
    /// The flavor denied the push.
    #[error("flavor `{flavor}` denied the push of `{image}`: {reason}")]
    Denied {
        /// The flavor.
        flavor: String,
        /// The image.
        image: String,
        /// Its reason.
        reason: String,
    },
    /// The push failed.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A quota of the tenant is reached; retry later or ask for more.
    #[error("quota reached: {what}; retry in {retry_after_secs} s")]
    Quota {
        /// What is exhausted.
        what: String,
        /// When trying again may succeed.
        retry_after_secs: u64,
    },
    /// The server is at its bound of concurrent or queued work.
    #[error(
        "the server is busy: every sandbox slot and queue place is taken; retry in {retry_after_secs} s"
    )]
    Busy {
        /// When trying again may succeed.
        retry_after_secs: u64,
    },
    /// The egress policy does not let the host reach this registry.
    #[error(
        "registry `{uri}` is not reachable under this server's egress policy ({reason}); registries on loopback, link-local or private addresses need an operator's `allow_registry` entry (`HOST[:PORT][/PATH]`, server-wide or for this tenant)"
    )]
    EgressRefused {
        /// The registry uri.
        uri: String,
        /// What the policy refused.
        reason: String,
    },
    /// No such push job.
    #[error("no push job `{0}`")]
    UnknownJob(String),
    /// An uploaded image is larger than the tenant may upload.
    #[error(
        "the upload is larger than the {max} bytes allowed; push a smaller image or ask the operator for a larger quota"
    )]
    UploadTooLarge {
        /// The bound, in bytes.
        max: u64,
    },
    /// Publishing, pulling or verifying an OCI artifact failed.
    #[error(transparent)]
    Oci(#[from] flavorbox_net::oci::OciError),
    /// `flavor update` of a flavor that was not registered from a registry.
    #[error(
        "flavor `{0}` was not registered from an OCI registry, so it has no tag to follow: register the new version with `flavorbox flavor register`"
    )]
    NoOrigin(String),
    /// The operator's configuration contradicts itself or the sandbox.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A background task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The code of an OCI failure.
fn oci_code(error: &flavorbox_net::oci::OciError) -> ErrorCode {
    use flavorbox_net::oci::OciError as O;
    match error {
        O::InvalidSource { .. } => ErrorCode::BadRequest,
        O::NotFound { .. } => ErrorCode::NotFound,
        O::Auth { .. } => ErrorCode::RegistryAuth,
        O::WrongMediaType { .. } | O::BadManifest { .. } | O::DigestMismatch { .. } => {
            ErrorCode::InvalidFlavor
        }
        O::TooLarge { .. } => ErrorCode::TooLarge,
        O::Refused { .. } => ErrorCode::EgressRefused,
        O::Signature { .. } => ErrorCode::SignatureRefused,
        O::Unreachable { .. } | O::Protocol { .. } => ErrorCode::RegistryFailed,
    }
}

fn list_issues(issues: &[ConfigIssue]) -> String {
    issues.iter().map(|i| format!("\n  - {i}")).collect()
}

impl AppError {
    /// A record the store holds that does not read back as this version
    /// wrote it: the store's [`StoreError::CorruptRecord`](flavorbox_store::StoreError), one wording for both layers.
    pub fn corrupt_record(kind: &'static str, name: &str, reason: impl Into<String>) -> AppError {
        AppError::Store(flavorbox_store::StoreError::CorruptRecord {
            kind,
            name: name.to_string(),
            reason: reason.into(),
        })
    }

    /// A component body longer than `max` bytes, refused before it is read
    /// to the end (the same answer a load gives for an oversized component).
    pub fn component_too_large(max: usize) -> AppError {
        AppError::Load(LoadError::TooLarge {
            size: max.saturating_add(1),
            max,
        })
    }

    /// The stable, machine-readable code of the kind of failure: the
    /// server's error bodies and job errors carry it, and the server picks
    /// the HTTP status from it.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        use flavorbox_net::push::PushError as P;
        use flavorbox_sandbox::LoadError;
        use flavorbox_store::StoreError as S;
        match self {
            AppError::Load(LoadError::TooLarge { .. }) => C::TooLarge,
            AppError::Load(_) => C::InvalidFlavor,
            AppError::Call(_) => C::FlavorFailed,
            AppError::Store(S::NotFound { .. }) => C::NotFound,
            AppError::Store(S::AlreadyExists { .. }) => C::AlreadyExists,
            AppError::Store(S::InUse { .. }) => C::InUse,
            AppError::Store(
                S::Conflict { .. }
                | S::FlavorReplaced(_)
                | S::PathTaken { .. }
                | S::JobLeaseLost(_),
            ) => C::Conflict,
            AppError::Store(S::SecretNotFound(_)) => C::UnknownSecret,
            AppError::Store(S::QuotaExceeded { .. } | S::BytesQuotaExceeded { .. }) => {
                C::QuotaExceeded
            }
            AppError::Store(S::NoSpace { .. }) => C::InsufficientStorage,
            AppError::Store(
                S::ReadOnly { .. }
                | S::DatabaseGone { .. }
                | S::DatabaseUnreachable { .. }
                | S::SchemaBehind { .. },
            ) => C::Unavailable,
            // A shared database that does not answer (or dropped the
            // connection): the request may be retried, on this replica or
            // another, when it is back.
            AppError::Store(S::Database(
                flavorbox_store::SqlxError::PoolTimedOut
                | flavorbox_store::SqlxError::PoolClosed
                | flavorbox_store::SqlxError::Io(_)
                | flavorbox_store::SqlxError::WorkerCrashed,
            )) => C::Unavailable,
            AppError::Store(_) => C::Internal,
            AppError::InvalidConfig { .. } => C::InvalidConfig,
            AppError::BuiltinName(_)
            | AppError::BuiltinDelete(_)
            | AppError::FlavorExists { .. }
            | AppError::FlavorChanged(_)
            | AppError::FlavorReplaced { .. } => C::Conflict,
            AppError::UnknownFlavor(_)
            | AppError::UnknownComponent(_)
            | AppError::UnknownJob(_) => C::NotFound,
            AppError::InvalidName { .. }
            | AppError::BadAuditQuery(_)
            | AppError::BadReference { .. }
            | AppError::NameMismatch { .. } => C::BadRequest,
            AppError::OutsideRegistry { .. } | AppError::DigestPush(..) => C::InvalidTarget,
            AppError::Denied { .. } => C::Denied,
            AppError::Push(P::BadArchive(_)) => C::BadArchive,
            AppError::Push(P::Auth { .. }) => C::RegistryAuth,
            AppError::Push(P::TooLarge { .. }) => C::TooLarge,
            AppError::Push(_) => C::PushFailed,
            AppError::Quota { .. } => C::QuotaExceeded,
            AppError::Busy { .. } => C::Overloaded,
            AppError::EgressRefused { .. } => C::EgressRefused,
            AppError::UploadTooLarge { .. } => C::TooLarge,
            AppError::Oci(e) => oci_code(e),
            AppError::NoOrigin(_) => C::Conflict,
            AppError::Config(_) | AppError::Internal(_) => C::Internal,
        }
    }

    /// Seconds after which a retry may succeed, for errors that say so.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AppError::Quota {
                retry_after_secs, ..
            }
            | AppError::Busy { retry_after_secs } => Some(*retry_after_secs),
            AppError::Store(
                flavorbox_store::StoreError::QuotaExceeded { .. }
                | flavorbox_store::StoreError::BytesQuotaExceeded { .. },
            ) => Some(60),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_has_one_word_of_its_own() {
        let mut words: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let all = words.len();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), all, "two codes share a word: {words:?}");
        for code in ErrorCode::ALL {
            let word = code.as_str();
            assert!(
                !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{word}"
            );
            assert_eq!(*code, word);
            assert_eq!(code.to_string(), word);
        }
    }

    #[test]
    fn a_corrupt_record_names_itself_and_is_an_internal_error() {
        let e = AppError::corrupt_record("job", "0f", "its detail is not JSON");
        assert_eq!(e.code(), ErrorCode::Internal);
        let message = e.to_string();
        assert!(
            message.contains("job `0f`") && message.contains("its detail is not JSON"),
            "{message}"
        );
    }
}
