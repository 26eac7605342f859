//! Every way an application operation can fail, each saying what is wrong
//! and what to do. The CLI prints these; the server maps them to HTTP
//! statuses by variant.

use crate::flavor::ConfigIssue;
use crate::push::PushError;
use crate::reference::ReferenceError;
use crate::sandbox::{CallError, LoadError};
use crate::store::StoreError;

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
    /// The operator's configuration contradicts itself or the sandbox.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A background task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

fn list_issues(issues: &[ConfigIssue]) -> String {
    issues.iter().map(|i| format!("\n  - {i}")).collect()
}
