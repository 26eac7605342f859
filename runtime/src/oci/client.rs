//! The registry exchange for flavor artifacts, over `oci-client`.
//!
//! `oci-client` speaks the distribution API (auth challenges, tokens, blob
//! uploads); everything Flavorbox relies on is checked here rather than
//! assumed of it: the manifest's digest and layout, every blob's digest and
//! size, and the size cap, enforced on the declared size before a download
//! starts and on the bytes as they arrive. Plain HTTP is used only for a
//! loopback registry or one the caller names as insecure; the destination
//! must pass the host's egress policy (the same check `registry_api` and
//! the Docker push use) before anything connects.

use std::time::Duration;

use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use sha2::{Digest as _, Sha256};

use super::error::OciError;
use super::layout::{self, Artifact, Descriptor, LayoutError};
use super::signature::{self, PublicKey, SignatureError, SigningKey};
use super::source::OciSource;
use crate::credentials::Credentials;
use crate::reference::RegistryUri;
use crate::registry_api::{AddressFilter, RegistryApi};

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may leave a read waiting.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("flavorbox/", env!("CARGO_PKG_VERSION"));

/// How to reach a registry for one operation.
#[derive(Debug, Clone, Default)]
pub struct OciOptions {
    /// Credentials from a Flavorbox secret; anonymous without.
    pub credentials: Option<Credentials>,
    /// Registries (`host[:port]`) the user allows plain HTTP for, besides loopback.
    pub insecure: Vec<String>,
    /// The largest component accepted, in bytes.
    pub max_bytes: u64,
}

/// A pulled, verified component.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component's bytes (their digest checked against the manifest).
    pub bytes: Vec<u8>,
    /// The manifest digest the source resolved to.
    pub manifest_digest: String,
    /// The id of the key whose signature verified, if one was required.
    pub signed_by: Option<String>,
}

/// Publishes, pulls and signs flavor artifacts under the host's egress policy.
#[derive(Debug, Clone)]
pub struct OciClient {
    egress: RegistryApi,
}

/// One operation's client, bound to a source.
struct Session<'a> {
    client: Client,
    auth: RegistryAuth,
    source: &'a OciSource,
    reference: oci_client::Reference,
    insecure_hint: bool,
}

impl OciClient {
    /// A client whose destinations must pass `egress`'s policy.
    pub fn new(egress: RegistryApi) -> OciClient {
        // reqwest's rustls is built without a crypto provider of its own:
        // use ring, the provider the rest of the host's TLS (ureq) uses.
        // An error means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        OciClient { egress }
    }

    /// Resolves the source's tag (or digest) to its manifest digest, reading nothing else.
    pub async fn resolve(
        &self,
        source: &OciSource,
        options: &OciOptions,
    ) -> Result<String, OciError> {
        let session = self
            .session(source, options, RegistryOperation::Pull)
            .await?;
        let (_, digest) = session.manifest().await?;
        Ok(digest)
    }

    /// Pulls the component at `source`: the manifest (its digest checked
    /// against a pinned one), its layout, the config and the layer, each blob
    /// checked against its digest and the layer against `max_bytes` before
    /// and while it downloads. With `keys`, a signature of the manifest
    /// digest by one of them is required before the layer is fetched.
    pub async fn pull(
        &self,
        source: &OciSource,
        options: &OciOptions,
        keys: &[PublicKey],
    ) -> Result<Pulled, OciError> {
        let session = self
            .session(source, options, RegistryOperation::Pull)
            .await?;
        let (manifest_bytes, manifest_digest) = session.manifest().await?;
        let manifest =
            layout::check_wasm_manifest(&manifest_bytes).map_err(|e| layout_error(source, e))?;
        let signed_by = match keys.is_empty() {
            true => None,
            false => Some(session.verify_signature(&manifest_digest, keys).await?),
        };
        let layer = &manifest.layers[0];
        if layer.size > options.max_bytes {
            return Err(OciError::TooLarge {
                reference: source.to_string(),
                size: layer.size,
                max: options.max_bytes,
            });
        }
        session
            .blob(&manifest.config, layout::MAX_SMALL_BLOB_BYTES, "config")
            .await?;
        let bytes = session.blob(layer, options.max_bytes, "layer").await?;
        Ok(Pulled {
            bytes,
            manifest_digest,
            signed_by,
        })
    }

    /// Publishes `component` at `target` (a tag) in the Wasm artifact
    /// layout; returns the manifest digest.
    pub async fn publish(
        &self,
        target: &OciSource,
        component: &[u8],
        title: &str,
        options: &OciOptions,
    ) -> Result<String, OciError> {
        self.push_artifact(target, &layout::wasm_artifact(component, title), options)
            .await
    }

    /// Pushes any artifact at `target`'s tag: its blobs, then its manifest.
    /// Returns the manifest digest.
    pub async fn push_artifact(
        &self,
        target: &OciSource,
        artifact: &Artifact,
        options: &OciOptions,
    ) -> Result<String, OciError> {
        if target.tag().is_none() || target.digest().is_some() {
            return Err(OciError::InvalidSource {
                source_text: target.to_string(),
                reason: "publish to a tag, like `oci://HOST/REPO:1.0`, without a digest (the registry computes it)".into(),
            });
        }
        let session = self
            .session(target, options, RegistryOperation::Push)
            .await?;
        let blobs = std::iter::once((&artifact.manifest.config, &artifact.config))
            .chain(artifact.manifest.layers.iter().zip(&artifact.layers));
        for (descriptor, bytes) in blobs {
            session
                .client
                .push_blob(&session.reference, bytes.clone(), &descriptor.digest)
                .await
                .map_err(|e| session.error(e))?;
        }
        let body = artifact.manifest.to_bytes();
        let content_type = http::HeaderValue::from_static(layout::MANIFEST_MEDIA_TYPE);
        session
            .client
            .push_manifest_raw(&session.reference, body.clone(), content_type)
            .await
            .map_err(|e| session.error(e))?;
        Ok(layout::sha256_digest(&body))
    }

    /// Signs the manifest `source` resolves to with `key`, cosign's way,
    /// and pushes the signature; returns (manifest digest, signature tag).
    pub async fn sign(
        &self,
        source: &OciSource,
        key: &SigningKey,
        options: &OciOptions,
    ) -> Result<(String, String), OciError> {
        let digest = match source.digest() {
            Some(digest) => digest.to_string(),
            None => self.resolve(source, options).await?,
        };
        let repository = format!("{}/{}", source.domain(), source.repository());
        let payload = signature::payload(&repository, &digest);
        let artifact = layout::signature_artifact(&payload, &key.sign(&payload));
        let tag = layout::signature_tag(&digest);
        self.push_artifact(&source.with_tag(&tag), &artifact, options)
            .await?;
        Ok((digest, tag))
    }

    /// Checks the egress policy, then opens a client for `source`.
    async fn session<'a>(
        &self,
        source: &'a OciSource,
        options: &OciOptions,
        operation: RegistryOperation,
    ) -> Result<Session<'a>, OciError> {
        let registry = source.domain().to_string();
        // The repository is part of the destination: an allowlist entry
        // with a path covers only repositories inside it.
        let destination = format!("{registry}/{}", source.repository());
        let uri = RegistryUri::parse(&destination).map_err(|e| OciError::InvalidSource {
            source_text: source.to_string(),
            reason: e.to_string(),
        })?;
        // Under a restricting policy (the server's), the registry's resolved
        // addresses must pass before anything connects; a policy that allows
        // every address (the CLI's) has nothing to check.
        if !matches!(self.egress.policy().addresses, AddressFilter::AllowAll) {
            let egress = self.egress.clone();
            tokio::task::spawn_blocking(move || egress.check_destination(&uri, CONNECT_TIMEOUT))
                .await
                .map_err(|e| OciError::Protocol {
                    registry: registry.clone(),
                    message: format!("egress check failed: {e}"),
                })?
                .map_err(|e| OciError::Refused {
                    registry: registry.clone(),
                    reason: e.to_string(),
                })?;
        }
        let plain_http = source.is_loopback()
            || options
                .insecure
                .iter()
                .any(|host| host.eq_ignore_ascii_case(&registry));
        // `try_from`, not `new`: `new` falls back to a default client (HTTPS
        // everywhere, no timeouts) when the configuration does not build.
        let client = Client::try_from(ClientConfig {
            protocol: match plain_http {
                true => ClientProtocol::HttpsExcept(vec![registry.clone()]),
                false => ClientProtocol::Https,
            },
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: USER_AGENT,
            // A Wasm artifact is one manifest, never an index to resolve.
            platform_resolver: None,
            ..ClientConfig::default()
        })
        .map_err(|e| OciError::Protocol {
            registry: registry.clone(),
            message: format!("cannot build the HTTP client: {e}"),
        })?;
        let auth = match &options.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let session = Session {
            reference: source.client_reference(),
            client,
            auth,
            source,
            insecure_hint: !plain_http,
        };
        session
            .client
            .auth(&session.reference, &session.auth, operation)
            .await
            .map_err(|e| session.error(e))?;
        Ok(session)
    }
}

impl Session<'_> {
    /// The source's manifest and its digest, checked against a pinned digest.
    async fn manifest(&self) -> Result<(Vec<u8>, String), OciError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(
                &self.reference,
                &self.auth,
                &[
                    layout::MANIFEST_MEDIA_TYPE,
                    "application/vnd.oci.image.index.v1+json",
                ],
            )
            .await
            .map_err(|e| self.error(e))?;
        if bytes.len() as u64 > layout::MAX_MANIFEST_BYTES {
            return Err(OciError::BadManifest {
                reference: self.source.to_string(),
                reason: format!(
                    "the manifest is {} bytes, more than {}",
                    bytes.len(),
                    layout::MAX_MANIFEST_BYTES
                ),
            });
        }
        let digest = layout::sha256_digest(&bytes);
        if let Some(pinned) = self.source.digest()
            && pinned != digest
        {
            return Err(OciError::DigestMismatch {
                reference: self.source.to_string(),
                part: "manifest",
                expected: pinned.to_string(),
                actual: digest,
            });
        }
        Ok((bytes.to_vec(), digest))
    }

    /// One blob, read to at most `max` bytes and checked against its digest and size.
    async fn blob(
        &self,
        descriptor: &Descriptor,
        max: u64,
        part: &'static str,
    ) -> Result<Vec<u8>, OciError> {
        let too_large = |size: u64| OciError::TooLarge {
            reference: self.source.to_string(),
            size,
            max,
        };
        if descriptor.size > max {
            return Err(too_large(descriptor.size));
        }
        let wanted = OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: i64::try_from(descriptor.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&self.reference, &wanted)
            .await
            .map_err(|e| self.error(e))?;
        let mut bytes = Vec::new();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // oci-client checks the digest at the end of the stream too;
                // once every declared byte is here, its refusal is reported
                // below with the digest of what was received.
                Err(_) if bytes.len() as u64 == descriptor.size => break,
                Err(e) => {
                    return Err(OciError::Unreachable {
                        registry: self.source.domain().to_string(),
                        message: format!("reading the {part}: {e}"),
                        hint: String::new(),
                    });
                }
            };
            let received = (bytes.len() + chunk.len()) as u64;
            if received > max {
                return Err(too_large(received));
            }
            if received > descriptor.size {
                // More bytes than the manifest declares: not the content named.
                hasher.update(&chunk);
                return Err(OciError::DigestMismatch {
                    reference: self.source.to_string(),
                    part,
                    expected: descriptor.digest.clone(),
                    actual: format!("more than the {} bytes declared", descriptor.size),
                });
            }
            hasher.update(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != descriptor.digest {
            return Err(OciError::DigestMismatch {
                reference: self.source.to_string(),
                part,
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        if bytes.len() as u64 != descriptor.size {
            return Err(OciError::DigestMismatch {
                reference: self.source.to_string(),
                part,
                expected: format!("{} bytes", descriptor.size),
                actual: format!("{} bytes", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// Requires a signature of `digest` by one of `keys` under cosign's
    /// signature tag; returns the id of the key that verified.
    async fn verify_signature(&self, digest: &str, keys: &[PublicKey]) -> Result<String, OciError> {
        let tag = layout::signature_tag(digest);
        let signature_source = self.source.with_tag(&tag);
        let refused = |error: SignatureError| OciError::Signature {
            reference: self.source.to_string(),
            error,
        };
        let reference = signature_source.client_reference();
        let manifest = self
            .client
            .pull_manifest_raw(&reference, &self.auth, &[layout::MANIFEST_MEDIA_TYPE])
            .await;
        let manifest = match manifest.map_err(|e| self.error(e)) {
            Ok((bytes, _)) => bytes,
            Err(OciError::NotFound { .. }) => {
                return Err(refused(SignatureError::Missing {
                    digest: digest.to_string(),
                    tag,
                }));
            }
            Err(e) => return Err(e),
        };
        let manifest: layout::Manifest =
            serde_json::from_slice(&manifest).map_err(|e| OciError::BadManifest {
                reference: signature_source.to_string(),
                reason: format!("the signature manifest does not parse: {e}"),
            })?;
        let signatures = Session {
            client: self.client.clone(),
            auth: self.auth.clone(),
            source: &signature_source,
            reference,
            insecure_hint: self.insecure_hint,
        };
        let mut reasons = Vec::new();
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == layout::SIGNATURE_LAYER_MEDIA_TYPE)
            .take(layout::MAX_SIGNATURES)
        {
            let Some(sig) = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(layout::SIGNATURE_ANNOTATION))
            else {
                reasons.push("a signature layer has no signature annotation".to_string());
                continue;
            };
            let payload = signatures
                .blob(layer, layout::MAX_SMALL_BLOB_BYTES, "signature payload")
                .await?;
            for key in keys {
                match signature::verify(key, digest, &payload, sig) {
                    Ok(()) => return Ok(key.id().to_string()),
                    Err(why) => reasons.push(why),
                }
            }
        }
        if reasons.is_empty() {
            reasons.push(format!("`{tag}` holds no cosign signature layer"));
        }
        reasons.dedup();
        Err(refused(SignatureError::Untrusted {
            digest: digest.to_string(),
            keys: keys
                .iter()
                .map(|k| k.short_id())
                .collect::<Vec<_>>()
                .join(", "),
            reasons: reasons.join("; "),
        }))
    }

    /// Classifies an `oci-client` error for this session's source.
    fn error(&self, error: oci_client::errors::OciDistributionError) -> OciError {
        OciError::from_client(
            self.source.domain(),
            &self.source.to_string(),
            self.insecure_hint,
            error,
        )
    }
}

/// A layout refusal as the error for `source`.
fn layout_error(source: &OciSource, error: LayoutError) -> OciError {
    match error {
        LayoutError::MediaType {
            part,
            found,
            expected,
        } => OciError::WrongMediaType {
            reference: source.to_string(),
            part,
            found: found.chars().take(200).collect(),
            expected,
        },
        other => OciError::BadManifest {
            reference: source.to_string(),
            reason: other.to_string(),
        },
    }
}
