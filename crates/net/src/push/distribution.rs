//! Pushing an uploaded image archive straight to its registry over the
//! distribution API, with no Docker engine: what skopeo and crane do.
//!
//! The server receives a tarball: what `docker save` writes (a
//! `manifest.json` naming a config and layer tars), or an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`: what `skopeo copy …
//! oci-archive:` writes and `docker save` on a containerd-store engine).
//! The archive is indexed once (names read lexically; links followed
//! inside it only, a bounded number of hops), then each blob is read from
//! its place in the file and streamed to the registry through the host's
//! one egress-checked client ([`RegistryApi::session`]): every connection
//! goes to an address the policy allowed, every upload `Location` the
//! registry hands out is checked like a redirect, and nothing re-resolves
//! a name behind the policy's back. Nothing is loaded into an engine or
//! retagged, so one tenant's upload never touches another's images.
//!
//! Every layer is measured as it streams: its bytes against its declared
//! size and digest, and what it expands to (a gzip layer is decoded on the
//! side, only to be counted) against the image's unpacked cap, so a small
//! compressed bomb is refused before its end reaches the registry.
//! `docker save` layers are plain tars: they are gzip-compressed on the way
//! (and checked against the config's `diff_ids`), as `docker push` does.
//! An OCI layout's manifests go up byte for byte, so the digest the
//! registry reports is the archive's own. The digest reported is always
//! the registry's.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flate2::Compression;
use flate2::read::GzEncoder;
use flate2::write::GzDecoder;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{PushError, PushEvent, PushOutcome, target};
use crate::credentials::Credentials;
use crate::registry_api::session::{is_digest, sha256_digest};
use crate::registry_api::{Access, RegistryApi, RegistryApiError, Session, SessionOptions};
use flavorbox_grammar::{Reference, RegistryUri};

/// Most entries an archive may hold.
const MAX_ENTRIES: usize = 100_000;
/// Largest manifest, index or config read into memory.
const MAX_JSON: u64 = 4 << 20;
/// Most links followed to reach one entry.
const MAX_HOPS: usize = 16;
/// Most manifests an OCI index may name.
const MAX_MANIFESTS: usize = 64;
/// Most layers one image may have (the engine's own limit is 127).
const MAX_LAYERS: usize = 256;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What an image may cost the server as it is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// The most bytes the image's layers may expand to, all together.
    pub max_unpacked_bytes: u64,
    /// How long the whole push may take.
    pub timeout: Duration,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_unpacked_bytes: 8 << 30,
            timeout: Duration::from_secs(3600),
        }
    }
}

/// Pushes the single image in the tarball at `archive` to `target_ref` (a
/// tag, inside `registry`) through `api`, reporting progress to
/// `on_event`; stops at its next read once the returned future is dropped.
pub async fn push_archive(
    api: &RegistryApi,
    registry: &RegistryUri,
    archive: &Path,
    target_ref: &Reference,
    credentials: Option<&Credentials>,
    limits: ArchiveLimits,
    on_event: &mut (dyn FnMut(PushEvent) + Send),
) -> Result<PushOutcome, PushError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (api, registry, archive, target_ref, credentials) = (
        api.clone(),
        registry.clone(),
        archive.to_path_buf(),
        target_ref.clone(),
        credentials.cloned(),
    );
    // A thread of its own at a lower priority: compressing and hashing
    // layers takes only the CPU calls leave.
    let work = crate::background::run("flavorbox-push", move || {
        let mut emit = |event| {
            let _ = tx.send(event);
        };
        push_archive_blocking(
            &api,
            &registry,
            &archive,
            &target_ref,
            credentials.as_ref(),
            limits,
            &cancel,
            &mut emit,
        )
    });
    while let Some(event) = rx.recv().await {
        on_event(event);
    }
    work.await.ok_or_else(|| PushError::Stream {
        message: "the push thread failed".into(),
    })?
}

/// [`push_archive`], on the calling thread, stopping at the next read once
/// `cancel` is set.
#[allow(clippy::too_many_arguments)]
pub fn push_archive_blocking(
    api: &RegistryApi,
    registry: &RegistryUri,
    archive: &Path,
    target_ref: &Reference,
    credentials: Option<&Credentials>,
    limits: ArchiveLimits,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(PushEvent),
) -> Result<PushOutcome, PushError> {
    let target = target(target_ref)?;
    let repository =
        registry
            .repository(target_ref.path())
            .map_err(|e| PushError::InvalidReference {
                image: target.image.clone(),
                reason: e.to_string(),
            })?;
    let tarball = Tarball::index(archive)?;
    let image = tarball.image()?;
    let options = SessionOptions {
        credentials: credentials.cloned(),
        plain_http: false,
    };
    let session = api
        .session(
            registry,
            repository.as_str(),
            Access::PushPull,
            &options,
            limits.timeout,
        )
        .map_err(|e| registry_error(e, &target.image))?;
    on_event(PushEvent::Status {
        status: format!("The push refers to repository [{}]", target_ref.name()),
    });
    let mut pusher = Pusher {
        session: &session,
        tarball: &tarball,
        cancel,
        unpacked: 0,
        max_unpacked: limits.max_unpacked_bytes,
        image: &target.image,
        on_event,
    };
    let digest = match image {
        Image::Saved(saved) => pusher.push_saved(&saved, target.tag)?,
        Image::Layout(layout) => pusher.push_layout(&layout, target.tag)?,
    };
    on_event(PushEvent::Status {
        status: format!("{}: digest: {digest}", target.tag),
    });
    Ok(PushOutcome { digest })
}

/// Sets the flag when dropped: a push whose future is dropped stops.
pub(crate) struct CancelOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn bad(message: impl Into<String>) -> PushError {
    PushError::BadArchive(message.into())
}

/// A registry failure of the push of `image`, as the push layer says it.
fn registry_error(error: RegistryApiError, image: &str) -> PushError {
    match error {
        RegistryApiError::Auth { domain, message } => PushError::Auth {
            registry: domain,
            message,
        },
        RegistryApiError::Unreachable { domain, message } => PushError::Unreachable {
            registry: domain,
            message,
        },
        other => PushError::Registry {
            image: image.to_string(),
            message: other.to_string(),
        },
    }
}

/// One entry of the archive: where its bytes are, or where it links.
#[derive(Debug, Clone)]
enum Node {
    File {
        offset: u64,
        size: u64,
    },
    /// A symbolic link, resolved from its directory.
    Symlink(PathBuf),
    /// A hard link, resolved from the archive's root.
    HardLink(PathBuf),
    Other,
}

/// The archive's entries by normalised name.
struct Tarball {
    path: PathBuf,
    entries: HashMap<PathBuf, Node>,
}

/// A tar entry path without its `.` components, or `None` when it leaves
/// the archive (`..`, an absolute path).
fn normal_path(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(normal)
}

/// `target` read from directory `dir`, lexically; `None` when it leaves the archive.
fn join_inside(dir: &Path, target: &Path) -> Option<PathBuf> {
    let mut at = dir.to_path_buf();
    for component in target.components() {
        match component {
            Component::Normal(part) => at.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !at.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(at)
}

impl Tarball {
    /// Reads the archive's headers (not its contents).
    fn index(path: &Path) -> Result<Tarball, PushError> {
        let file =
            File::open(path).map_err(|e| bad(format!("cannot read the uploaded archive: {e}")))?;
        let mut archive = tar::Archive::new(file);
        let not_tar = |e: io::Error| {
            bad(format!(
                "the upload is not a tar archive ({e}): send what `docker save IMAGE` or `skopeo copy … oci-archive:FILE` writes"
            ))
        };
        let mut entries = HashMap::new();
        for entry in archive.entries().map_err(not_tar)? {
            let entry = entry.map_err(not_tar)?;
            if entries.len() >= MAX_ENTRIES {
                return Err(bad(format!(
                    "the archive holds more than {MAX_ENTRIES} entries; an image archive holds a few per layer"
                )));
            }
            let raw = entry.path().map_err(not_tar)?;
            let Some(name) = normal_path(&raw) else {
                return Err(bad(format!(
                    "archive entry `{}` lies outside the archive",
                    raw.display()
                )));
            };
            let header = entry.header();
            let node = match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Node::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => match entry.link_name().map_err(not_tar)? {
                    Some(target) => Node::Symlink(target.into_owned()),
                    None => Node::Other,
                },
                tar::EntryType::Link => match entry.link_name().map_err(not_tar)? {
                    Some(target) => Node::HardLink(target.into_owned()),
                    None => Node::Other,
                },
                _ => Node::Other,
            };
            if name.as_os_str().is_empty() {
                continue;
            }
            // A later entry of the same name replaces an earlier one, as
            // tar extraction does.
            entries.insert(name, node);
        }
        Ok(Tarball {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Where the bytes of entry `name` are, following links inside the archive.
    fn locate(&self, name: &str) -> Result<(u64, u64), PushError> {
        let missing = || bad(format!("the archive has no file `{name}`"));
        let mut at = normal_path(Path::new(name)).ok_or_else(missing)?;
        for _ in 0..MAX_HOPS {
            match self.entries.get(&at) {
                Some(Node::File { offset, size }) => return Ok((*offset, *size)),
                Some(Node::Symlink(target)) => {
                    let dir = at.parent().unwrap_or(Path::new("")).to_path_buf();
                    at = join_inside(&dir, target).ok_or_else(|| {
                        bad(format!("archive entry `{name}` links outside the archive"))
                    })?;
                }
                Some(Node::HardLink(target)) => {
                    at = normal_path(target).ok_or_else(|| {
                        bad(format!("archive entry `{name}` links outside the archive"))
                    })?;
                }
                Some(Node::Other) | None => return Err(missing()),
            }
        }
        Err(bad(format!(
            "archive entry `{name}` goes through more than {MAX_HOPS} links"
        )))
    }

    fn has(&self, name: &str) -> bool {
        self.locate(name).is_ok()
    }

    /// A reader of entry `name`'s bytes, and their number.
    fn open(&self, name: &str) -> Result<(io::Take<File>, u64), PushError> {
        let (offset, size) = self.locate(name)?;
        let mut file = File::open(&self.path)
            .map_err(|e| bad(format!("cannot read the uploaded archive: {e}")))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| bad(format!("cannot read the uploaded archive: {e}")))?;
        Ok((file.take(size), size))
    }

    /// Entry `name` read whole, refused past `MAX_JSON` bytes.
    fn read_small(&self, name: &str) -> Result<Vec<u8>, PushError> {
        let (reader, size) = self.open(name)?;
        if size > MAX_JSON {
            return Err(bad(format!(
                "archive file `{name}` is {size} bytes, over the limit of {MAX_JSON} for a manifest or config"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(MAX_JSON)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("cannot read `{name}` in the archive: {e}")))?;
        Ok(bytes)
    }

    /// The entry of blob `digest` in an OCI layout.
    fn blob_name(digest: &str) -> Result<String, PushError> {
        if !is_digest(digest) {
            return Err(bad(format!(
                "the archive names blob `{}`; only sha256 digests are supported",
                digest.chars().take(80).collect::<String>()
            )));
        }
        Ok(format!("blobs/sha256/{}", &digest["sha256:".len()..]))
    }

    /// The one image the archive holds.
    fn image(&self) -> Result<Image, PushError> {
        if self.has("oci-layout") && self.has("index.json") {
            match self.layout() {
                Ok(layout) => return Ok(Image::Layout(layout)),
                // `docker save` on a containerd-store engine writes both; its
                // index may name platforms it did not save.
                Err(e) if !self.has("manifest.json") => return Err(e),
                Err(_) => {}
            }
        }
        if self.has("manifest.json") {
            return self.saved().map(Image::Saved);
        }
        Err(bad(
            "the archive is not an image: it has neither `manifest.json` (what `docker save` writes) nor `oci-layout` and `index.json` (an OCI image layout); send `docker save IMAGE` or `skopeo copy … oci-archive:FILE`",
        ))
    }

    /// The `docker save` image.
    fn saved(&self) -> Result<SavedImage, PushError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "Layers")]
            layers: Vec<String>,
        }
        let bytes = self.read_small("manifest.json")?;
        let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "`manifest.json` is not what `docker save` writes: {e}"
            ))
        })?;
        let entry = match <[Entry; 1]>::try_from(entries) {
            Ok([one]) => one,
            Err(all) => {
                return Err(bad(format!(
                    "the archive holds {} images; save exactly one (`docker save IMAGE:TAG`)",
                    all.len()
                )));
            }
        };
        if entry.layers.len() > MAX_LAYERS {
            return Err(bad(format!(
                "the image has {} layers, over the limit of {MAX_LAYERS}",
                entry.layers.len()
            )));
        }
        let config = self.read_small(&entry.config)?;
        #[derive(Deserialize)]
        struct Config {
            rootfs: Option<RootFs>,
        }
        #[derive(Deserialize)]
        struct RootFs {
            diff_ids: Vec<String>,
        }
        let parsed: Config = serde_json::from_slice(&config).map_err(|e| {
            bad(format!(
                "the image config `{}` is not JSON: {e}",
                entry.config
            ))
        })?;
        let diff_ids = parsed.rootfs.map(|r| r.diff_ids).unwrap_or_default();
        if diff_ids.len() != entry.layers.len() {
            return Err(bad(format!(
                "the image config lists {} layers and `manifest.json` {}: the archive is damaged; save it again",
                diff_ids.len(),
                entry.layers.len()
            )));
        }
        for layer in &entry.layers {
            self.locate(layer)?;
        }
        Ok(SavedImage {
            config,
            layers: entry.layers.into_iter().zip(diff_ids).collect(),
        })
    }

    /// The OCI layout's image (or index of images).
    fn layout(&self) -> Result<LayoutImage, PushError> {
        let bytes = self.read_small("index.json")?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("`index.json` is not an OCI image index: {e}")))?;
        let top = match <[Descriptor; 1]>::try_from(index.manifests) {
            Ok([one]) => one,
            Err(all) => {
                return Err(bad(format!(
                    "the OCI layout names {} images; copy exactly one into it (`skopeo copy … oci-archive:FILE:TAG`)",
                    all.len()
                )));
            }
        };
        let top_bytes = self.verified_small(&top)?;
        let media_type = top
            .media_type
            .clone()
            .or_else(|| media_type_of(&top_bytes))
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        let children = if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            let nested: Index = serde_json::from_slice(&top_bytes)
                .map_err(|e| bad(format!("the image index {} is not JSON: {e}", top.digest)))?;
            if nested.manifests.len() > MAX_MANIFESTS {
                return Err(bad(format!(
                    "the image index names {} manifests, over the limit of {MAX_MANIFESTS}",
                    nested.manifests.len()
                )));
            }
            let mut children = Vec::new();
            for child in nested.manifests {
                let bytes = self.verified_small(&child).map_err(|_| {
                    bad(format!(
                        "the image index names manifest {} that the archive does not hold: copy one platform (`skopeo copy --override-arch …`) or all of them (`--all`)",
                        child.digest
                    ))
                })?;
                children.push(self.manifest(child, bytes)?);
            }
            children
        } else {
            Vec::new()
        };
        let manifest = if children.is_empty() {
            Some(self.manifest(top.clone(), top_bytes.clone())?)
        } else {
            None
        };
        Ok(LayoutImage {
            top: Blob {
                digest: top.digest,
                size: top.size,
                media_type,
            },
            top_bytes,
            manifest,
            children,
        })
    }

    /// A manifest of the layout and the blobs it names, all present.
    fn manifest(
        &self,
        descriptor: Descriptor,
        bytes: Vec<u8>,
    ) -> Result<LayoutManifest, PushError> {
        #[derive(Deserialize)]
        struct ManifestJson {
            config: Descriptor,
            #[serde(default)]
            layers: Vec<Descriptor>,
        }
        let parsed: ManifestJson = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "manifest {} is not an image manifest: {e}",
                descriptor.digest
            ))
        })?;
        if parsed.layers.len() > MAX_LAYERS {
            return Err(bad(format!(
                "manifest {} has {} layers, over the limit of {MAX_LAYERS}",
                descriptor.digest,
                parsed.layers.len()
            )));
        }
        let mut blobs = Vec::with_capacity(parsed.layers.len() + 1);
        for d in std::iter::once(parsed.config).chain(parsed.layers) {
            let name = Tarball::blob_name(&d.digest)?;
            let (_, size) = self.locate(&name)?;
            if size != d.size {
                return Err(bad(format!(
                    "blob {} is {size} bytes in the archive but {} in its manifest: the archive is damaged",
                    d.digest, d.size
                )));
            }
            // Required by the image spec, and it decides how the blob is
            // measured: read as "" it would count a gzip layer's compressed
            // bytes against the expansion limit, not what it expands to.
            let Some(media_type) = d.media_type else {
                return Err(bad(format!(
                    "blob {} has no mediaType in manifest {}: the archive is damaged; save it again",
                    d.digest, descriptor.digest
                )));
            };
            blobs.push(Blob {
                digest: d.digest,
                size: d.size,
                media_type,
            });
        }
        let media_type = descriptor
            .media_type
            .or_else(|| media_type_of(&bytes))
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        Ok(LayoutManifest {
            digest: descriptor.digest,
            media_type,
            bytes,
            blobs,
        })
    }

    /// The bytes of the blob `d` names, checked against its size and digest.
    fn verified_small(&self, d: &Descriptor) -> Result<Vec<u8>, PushError> {
        let bytes = self.read_small(&Tarball::blob_name(&d.digest)?)?;
        if bytes.len() as u64 != d.size || sha256_digest(&bytes) != d.digest {
            return Err(bad(format!(
                "blob {} in the archive does not match its digest or size: the archive is damaged",
                d.digest
            )));
        }
        Ok(bytes)
    }

    /// Whether entry `name` starts as gzip does (a `docker save` layer may).
    fn is_gzip(&self, name: &str) -> Result<bool, PushError> {
        let (mut probe, _) = self.open(name)?;
        let mut magic = [0u8; 2];
        Ok(probe.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b])
    }

    /// Entry `name` read to its end through a [`Meter`]: hashed, counted,
    /// and its expansion counted against what is left of `budget`.
    fn measure(
        &self,
        name: &str,
        expansion: Expansion,
        cancel: &AtomicBool,
        budget: Budget,
    ) -> Result<Measured, PushError> {
        let (reader, _) = self.open(name)?;
        let mut meter = Meter::new(reader, cancel, expansion, budget);
        io::copy(&mut meter, &mut io::sink()).map_err(|e| meter.error(e, name))?;
        meter.finish(name)
    }
}

/// One layer of an archive's image, measured by [`read_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MeasuredLayer {
    /// The digest the image names it by: its diff id in a `docker save`
    /// archive, its blob digest in an OCI layout; checked against its bytes.
    pub(crate) digest: String,
    /// Its bytes in the archive, when that is what the push sends (a gzip
    /// layer, any OCI layout blob); `None` for a plain `docker save` tar,
    /// which the push compresses on the way.
    pub(crate) compressed: Option<u64>,
    /// The bytes of its tar stream, counted as it was decoded.
    pub(crate) unpacked: u64,
}

/// The one image of an archive, read through by [`read_image`].
#[derive(Debug)]
pub(crate) struct ImageContents {
    /// The image config's bytes, as the archive holds them.
    pub(crate) config: Vec<u8>,
    /// Its layers, base first.
    pub(crate) layers: Vec<MeasuredLayer>,
}

/// Reads the single image in the tarball at `archive` as
/// [`push_archive_blocking`] reads it, without a registry: the same index,
/// links and checks, every layer hashed against the digest it is named by
/// and its expansion counted against `limits` (in the push's order, the
/// same budget); stops at the next read once `cancel` is set. An OCI index
/// must name one platform's manifest: the contents are one image's.
pub(crate) fn read_image(
    archive: &Path,
    limits: &ArchiveLimits,
    cancel: &AtomicBool,
) -> Result<ImageContents, PushError> {
    let tarball = Tarball::index(archive)?;
    let mut budget = Budget {
        used: 0,
        max: limits.max_unpacked_bytes,
    };
    match tarball.image()? {
        Image::Saved(saved) => {
            let mut layers = Vec::with_capacity(saved.layers.len());
            for (name, diff_id) in &saved.layers {
                let gzip = tarball.is_gzip(name)?;
                let expansion = if gzip {
                    Expansion::Gzip
                } else {
                    Expansion::None
                };
                let measured = tarball.measure(name, expansion, cancel, budget)?;
                check_diff_id(name, diff_id, &measured.unpacked_digest)?;
                budget.used += measured.unpacked;
                layers.push(MeasuredLayer {
                    digest: diff_id.clone(),
                    compressed: gzip.then_some(measured.count),
                    unpacked: measured.unpacked,
                });
            }
            Ok(ImageContents {
                config: saved.config,
                layers,
            })
        }
        Image::Layout(layout) => {
            let manifest = match (
                layout.manifest,
                <[LayoutManifest; 1]>::try_from(layout.children),
            ) {
                (Some(manifest), _) | (None, Ok([manifest])) => manifest,
                (None, Err(children)) => {
                    return Err(bad(format!(
                        "the archive holds an index of {} images (one per platform); copy one platform into it (`skopeo copy --override-os … --override-arch … oci-archive:FILE:TAG`)",
                        children.len()
                    )));
                }
            };
            // The manifest's first blob is its config: read whole (within
            // the limit of a config), then measured like the layers, as the
            // push sends and counts it.
            let Some((config_blob, layer_blobs)) = manifest.blobs.split_first() else {
                return Err(bad("the image manifest names no config"));
            };
            let config = tarball.verified_small(&Descriptor {
                media_type: Some(config_blob.media_type.clone()),
                digest: config_blob.digest.clone(),
                size: config_blob.size,
            })?;
            let mut layers = Vec::with_capacity(layer_blobs.len());
            for (at, blob) in manifest.blobs.iter().enumerate() {
                let expansion = expansion(&blob.media_type).map_err(bad)?;
                let name = Tarball::blob_name(&blob.digest)?;
                let measured = tarball.measure(&name, expansion, cancel, budget)?;
                if measured.digest != blob.digest || measured.count != blob.size {
                    return Err(bad(format!(
                        "blob {} in the archive does not match its digest or size: the archive is damaged",
                        blob.digest
                    )));
                }
                budget.used += measured.unpacked;
                if at > 0 {
                    layers.push(MeasuredLayer {
                        digest: blob.digest.clone(),
                        compressed: Some(measured.count),
                        unpacked: measured.unpacked,
                    });
                }
            }
            Ok(ImageContents { config, layers })
        }
    }
}

/// Refuses layer `name` whose tar stream hashed to `found` when the image
/// config names it `diff_id`.
fn check_diff_id(name: &str, diff_id: &str, found: &str) -> Result<(), PushError> {
    if diff_id != found {
        return Err(bad(format!(
            "layer `{name}` does not match the image config's diff id {diff_id}: the archive is damaged; save it again"
        )));
    }
    Ok(())
}

/// The `mediaType` a manifest names itself, if any.
fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(bytes).ok()?.media_type
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The image an archive holds.
enum Image {
    Saved(SavedImage),
    Layout(LayoutImage),
}

/// A `docker save` image: its config and each layer's entry with its diff id.
struct SavedImage {
    config: Vec<u8>,
    layers: Vec<(String, String)>,
}

/// A blob to push.
#[derive(Debug, Clone)]
struct Blob {
    digest: String,
    size: u64,
    media_type: String,
}

struct LayoutManifest {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
    blobs: Vec<Blob>,
}

/// An OCI layout's image: one manifest, or an index and its manifests.
struct LayoutImage {
    top: Blob,
    top_bytes: Vec<u8>,
    manifest: Option<LayoutManifest>,
    children: Vec<LayoutManifest>,
}

/// How a layer's bytes expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expansion {
    /// Not at all (a tar, a config, an artifact's blob).
    None,
    /// Gzip.
    Gzip,
}

/// How a layer's media type expands, or why it cannot be pushed.
fn expansion(media_type: &str) -> Result<Expansion, String> {
    if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
        Ok(Expansion::Gzip)
    } else if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
        Err(format!(
            "layers of type `{media_type}` are not supported yet: copy the image with gzip layers (`skopeo copy --dest-compress-format gzip …`)"
        ))
    } else {
        Ok(Expansion::None)
    }
}

/// Pushes one image's blobs and manifests through a session.
struct Pusher<'a, 's> {
    session: &'a Session<'s>,
    tarball: &'a Tarball,
    cancel: &'a AtomicBool,
    unpacked: u64,
    max_unpacked: u64,
    image: &'a str,
    on_event: &'a mut dyn FnMut(PushEvent),
}

impl Pusher<'_, '_> {
    fn registry(&self, error: RegistryApiError) -> PushError {
        registry_error(error, self.image)
    }

    fn layer_event(
        &mut self,
        digest: &str,
        status: &str,
        current: Option<u64>,
        total: Option<u64>,
    ) {
        let id = digest
            .strip_prefix("sha256:")
            .unwrap_or(digest)
            .chars()
            .take(12)
            .collect();
        (self.on_event)(PushEvent::Layer {
            id,
            status: status.to_string(),
            current,
            total,
        });
    }

    /// Pushes a `docker save` image and its Docker manifest under `tag`.
    fn push_saved(&mut self, saved: &SavedImage, tag: &str) -> Result<String, PushError> {
        let config_digest = sha256_digest(&saved.config);
        self.push_bytes(&config_digest, &saved.config)?;
        let mut layers = Vec::with_capacity(saved.layers.len());
        for (name, diff_id) in &saved.layers {
            layers.push(self.push_saved_layer(name, diff_id)?);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "size": saved.config.len(),
                "digest": config_digest,
            },
            "layers": layers.iter().map(|(digest, size)| serde_json::json!({
                "mediaType": DOCKER_LAYER_GZIP,
                "size": size,
                "digest": digest,
            })).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| bad(format!("cannot write the manifest: {e}")))?;
        self.before_tag()?;
        self.session
            .put_manifest(tag, DOCKER_MANIFEST, &bytes)
            .map_err(|e| self.registry(e))
    }

    /// Pushes small bytes already in memory as blob `digest`.
    fn push_bytes(&mut self, digest: &str, bytes: &[u8]) -> Result<(), PushError> {
        if self
            .session
            .has_blob(digest)
            .map_err(|e| self.registry(e))?
        {
            return Ok(());
        }
        let mut reader = bytes;
        let pending = self
            .session
            .stream_blob(&mut reader, Some(bytes.len() as u64))
            .map_err(|e| self.registry(e))?;
        self.session
            .finish_blob(pending, digest)
            .map_err(|e| self.registry(e))
    }

    /// Pushes one `docker save` layer (a plain tar, compressed on the way,
    /// or a gzip one as it is) and returns its digest and size as pushed.
    fn push_saved_layer(&mut self, name: &str, diff_id: &str) -> Result<(String, u64), PushError> {
        let (_, size) = self.tarball.locate(name)?;
        if self.tarball.is_gzip(name)? {
            // Hashed (and its expansion checked against the diff id) first,
            // then pushed as it is under the digest found.
            let measured =
                self.tarball
                    .measure(name, Expansion::Gzip, self.cancel, self.budget())?;
            check_diff_id(name, diff_id, &measured.unpacked_digest)?;
            let digest = measured.digest;
            self.push_entry(name, &digest, size, Expansion::Gzip)?;
            return Ok((digest, size));
        }
        let short = diff_id.to_string();
        self.layer_event(&short, "Pushing", Some(0), Some(size));
        let (reader, _) = self.tarball.open(name)?;
        let meter = Meter::new(reader, self.cancel, Expansion::None, self.budget());
        let mut compressed = Hashing::new(GzEncoder::new(meter, Compression::fast()));
        let pending = self.session.stream_blob(&mut compressed, None);
        let meter = compressed.inner.get_mut();
        let pending = match pending {
            Ok(pending) => pending,
            Err(e) => return Err(meter.stopped(name).unwrap_or_else(|| self.registry(e))),
        };
        let measured = meter.finish(name)?;
        check_diff_id(name, diff_id, &measured.digest)?;
        self.unpacked += measured.unpacked;
        let digest = compressed.digest();
        let pushed = compressed.count;
        self.session
            .finish_blob(pending, &digest)
            .map_err(|e| self.registry(e))?;
        self.layer_event(&digest, "Pushed", Some(pushed), Some(pushed));
        Ok((digest, pushed))
    }

    /// What is left of the image's unpacked budget.
    fn budget(&self) -> Budget {
        Budget {
            used: self.unpacked,
            max: self.max_unpacked,
        }
    }

    /// Pushes archive entry `name` as blob `digest` of `size` bytes, as it
    /// is, measured as it streams; skipped when the registry has it.
    fn push_entry(
        &mut self,
        name: &str,
        digest: &str,
        size: u64,
        expansion: Expansion,
    ) -> Result<(), PushError> {
        if self
            .session
            .has_blob(digest)
            .map_err(|e| self.registry(e))?
        {
            self.layer_event(digest, "Layer already exists", None, None);
            return Ok(());
        }
        self.layer_event(digest, "Pushing", Some(0), Some(size));
        let (reader, _) = self.tarball.open(name)?;
        let mut meter = Meter::new(reader, self.cancel, expansion, self.budget());
        let pending = self.session.stream_blob(&mut meter, Some(size));
        let pending = match pending {
            Ok(pending) => pending,
            Err(e) => return Err(meter.stopped(name).unwrap_or_else(|| self.registry(e))),
        };
        let measured = meter.finish(name)?;
        if measured.digest != digest || measured.count != size {
            return Err(bad(format!(
                "blob {digest} in the archive does not match its digest or size: the archive is damaged"
            )));
        }
        self.unpacked += measured.unpacked;
        self.session
            .finish_blob(pending, digest)
            .map_err(|e| self.registry(e))?;
        self.layer_event(digest, "Pushed", Some(size), Some(size));
        Ok(())
    }

    /// Pushes an OCI layout's blobs and manifests, the top one under `tag`.
    fn push_layout(&mut self, layout: &LayoutImage, tag: &str) -> Result<String, PushError> {
        let manifests = layout.manifest.iter().chain(&layout.children);
        for manifest in manifests.clone() {
            for blob in &manifest.blobs {
                let expansion = expansion(&blob.media_type).map_err(bad)?;
                let name = Tarball::blob_name(&blob.digest)?;
                self.push_entry(&name, &blob.digest, blob.size, expansion)?;
            }
        }
        if layout.manifest.is_none() {
            // An index: its manifests go up by digest first.
            for child in &layout.children {
                self.session
                    .put_manifest(&child.digest, &child.media_type, &child.bytes)
                    .map_err(|e| self.registry(e))?;
            }
        }
        self.before_tag()?;
        self.session
            .put_manifest(tag, &layout.top.media_type, &layout.top_bytes)
            .map_err(|e| self.registry(e))
    }

    /// The last look before the tag moves: a push stopped meanwhile (its
    /// job lost to another server, its deadline passed) moves no tag.
    fn before_tag(&self) -> Result<(), PushError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(stop_error(&Stop::Cancelled, "the manifest"));
        }
        Ok(())
    }
}

/// The unpacked bytes an image has used, and may use.
#[derive(Debug, Clone, Copy)]
struct Budget {
    used: u64,
    max: u64,
}

/// What a [`Meter`] measured.
#[derive(Debug)]
struct Measured {
    /// `sha256:` of the bytes read.
    digest: String,
    /// How many were read.
    count: u64,
    /// What they expand to.
    unpacked: u64,
    /// `sha256:` of the expanded bytes.
    unpacked_digest: String,
}

/// Why a [`Meter`] stopped a read.
#[derive(Debug, Clone)]
enum Stop {
    Cancelled,
    Unpacked { max: u64 },
    Corrupt(String),
    Read(String),
}

/// Reads an archive entry, hashing and counting it, and counting (and
/// hashing) what it expands to; stops once the image's unpacked budget is
/// spent or the push is cancelled.
struct Meter<'c, R> {
    inner: R,
    cancel: &'c AtomicBool,
    hash: Sha256,
    count: u64,
    expand: Expand,
    /// The image's whole unpacked limit, for messages.
    limit: u64,
    stop: Option<Stop>,
}

/// The expansion side of a [`Meter`].
enum Expand {
    /// The bytes are what is unpacked.
    Plain(Counter),
    /// Gzip, decoded into a counter.
    Gzip(Box<GzDecoder<Counter>>),
}

/// Counts and hashes what is written to it, refusing past `max`.
struct Counter {
    hash: Sha256,
    count: u64,
    max: u64,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.count += buf.len() as u64;
        if self.count > self.max {
            return Err(io::Error::other(UnpackedCap));
        }
        self.hash.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The error a [`Counter`] past its cap returns.
#[derive(Debug)]
struct UnpackedCap;

impl std::fmt::Display for UnpackedCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the unpacked cap is reached")
    }
}

impl std::error::Error for UnpackedCap {}

impl<'c, R: Read> Meter<'c, R> {
    fn new(inner: R, cancel: &'c AtomicBool, expansion: Expansion, budget: Budget) -> Self {
        let counter = Counter {
            hash: Sha256::new(),
            count: 0,
            max: budget.max.saturating_sub(budget.used),
        };
        Meter {
            inner,
            cancel,
            hash: Sha256::new(),
            count: 0,
            expand: match expansion {
                Expansion::None => Expand::Plain(counter),
                Expansion::Gzip => Expand::Gzip(Box::new(GzDecoder::new(counter))),
            },
            limit: budget.max,
            stop: None,
        }
    }

    /// Why the meter stopped a read, as the push's error, if it did.
    fn stopped(&self, name: &str) -> Option<PushError> {
        self.stop.as_ref().map(|stop| stop_error(stop, name))
    }

    /// The error of a failed copy: the meter's own reason, or the read's.
    fn error(&self, e: io::Error, name: &str) -> PushError {
        self.stopped(name)
            .unwrap_or_else(|| bad(format!("cannot read `{name}` in the archive: {e}")))
    }

    /// Ends the measure: the expansion must be complete.
    fn finish(&mut self, name: &str) -> Result<Measured, PushError> {
        if let Some(stop) = &self.stop {
            return Err(stop_error(stop, name));
        }
        let counter = match &mut self.expand {
            Expand::Plain(counter) => counter,
            Expand::Gzip(decoder) => {
                decoder
                    .try_finish()
                    .map_err(|e| bad(format!("layer `{name}` is not valid gzip: {e}")))?;
                decoder.get_mut()
            }
        };
        let digest = hex_digest(&self.hash);
        let unpacked_digest = hex_digest(&counter.hash);
        Ok(Measured {
            digest,
            count: self.count,
            unpacked: counter.count,
            unpacked_digest,
        })
    }
}

fn stop_error(stop: &Stop, name: &str) -> PushError {
    match stop {
        Stop::Cancelled => PushError::Stream {
            message: "the push was stopped".into(),
        },
        Stop::Unpacked { max } => PushError::TooLarge {
            message: format!(
                "the image's layers expand to more than the server's limit of {max} bytes (at `{name}`)"
            ),
        },
        Stop::Corrupt(e) => bad(format!("layer `{name}` is not valid gzip: {e}")),
        Stop::Read(e) => bad(format!("cannot read `{name}` in the archive: {e}")),
    }
}

impl<R: Read> Read for Meter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            self.stop = Some(Stop::Cancelled);
            return Err(io::Error::other("the push was stopped"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.stop = Some(Stop::Read(e.to_string()));
                return Err(e);
            }
        };
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        let fed = match &mut self.expand {
            Expand::Plain(counter) => counter.write_all(&buf[..n]),
            Expand::Gzip(decoder) => decoder.write_all(&buf[..n]),
        };
        if let Err(e) = fed {
            let capped = e
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<UnpackedCap>().is_some());
            self.stop = Some(if capped {
                Stop::Unpacked { max: self.limit }
            } else {
                Stop::Corrupt(e.to_string())
            });
            return Err(io::Error::other("the layer was refused"));
        }
        Ok(n)
    }
}

/// `sha256:<hex>` of what `hash` has seen so far.
fn hex_digest(hash: &Sha256) -> String {
    format!("sha256:{}", hex::encode(hash.clone().finalize()))
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    count: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }

    fn digest(&self) -> String {
        hex_digest(&self.hash)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tarball of `files` (name, bytes) and `links` (name, target).
    fn tarball(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> tempfile::NamedTempFile {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(out.reopen().unwrap());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        for (name, target) in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, name, target).unwrap();
        }
        builder.finish().unwrap();
        out
    }

    fn layer_tar(content: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, "file", content).unwrap();
        builder.into_inner().unwrap()
    }

    fn saved_files(layer: &[u8], diff: &str) -> (Vec<u8>, Vec<u8>) {
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#);
        let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#;
        let _ = layer;
        (config.into_bytes(), manifest.to_vec())
    }

    fn message(result: Result<impl std::fmt::Debug, PushError>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn a_docker_save_archive_is_one_image_with_layers_found_through_links() {
        let layer = layer_tar(b"hello");
        let diff = sha256_digest(&layer);
        let (config, manifest) = saved_files(&layer, &diff);
        let file = tarball(
            &[
                ("manifest.json", &manifest),
                ("c.json", &config),
                ("real/layer.tar", &layer),
            ],
            &[("l/layer.tar", "../real/layer.tar")],
        );
        let tarball = Tarball::index(file.path()).unwrap();
        let Image::Saved(saved) = tarball.image().unwrap() else {
            panic!("a docker save archive")
        };
        assert_eq!(saved.config, config);
        assert_eq!(saved.layers, vec![("l/layer.tar".to_string(), diff)]);
        let (mut reader, size) = tarball.open("l/layer.tar").unwrap();
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        assert_eq!((read, size), (layer.clone(), layer.len() as u64));
    }

    #[test]
    fn what_is_not_one_image_is_refused_with_what_to_do() {
        let not_tar = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_tar.path(), b"not a tarball at all, just text").unwrap();
        let refused = match Tarball::index(not_tar.path()) {
            Ok(t) => message(t.image().map(|_| ())),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("docker save"), "{refused}");

        let two = tarball(
            &[(
                "manifest.json",
                br#"[{"Config":"a","Layers":[]},{"Config":"b","Layers":[]}]"#,
            )],
            &[],
        );
        let refused = message(Tarball::index(two.path()).unwrap().image().map(|_| ()));
        assert!(refused.contains("holds 2 images"), "{refused}");

        let layer = layer_tar(b"x");
        let (config, manifest) = saved_files(&layer, &sha256_digest(&layer));
        let escaping = tarball(
            &[("manifest.json", &manifest), ("c.json", &config)],
            &[("l/layer.tar", "../../etc/passwd")],
        );
        let refused = message(Tarball::index(escaping.path()).unwrap().image().map(|_| ()));
        assert!(refused.contains("outside the archive"), "{refused}");

        let looping = tarball(
            &[("manifest.json", &manifest), ("c.json", &config)],
            &[("l/layer.tar", "layer.tar")],
        );
        let refused = message(Tarball::index(looping.path()).unwrap().image().map(|_| ()));
        assert!(refused.contains("links"), "{refused}");

        let mismatch = tarball(
            &[
                ("manifest.json", &manifest),
                ("c.json", br#"{"rootfs":{"diff_ids":[]}}"#),
                ("l/layer.tar", &layer),
            ],
            &[],
        );
        let refused = message(Tarball::index(mismatch.path()).unwrap().image().map(|_| ()));
        assert!(refused.contains("lists 0 layers"), "{refused}");
    }

    #[test]
    fn an_oci_layout_names_one_image_whose_blobs_are_all_present_and_match() {
        let config = br#"{"rootfs":{"diff_ids":[]}}"#.to_vec();
        let layer = layer_tar(b"content");
        let blob = |bytes: &[u8]| {
            (
                format!("blobs/sha256/{}", &sha256_digest(bytes)[7..]),
                bytes.to_vec(),
            )
        };
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            sha256_digest(&config),
            config.len(),
            sha256_digest(&layer),
            layer.len()
        )
        .into_bytes();
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}]}}"#,
            sha256_digest(&manifest),
            manifest.len()
        );
        let (c, l, m) = (blob(&config), blob(&layer), blob(&manifest));
        let whole = tarball(
            &[
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
                ("index.json", index.as_bytes()),
                (&c.0, &c.1),
                (&l.0, &l.1),
                (&m.0, &m.1),
            ],
            &[],
        );
        let Image::Layout(found) = Tarball::index(whole.path()).unwrap().image().unwrap() else {
            panic!("an OCI layout")
        };
        assert_eq!(found.top_bytes, manifest);
        assert_eq!(found.manifest.as_ref().unwrap().blobs.len(), 2);

        let missing = tarball(
            &[
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
                ("index.json", index.as_bytes()),
                (&c.0, &c.1),
                (&m.0, &m.1),
            ],
            &[],
        );
        let refused = message(Tarball::index(missing.path()).unwrap().image().map(|_| ()));
        assert!(refused.contains("has no file"), "{refused}");

        let tampered = tarball(
            &[
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
                ("index.json", index.as_bytes()),
                (&m.0, b"{}"),
            ],
            &[],
        );
        let refused = message(Tarball::index(tampered.path()).unwrap().image().map(|_| ()));
        assert!(refused.contains("does not match"), "{refused}");

        // A layer without a media type is refused, not measured as plain.
        let untyped = String::from_utf8(manifest.clone())
            .unwrap()
            .replace(
                r#""mediaType":"application/vnd.oci.image.layer.v1.tar","#,
                "",
            )
            .into_bytes();
        let untyped_index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}]}}"#,
            sha256_digest(&untyped),
            untyped.len()
        );
        let u = blob(&untyped);
        let untyped_layout = tarball(
            &[
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
                ("index.json", untyped_index.as_bytes()),
                (&c.0, &c.1),
                (&l.0, &l.1),
                (&u.0, &u.1),
            ],
            &[],
        );
        let refused = message(
            Tarball::index(untyped_layout.path())
                .unwrap()
                .image()
                .map(|_| ()),
        );
        assert!(refused.contains("has no mediaType"), "{refused}");
    }

    #[test]
    fn a_gzip_bomb_is_stopped_at_the_unpacked_cap_as_it_streams() {
        use flate2::write::GzEncoder as Encoder;
        let mut encoder = Encoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let cancel = AtomicBool::new(false);
        let budget = Budget {
            used: 0,
            max: 1 << 20,
        };
        let mut meter = Meter::new(&bomb[..], &cancel, Expansion::Gzip, budget);
        let mut sent = 0u64;
        let mut buf = [0u8; 4096];
        let error = loop {
            match meter.read(&mut buf) {
                Ok(0) => panic!("the bomb was read to its end"),
                Ok(n) => sent += n as u64,
                Err(e) => break e,
            }
        };
        assert!(sent < bomb.len() as u64, "stopped before its end: {error}");
        let refused = meter.stopped("layer").expect("a reason").to_string();
        assert!(refused.contains("expand to more than"), "{refused}");

        // Within the cap, the meter measures both sides.
        let mut small = Encoder::new(Vec::new(), Compression::fast());
        small.write_all(b"hello").unwrap();
        let small = small.finish().unwrap();
        let mut meter = Meter::new(&small[..], &cancel, Expansion::Gzip, budget);
        io::copy(&mut meter, &mut io::sink()).unwrap();
        let measured = meter.finish("layer").unwrap();
        assert_eq!(measured.unpacked, 5);
        assert_eq!(measured.unpacked_digest, sha256_digest(b"hello"));
        assert_eq!(measured.digest, sha256_digest(&small));

        let stopped = AtomicBool::new(true);
        let mut meter = Meter::new(&small[..], &stopped, Expansion::None, budget);
        assert!(meter.read(&mut buf).is_err());
        assert!(meter.stopped("layer").is_some());
    }

    #[test]
    fn zstd_layers_are_refused_with_what_to_do() {
        assert!(
            expansion("application/vnd.oci.image.layer.v1.tar+zstd")
                .unwrap_err()
                .contains("gzip")
        );
        assert_eq!(expansion(DOCKER_LAYER_GZIP).unwrap(), Expansion::Gzip);
        assert_eq!(
            expansion("application/vnd.oci.image.layer.v1.tar").unwrap(),
            Expansion::None
        );
    }
}
