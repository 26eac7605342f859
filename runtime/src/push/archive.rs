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

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path};
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
    let valid_job = (8..=64).contains(&job.len())
        && job
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if !valid_job {
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

/// Whether a tar entry path stays inside the archive.
fn safe_path(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
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
    // First pass: the manifest.
    let mut manifest = None;
    {
        let file = open(input).map_err(io)?;
        let mut tar = tar::Archive::new(file);
        for entry in tar.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let path = entry.path().map_err(io)?.into_owned();
            if !safe_path(&path) {
                return Err(bad(format!(
                    "the archive has an entry outside itself (`{}`); upload the output of `docker save IMAGE`",
                    path.display()
                )));
            }
            if path == Path::new("manifest.json") {
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

    // Second pass: copy everything else unchanged.
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
            let path = entry.path().map_err(io)?.into_owned();
            if path == Path::new("manifest.json") || TAG_FILES.iter().any(|f| path == Path::new(f))
            {
                continue;
            }
            let header = entry.header().clone();
            builder.append(&header, entry).map_err(io)?;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "manifest.json", manifest.as_slice())
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
