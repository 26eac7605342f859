//! Pushing an image uploaded as a `docker save` tarball, on an engine that
//! many tenants share.
//!
//! The tarball names its own tags (`manifest.json`'s `RepoTags`, the legacy
//! `repositories` file, `index.json` annotations for containerd-store
//! engines). Loaded as it is, it could retag an image another tenant or the
//! operator has in the engine, and a tenant could then push, or learn about,
//! what is not theirs. So the archive is rewritten first: exactly one image,
//! tagged only with a name private to the job (`flavorbox-job/<job>:loaded`),
//! and nothing else that names a tag. The job then tags that image as the
//! checked target, pushes, and removes both tags, whatever happens; a
//! process-wide lock per target name keeps two jobs from interleaving a tag
//! and a push of the same name. Tags are removed without force, so content
//! another job still tags stays.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bollard::Docker;
use bollard::query_parameters::{ImportImageOptions, RemoveImageOptions, TagImageOptions};
use futures_util::StreamExt;

use super::{PushError, PushEvent, PushOutcome, push_image, target};
use crate::credentials::Credentials;
use crate::reference::Reference;

/// Largest `manifest.json` read.
const MAX_MANIFEST: u64 = 1 << 20;
/// Chunk size of the upload to the engine.
const CHUNK: usize = 256 << 10;

/// Entries that name tags and are dropped from the archive.
const TAG_FILES: [&str; 2] = ["repositories", "index.json"];
/// The archive's manifest, the one entry read and rewritten.
const MANIFEST: &str = "manifest.json";
/// Most symbolic links an archive may hold (`docker save` writes about one
/// per layer).
const MAX_LINKS: usize = 10_000;

/// Pushes the single image in a `docker save` tarball to `target` (tag
/// required, no digest) with optional credentials; removes everything it
/// loaded. `job` (8 to 64 of `[a-z0-9]`) makes the private name.
pub async fn push_archive(
    docker: &Docker,
    archive: &Path,
    job: &str,
    target_ref: &Reference,
    credentials: Option<&Credentials>,
    on_event: &mut (dyn FnMut(PushEvent) + Send),
) -> Result<PushOutcome, PushError> {
    if !is_job_id(job) {
        return Err(PushError::BadArchive(format!(
            "invalid job id `{}`",
            job.chars().take(80).collect::<String>()
        )));
    }
    let target = target(target_ref)?;
    let private = job_tag(job);
    let input = archive.to_path_buf();
    let name = private.clone();
    // A push dropped mid-rewrite (its job aborted at shutdown) stops the
    // rewrite at its next read, instead of copying an archive nobody awaits.
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let rewritten = tokio::task::spawn_blocking(move || rewrite(&input, &name, &cancel))
        .await
        .map_err(|e| PushError::Stream {
            message: format!("the archive task failed: {e}"),
        })??;

    on_event(PushEvent::Status {
        status: "loading the uploaded image".into(),
    });
    let loaded = load(docker, rewritten.path()).await;
    drop(rewritten);
    let outcome = match loaded {
        Ok(()) => {
            tag_and_push(
                docker,
                &private,
                target_ref,
                &target.repository,
                target.tag,
                credentials,
                on_event,
            )
            .await
        }
        Err(e) => Err(e),
    };
    // Whatever happened: the private tag goes (a failed load may still have
    // created it).
    remove_tag(docker, &private).await;
    outcome
}

/// Tags the loaded image as the target under the target's lock, pushes,
/// removes the target tag.
async fn tag_and_push(
    docker: &Docker,
    private: &str,
    target_ref: &Reference,
    repository: &str,
    tag: &str,
    credentials: Option<&Credentials>,
    on_event: &mut (dyn FnMut(PushEvent) + Send),
) -> Result<PushOutcome, PushError> {
    let full = format!("{repository}:{tag}");
    let lock = target_lock(&full);
    let _held = lock.lock().await;
    docker
        .tag_image(
            private,
            Some(TagImageOptions {
                repo: Some(repository.to_string()),
                tag: Some(tag.to_string()),
            }),
        )
        .await
        .map_err(|e| PushError::Stream {
            message: format!("cannot tag the loaded image as `{full}`: {e}"),
        })?;
    let pushed = push_image(docker, target_ref, credentials, on_event).await;
    remove_tag(docker, &full).await;
    pushed
}

/// Whether `job` has the shape of a job id (8 to 64 of `[a-z0-9]`), the only
/// text a job's private engine name is made from.
pub fn is_job_id(job: &str) -> bool {
    (8..=64).contains(&job.len())
        && job
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The name a job's uploaded image is loaded under in the engine, private
/// to the job: what the server's sweep removes after a kill.
pub fn job_tag(job: &str) -> String {
    format!("flavorbox-job/{job}:loaded")
}

/// One async lock per target name in this process.
fn target_lock(name: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Forget locks no job holds, so the map does not grow with every name.
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(name.to_string()).or_default().clone()
}

/// Untags `name` (the image goes with its last tag); a missing tag is fine.
async fn remove_tag(docker: &Docker, name: &str) {
    let options = RemoveImageOptions {
        force: false,
        noprune: false,
    };
    if let Err(e) = docker.remove_image(name, Some(options), None).await {
        let missing = matches!(
            &e,
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }
        );
        if !missing {
            tracing::warn!(image = name, error = %e, "cannot remove a tag a push job made");
        }
    }
}

/// `docker load` of the rewritten archive, streamed from disk.
async fn load(docker: &Docker, path: &Path) -> Result<(), PushError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| PushError::Stream {
            message: format!("cannot read the rewritten archive: {e}"),
        })?;
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((bytes::Bytes::from(buf), file))
            }
        }
    });
    let options = ImportImageOptions {
        quiet: true,
        platform: None,
    };
    let mut stream = docker.import_image_stream(options, chunks, None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| load_error(&e.to_string()))?;
        if let Some(message) = info
            .error
            .or_else(|| info.error_detail.and_then(|d| d.message))
        {
            return Err(load_error(&message));
        }
    }
    Ok(())
}

fn load_error(message: &str) -> PushError {
    PushError::BadArchive(format!(
        "the Docker engine could not load the uploaded image: {message}; upload the output of `docker save IMAGE`"
    ))
}

/// One image entry of `manifest.json`.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn bad(message: impl Into<String>) -> PushError {
    PushError::BadArchive(message.into())
}

/// A tar entry path without its `.` components, or `None` when it leaves
/// the archive (`..`, an absolute path). `./manifest.json` and
/// `manifest.json` are the same entry to the engine, so they are the same
/// here.
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

/// Shortest header name a writer leaves when it truncates a name it keeps
/// whole in an extension (the name field holds 100 bytes).
const TRUNCATED_NAME: usize = 99;

/// Whether an entry's header name agrees with the name it resolves to (a
/// PAX `path` or a GNU long name): the same once normalised, or the start
/// of it that a writer keeps in the header when the name is too long.
fn names_agree(raw: &[u8], resolved: &[u8]) -> bool {
    if raw == resolved {
        return true;
    }
    if raw.len() >= TRUNCATED_NAME && resolved.starts_with(raw) {
        return true;
    }
    let normal = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| normal_path(Path::new(text)))
    };
    matches!((normal(raw), normal(resolved)), (Some(a), Some(b)) if a == b)
}

/// Where a link points inside the archive, read lexically: a symbolic
/// link's target from the link's directory, a hard link's from the
/// archive's root. `None` when it leaves the archive (`/etc/passwd`,
/// `../../x`) or goes on through one of `links`, the archive's symbolic
/// links, whose own target would decide where it ends (`d -> .` then
/// `x -> d/..`). The engine resolves links itself; this refuses what is
/// plainly an escape.
fn link_target(
    link: &Path,
    target: &Path,
    hard: bool,
    links: &HashSet<PathBuf>,
) -> Option<PathBuf> {
    let mut at = match link.parent() {
        Some(dir) if !hard => dir.to_path_buf(),
        _ => PathBuf::new(),
    };
    let mut parts = target.components().peekable();
    while let Some(component) = parts.next() {
        match component {
            Component::Normal(part) => {
                at.push(part);
                if parts.peek().is_some() && links.contains(&at) {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if at.as_os_str().is_empty() {
                    return None;
                }
                at.pop();
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(at)
}

/// What an entry of the upload becomes in the rewrite.
enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
    HardLink(PathBuf),
}

/// An entry of the upload, checked: the one name the rewrite writes it
/// under (normalised, inside the archive, agreeing with its header) and
/// what it is.
struct Checked {
    path: PathBuf,
    kind: Kind,
}

/// Checks one entry against the archive's symbolic links (none known yet
/// in the first pass); `None` for what the rewrite leaves out (a PAX
/// global header, the archive's root directory `./`). Every name the
/// engine will read comes from here.
fn check_entry<R: Read>(
    entry: &tar::Entry<'_, R>,
    links: &HashSet<PathBuf>,
) -> Result<Option<Checked>, PushError> {
    let shown = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .chars()
            .take(200)
            .collect::<String>()
    };
    let entry_type = entry.header().entry_type();
    if entry_type.is_pax_global_extensions() {
        return Ok(None);
    }
    let resolved = entry.path_bytes();
    let raw = entry.header().path_bytes();
    if !names_agree(&raw, &resolved) {
        return Err(bad(format!(
            "the archive's entry `{}` names itself `{}` in its header: one entry, two names; upload the output of `docker save IMAGE`",
            shown(&resolved),
            shown(&raw)
        )));
    }
    let outside = || {
        bad(format!(
            "the archive has an entry outside itself (`{}`); upload the output of `docker save IMAGE`",
            shown(&resolved)
        ))
    };
    let path = entry
        .path()
        .ok()
        .and_then(|path| normal_path(&path))
        .ok_or_else(outside)?;
    // The engine writes an entry under a linked directory into the link's
    // target: `d -> .` then `d/index.json` would bring back what the
    // rewrite drops.
    if let Some(link) = path.ancestors().skip(1).find(|a| links.contains(*a)) {
        return Err(bad(format!(
            "the archive's entry `{}` lies under the link `{}`; upload the output of `docker save IMAGE`",
            path.display(),
            link.display()
        )));
    }
    let link = |hard: bool| -> Result<PathBuf, PushError> {
        let (Some(resolved), Some(raw)) =
            (entry.link_name_bytes(), entry.header().link_name_bytes())
        else {
            return Err(bad(format!(
                "the archive's link `{}` has no target",
                path.display()
            )));
        };
        if !names_agree(&raw, &resolved) {
            return Err(bad(format!(
                "the archive's link `{}` names two targets (`{}` and `{}`)",
                path.display(),
                shown(&resolved),
                shown(&raw)
            )));
        }
        let target = entry.link_name().ok().flatten().ok_or_else(outside)?;
        if link_target(&path, &target, hard, links).is_none() {
            return Err(bad(format!(
                "the archive's link `{}` points outside it or through another link (`{}`); upload the output of `docker save IMAGE`",
                path.display(),
                target.display()
            )));
        }
        Ok(target.into_owned())
    };
    let kind = match entry_type {
        tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => Kind::Symlink(link(false)?),
        tar::EntryType::Link => Kind::HardLink(link(true)?),
        other => {
            return Err(bad(format!(
                "the archive's entry `{}` is a {other:?} entry: a `docker save` archive holds only files, directories and links",
                path.display()
            )));
        }
    };
    if path.as_os_str().is_empty() {
        // `./`, the archive's own directory: nothing to write.
        return match kind {
            Kind::Dir => Ok(None),
            _ => Err(outside()),
        };
    }
    Ok(Some(Checked { path, kind }))
}

/// Whether the rewrite leaves `path` out: the manifest (written anew) and
/// the files that name tags.
fn is_replaced(path: &Path) -> bool {
    path == Path::new(MANIFEST) || TAG_FILES.iter().any(|f| path == Path::new(f))
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A reader that fails once `cancel` is set.
struct Cancellable<R> {
    inner: R,
    cancel: Arc<AtomicBool>,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            // Not `Interrupted`: readers retry that.
            return Err(std::io::Error::other("the push was cancelled"));
        }
        self.inner.read(buf)
    }
}

/// The archive's entries, copied to a new temporary tarball with
/// `manifest.json` retagged to `private` and the tag-naming files dropped.
/// The copy is `load-<input's name>-*` beside the input, so whoever holds
/// the input can tell its rewrite from litter. Fails once `cancel` is set.
fn rewrite(
    input: &Path,
    private: &str,
    cancel: &Arc<AtomicBool>,
) -> Result<tempfile::NamedTempFile, PushError> {
    let open = |path: &Path| {
        std::fs::File::open(path).map(|inner| Cancellable {
            inner,
            cancel: cancel.clone(),
        })
    };
    let io = |e: std::io::Error| {
        bad(format!(
            "the upload is not a readable tar archive: {e}; upload the output of `docker save IMAGE`"
        ))
    };
    // First pass: the manifest, and the symbolic links.
    let mut manifest = None;
    let mut links = HashSet::new();
    {
        let file = open(input).map_err(io)?;
        let mut tar = tar::Archive::new(file);
        for entry in tar.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let Some(checked) = check_entry(&entry, &HashSet::new())? else {
                continue;
            };
            if matches!(checked.kind, Kind::Symlink(_)) {
                if links.len() >= MAX_LINKS {
                    return Err(bad(format!(
                        "the archive has more than {MAX_LINKS} symbolic links; upload the output of `docker save IMAGE`"
                    )));
                }
                links.insert(checked.path.clone());
            }
            if checked.path == Path::new(MANIFEST) {
                if manifest.is_some() {
                    return Err(bad(
                        "the archive has two manifest.json entries; upload the output of `docker save IMAGE`",
                    ));
                }
                if !matches!(checked.kind, Kind::File) {
                    return Err(bad(
                        "the archive's manifest.json is not a file; upload the output of `docker save IMAGE`",
                    ));
                }
                if entry.size() > MAX_MANIFEST {
                    return Err(bad("manifest.json is larger than 1 MiB"));
                }
                let mut text = String::new();
                entry
                    .by_ref()
                    .take(MAX_MANIFEST)
                    .read_to_string(&mut text)
                    .map_err(io)?;
                manifest = Some(text);
            }
        }
    }
    let manifest = manifest.ok_or_else(|| {
        bad("not a `docker save` tarball: it has no manifest.json; create one with `docker save IMAGE -o FILE`")
    })?;
    let mut entries: Vec<ManifestEntry> = serde_json::from_str(&manifest).map_err(|e| {
        bad(format!(
            "manifest.json is not a `docker save` manifest: {e}"
        ))
    })?;
    if entries.len() != 1 {
        return Err(bad(format!(
            "the archive holds {} images; save exactly one (`docker save IMAGE:TAG`)",
            entries.len()
        )));
    }
    entries[0].repo_tags = Some(vec![private.to_string()]);
    let manifest = serde_json::to_vec(&entries).map_err(|e| bad(e.to_string()))?;

    // Second pass: every entry again, now checked against all the links,
    // written afresh under its checked name; the manifest last.
    let dir = input.parent().unwrap_or(Path::new("."));
    let prefix = match input.file_name().and_then(|n| n.to_str()) {
        Some(name) => format!("load-{name}-"),
        None => "load-".to_string(),
    };
    let out = tempfile::NamedTempFile::with_prefix_in(prefix, dir).map_err(io)?;
    {
        let mut builder = tar::Builder::new(out.as_file());
        let file = open(input).map_err(io)?;
        let mut tar = tar::Archive::new(file);
        for entry in tar.entries().map_err(io)? {
            let entry = entry.map_err(io)?;
            let Some(Checked { path, kind }) = check_entry(&entry, &links)? else {
                continue;
            };
            if is_replaced(&path) {
                continue;
            }
            // A fresh header under the checked name: nothing of the
            // upload's own header (its raw name, a PAX override) reaches
            // the engine unchecked.
            let mut header = tar::Header::new_gnu();
            header.set_mode(entry.header().mode().map_err(io)? & 0o777);
            header.set_mtime(entry.header().mtime().unwrap_or(0));
            match kind {
                Kind::File => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(entry.size());
                    builder.append_data(&mut header, &path, entry).map_err(io)?;
                }
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, &path, std::io::empty())
                        .map_err(io)?;
                }
                Kind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, &path, &target)
                        .map_err(io)?;
                }
                Kind::HardLink(target) => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, &path, &target)
                        .map_err(io)?;
                }
            }
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, MANIFEST, manifest.as_slice())
            .map_err(io)?;
        builder.finish().map_err(io)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(out.as_file());
        for (name, data) in files {
            // The raw name, so a hostile `../` path can be written too.
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.finish().unwrap();
        drop(builder);
        out
    }

    /// A tarball written entry by entry with [`raw`] and [`pax`].
    fn archive(write: impl FnOnce(&mut tar::Builder<&std::fs::File>)) -> tempfile::NamedTempFile {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(out.as_file());
        write(&mut builder);
        builder.finish().unwrap();
        drop(builder);
        out
    }

    /// An entry with exactly this raw header name and link name.
    fn raw(
        builder: &mut tar::Builder<&std::fs::File>,
        name: &str,
        kind: tar::EntryType,
        data: &[u8],
        link: &str,
    ) {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }

    /// A PAX extended header for the next entry.
    fn pax(builder: &mut tar::Builder<&std::fs::File>, records: &[(&str, &str)]) {
        let mut data = Vec::new();
        for (key, value) in records {
            // "LEN key=value\n", LEN counting itself.
            let rest = format!(" {key}={value}\n");
            let mut len = rest.len() + 1;
            while len.to_string().len() + rest.len() != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len}{rest}").as_bytes());
        }
        raw(builder, "PaxHeader", tar::EntryType::XHeader, &data, "");
    }

    const ONE_IMAGE: &[u8] =
        br#"[{"Config":"c.json","RepoTags":["victim:latest"],"Layers":["l/layer.tar"]}]"#;

    /// Each output entry's raw header name, resolved name and link target.
    fn headers(path: &Path) -> Vec<(String, String, Option<String>)> {
        let mut tar = tar::Archive::new(std::fs::File::open(path).unwrap());
        tar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8_lossy(&e.header().path_bytes()).into_owned(),
                    e.path().unwrap().display().to_string(),
                    e.link_name().unwrap().map(|l| l.display().to_string()),
                )
            })
            .collect()
    }

    fn rewritten(input: &tempfile::NamedTempFile) -> Result<tempfile::NamedTempFile, PushError> {
        rewrite(input.path(), "flavorbox-job/abcdefgh:loaded", &no_cancel())
    }

    #[test]
    fn a_pax_name_that_disagrees_with_the_header_name_is_refused() {
        use tar::EntryType::Regular;
        // The header says `c.json`, the PAX record `../../escape`: the
        // rewrite used to check one and forward the other.
        for (raw_name, pax_name) in [("c.json", "../../escape"), ("../../escape", "c.json")] {
            let input = archive(|b| {
                raw(b, "manifest.json", Regular, ONE_IMAGE, "");
                pax(b, &[("path", pax_name)]);
                raw(b, raw_name, Regular, b"{}", "");
            });
            let err = rewritten(&input).expect_err(pax_name);
            assert!(err.to_string().contains("two names"), "{err}");
        }
        // A PAX link target that disagrees with the header's is refused too.
        let input = archive(|b| {
            raw(b, "manifest.json", Regular, ONE_IMAGE, "");
            pax(b, &[("linkpath", "/etc/passwd")]);
            raw(b, "l/layer.tar", tar::EntryType::Symlink, b"", "../c.json");
        });
        let err = rewritten(&input).expect_err("two targets");
        assert!(err.to_string().contains("two targets"), "{err}");
    }

    #[test]
    fn extension_names_that_agree_are_written_as_the_one_checked_name() {
        use tar::EntryType::Regular;
        let long = format!("blobs/sha256/{}", "a".repeat(120));
        let input = archive(|b| {
            raw(b, "./manifest.json", Regular, ONE_IMAGE, "");
            // The same name in the header and in a PAX record.
            pax(b, &[("path", "c.json")]);
            raw(b, "c.json", Regular, b"{}", "");
            // A name too long for the header: a GNU long name, the header
            // holding its start.
            let mut header = tar::Header::new_gnu();
            header.set_size(5);
            header.set_mode(0o644);
            header.set_entry_type(Regular);
            b.append_data(&mut header, &long, &b"layer"[..]).unwrap();
        });
        let out = rewritten(&input).expect("rewritten");
        let got = headers(out.path());
        assert_eq!(got[0], ("c.json".into(), "c.json".into(), None));
        assert_eq!(got[1].1, long, "the long name survives the rewrite");
        assert!(long.starts_with(&got[1].0), "{got:?}");
        assert_eq!(got[2].1, "manifest.json");
        assert_eq!(got.len(), 3, "{got:?}");
    }

    #[test]
    fn dot_slash_names_are_the_same_entries_and_tag_files_go_whatever_their_spelling() {
        use tar::EntryType::{Directory, Regular};
        let input = archive(|b| {
            raw(b, "./", Directory, b"", "");
            raw(b, "./c.json", Regular, b"{}", "");
            raw(b, "./l/", Directory, b"", "");
            raw(b, "./l/./layer.tar", Regular, b"layer", "");
            raw(b, "./manifest.json", Regular, ONE_IMAGE, "");
            raw(
                b,
                "./repositories",
                Regular,
                br#"{"victim":{"latest":"abc"}}"#,
                "",
            );
            raw(b, "./index.json", Regular, b"{}", "");
            raw(b, "././index.json", Regular, b"{}", "");
        });
        let out = rewritten(&input).expect("rewritten");
        let got: Vec<_> = headers(out.path()).into_iter().map(|h| h.0).collect();
        assert_eq!(got, ["c.json", "l", "l/layer.tar", "manifest.json"]);
        let mut tar = tar::Archive::new(std::fs::File::open(out.path()).unwrap());
        let mut manifest = String::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap() == Path::new("manifest.json") {
                entry.read_to_string(&mut manifest).unwrap();
            }
        }
        assert!(
            manifest.contains("flavorbox-job/abcdefgh:loaded") && !manifest.contains("victim"),
            "the manifest read from ./manifest.json is the one retagged: {manifest}"
        );
    }

    #[test]
    fn a_second_manifest_is_refused_however_it_is_spelled() {
        use tar::EntryType::Regular;
        for second in ["manifest.json", "./manifest.json", "././manifest.json"] {
            let input = archive(|b| {
                raw(b, "manifest.json", Regular, ONE_IMAGE, "");
                raw(
                    b,
                    second,
                    Regular,
                    br#"[{"Config":"x","RepoTags":["victim:1"],"Layers":[]}]"#,
                    "",
                );
            });
            let err = rewritten(&input).expect_err(second);
            assert!(
                err.to_string().contains("two manifest.json"),
                "{second}: {err}"
            );
        }
    }

    #[test]
    fn links_stay_inside_the_archive_and_nothing_lies_under_one() {
        use tar::EntryType::{Char, Link, Regular, Symlink};
        // What `docker save` writes: a layer linked to its blob.
        let input = archive(|b| {
            raw(b, "blobs/sha256/abc", Regular, b"layer", "");
            raw(b, "l/layer.tar", Symlink, b"", "../blobs/sha256/abc");
            raw(b, "hard", Link, b"", "blobs/sha256/abc");
            raw(b, "manifest.json", Regular, ONE_IMAGE, "");
        });
        let out = rewritten(&input).expect("links inside");
        let got = headers(out.path());
        assert_eq!(
            got[1],
            (
                "l/layer.tar".into(),
                "l/layer.tar".into(),
                Some("../blobs/sha256/abc".into())
            )
        );
        assert_eq!(got[2].2.as_deref(), Some("blobs/sha256/abc"));
        for (entries, needle) in [
            (vec![("x", Symlink, "/etc/passwd")], "points outside"),
            (vec![("l/x", Symlink, "../../etc/passwd")], "points outside"),
            (vec![("x", Link, "../x")], "points outside"),
            // `d` is the root: `x -> d/..` leaves it.
            (
                vec![("d", Symlink, "."), ("x", Symlink, "d/..")],
                "through another link",
            ),
            // `d/index.json` would land on `index.json`.
            (
                vec![("d", Symlink, "."), ("d/index.json", Regular, "")],
                "under the link",
            ),
            (vec![("dev", Char, "")], "Char"),
        ] {
            let input = archive(|b| {
                raw(b, "manifest.json", Regular, ONE_IMAGE, "");
                for (name, kind, link) in &entries {
                    raw(b, name, *kind, b"", link);
                }
            });
            let err = rewritten(&input).expect_err(needle);
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn normal_paths_and_link_targets_are_read_lexically() {
        let none = HashSet::new();
        for (path, normal) in [
            ("a/b", Some("a/b")),
            ("./a/./b/", Some("a/b")),
            ("./", Some("")),
            ("a/../b", None),
            ("/etc/passwd", None),
        ] {
            assert_eq!(
                normal_path(Path::new(path)),
                normal.map(PathBuf::from),
                "{path}"
            );
        }
        for (link, target, hard, inside) in [
            ("l/layer.tar", "../blobs/x", false, Some("blobs/x")),
            ("l/layer.tar", "../../x", false, None),
            ("x", "./y", false, Some("y")),
            ("a/b/c", "../..", false, Some("")),
            ("a/b", "blobs/x", true, Some("blobs/x")),
            ("a/b", "../x", true, None),
            ("x", "/abs", false, None),
        ] {
            assert_eq!(
                link_target(Path::new(link), Path::new(target), hard, &none),
                inside.map(PathBuf::from),
                "{link} -> {target}"
            );
        }
        assert!(names_agree(b"./c.json", b"c.json"));
        assert!(!names_agree(b"c.json", b"d.json"));
        let long = "x".repeat(150);
        assert!(names_agree(&long.as_bytes()[..100], long.as_bytes()));
        assert!(!names_agree(&long.as_bytes()[..50], long.as_bytes()));
    }

    fn no_cancel() -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(false))
    }

    fn names(path: &Path) -> Vec<String> {
        let mut tar = tar::Archive::new(std::fs::File::open(path).unwrap());
        tar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn the_rewrite_keeps_only_the_private_tag() {
        let manifest = br#"[{"Config":"c.json","RepoTags":["victim:latest","other/x:1"],"Layers":["l/layer.tar"]}]"#;
        let input = tarball(&[
            ("c.json", b"{}"),
            ("l/layer.tar", b"layer"),
            ("manifest.json", manifest),
            ("repositories", br#"{"victim":{"latest":"abc"}}"#),
            ("index.json", b"{}"),
        ]);
        let out = rewrite(input.path(), "flavorbox-job/abcdefgh:loaded", &no_cancel())
            .expect("rewritten");
        let input_name = input.path().file_name().unwrap().to_str().unwrap();
        let out_name = out.path().file_name().unwrap().to_str().unwrap();
        assert!(
            out_name.starts_with(&format!("load-{input_name}-")),
            "the rewrite names its input: {out_name}"
        );
        let got = names(out.path());
        assert_eq!(got, ["c.json", "l/layer.tar", "manifest.json"]);
        let mut tar = tar::Archive::new(std::fs::File::open(out.path()).unwrap());
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap() == Path::new("manifest.json") {
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    value[0]["RepoTags"],
                    serde_json::json!(["flavorbox-job/abcdefgh:loaded"])
                );
                assert_eq!(value[0]["Layers"], serde_json::json!(["l/layer.tar"]));
            }
        }
    }

    #[test]
    fn what_is_not_one_saved_image_is_refused_with_what_to_do() {
        let two = br#"[{"Config":"a","RepoTags":null,"Layers":[]},{"Config":"b","RepoTags":null,"Layers":[]}]"#;
        for (files, needle) in [
            (vec![("c.json", &b"{}"[..])], "no manifest.json"),
            (vec![("manifest.json", &two[..])], "holds 2 images"),
            (
                vec![("manifest.json", &b"{\"not\":\"a list\"}"[..])],
                "not a `docker save` manifest",
            ),
            (
                vec![("../escape", &b"x"[..]), ("manifest.json", &b"[]"[..])],
                "outside",
            ),
        ] {
            let input = tarball(&files);
            let err = rewrite(input.path(), "flavorbox-job/abcdefgh:loaded", &no_cancel())
                .expect_err(needle);
            assert!(err.to_string().contains(needle), "{err}");
        }
        let garbage = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(garbage.path(), b"\x00\x01 not a tar at all").unwrap();
        let err = rewrite(
            garbage.path(),
            "flavorbox-job/abcdefgh:loaded",
            &no_cancel(),
        )
        .expect_err("garbage");
        assert!(matches!(err, PushError::BadArchive(_)), "{err}");
    }

    #[test]
    fn a_cancelled_rewrite_stops_at_its_next_read() {
        let input = tarball(&[
            ("c.json", b"{}"),
            (
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":[],"Layers":[]}]"#,
            ),
        ]);
        let cancel = no_cancel();
        cancel.store(true, Ordering::Relaxed);
        let err =
            rewrite(input.path(), "flavorbox-job/abcdefgh:loaded", &cancel).expect_err("cancelled");
        assert!(err.to_string().contains("cancelled"), "{err}");
    }
}
