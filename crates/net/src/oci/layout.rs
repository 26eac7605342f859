//! The documents of a Wasm component artifact and of its cosign signature,
//! built and checked as pure functions (table-tested, no network).

use serde::{Deserialize, Serialize};

/// Media type of the manifest of every artifact written and read.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of a Wasm artifact's config (CNCF Wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the one layer: the component itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Media type of a cosign signature layer (the simple-signing payload).
pub const SIGNATURE_LAYER_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of a cosign signature manifest's config.
pub const SIGNATURE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The layer annotation cosign keeps the base64 signature in.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation OCI tools name the layer's file by.
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The largest manifest read (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The largest config or signature payload read.
pub const MAX_SMALL_BLOB_BYTES: u64 = 64 * 1024;
/// The most signature layers looked at under one signature tag.
pub const MAX_SIGNATURES: usize = 16;

/// `sha256:<hex>` of `bytes`, and whether a digest is one: the registry
/// client's rules, which a pull and a push share.
pub use crate::registry_api::session::{is_digest as is_sha256_digest, sha256_digest};

/// A content descriptor: media type, digest, size, annotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    pub media_type: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Annotations (a cosign signature lives in one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    /// The descriptor of `bytes` with `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: None,
        }
    }
}

/// An OCI image manifest, the fields Flavorbox reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (optional in the spec; always written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
}

impl Manifest {
    /// The manifest as the bytes pushed (and hashed into its digest).
    pub fn to_bytes(&self) -> Result<Vec<u8>, LayoutError> {
        serde_json::to_vec(self).map_err(|e| LayoutError::Unwritable(e.to_string()))
    }
}

/// The blobs and manifest of one artifact, ready to push.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The config blob.
    pub config: Vec<u8>,
    /// The layer blobs, in manifest order.
    pub layers: Vec<Vec<u8>>,
    /// The manifest naming them.
    pub manifest: Manifest,
}

/// The artifact for a component, as `wkg oci push` lays it out: a
/// `WasmConfig` config (`created` fixed at the epoch, so the same component
/// always publishes to the same digest) and the component as the one layer.
pub fn wasm_artifact(component: &[u8], title: &str) -> Artifact {
    let mut layer = Descriptor::of(WASM_LAYER_MEDIA_TYPE, component);
    layer.annotations = Some([(TITLE_ANNOTATION.to_string(), title.to_string())].into());
    let config = serde_json::json!({
        "created": "1970-01-01T00:00:00Z",
        "author": null,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer.digest],
        "component": null,
    });
    // A `Value` always writes (its keys are strings, its numbers finite):
    // `to_string` is serde_json's infallible form, the bytes `to_vec` gives.
    let config = config.to_string().into_bytes();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
        config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config),
        layers: vec![layer],
    };
    Artifact {
        config,
        layers: vec![component.to_vec()],
        manifest,
    }
}

/// Why a manifest is not a Wasm component artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// Not JSON of a manifest's shape.
    NotAManifest(String),
    /// A part has the wrong media type.
    MediaType {
        /// manifest, config or layer.
        part: &'static str,
        /// What was found.
        found: String,
        /// What is required.
        expected: &'static str,
    },
    /// Not exactly one layer.
    LayerCount(usize),
    /// A digest that is not `sha256:` and 64 lowercase hex digits.
    BadDigest(String),
    /// The manifest could not be written as JSON.
    Unwritable(String),
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutError::NotAManifest(why) => write!(f, "the manifest does not parse: {why}"),
            LayoutError::MediaType {
                part,
                found,
                expected,
            } => write!(
                f,
                "its {part} has media type `{found}`, expected `{expected}`"
            ),
            LayoutError::LayerCount(n) => write!(f, "it has {n} layers, expected exactly 1"),
            LayoutError::BadDigest(d) => {
                write!(
                    f,
                    "digest `{d}` is not `sha256:` and 64 lowercase hex digits"
                )
            }
            LayoutError::Unwritable(why) => {
                write!(f, "its manifest cannot be written as JSON: {why}")
            }
        }
    }
}

/// Reads a pulled manifest and checks it is a Wasm component artifact:
/// OCI manifest, Wasm config, exactly one `application/wasm` layer, sha256 digests.
pub fn check_wasm_manifest(bytes: &[u8]) -> Result<Manifest, LayoutError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| LayoutError::NotAManifest(e.to_string()))?;
    if let Some(found) = &manifest.media_type
        && found != MANIFEST_MEDIA_TYPE
    {
        return Err(LayoutError::MediaType {
            part: "manifest",
            found: found.clone(),
            expected: MANIFEST_MEDIA_TYPE,
        });
    }
    if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(LayoutError::MediaType {
            part: "config",
            found: manifest.config.media_type.clone(),
            expected: WASM_CONFIG_MEDIA_TYPE,
        });
    }
    if manifest.layers.len() != 1 {
        return Err(LayoutError::LayerCount(manifest.layers.len()));
    }
    let layer = &manifest.layers[0];
    if layer.media_type != WASM_LAYER_MEDIA_TYPE {
        return Err(LayoutError::MediaType {
            part: "layer",
            found: layer.media_type.clone(),
            expected: WASM_LAYER_MEDIA_TYPE,
        });
    }
    for digest in [&manifest.config.digest, &layer.digest] {
        if !is_sha256_digest(digest) {
            return Err(LayoutError::BadDigest(digest.clone()));
        }
    }
    Ok(manifest)
}

/// The tag cosign stores the signatures of manifest `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// A cosign signature artifact: one simple-signing payload layer with its
/// base64 signature in the layer's annotation.
pub fn signature_artifact(payload: &[u8], signature_base64: &str) -> Artifact {
    let mut layer = Descriptor::of(SIGNATURE_LAYER_MEDIA_TYPE, payload);
    layer.annotations = Some(
        [(
            SIGNATURE_ANNOTATION.to_string(),
            signature_base64.to_string(),
        )]
        .into(),
    );
    // Written as `wasm_artifact`'s config is: a `Value` cannot fail to write.
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(payload)]},
    })
    .to_string()
    .into_bytes();
    Artifact {
        manifest: Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
            config: Descriptor::of(SIGNATURE_CONFIG_MEDIA_TYPE, &config),
            layers: vec![layer],
        },
        config,
        layers: vec![payload.to_vec()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_artifact_reads_back_as_a_wasm_artifact() {
        let artifact = wasm_artifact(b"\0asm component", "acme.wasm");
        let bytes = artifact.manifest.to_bytes().expect("writes");
        let manifest = check_wasm_manifest(&bytes).expect("our own layout");
        assert_eq!(manifest.layers[0].digest, sha256_digest(b"\0asm component"));
        assert_eq!(manifest.layers[0].size, 14);
        assert_eq!(manifest.config.digest, sha256_digest(&artifact.config));
        // Reproducible: the same component, the same manifest digest.
        let again = wasm_artifact(b"\0asm component", "acme.wasm");
        assert_eq!(
            sha256_digest(&again.manifest.to_bytes().expect("writes")),
            sha256_digest(&bytes)
        );
    }

    #[test]
    fn manifests_of_other_shapes_are_refused_with_the_part_named() {
        let good = wasm_artifact(b"x", "x.wasm").manifest;
        let mut wrong_layer = good.clone();
        wrong_layer.layers[0].media_type = "application/vnd.oci.image.layer.v1.tar".into();
        let mut wrong_config = good.clone();
        wrong_config.config.media_type = "application/vnd.oci.image.config.v1+json".into();
        let mut two = good.clone();
        two.layers.push(good.layers[0].clone());
        let mut bad_digest = good.clone();
        bad_digest.layers[0].digest = "sha512:abc".into();
        let mut index = good.clone();
        index.media_type = Some("application/vnd.oci.image.index.v1+json".into());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                wrong_layer.to_bytes().expect("writes"),
                "its layer has media type `application/vnd.oci.image.layer.v1.tar`, expected `application/wasm`",
            ),
            (
                wrong_config.to_bytes().expect("writes"),
                "its config has media type",
            ),
            (
                two.to_bytes().expect("writes"),
                "it has 2 layers, expected exactly 1",
            ),
            (
                bad_digest.to_bytes().expect("writes"),
                "digest `sha512:abc`",
            ),
            (
                index.to_bytes().expect("writes"),
                "its manifest has media type",
            ),
            (b"not json".to_vec(), "does not parse"),
        ];
        for (bytes, want) in cases {
            let err = check_wasm_manifest(&bytes).expect_err(want).to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn configs_are_the_bytes_serde_json_writes_so_digests_do_not_move() {
        let wasm = wasm_artifact(b"x", "x.wasm").config;
        let signature = signature_artifact(b"payload", "c2ln").config;
        for config in [wasm, signature] {
            let value: serde_json::Value = serde_json::from_slice(&config).expect("json");
            assert_eq!(serde_json::to_vec(&value).expect("writes"), config);
        }
    }

    #[test]
    fn signature_tags_follow_cosign() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "ab".repeat(32)));
        assert!(is_sha256_digest(&d));
        assert!(!is_sha256_digest("sha256:AB"));
    }
}
