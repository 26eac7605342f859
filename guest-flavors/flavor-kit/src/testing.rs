//! Fakes and assertions for the native unit tests of flavors. A normal module
//! (not `cfg(test)`) so every flavor crate's tests can use it; unused in the
//! wasm build, where it costs nothing.

use std::cell::RefCell;

use crate::{ConfigIssue, Host, ImageInfo, ImageReference, Layer, LogLevel, Platform};

/// A host that answers `repository-exists` with a fixed answer and records
/// what it was asked and logged.
pub struct FakeHost {
    /// What `repository_exists` returns.
    pub answer: Result<bool, String>,
    /// Every repository asked about, in order.
    pub asked: RefCell<Vec<String>>,
    /// Every line logged, in order.
    pub logs: RefCell<Vec<(LogLevel, String)>>,
}

impl FakeHost {
    /// A host answering every `repository_exists` with `answer`.
    pub fn new(answer: Result<bool, String>) -> Self {
        FakeHost {
            answer,
            asked: RefCell::new(Vec::new()),
            logs: RefCell::new(Vec::new()),
        }
    }
}

impl Host for FakeHost {
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn repository_exists(&self, repository: &str) -> Result<bool, String> {
        self.asked.borrow_mut().push(repository.to_string());
        self.answer.clone()
    }
}

/// An image reference as the host would hand it in: `domain/path:tag`.
pub fn image(domain: &str, path: &str, tag: &str) -> ImageReference {
    ImageReference {
        domain: domain.to_string(),
        path: path.to_string(),
        tag: Some(tag.to_string()),
        digest: None,
        name: format!("{domain}/{path}"),
    }
}

/// The info the host would hand in for a small, whole (nothing truncated)
/// image built for `platform` (`os/arch` or `os/arch/variant`): two layers of
/// known sizes (3 MiB compressed, 8 MiB uncompressed in all), built a day
/// ago, running as `app`, with one label (`org.opencontainers.image.source`)
/// and one environment variable name (`PATH`).
pub fn image_info(platform: &str) -> ImageInfo {
    let mut parts = platform.splitn(3, '/');
    let os = parts.next().unwrap_or_default().to_string();
    let architecture = parts.next().unwrap_or_default().to_string();
    let variant = parts.next().map(str::to_string);
    const MIB: u64 = 1 << 20;
    ImageInfo {
        platform: Platform {
            os,
            architecture,
            variant,
        },
        config_digest: format!("sha256:{}", "c".repeat(64)),
        created: Some("2025-01-01T00:00:00Z".into()),
        age_seconds: Some(86_400),
        user: "app".into(),
        labels: vec![(
            "org.opencontainers.image.source".into(),
            "https://example.com/app".into(),
        )],
        exposed_ports: vec!["8080/tcp".into()],
        entrypoint: vec!["/app".into()],
        cmd: vec![],
        env_names: vec!["PATH".into()],
        layer_count: 2,
        layers: vec![
            Layer {
                digest: format!("sha256:{}", "a".repeat(64)),
                compressed_size: Some(2 * MIB),
                uncompressed_size: Some(5 * MIB),
            },
            Layer {
                digest: format!("sha256:{}", "b".repeat(64)),
                compressed_size: Some(MIB),
                uncompressed_size: Some(3 * MIB),
            },
        ],
        compressed_size: Some(3 * MIB),
        uncompressed_size: Some(8 * MIB),
        truncated: vec![],
    }
}

/// The issues of a rejected config; panics (showing the config) if it was accepted.
pub fn issues(result: Result<String, Vec<ConfigIssue>>) -> Vec<ConfigIssue> {
    match result {
        Ok(config) => panic!("expected issues, config was accepted: {config}"),
        Err(issues) => issues,
    }
}

/// Asserts that some issue is on `field` and its message contains every one
/// of `needles`.
pub fn assert_issue(issues: &[ConfigIssue], field: &str, needles: &[&str]) {
    assert!(
        issues
            .iter()
            .any(|i| i.field == field && needles.iter().all(|n| i.message.contains(n))),
        "no issue on `{field}` containing {needles:?} in {issues:#?}"
    );
}

/// The normalised config of an accepted config, parsed; panics with the
/// issues if it was rejected.
pub fn accepted(result: Result<String, Vec<ConfigIssue>>) -> serde_json::Value {
    match result {
        Ok(config) => serde_json::from_str(&config).expect("normalised config is JSON"),
        Err(issues) => panic!("expected the config to be accepted: {issues:#?}"),
    }
}

/// Asserts what every flavor's metadata must satisfy: the expected `name`,
/// a docs URL, and a strict JSON Schema requiring `uri` with examples.
pub fn assert_metadata(metadata: &crate::Metadata, name: &str) {
    assert_eq!(metadata.name, name);
    assert!(!metadata.display_name.is_empty());
    assert!(!metadata.description.is_empty());
    assert!(
        metadata.docs_url.starts_with("https://"),
        "{}",
        metadata.docs_url
    );
    let schema: serde_json::Value =
        serde_json::from_str(&metadata.config_schema).expect("config schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["uri"]));
    let examples = schema["properties"]["uri"]["examples"]
        .as_array()
        .expect("uri examples");
    assert!(!examples.is_empty());
    assert!(schema["properties"]["uri"]["description"].is_string());
}
