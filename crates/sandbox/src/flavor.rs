//! What the host knows about a flavor, in the host's own types.
//!
//! Generated WIT types stop at `world` (which converts them into these);
//! everything above it (the sandbox, the application layer, the CLI, the
//! server) uses these. They are wire types: serde both ways.

use serde::{Deserialize, Serialize};

/// A host capability a flavor may ask for in its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Ask the host whether a repository exists on the component's registry.
    RepositoryExists,
    /// Receive what the host read from the image in `prepare-image-push`
    /// (from WIT 0.2 on).
    ImageInfo,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Capability::RepositoryExists => f.write_str("repository-exists"),
            Capability::ImageInfo => f.write_str("image-info"),
        }
    }
}

/// What a flavor says about itself, checked by the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// What a flavor declared about itself, before the host checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredMetadata {
    /// Identifier as declared.
    pub name: String,
    /// Name for people.
    pub display_name: String,
    /// What registries the flavor is for.
    pub description: String,
    /// Documentation URL.
    pub docs_url: String,
    /// Logo URL.
    pub logo_url: String,
    /// JSON Schema of the config, as text.
    pub config_schema: String,
    /// Host capabilities asked for (possibly repeated).
    pub capabilities: Vec<Capability>,
}

impl DeclaredMetadata {
    /// Bytes the guest returned, for the output cap.
    pub fn size(&self) -> usize {
        self.name.len()
            + self.display_name.len()
            + self.description.len()
            + self.docs_url.len()
            + self.logo_url.len()
            + self.config_schema.len()
            + self.capabilities.len()
    }
}

/// Severity or source of a flavor's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `log(trace, ...)`.
    Trace,
    /// `log(debug, ...)`.
    Debug,
    /// `log(info, ...)`.
    Info,
    /// `log(warn, ...)`.
    Warn,
    /// `log(error, ...)`.
    Error,
    /// A line the guest wrote to its stdout.
    Stdout,
    /// A line the guest wrote to its stderr.
    Stderr,
}

impl LogLevel {
    /// The level's name, as in the WIT and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Stdout => "stdout",
            LogLevel::Stderr => "stderr",
        }
    }

    /// Whether the line is detail (`trace`, `debug`) rather than news.
    pub fn is_detail(self) -> bool {
        matches!(self, LogLevel::Trace | LogLevel::Debug)
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log line a flavor emitted during a call, cleaned and truncated by the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Severity, or `stdout`/`stderr` for captured output.
    pub level: LogLevel,
    /// The (cleaned, truncated) message.
    pub message: String,
}

/// One problem a flavor (or the host's base rules) found in a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
