//! The registry exchange for flavor artifacts.
//!
//! A pull (`resolve`, `pull` and the signature it may require) goes through
//! the host's one egress-checked HTTP client ([`RegistryApi::session`]), like
//! every other request the host makes for a tenant: each connection goes only
//! to addresses the policy passed, no proxy is taken from the environment,
//! redirects and token realms are checked hop by hop and never carry
//! credentials elsewhere. Everything Flavorbox relies on is checked here:
//! the manifest's digest and layout, every blob's digest and size, and the
//! size cap, enforced on the declared size before a download starts and on
//! the bytes as they arrive. Plain HTTP is used only for a loopback registry
//! or one the caller names as insecure.
//!
//! Publishing and signing (the CLI's own operations, to registries its user
//! chose) speak through the maintained `oci-client` crate, after the same
//! destination check.

use std::io::Read as _;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};

use super::error::OciError;
use super::layout::{self, Artifact, Descriptor, LayoutError};
use super::signature::{self, PublicKey, SignatureError, SigningKey};
use super::source::OciSource;
use crate::credentials::Credentials;
use crate::registry_api::{Access, AddressFilter, RegistryApi, Session, SessionOptions};
use flavorbox_grammar::RegistryUri;

/// How long connecting to a registry may take (a publish).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may leave a read waiting (a publish).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a whole pull may take: manifest, signature, config and layer
/// (each read of the connection is held to the egress policy's exchange
/// limit besides, so a stalled registry ends it early).
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("flavorbox/", env!("CARGO_PKG_VERSION"));
/// The media types a pull asks for: an index is asked for too, so that
/// what a tag names is refused by the layout check, with its media type.
const PULL_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
/// The size of one read of a blob.
const READ_CHUNK: usize = 64 * 1024;

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

/// One pull's session with the source's repository, through the host's
/// egress-checked client.
struct Pull<'a> {
    session: Session<'a>,
    source: &'a OciSource,
    insecure_hint: bool,
}

/// One publish's `oci-client`, bound to a target.
struct Publish<'a> {
    client: Client,
    auth: RegistryAuth,
    source: &'a OciSource,
    reference: oci_client::Reference,
    insecure_hint: bool,
}

impl OciClient {
    /// A client whose destinations must pass `egress`'s policy.
    pub fn new(egress: RegistryApi) -> OciClient {
        // reqwest's rustls (a publish) is built without a crypto provider of
        // its own: use ring, the provider the rest of the host's TLS (ureq)
        // uses. An error means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        OciClient { egress }
    }

    /// Resolves the source's tag (or digest) to its manifest digest, reading nothing else.
    pub async fn resolve(
        &self,
        source: &OciSource,
        options: &OciOptions,
    ) -> Result<String, OciError> {
        let (egress, source, options) = (self.egress.clone(), source.clone(), options.clone());
        blocking(source.domain().to_string(), move || {
            let pull = Pull::open(&egress, &source, &options)?;
            Ok(pull.manifest()?.1)
        })
        .await
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
        let (egress, source, options, keys) = (
            self.egress.clone(),
            source.clone(),
            options.clone(),
            keys.to_vec(),
        );
        blocking(source.domain().to_string(), move || {
            Pull::open(&egress, &source, &options)?.component(&options, &keys)
        })
        .await
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
        // Written before anything is sent, so a failure leaves the registry as it was.
        let body = artifact
            .manifest
            .to_bytes()
            .map_err(|e| layout_error(target, e))?;
        let publish = self.publish_session(target, options).await?;
        let blobs = std::iter::once((&artifact.manifest.config, &artifact.config))
            .chain(artifact.manifest.layers.iter().zip(&artifact.layers));
        for (descriptor, bytes) in blobs {
            publish
                .client
                .push_blob(&publish.reference, bytes.clone(), &descriptor.digest)
                .await
                .map_err(|e| publish.error(e))?;
        }
        let content_type = http::HeaderValue::from_static(layout::MANIFEST_MEDIA_TYPE);
        publish
            .client
            .push_manifest_raw(&publish.reference, body.clone(), content_type)
            .await
            .map_err(|e| publish.error(e))?;
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
        self.push_artifact(&source.with_tag(&tag)?, &artifact, options)
            .await?;
        Ok((digest, tag))
    }

    /// Checks the egress policy, then opens an `oci-client` for a push to `source`.
    async fn publish_session<'a>(
        &self,
        source: &'a OciSource,
        options: &OciOptions,
    ) -> Result<Publish<'a>, OciError> {
        let registry = source.domain().to_string();
        // The repository is part of the destination: an allowlist entry
        // with a path covers only repositories inside it.
        let destination = format!("{registry}/{}", source.repository());
        let uri = RegistryUri::parse(&destination).map_err(|e| OciError::InvalidSource {
            source_text: source.to_string(),
            reason: e.to_string(),
        })?;
        // Under a restricting policy, the registry's resolved addresses must
        // pass before anything connects; a policy that allows every address
        // (the CLI's, the only one that publishes) has nothing to check.
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
        let plain_http = source.is_loopback() || is_insecure(&options.insecure, &registry);
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
            Some(c) => {
                RegistryAuth::Basic(c.username.clone(), c.password.expose_secret().to_owned())
            }
            None => RegistryAuth::Anonymous,
        };
        let publish = Publish {
            reference: source.client_reference(),
            client,
            auth,
            source,
            insecure_hint: !plain_http,
        };
        publish
            .client
            .auth(&publish.reference, &publish.auth, RegistryOperation::Push)
            .await
            .map_err(|e| publish.error(e))?;
        Ok(publish)
    }
}

/// Runs a pull's blocking `work` (the egress-checked client is synchronous)
/// off the async runtime.
async fn blocking<T: Send + 'static>(
    registry: String,
    work: impl FnOnce() -> Result<T, OciError> + Send + 'static,
) -> Result<T, OciError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| OciError::Protocol {
            registry,
            message: format!("the pull task failed: {e}"),
        })?
}

/// Whether the user named `registry` (`host[:port]`) as plain HTTP.
fn is_insecure(insecure: &[String], registry: &str) -> bool {
    insecure
        .iter()
        .any(|host| host.eq_ignore_ascii_case(registry))
}

impl<'a> Pull<'a> {
    /// Opens a session with `source`'s repository through `egress`: the
    /// policy's namespace rules first, then every connection's addresses.
    fn open(
        egress: &'a RegistryApi,
        source: &'a OciSource,
        options: &OciOptions,
    ) -> Result<Pull<'a>, OciError> {
        let registry =
            RegistryUri::parse(source.domain()).map_err(|e| OciError::InvalidSource {
                source_text: source.to_string(),
                reason: e.to_string(),
            })?;
        let plain_http = is_insecure(&options.insecure, source.domain());
        let insecure_hint = !(plain_http || registry.is_loopback());
        let session_options = SessionOptions {
            credentials: options.credentials.clone(),
            plain_http,
        };
        let session = egress
            .session(
                &registry,
                source.repository(),
                Access::Pull,
                &session_options,
                PULL_TIMEOUT,
            )
            .map_err(|e| {
                OciError::from_registry_api(source.domain(), &source.to_string(), insecure_hint, e)
            })?;
        Ok(Pull {
            session,
            source,
            insecure_hint,
        })
    }

    /// The component: manifest, layout, signature when `keys` are given,
    /// config, then the layer, every size and digest checked.
    fn component(&self, options: &OciOptions, keys: &[PublicKey]) -> Result<Pulled, OciError> {
        let (manifest_bytes, manifest_digest) = self.manifest()?;
        let manifest = layout::check_wasm_manifest(&manifest_bytes)
            .map_err(|e| layout_error(self.source, e))?;
        let signed_by = match keys.is_empty() {
            true => None,
            false => Some(self.verify_signature(&manifest_digest, keys)?),
        };
        let layer = &manifest.layers[0];
        if layer.size > options.max_bytes {
            return Err(OciError::TooLarge {
                reference: self.source.to_string(),
                size: layer.size,
                max: options.max_bytes,
            });
        }
        self.blob(
            self.source,
            &manifest.config,
            layout::MAX_SMALL_BLOB_BYTES,
            "config",
        )?;
        let bytes = self.blob(self.source, layer, options.max_bytes, "layer")?;
        Ok(Pulled {
            bytes,
            manifest_digest,
            signed_by,
        })
    }

    /// The source's manifest and its digest, checked against a pinned digest.
    fn manifest(&self) -> Result<(Vec<u8>, String), OciError> {
        // A digest wins over a tag: it names the content itself.
        let reference = self
            .source
            .digest()
            .or(self.source.tag())
            .unwrap_or("latest");
        let manifest = self
            .session
            .manifest(reference, PULL_ACCEPT, layout::MAX_MANIFEST_BYTES)
            .map_err(|e| self.error(e))?
            .ok_or_else(|| OciError::NotFound {
                reference: self.source.to_string(),
            })?;
        if let Some(pinned) = self.source.digest()
            && pinned != manifest.digest
        {
            return Err(OciError::DigestMismatch {
                reference: self.source.to_string(),
                part: "manifest",
                expected: pinned.to_string(),
                actual: manifest.digest,
            });
        }
        Ok((manifest.bytes, manifest.digest))
    }

    /// One blob of `source`'s manifest, read to at most `max` bytes and
    /// checked against its digest and size.
    fn blob(
        &self,
        source: &OciSource,
        descriptor: &Descriptor,
        max: u64,
        part: &'static str,
    ) -> Result<Vec<u8>, OciError> {
        let too_large = |size: u64| OciError::TooLarge {
            reference: source.to_string(),
            size,
            max,
        };
        let mismatch = |expected: String, actual: String| OciError::DigestMismatch {
            reference: source.to_string(),
            part,
            expected,
            actual,
        };
        let over_declared = || {
            mismatch(
                descriptor.digest.clone(),
                format!("more than the {} bytes declared", descriptor.size),
            )
        };
        if descriptor.size > max {
            return Err(too_large(descriptor.size));
        }
        // The digest becomes part of a URL: only a digest is asked for.
        if !layout::is_sha256_digest(&descriptor.digest) {
            return Err(OciError::BadManifest {
                reference: source.to_string(),
                reason: format!(
                    "the {part}'s digest `{}` is not sha256",
                    descriptor.digest.chars().take(100).collect::<String>()
                ),
            });
        }
        let (reader, length) = self
            .session
            .blob(&descriptor.digest)
            .map_err(|e| self.error(e))?;
        if let Some(length) = length {
            if length > max {
                return Err(too_large(length));
            }
            if length > descriptor.size {
                return Err(over_declared());
            }
        }
        // One byte more than declared is enough to know it is not the content named.
        let mut reader = reader.take(descriptor.size + 1);
        let mut bytes =
            Vec::with_capacity(usize::try_from(descriptor.size).unwrap_or(0).min(1 << 20));
        let mut hasher = Sha256::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(OciError::Unreachable {
                        registry: source.domain().to_string(),
                        message: format!("reading the {part}: {e}"),
                        hint: String::new(),
                    });
                }
            };
            let received = bytes.len() as u64 + n as u64;
            if received > max {
                return Err(too_large(received));
            }
            if received > descriptor.size {
                return Err(over_declared());
            }
            hasher.update(&chunk[..n]);
            bytes.extend_from_slice(&chunk[..n]);
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != descriptor.digest {
            return Err(mismatch(descriptor.digest.clone(), actual));
        }
        if bytes.len() as u64 != descriptor.size {
            return Err(mismatch(
                format!("{} bytes", descriptor.size),
                format!("{} bytes", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    /// Requires a signature of `digest` by one of `keys` under cosign's
    /// signature tag; returns the id of the key that verified.
    fn verify_signature(&self, digest: &str, keys: &[PublicKey]) -> Result<String, OciError> {
        let tag = layout::signature_tag(digest);
        let signature_source = self.source.with_tag(&tag)?;
        let refused = |error: SignatureError| OciError::Signature {
            reference: self.source.to_string(),
            error,
        };
        let Some(manifest) = self
            .session
            .manifest(
                &tag,
                layout::MANIFEST_MEDIA_TYPE,
                layout::MAX_MANIFEST_BYTES,
            )
            .map_err(|e| self.error(e))?
        else {
            return Err(refused(SignatureError::Missing {
                digest: digest.to_string(),
                tag,
            }));
        };
        let manifest: layout::Manifest =
            serde_json::from_slice(&manifest.bytes).map_err(|e| OciError::BadManifest {
                reference: signature_source.to_string(),
                reason: format!("the signature manifest does not parse: {e}"),
            })?;
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
            let payload = self.blob(
                &signature_source,
                layer,
                layout::MAX_SMALL_BLOB_BYTES,
                "signature payload",
            )?;
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

    /// Classifies a failed request of this pull.
    fn error(&self, error: crate::registry_api::RegistryApiError) -> OciError {
        OciError::from_registry_api(
            self.source.domain(),
            &self.source.to_string(),
            self.insecure_hint,
            error,
        )
    }
}

impl Publish<'_> {
    /// Classifies an `oci-client` error for this publish's target.
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
