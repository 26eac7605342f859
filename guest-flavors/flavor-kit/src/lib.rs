//! Guest-side helper shared by every Rust flavor.
//!
//! A flavor's logic is written against the plain-Rust [`Flavor`] trait and
//! the [`Host`] trait, so it compiles and runs natively (unit tests, the
//! benchmark's native baseline). Only [`export_flavor!`] is wasm-specific: it
//! wires the logic to the `flavorbox:registry` WIT world with wit-bindgen.
//!
//! The bindings come from a frozen copy of the WIT, never from the working
//! `wit/`: `wit/v0.2` by default, `wit/v0.1` with the cargo feature `v0_1`
//! (one version per build; the test suite builds its 0.1 fixtures that way).
//! The plain-Rust API is the same for both: a 0.1 build passes no
//! [`ImageInfo`] and leaves [`Capability::ImageInfo`] out of the metadata.

use serde_json::{Map, Value};

pub use serde_json;

pub mod testing;
pub mod validate;

pub use validate::{ConfigCheck, RegistryUri};

/// The version of the `flavorbox:registry` WIT package this build of the
/// kit exports: `0.2.0`, or `0.1.0` with the feature `v0_1`.
pub const WIT_VERSION: &str = if cfg!(feature = "v0_1") {
    "0.1.0"
} else {
    "0.2.0"
};

/// A host capability a flavor may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Ask the host whether a repository exists on the component's registry.
    RepositoryExists,
    /// Receive [`ImageInfo`] in `prepare-image-push` (WIT 0.2; a 0.1 build
    /// drops it from the metadata, and its flavor never gets the info).
    ImageInfo,
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

/// The platform an image was built for, from its config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`, `windows`.
    pub os: String,
    /// e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// e.g. `v8` for `arm64/v8`, when the config names one.
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    /// `os/architecture`, or `os/architecture/variant`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// One layer of an image, base first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    /// The layer's digest (`algorithm:hex`).
    pub digest: String,
    /// Bytes as pushed (compressed), when the host knows them.
    pub compressed_size: Option<u64>,
    /// Bytes of the layer's tar stream, when the host knows them.
    pub uncompressed_size: Option<u64>,
}

/// What the host read from the image itself (the WIT 0.2 `image-info`
/// record), handed only to a flavor that asks for
/// [`Capability::ImageInfo`]. Environment variables come by name only; every
/// list and string is bounded by the host, and whatever it cut is named in
/// `truncated`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The platform from the image's config.
    pub platform: Platform,
    /// Digest of the image's config (`sha256:...`).
    pub config_digest: String,
    /// When the image was built (RFC 3339), if the config says.
    pub created: Option<String>,
    /// Whole seconds from `created` to the host's clock at the call.
    pub age_seconds: Option<u64>,
    /// The config's `User` (empty: the image runs as root).
    pub user: String,
    /// Labels `(key, value)`, sorted by key.
    pub labels: Vec<(String, String)>,
    /// Exposed ports, e.g. `8080/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// The config's `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// The config's `Cmd`.
    pub cmd: Vec<String>,
    /// Names of the config's `Env` entries, in order (never their values).
    pub env_names: Vec<String>,
    /// Number of layers (the true count, even when `layers` was cut).
    pub layer_count: u32,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// Sum of the layers' compressed sizes, when every one is known.
    pub compressed_size: Option<u64>,
    /// Sum of the layers' uncompressed sizes, when every one is known.
    pub uncompressed_size: Option<u64>,
    /// Fields the host cut to its bounds, by name (e.g. `labels`).
    pub truncated: Vec<String>,
}

impl ImageInfo {
    /// The value of the label `key`, if the image has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the host cut `field` (a field name such as `labels`).
    pub fn is_truncated(&self, field: &str) -> bool {
        self.truncated.iter().any(|t| t == field)
    }
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
    /// What the `prepare-image-push` export calls: as
    /// [`Flavor::prepare_image_push`], with what the host read from the
    /// image. `info` is `None` unless the flavor asks for
    /// [`Capability::ImageInfo`] and the host has the image (a check by name
    /// alone has none; a 0.1 build never has any). By default it ignores
    /// `info` and calls [`Flavor::prepare_image_push`]; a flavor with rules
    /// on the image overrides it.
    fn prepare_image_push_with_info(
        host: &dyn Host,
        config: &str,
        image: &ImageReference,
        info: Option<&ImageInfo>,
    ) -> PushDecision {
        let _ = info;
        Self::prepare_image_push(host, config, image)
    }
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

/// The WIT bindings (wasm only), from the frozen `wit/v0.2`.
#[cfg(all(target_arch = "wasm32", not(feature = "v0_1")))]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.2",
        world: "container-registry-flavor",
        pub_export_macro: true,
        export_macro_name: "export_raw",
        default_bindings_module: "flavor_kit::bindings",
    });
}

/// The WIT bindings (wasm only), from the frozen `wit/v0.1` (feature `v0_1`).
#[cfg(all(target_arch = "wasm32", feature = "v0_1"))]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1",
        world: "container-registry-flavor",
        pub_export_macro: true,
        export_macro_name: "export_raw",
        default_bindings_module: "flavor_kit::bindings",
    });
}

/// The adapter from the WIT bindings to [`Flavor`]; wasm only.
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

    fn metadata<F: Flavor>() -> w::FlavorMetadata {
        let m = F::metadata();
        w::FlavorMetadata {
            name: m.name,
            display_name: m.display_name,
            description: m.description,
            docs_url: m.docs_url,
            logo_url: m.logo_url,
            config_schema: m.config_schema,
            capabilities: m.capabilities.into_iter().filter_map(capability).collect(),
        }
    }

    #[cfg(not(feature = "v0_1"))]
    fn capability(c: Capability) -> Option<w::Capability> {
        Some(match c {
            Capability::RepositoryExists => w::Capability::RepositoryExists,
            Capability::ImageInfo => w::Capability::ImageInfo,
        })
    }

    /// 0.1 has no `image-info`: a flavor asking for it gets none.
    #[cfg(feature = "v0_1")]
    fn capability(c: Capability) -> Option<w::Capability> {
        match c {
            Capability::RepositoryExists => Some(w::Capability::RepositoryExists),
            Capability::ImageInfo => None,
        }
    }

    fn validate_config<F: Flavor>(config: String) -> Result<String, Vec<w::ConfigIssue>> {
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

    fn image(image: w::ImageReference) -> ImageReference {
        ImageReference {
            domain: image.domain,
            path: image.path,
            tag: image.tag,
            digest: image.digest,
            name: image.name,
        }
    }

    fn decision(decision: PushDecision) -> w::PushDecision {
        match decision {
            PushDecision::Approve(warnings) => w::PushDecision::Approve(warnings),
            PushDecision::Deny(reason) => w::PushDecision::Deny(reason),
        }
    }

    #[cfg(not(feature = "v0_1"))]
    fn image_info(info: w::ImageInfo) -> ImageInfo {
        ImageInfo {
            platform: Platform {
                os: info.platform.os,
                architecture: info.platform.architecture,
                variant: info.platform.variant,
            },
            config_digest: info.config_digest,
            created: info.created,
            age_seconds: info.age_seconds,
            user: info.user,
            labels: info.labels.into_iter().map(|l| (l.key, l.value)).collect(),
            exposed_ports: info.exposed_ports,
            entrypoint: info.entrypoint,
            cmd: info.cmd,
            env_names: info.env_names,
            layer_count: info.layer_count,
            layers: info
                .layers
                .into_iter()
                .map(|l| Layer {
                    digest: l.digest,
                    compressed_size: l.compressed_size,
                    uncompressed_size: l.uncompressed_size,
                })
                .collect(),
            compressed_size: info.compressed_size,
            uncompressed_size: info.uncompressed_size,
            truncated: info.truncated,
        }
    }

    #[cfg(not(feature = "v0_1"))]
    impl<F: Flavor> w::Guest for Adapter<F> {
        fn metadata() -> w::FlavorMetadata {
            metadata::<F>()
        }

        fn validate_config(config: String) -> Result<String, Vec<w::ConfigIssue>> {
            validate_config::<F>(config)
        }

        fn prepare_image_push(
            config: String,
            image: w::ImageReference,
            info: Option<w::ImageInfo>,
        ) -> w::PushDecision {
            let info = info.map(image_info);
            decision(F::prepare_image_push_with_info(
                &WasmHost,
                &config,
                &self::image(image),
                info.as_ref(),
            ))
        }
    }

    #[cfg(feature = "v0_1")]
    impl<F: Flavor> w::Guest for Adapter<F> {
        fn metadata() -> w::FlavorMetadata {
            metadata::<F>()
        }

        fn validate_config(config: String) -> Result<String, Vec<w::ConfigIssue>> {
            validate_config::<F>(config)
        }

        fn prepare_image_push(config: String, image: w::ImageReference) -> w::PushDecision {
            decision(F::prepare_image_push_with_info(
                &WasmHost,
                &config,
                &self::image(image),
                None,
            ))
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;

    impl Flavor for Plain {
        fn metadata() -> Metadata {
            unimplemented!()
        }
        fn validate_config(_: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
            Ok(config.to_string())
        }
        fn prepare_image_push(_: &dyn Host, config: &str, image: &ImageReference) -> PushDecision {
            PushDecision::Deny(format!("{config} {}", image.name))
        }
    }

    #[test]
    fn a_flavor_without_image_rules_ignores_the_info() {
        let image = testing::image("localhost:5000", "app", "1");
        let info = testing::image_info("linux/amd64");
        let expected = PushDecision::Deny("{} localhost:5000/app".into());
        assert_eq!(
            Plain::prepare_image_push_with_info(&NoHost, "{}", &image, Some(&info)),
            expected
        );
        assert_eq!(
            Plain::prepare_image_push_with_info(&NoHost, "{}", &image, None),
            expected
        );
    }

    #[test]
    fn image_info_helpers() {
        let mut info = testing::image_info("linux/arm64/v8");
        assert_eq!(info.platform.to_string(), "linux/arm64/v8");
        info.platform.variant = None;
        assert_eq!(info.platform.to_string(), "linux/arm64");
        assert_eq!(
            info.label("org.opencontainers.image.source"),
            Some("https://example.com/app")
        );
        assert_eq!(info.label("missing"), None);
        assert!(!info.is_truncated("labels"));
        info.truncated.push("labels".into());
        assert!(info.is_truncated("labels"));
        assert_eq!(info.layer_count as usize, info.layers.len());
    }

    #[test]
    fn wit_version_follows_the_feature() {
        let expected = if cfg!(feature = "v0_1") {
            "0.1.0"
        } else {
            "0.2.0"
        };
        assert_eq!(WIT_VERSION, expected);
    }
}
