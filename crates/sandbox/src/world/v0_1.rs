//! `flavorbox:registry@0.1.x`: the bindings generated from `wit/`, and the
//! conversions between their types and the host's (`crate::flavor`).
//!
//! Conversions are plain: they copy what the guest said. Checking it (names,
//! sizes, control characters) is the sandbox's job, on the host's types.

use crate::flavor::{Capability, ConfigIssue, DeclaredMetadata, LogLevel, PushDecision};
use flavorbox_grammar::reference::Reference;

wasmtime::component::bindgen!({
    path: "wit/v0.1",
    world: "container-registry-flavor",
    imports: {
        // May trap: a lookup that overruns the call's deadline ends the call.
        "flavorbox:registry/host.repository-exists": trappable,
        default: trappable,
    },
});

/// The WIT package version these bindings were generated from.
pub const VERSION: &str = "0.1.0";

/// The generated flavor export's types.
pub use exports::flavorbox::registry::flavor as wit;
/// The host imports a flavor of this version calls.
pub use flavorbox::registry::host::Host as HostImports;
/// The log level of this version's `log` import.
pub use flavorbox::registry::host::LogLevel as WitLogLevel;

impl From<WitLogLevel> for LogLevel {
    fn from(level: WitLogLevel) -> Self {
        match level {
            WitLogLevel::Trace => LogLevel::Trace,
            WitLogLevel::Debug => LogLevel::Debug,
            WitLogLevel::Info => LogLevel::Info,
            WitLogLevel::Warn => LogLevel::Warn,
            WitLogLevel::Error => LogLevel::Error,
        }
    }
}

impl From<wit::Capability> for Capability {
    fn from(c: wit::Capability) -> Self {
        match c {
            wit::Capability::RepositoryExists => Capability::RepositoryExists,
        }
    }
}

impl From<wit::FlavorMetadata> for DeclaredMetadata {
    fn from(m: wit::FlavorMetadata) -> Self {
        DeclaredMetadata {
            name: m.name,
            display_name: m.display_name,
            description: m.description,
            docs_url: m.docs_url,
            logo_url: m.logo_url,
            config_schema: m.config_schema,
            capabilities: m.capabilities.into_iter().map(Capability::from).collect(),
        }
    }
}

impl From<wit::ConfigIssue> for ConfigIssue {
    fn from(i: wit::ConfigIssue) -> Self {
        ConfigIssue {
            field: i.field,
            message: i.message,
        }
    }
}

impl From<wit::PushDecision> for PushDecision {
    fn from(d: wit::PushDecision) -> Self {
        match d {
            wit::PushDecision::Approve(warnings) => PushDecision::Approve { warnings },
            wit::PushDecision::Deny(reason) => PushDecision::Deny { reason },
        }
    }
}

impl From<&Reference> for wit::ImageReference {
    fn from(image: &Reference) -> Self {
        wit::ImageReference {
            domain: image.domain().to_string(),
            path: image.path().to_string(),
            tag: image.tag().map(str::to_string),
            digest: image.digest().map(str::to_string),
            name: image.name(),
        }
    }
}
