//! The `acme-policy` flavor: any registry, with ACME's image policy on every
//! push. It asks the host for what it read from the image (`image-info`) and
//! denies an image without an `org.opencontainers.image.source` label, one
//! not built for linux/amd64, or one larger than the config's
//! `max_size_mib` (512 by default).

wit_bindgen::generate!({
    path: "wit",
    world: "container-registry-flavor",
});

use exports::flavorbox::registry::flavor::{
    Capability, ConfigIssue, FlavorMetadata, Guest, ImageInfo, ImageReference, PushDecision,
};
use flavorbox::registry::host::{LogLevel, log};
use serde_json::{Map, Value};

/// The label every image must carry: where its source lives.
const SOURCE_LABEL: &str = "org.opencontainers.image.source";
/// The one platform ACME runs.
const PLATFORM: &str = "linux/amd64";
const DEFAULT_MAX_SIZE_MIB: u64 = 512;
const MAX_SIZE_MIB_LIMIT: u64 = 1 << 20;
const MIB: f64 = 1024.0 * 1024.0;

/// JSON Schema (draft 2020-12) of the config, shown by `flavorbox flavor describe`.
const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ACME image policy",
  "type": "object",
  "additionalProperties": false,
  "required": ["uri"],
  "properties": {
    "uri": {"type": "string", "description": "The registry.", "examples": ["registry.acme.internal/ml"]},
    "max_size_mib": {
      "type": "integer",
      "minimum": 1,
      "maximum": 1048576,
      "default": 512,
      "description": "The largest image this registry accepts, in MiB."
    }
  }
}"#;

struct Policy;

impl Guest for Policy {
    fn metadata() -> FlavorMetadata {
        FlavorMetadata {
            name: "acme-policy".into(),
            display_name: "ACME image policy".into(),
            description: "Any registry, with ACME's image policy: an \
                          `org.opencontainers.image.source` label, linux/amd64, and a size cap."
                .into(),
            docs_url: "https://wiki.acme.internal/registry/policy".into(),
            logo_url: String::new(),
            config_schema: SCHEMA.into(),
            // Without this the host never reads the image: `info` is `None`.
            capabilities: vec![Capability::ImageInfo],
        }
    }

    fn validate_config(config: String) -> Result<String, Vec<ConfigIssue>> {
        let mut fields: Map<String, Value> = serde_json::from_str(&config)
            .map_err(|e| vec![issue("", format!("the config is not a JSON object: {e}"))])?;
        let mut issues = Vec::new();
        for key in fields.keys() {
            if key != "uri" && key != "max_size_mib" {
                issues.push(issue(
                    key,
                    format!("unknown field `{key}`; this flavor accepts: uri, max_size_mib"),
                ));
            }
        }
        // The host has already checked `uri`; the size cap is ours.
        match fields.get("max_size_mib") {
            None => {
                fields.insert("max_size_mib".into(), DEFAULT_MAX_SIZE_MIB.into());
            }
            Some(v)
                if v.as_u64()
                    .is_some_and(|n| (1..=MAX_SIZE_MIB_LIMIT).contains(&n)) => {}
            Some(_) => issues.push(issue(
                "max_size_mib",
                format!(
                    "`max_size_mib` must be a whole number of MiB from 1 to \
                     {MAX_SIZE_MIB_LIMIT}, e.g. {DEFAULT_MAX_SIZE_MIB}"
                ),
            )),
        }
        if issues.is_empty() {
            Ok(Value::Object(fields).to_string())
        } else {
            Err(issues)
        }
    }

    fn prepare_image_push(
        config: String,
        image: ImageReference,
        info: Option<ImageInfo>,
    ) -> PushDecision {
        let max_size_mib = serde_json::from_str::<Value>(&config)
            .ok()
            .and_then(|c| c["max_size_mib"].as_u64())
            .unwrap_or(DEFAULT_MAX_SIZE_MIB);
        // `None`: the host has only the name (a dry run of an image it does
        // not have). The push itself asks again, with the info.
        let Some(info) = info else {
            return PushDecision::Approve(vec![format!(
                "`{}` was checked by name only: its label, platform and size are checked when \
                 it is pushed",
                image.name
            )]);
        };
        let problems = policy_problems(&info, max_size_mib);
        if !problems.is_empty() {
            return PushDecision::Deny(format!(
                "`{}` breaks ACME's image policy: {}",
                image.name,
                problems.join("; ")
            ));
        }
        log(
            LogLevel::Info,
            &format!("acme-policy: `{}` meets the image policy", image.name),
        );
        PushDecision::Approve(Vec::new())
    }
}

// Exports `Policy` as the component's `flavorbox:registry/flavor` interface.
export!(Policy);

/// Every rule `info` breaks, in words for the user.
fn policy_problems(info: &ImageInfo, max_size_mib: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let source = info.labels.iter().find(|l| l.key == SOURCE_LABEL);
    if source.is_none_or(|l| l.value.trim().is_empty()) {
        // The host passes at most 64 labels and says when it cut some.
        let seen = if info.truncated.iter().any(|t| t == "labels") {
            " among the labels the host read"
        } else {
            ""
        };
        problems.push(format!(
            "it has no `{SOURCE_LABEL}` label{seen} (add `LABEL {SOURCE_LABEL}=<URL of its \
             source>` to its Dockerfile)"
        ));
    }
    let p = &info.platform;
    let platform = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    if platform != PLATFORM {
        problems.push(format!("it is built for {platform}, not {PLATFORM}"));
    }
    // Compressed when the host knows it (what the registry stores), else uncompressed.
    match info.compressed_size.or(info.uncompressed_size) {
        None => problems.push("the host could not measure its size".into()),
        Some(size) if size > max_size_mib * (1 << 20) => problems.push(format!(
            "it is {:.1} MiB, more than the {max_size_mib} MiB this registry accepts",
            size as f64 / MIB
        )),
        Some(_) => {}
    }
    problems
}

/// A config issue on `field` (empty: the config as a whole).
fn issue(field: &str, message: String) -> ConfigIssue {
    ConfigIssue {
        field: field.into(),
        message,
    }
}
