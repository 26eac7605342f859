//! What the host reads from an image for a flavor's `prepare-image-push`
//! (`image-info` of `flavorbox:registry@0.2`): from an uploaded archive on a
//! server, or from the local Docker engine on the CLI.
//!
//! Nothing here is taken from a claim. An archive is read through by the
//! push's own reader ([`distribution`](crate::push::distribution)), the
//! same index, links and limits, so the check and the push see one image
//! the same way: the config digest is the sha256 of the config bytes the
//! archive holds, every layer is hashed against the digest it is named by,
//! and its sizes are the bytes in the archive and the bytes it decoded to,
//! counted against the image's unpacked limit as they stream. The engine's
//! inspect is the engine's own record of an image it holds, and its history
//! gives each layer's uncompressed size when its steps match the layers.
//!
//! [`ImageFacts::from_config`] bounds the record and keeps env names only.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{HistoryResponseItem, ImageInspect};
use flavorbox_grammar::image::RunConfig;
use flavorbox_grammar::{ImageConfig, ImageFacts, LayerFacts};

use crate::push::distribution::{CancelOnDrop, ImageContents, read_image};
use crate::push::{ArchiveLimits, PushError};
use crate::registry_api::session::sha256_digest;

#[cfg(test)]
mod tests;

/// The facts of the single image in the tarball at `path` (what `docker
/// save` writes, or an OCI image layout naming one platform's image), read
/// as [`push_archive`](crate::push::distribution::push_archive) reads it,
/// within `limits`, at `now_unix` seconds on the host's clock. Blocking: it
/// reads every layer through (run it off the async runtime, or use
/// [`archive_facts_async`]).
pub fn archive_facts(
    path: &Path,
    limits: &ArchiveLimits,
    now_unix: i64,
) -> Result<ImageFacts, PushError> {
    facts_of_contents(read_image(path, limits, &AtomicBool::new(false))?, now_unix)
}

/// [`archive_facts`] on a background thread at a lower priority, as the
/// push runs; refused past `limits.timeout`, and stopped at its next read
/// once the returned future is dropped.
pub async fn archive_facts_async(
    path: &Path,
    limits: &ArchiveLimits,
    now_unix: i64,
) -> Result<ImageFacts, PushError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (path, limits_copy) = (path.to_path_buf(), *limits);
    let work = crate::background::run("flavorbox-image-info", move || {
        read_image(&path, &limits_copy, &cancel)
    });
    let contents = tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| PushError::TooLarge {
            message: format!(
                "reading the image archive took longer than the server's limit of {} s",
                limits.timeout.as_secs()
            ),
        })?
        .ok_or_else(|| PushError::Stream {
            message: "the thread reading the image archive failed".into(),
        })??;
    facts_of_contents(contents, now_unix)
}

/// The record of an image read from an archive.
fn facts_of_contents(contents: ImageContents, now_unix: i64) -> Result<ImageFacts, PushError> {
    let config = ImageConfig::parse(&contents.config).map_err(PushError::BadArchive)?;
    let layers: Vec<LayerFacts> = contents
        .layers
        .into_iter()
        .map(|layer| LayerFacts {
            digest: layer.digest,
            compressed_size: layer.compressed,
            uncompressed_size: Some(layer.unpacked),
        })
        .collect();
    Ok(ImageFacts::from_config(
        &sha256_digest(&contents.config),
        &config,
        &layers,
        now_unix,
    ))
}

/// The facts of `image` (a reference or an image id) as the Docker engine
/// holds it, at `now_unix` seconds on the host's clock; `None` when the
/// engine has no such image. The config digest is the engine's image id;
/// layers are the config's diff ids, without per-layer sizes (the engine
/// does not give them); the uncompressed size is the engine's size of the
/// whole image; the compressed size is unknown until a push.
pub async fn engine_facts(
    docker: &Docker,
    image: &str,
    now_unix: i64,
) -> Result<Option<ImageFacts>, PushError> {
    // The name goes into the request's path as it is: nothing that would
    // end the path or change what it names.
    if image.is_empty()
        || image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'))
    {
        return Err(PushError::InvalidReference {
            image: image.to_string(),
            reason: "not an image reference or id".into(),
        });
    }
    // Both requests at once: the history only adds per-layer sizes.
    let (inspect, history) = tokio::join!(docker.inspect_image(image), docker.image_history(image));
    match inspect {
        Ok(inspect) => {
            let sizes = history.ok().and_then(|h| layer_sizes(&h, &inspect));
            facts_of_inspect(&inspect, image, sizes.as_deref(), now_unix).map(Some)
        }
        // Not there, or a name this engine cannot read (dockerd 20.10 takes
        // no bracketed IPv6 host): no image to show the flavor, as when it
        // is absent; a real push then fails at the engine with its reason.
        Err(BollardError::DockerResponseServerError {
            status_code: 404 | 400,
            ..
        }) => Ok(None),
        Err(e) => Err(engine_error(e, image)),
    }
}

/// Each layer's uncompressed size, oldest first, from the engine's history
/// of the image, when the history can be matched to the layers: the engine
/// lists one entry per config history step, newest first, with the size of
/// the step's layer, or 0 for a step that made none (`ENV`, `LABEL`, ...).
/// Only when the non-empty steps are exactly as many as the layers is each
/// step's size taken for its layer; otherwise (a layer of no content, a
/// config without history) the sizes stay unknown rather than guessed.
fn layer_sizes(history: &[HistoryResponseItem], inspect: &ImageInspect) -> Option<Vec<u64>> {
    let layers = inspect.root_fs.as_ref()?.layers.as_ref()?.len();
    let sizes: Vec<u64> = history
        .iter()
        .rev()
        .filter(|step| step.size > 0)
        .map(|step| u64::try_from(step.size).ok())
        .collect::<Option<_>>()?;
    (sizes.len() == layers && layers > 0).then_some(sizes)
}

/// An engine failure to inspect `image`.
fn engine_error(error: BollardError, image: &str) -> PushError {
    match error {
        BollardError::SocketNotFoundError(_)
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError => PushError::Connect {
            host: std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string()),
            message: error.to_string(),
        },
        other => PushError::Stream {
            message: format!("cannot inspect `{image}`: {other}"),
        },
    }
}

/// The record of the engine's inspect of `image`.
fn facts_of_inspect(
    inspect: &ImageInspect,
    image: &str,
    layer_sizes: Option<&[u64]>,
    now_unix: i64,
) -> Result<ImageFacts, PushError> {
    let id = inspect
        .id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| PushError::Stream {
            message: format!("the engine's inspect of `{image}` has no image id"),
        })?;
    // Read as the engine wrote it, whichever date type bollard was built
    // with: its serialisation of `Created` is RFC 3339.
    let created = serde_json::to_value(inspect)
        .ok()
        .and_then(|v| v.get("Created")?.as_str().map(str::to_string))
        // An image without a creation time is shown with Go's zero time
        // (API < 1.44) or none.
        .filter(|c| !c.is_empty() && !c.starts_with("0001-01-01T00:00:00"));
    let run = inspect.config.as_ref().map(|c| RunConfig {
        user: c.user.clone(),
        labels: c
            .labels
            .as_ref()
            .map(|labels| labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        exposed_ports: c.exposed_ports.as_ref().map(|ports| {
            ports
                .keys()
                .map(|port| (port.clone(), serde_json::json!({})))
                .collect::<BTreeMap<_, _>>()
        }),
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        env: c.env.clone(),
    });
    let config = ImageConfig {
        os: inspect.os.clone(),
        architecture: inspect.architecture.clone(),
        variant: inspect.variant.clone(),
        created,
        config: run,
    };
    let layers: Vec<LayerFacts> = inspect
        .root_fs
        .as_ref()
        .and_then(|r| r.layers.as_ref())
        .map(|layers| {
            layers
                .iter()
                .enumerate()
                .map(|(i, digest)| LayerFacts {
                    digest: digest.clone(),
                    compressed_size: None,
                    uncompressed_size: layer_sizes.and_then(|sizes| sizes.get(i).copied()),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut facts = ImageFacts::from_config(id, &config, &layers, now_unix);
    facts.uncompressed_size = inspect.size.and_then(|size| u64::try_from(size).ok());
    Ok(facts)
}
