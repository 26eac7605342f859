//! Every way an application operation can fail, each saying what is wrong
//! and what to do. The CLI prints these; the server maps them to HTTP
//! statuses by variant.

use flavorbox_grammar::reference::ReferenceError;
use flavorbox_net::push::PushError;
use flavorbox_sandbox::flavor::ConfigIssue;
use flavorbox_sandbox::{CallError, LoadError};
use flavorbox_store::StoreError;

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
fn oci_code(error: &flavorbox_net::oci::OciError) -> &'static str {
    use flavorbox_net::oci::OciError as O;
    match error {
        O::InvalidSource { .. } => "bad_request",
        O::NotFound { .. } => "not_found",
        O::Auth { .. } => "registry_auth",
        O::WrongMediaType { .. } | O::BadManifest { .. } | O::DigestMismatch { .. } => {
            "invalid_flavor"
        }
        O::TooLarge { .. } => "too_large",
        O::Refused { .. } => "egress_refused",
        O::Signature { .. } => "signature_refused",
        O::Unreachable { .. } | O::Protocol { .. } => "registry_failed",
    }
}

fn list_issues(issues: &[ConfigIssue]) -> String {
    issues.iter().map(|i| format!("\n  - {i}")).collect()
}

impl AppError {
    /// A component body longer than `max` bytes, refused before it is read
    /// to the end (the same answer a load gives for an oversized component).
    pub fn component_too_large(max: usize) -> AppError {
        AppError::Load(LoadError::TooLarge {
            size: max.saturating_add(1),
            max,
        })
    }

    /// A stable, machine-readable code for the kind of failure: the
    /// server's error bodies and job errors carry it, and the server picks
    /// the HTTP status from it.
    pub fn code(&self) -> &'static str {
        use flavorbox_sandbox::LoadError;
        use flavorbox_store::StoreError as S;
        match self {
            AppError::Load(LoadError::TooLarge { .. }) => "too_large",
            AppError::Load(_) => "invalid_flavor",
            AppError::Call(_) => "flavor_failed",
            AppError::Store(S::NotFound { .. }) => "not_found",
            AppError::Store(S::AlreadyExists { .. }) => "already_exists",
            AppError::Store(S::InUse { .. }) => "in_use",
            AppError::Store(S::Conflict { .. } | S::FlavorReplaced(_) | S::PathTaken { .. }) => {
                "conflict"
            }
            AppError::Store(S::SecretNotFound(_)) => "unknown_secret",
            AppError::Store(S::QuotaExceeded { .. } | S::BytesQuotaExceeded { .. }) => {
                "quota_exceeded"
            }
            AppError::Store(S::NoSpace { .. }) => "insufficient_storage",
            AppError::Store(S::ReadOnly { .. } | S::DatabaseGone { .. }) => "unavailable",
            AppError::Store(_) => "internal",
            AppError::InvalidConfig { .. } => "invalid_config",
            AppError::BuiltinName(_)
            | AppError::BuiltinDelete(_)
            | AppError::FlavorExists { .. }
            | AppError::FlavorChanged(_)
            | AppError::FlavorReplaced { .. } => "conflict",
            AppError::UnknownFlavor(_)
            | AppError::UnknownComponent(_)
            | AppError::UnknownJob(_) => "not_found",
            AppError::InvalidName { .. }
            | AppError::BadReference { .. }
            | AppError::NameMismatch { .. } => "bad_request",
            AppError::OutsideRegistry { .. } | AppError::DigestPush(..) => "invalid_target",
            AppError::Denied { .. } => "denied",
            AppError::Push(flavorbox_net::push::PushError::BadArchive(_)) => "bad_archive",
            AppError::Push(flavorbox_net::push::PushError::Auth { .. }) => "registry_auth",
            AppError::Push(flavorbox_net::push::PushError::TooLarge { .. }) => "too_large",
            AppError::Push(_) => "push_failed",
            AppError::Quota { .. } => "quota_exceeded",
            AppError::Busy { .. } => "overloaded",
            AppError::EgressRefused { .. } => "egress_refused",
            AppError::UploadTooLarge { .. } => "too_large",
            AppError::Oci(e) => oci_code(e),
            AppError::NoOrigin(_) => "conflict",
            AppError::Config(_) | AppError::Internal(_) => "internal",
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
