//! Guest-side helper shared by every Rust flavor.
//!
//! A flavor's logic is written against the plain-Rust [`Flavor`] trait and
//! the [`Host`] trait, so it compiles and runs natively (unit tests, the
//! benchmark's native baseline). Only [`export_flavor!`] is wasm-specific: it
//! wires the logic to the `flavorbox:registry` WIT world with wit-bindgen.

use serde_json::{Map, Value};

pub use serde_json;

pub mod testing;
pub mod validate;

pub use validate::{ConfigCheck, RegistryUri};

/// A host capability a flavor may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Ask the host whether a repository exists on the component's registry.
    RepositoryExists,
}

/// What a flavor says about itself (the `metadata` export).
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub docs_url: String,
    pub logo_url: String,
    /// JSON Schema of the config, as JSON text.
    pub config_schema: String,
    pub capabilities: Vec<Capability>,
}

/// One problem with a config: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub field: String,
    pub message: String,
}

impl ConfigIssue {
    /// An issue with `field` (empty for the config as a whole).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An image reference as parsed and normalised by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// `domain/path`.
    pub name: String,
}

/// A flavor's answer to `prepare-image-push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDecision {
    /// Push, showing these warnings.
    Approve(Vec<String>),
    /// Do not push, for this reason.
    Deny(String),
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The questions a flavor may ask its host (the WIT `host` imports).
pub trait Host {
    /// Log a line, attributed by the host to this flavor.
    fn log(&self, level: LogLevel, message: &str);
    /// Whether `repository` exists on the component's registry.
    fn repository_exists(&self, repository: &str) -> Result<bool, String>;
}

/// A container-registry flavor's logic.
pub trait Flavor {
    /// Describe the flavor.
    fn metadata() -> Metadata;
    /// Validate a config (JSON object text); return it normalised, or every issue.
    fn validate_config(host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>>;
    /// Approve or deny pushing `image` to the registry configured by `config`.
    fn prepare_image_push(host: &dyn Host, config: &str, image: &ImageReference) -> PushDecision;
}

/// A host for native use that logs nothing and knows no repository.
pub struct NoHost;

impl Host for NoHost {
    fn log(&self, _level: LogLevel, _message: &str) {}
    fn repository_exists(&self, _repository: &str) -> Result<bool, String> {
        Err("no host".to_string())
    }
}

/// Parses config text as a JSON object, or returns the issue saying why not.
pub fn parse_config(config: &str) -> Result<Map<String, Value>, Vec<ConfigIssue>> {
    match serde_json::from_str::<Value>(config) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(vec![ConfigIssue::new(
            "",
            format!("config must be a JSON object, got {}", json_kind(&other)),
        )]),
        Err(e) => Err(vec![ConfigIssue::new(
            "",
            format!("config is not valid JSON: {e}"),
        )]),
    }
}

/// Reads a required string field, recording an issue when it is missing or
/// not a non-empty string.
pub fn required_str<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<&'a str> {
    match map.get(field) {
        None | Some(Value::Null) => {
            issues.push(ConfigIssue::new(
                field,
                format!("`{field}` is required, e.g. \"{example}\""),
            ));
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.as_str()),
        Some(Value::String(_)) => {
            issues.push(ConfigIssue::new(
                field,
                format!("`{field}` must not be empty, e.g. \"{example}\""),
            ));
            None
        }
        Some(other) => {
            issues.push(ConfigIssue::new(
                field,
                format!(
                    "`{field}` must be a string, got {}; e.g. \"{example}\"",
                    json_kind(other)
                ),
            ));
            None
        }
    }
}

/// Reads an optional string field, recording an issue when it is present but
/// not a string.
pub fn optional_str<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<&'a str> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            issues.push(ConfigIssue::new(
                field,
                format!(
                    "`{field}` must be a string, got {}; e.g. \"{example}\"",
                    json_kind(other)
                ),
            ));
            None
        }
    }
}

/// Records an issue for every field not in `allowed`.
pub fn reject_unknown_fields(
    map: &Map<String, Value>,
    allowed: &[&str],
    issues: &mut Vec<ConfigIssue>,
) {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            issues.push(ConfigIssue::new(
                key.as_str(),
                format!(
                    "unknown field `{key}`; this flavor accepts: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
}

/// Serialises a config object back to JSON text.
pub fn to_config_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

/// A short name for the kind of a JSON value, for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The WIT bindings and the adapter from them to [`Flavor`]; wasm only.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "container-registry-flavor",
        pub_export_macro: true,
        export_macro_name: "export_raw",
        default_bindings_module: "flavor_kit::bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm {
    use super::*;
    use crate::bindings::exports::flavorbox::registry::flavor as w;
    use crate::bindings::flavorbox::registry::host as h;
    use std::marker::PhantomData;

    /// The host as seen from inside the component: the WIT imports.
    pub struct WasmHost;

    impl Host for WasmHost {
        fn log(&self, level: LogLevel, message: &str) {
            let level = match level {
                LogLevel::Trace => h::LogLevel::Trace,
                LogLevel::Debug => h::LogLevel::Debug,
                LogLevel::Info => h::LogLevel::Info,
                LogLevel::Warn => h::LogLevel::Warn,
                LogLevel::Error => h::LogLevel::Error,
            };
            h::log(level, message);
        }
        fn repository_exists(&self, repository: &str) -> Result<bool, String> {
            h::repository_exists(repository)
        }
    }

    /// Implements the WIT exports for any [`Flavor`].
    pub struct Adapter<F>(PhantomData<F>);

    impl<F: Flavor> w::Guest for Adapter<F> {
        fn metadata() -> w::FlavorMetadata {
            let m = F::metadata();
            w::FlavorMetadata {
                name: m.name,
                display_name: m.display_name,
                description: m.description,
                docs_url: m.docs_url,
                logo_url: m.logo_url,
                config_schema: m.config_schema,
                capabilities: m
                    .capabilities
                    .into_iter()
                    .map(|c| match c {
                        Capability::RepositoryExists => w::Capability::RepositoryExists,
                    })
                    .collect(),
            }
        }

        fn validate_config(config: String) -> Result<String, Vec<w::ConfigIssue>> {
            F::validate_config(&WasmHost, &config).map_err(|issues| {
                issues
                    .into_iter()
                    .map(|i| w::ConfigIssue {
                        field: i.field,
                        message: i.message,
                    })
                    .collect()
            })
        }

        fn prepare_image_push(config: String, image: w::ImageReference) -> w::PushDecision {
            let image = ImageReference {
                domain: image.domain,
                path: image.path,
                tag: image.tag,
                digest: image.digest,
                name: image.name,
            };
            match F::prepare_image_push(&WasmHost, &config, &image) {
                PushDecision::Approve(warnings) => w::PushDecision::Approve(warnings),
                PushDecision::Deny(reason) => w::PushDecision::Deny(reason),
            }
        }
    }
}

/// Exports a [`Flavor`] implementation as the component's `flavor` interface.
/// Expands to nothing outside wasm, so the crate also builds natively.
#[macro_export]
macro_rules! export_flavor {
    ($flavor:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type FlavorboxExport = $crate::wasm::Adapter<$flavor>;
            $crate::bindings::export_raw!(FlavorboxExport);
        };
    };
}
