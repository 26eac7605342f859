//! Flavors distributed as OCI artifacts: register from `oci://`, publish,
//! sign, and follow a tag (`flavor update`).
//!
//! The bytes come from [`flavorbox_net::oci`], verified against every digest and
//! the tenant's size limit; from there they take the path of a file upload
//! (`TenantApp::register`: checked against the world, stored by content
//! hash, precompiled), with the origin recorded in the same write, for a
//! new flavor and for an update alike. Signatures are required when the
//! caller names keys or the operator trusts some: every `*.pub` file in
//! `HOME/trusted-keys/`.

use super::flavors::{Registration, info_from_record};
use super::{AppError, FlavorInfo, FlavorUpdate, PublishReport, RegisterFromOci, TenantApp};
use flavorbox_net::oci::{OciClient, OciError, OciOptions, OciSource, PublicKey, SigningKey};
use flavorbox_store::{FlavorOrigin, FlavorRecord};

/// The directory, in the state home, of the operator's trusted public keys.
pub const TRUSTED_KEYS_DIR: &str = "trusted-keys";

impl TenantApp<'_> {
    /// Pulls the flavor at `request.source`, verifies it (digests, size,
    /// signature when keys are trusted or given) and registers it with its
    /// origin; nothing is stored when any check fails.
    pub async fn register_flavor_from_oci(
        &self,
        request: RegisterFromOci,
    ) -> Result<FlavorInfo, AppError> {
        let source = parse_source(&request.source)?;
        let options = self
            .oci_options(request.secret.as_deref(), request.insecure_registries)
            .await?;
        let keys = self.verify_keys(&request.verify_keys)?;
        let pulled = self.oci().pull(&source, &options, &keys).await?;
        let origin = FlavorOrigin {
            reference: source.to_string(),
            digest: pulled.manifest_digest,
            key: pulled.signed_by,
        };
        let registration = Registration::Add { expected: None };
        let registered = self
            .register(pulled.bytes, registration, Some(origin))
            .await?;
        Ok(registered.info)
    }

    /// Publishes registered flavor `name` at `target` (`oci://HOST/REPO:TAG`)
    /// in the Wasm artifact layout; returns the manifest digest.
    pub async fn publish_flavor(
        &self,
        name: &str,
        target: &str,
        secret: Option<&str>,
        insecure: Vec<String>,
    ) -> Result<PublishReport, AppError> {
        let target = parse_source(target)?;
        if self.app.builtin(name).await?.is_some() {
            return Err(AppError::Oci(OciError::InvalidSource {
                source_text: name.to_string(),
                reason: "built-in flavors ship with Flavorbox and are not published".into(),
            }));
        }
        let record = self
            .store
            .get_flavor(name)
            .await?
            .ok_or_else(|| AppError::UnknownFlavor(name.to_string()))?;
        let bytes = self.app.store.blob(&record.sha256).await?;
        let options = self.oci_options(secret, insecure).await?;
        let digest = self
            .oci()
            .publish(&target, &bytes, &format!("{name}.wasm"), &options)
            .await?;
        Ok(PublishReport {
            target: target.to_string(),
            digest,
        })
    }

    /// Signs the manifest `source` names with `key` and pushes the
    /// signature beside it (cosign's layout); returns (digest, signature tag).
    pub async fn sign_flavor_artifact(
        &self,
        source: &str,
        key: &SigningKey,
        secret: Option<&str>,
        insecure: Vec<String>,
    ) -> Result<(String, String), AppError> {
        let source = parse_source(source)?;
        let options = self.oci_options(secret, insecure).await?;
        Ok(self.oci().sign(&source, key, &options).await?)
    }

    /// Resolves the tag flavor `name` was registered from again; if it
    /// moved, pulls, verifies and checks the new artifact and replaces the
    /// flavor with it. A digest-pinned origin never moves.
    pub async fn update_flavor(
        &self,
        name: &str,
        secret: Option<&str>,
        insecure: Vec<String>,
        verify_keys: &[String],
    ) -> Result<FlavorUpdate, AppError> {
        if self.app.builtin(name).await?.is_some() {
            return Err(AppError::NoOrigin(name.to_string()));
        }
        let record = self
            .store
            .get_flavor(name)
            .await?
            .ok_or_else(|| AppError::UnknownFlavor(name.to_string()))?;
        let Some(origin) = record.origin.clone() else {
            return Err(AppError::NoOrigin(name.to_string()));
        };
        let unchanged = |record: FlavorRecord| -> Result<FlavorUpdate, AppError> {
            Ok(FlavorUpdate {
                previous_digest: origin.digest.clone(),
                flavor: info_from_record(record)?,
                moved: false,
                revalidate: Vec::new(),
            })
        };
        let source = parse_source(&origin.reference)?;
        let Some(following) = source.unpinned().filter(|_| source.digest().is_none()) else {
            return unchanged(record);
        };
        let options = self.oci_options(secret, insecure).await?;
        let keys = self.verify_keys(verify_keys)?;
        if let Some(key) = &origin.key
            && keys.is_empty()
        {
            return Err(AppError::Oci(OciError::Signature {
                reference: origin.reference.clone(),
                error: flavorbox_net::oci::SignatureError::BadKey {
                    path: "(none given)".into(),
                    reason: format!(
                        "the flavor was registered with a signature by key {key}; pass that key with --verify-key so the update is held to it too"
                    ),
                },
            }));
        }
        let oci = self.oci();
        let digest = oci.resolve(&following, &options).await?;
        if digest == origin.digest {
            return unchanged(record);
        }
        let pulled = oci
            .pull(&following.pinned(&digest)?, &options, &keys)
            .await?;
        // The upload's sequence, replacing the content the flavor has now.
        let pulled_from = FlavorOrigin {
            reference: origin.reference.clone(),
            digest,
            key: pulled.signed_by,
        };
        let replacement = Registration::Replace {
            name,
            previous: &record.sha256,
        };
        let registered = self
            .register(pulled.bytes, replacement, Some(pulled_from))
            .await?;
        Ok(FlavorUpdate {
            flavor: registered.info,
            previous_digest: origin.digest,
            moved: true,
            revalidate: registered.revalidate,
        })
    }

    /// The OCI client, under the tenant's egress policy.
    fn oci(&self) -> OciClient {
        OciClient::new(self.registry_api.clone())
    }

    /// Credentials from `secret`, the insecure registries, the tenant's size limit.
    async fn oci_options(
        &self,
        secret: Option<&str>,
        insecure: Vec<String>,
    ) -> Result<OciOptions, AppError> {
        Ok(OciOptions {
            credentials: self.credentials(secret).await?,
            insecure,
            max_bytes: self.app.config.tenant_component_bytes(self.tenant.name()) as u64,
        })
    }

    /// The keys a signature must come from: the operator's trusted keys
    /// and the PEM keys the caller gives. Empty: no signature required.
    fn verify_keys(&self, given: &[String]) -> Result<Vec<PublicKey>, AppError> {
        let mut keys = trusted_keys(&self.app.config.home().join(TRUSTED_KEYS_DIR))?;
        for (i, pem) in given.iter().enumerate() {
            keys.push(
                PublicKey::from_pem(pem, &format!("verify key {}", i + 1)).map_err(|error| {
                    AppError::Oci(OciError::Signature {
                        reference: "the request".into(),
                        error,
                    })
                })?,
            );
        }
        Ok(keys)
    }
}

/// Parses an `oci://` source as an application error.
fn parse_source(text: &str) -> Result<OciSource, AppError> {
    OciSource::parse(text).map_err(|reason| {
        AppError::Oci(OciError::InvalidSource {
            source_text: text.chars().take(300).collect(),
            reason,
        })
    })
}

/// Every `*.pub` key in `dir` (none if it does not exist), in name order.
pub fn trusted_keys(dir: &std::path::Path) -> Result<Vec<PublicKey>, AppError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(AppError::Config(format!(
                "cannot read the trusted keys in {}: {e}",
                dir.display()
            )));
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            PublicKey::read(p)
                .map_err(|e| AppError::Config(format!("trusted key {}: {e}", p.display())))
        })
        .collect()
}
