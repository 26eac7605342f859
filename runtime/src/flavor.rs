//! What the host knows about a flavor, in the host's own types.
//!
//! Generated WIT types stop at `sandbox`; everything above it (the
//! application layer, the CLI, the server) uses these.

use serde::Serialize;

/// A host capability a flavor may ask for in its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Ask the host whether a repository exists on the component's registry.
    RepositoryExists,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Capability::RepositoryExists => f.write_str("repository-exists"),
        }
    }
}

/// What a flavor says about itself, checked by the host.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FlavorMetadata {
    /// Identifier, unique among built-in and registered flavors.
    pub name: String,
    /// Name for people.
    pub display_name: String,
    /// What registries the flavor is for.
    pub description: String,
    /// Documentation URL.
    pub docs_url: String,
    /// Logo URL (may be empty).
    pub logo_url: String,
    /// JSON Schema of the config.
    pub config_schema: serde_json::Value,
    /// Host capabilities asked for.
    pub capabilities: Vec<Capability>,
    /// WIT package version the flavor was built against.
    pub wit_version: String,
}

/// One problem a flavor (or the host's base rules) found in a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConfigIssue {
    /// Field path, empty for the config as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A flavor's decision on a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum PushDecision {
    /// Go ahead, showing the warnings.
    Approve {
        /// Warnings for the user.
        warnings: Vec<String>,
    },
    /// Do not push.
    Deny {
        /// Why not.
        reason: String,
    },
}

/// Checks that a flavor name is an identifier: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}
