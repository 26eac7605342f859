//! Uploads shared by the replicas of one deployment, so that a push job
//! whose replica dies is finished by another.
//!
//! With `uploads_store` in the config, a push's upload is copied (streamed,
//! multipart) into an S3-compatible bucket (`s3://BUCKET[/PREFIX]`, the
//! endpoint and credentials from the usual `AWS_*` variables) or a shared
//! directory (`file:///DIR`) before the push is answered 202, and its key is
//! recorded with the job. The replica that received it pushes from its own
//! copy on disk; one that takes the job over (its owner stopped renewing the
//! lease) fetches the upload into its own uploads directory first. The
//! object goes when its job ends, and the periodic sweep removes the objects
//! of jobs that are no longer queued or running (a replica killed between
//! the end of a job and the removal leaves one).
//!
//! The store is the operator's, like the database: it is reached directly,
//! not through the tenants' egress policy.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The part of every key under the store's prefix.
const UPLOADS: &str = "uploads";

/// How long a request to the store may take before the server says the
/// store does not answer (at start).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Objects younger than this are never swept: their job may be being
/// recorded right now.
const SWEEP_GRACE: Duration = Duration::from_secs(600);

/// The shared uploads store.
pub(crate) struct SharedUploads {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The configured URL, as operators see it in messages.
    shown: String,
}

impl SharedUploads {
    /// Opens the store at `url` and checks that it answers.
    pub(crate) async fn open(url: &str) -> anyhow::Result<SharedUploads> {
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if let Some(rest) =
            url.strip_prefix("s3://")
        {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                anyhow::bail!("uploads_store `{url}` names no bucket: use s3://BUCKET[/PREFIX]");
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "uploads_store `{url}`: {e}; the endpoint, region and credentials come from AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_ALLOW_HTTP=true for a plain-HTTP endpoint)"
                        )
                    })?;
            (Arc::new(store), prefix.to_string())
        } else if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                anyhow::bail!(
                    "uploads_store `{url}` is not an absolute directory: use file:///DIR"
                );
            }
            super::jobs::private_dir(FsPath::new(dir))
                .map_err(|e| anyhow::anyhow!("uploads_store `{url}`: cannot create {dir}: {e}"))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| anyhow::anyhow!("uploads_store `{url}`: {e}"))?;
            (Arc::new(store), String::new())
        } else {
            anyhow::bail!("uploads_store `{url}` is neither s3://BUCKET[/PREFIX] nor file:///DIR");
        };
        let shared = SharedUploads {
            store,
            prefix: Path::from(prefix.trim_matches('/')),
            shown: url.to_string(),
        };
        let root = shared.root();
        let probe = shared.store.list_with_delimiter(Some(&root));
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(shared),
            Ok(Err(e)) => {
                anyhow::bail!("the uploads store `{url}` refuses to list its uploads: {e}")
            }
            Err(_) => anyhow::bail!(
                "the uploads store `{url}` did not answer within {PROBE_TIMEOUT:?}: check AWS_ENDPOINT and the network"
            ),
        }
    }

    /// The configured URL.
    pub(crate) fn url(&self) -> &str {
        &self.shown
    }

    fn root(&self) -> Path {
        self.prefix.clone().join(UPLOADS)
    }

    /// The key of `tenant`'s upload for job `id`.
    pub(crate) fn key(&self, tenant: &str, id: &str) -> Path {
        self.root().join(tenant).join(format!("{id}.tar"))
    }

    /// Copies the file at `from` to `key`, streamed in parts.
    pub(crate) async fn put(&self, key: &Path, from: &FsPath) -> Result<(), String> {
        let mut file = tokio::fs::File::open(from)
            .await
            .map_err(|e| format!("cannot read the upload {}: {e}", from.display()))?;
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), key.clone());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read the upload {}: {e}", from.display()))?;
            if n == 0 {
                break;
            }
            if let Err(e) = writer.write_all(&buf[..n]).await {
                let _ = writer.abort().await;
                return Err(self.failed("store", e));
            }
        }
        writer.shutdown().await.map_err(|e| self.failed("store", e))
    }

    /// Fetches `key` into the file at `to`.
    pub(crate) async fn get(&self, key: &str, to: &FsPath) -> Result<(), String> {
        let got = self
            .store
            .get(&Path::from(key))
            .await
            .map_err(|e| self.failed("fetch", e))?;
        let mut file = tokio::fs::File::create(to)
            .await
            .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.failed("fetch", e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        }
        file.flush()
            .await
            .map_err(|e| format!("cannot write {}: {e}", to.display()))
    }

    /// Removes `key`; one already gone is fine.
    pub(crate) async fn delete(&self, key: &str) {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot remove a shared upload; the sweep tries again")
            }
        }
    }

    /// The uploads older than the grace period, as (key, tenant, job id).
    pub(crate) async fn old_uploads(&self) -> Result<Vec<(String, String, String)>, String> {
        let mut listed = self.store.list(Some(&self.root()));
        let now = time::OffsetDateTime::now_utc();
        let mut found = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| self.failed("list", e))?;
            let age = now.unix_timestamp() - meta.last_modified.timestamp();
            if age < SWEEP_GRACE.as_secs() as i64 {
                continue;
            }
            let key = meta.location.to_string();
            let mut parts = meta.location.parts().collect::<Vec<_>>().into_iter().rev();
            let (Some(file), Some(tenant)) = (parts.next(), parts.next()) else {
                continue;
            };
            if let Some(id) = file.as_ref().strip_suffix(".tar") {
                found.push((key, tenant.as_ref().to_string(), id.to_string()));
            }
        }
        Ok(found)
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> String {
        format!(
            "the uploads store `{}` failed to {what} an upload: {e}",
            self.shown
        )
    }
}
