//! Content-addressed storage for `.wasm` components: the [`BlobStore`]
//! trait callers use, and [`BlobDir`], its implementation as a directory
//! (`home/blobs/sha256/<hex>`).
//!
//! Blobs are shared by every tenant (identical bytes are stored once); which
//! tenant may use a blob is decided by the rows that name its digest, so
//! callers reach blobs only through a tenant's records. The trait is the seam
//! for replicas that share a database but not a disk (an object store, or a
//! table): the rows already name blobs only by digest.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::error::{StoreError, io_error};

/// Tells temporary file names apart within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Immutable byte strings shared by every tenant, named by their SHA-256.
///
/// Every implementation names a blob by the lowercase hex SHA-256 of its
/// content, refuses any other name with [`StoreError::InvalidDigest`], and
/// checks on every read that the content still hashes to its name
/// ([`StoreError::CorruptBlob`]): a blob is trusted because of its name, not
/// because of where it was kept. Blobs are shared by content, so only the
/// store removes one, under the database's write lock and only when no
/// tenant's row names it ([`Store::collect_blob`](super::Store::collect_blob),
/// [`Store::sweep`](super::Store::sweep)).
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `bytes` and returns their SHA-256 (lowercase hex); storing the same bytes again is a no-op.
    fn put(&self, bytes: &[u8]) -> Result<String, StoreError>;

    /// Reads the blob named `sha256`, checking that its content still hashes to that name.
    fn get(&self, sha256: &str) -> Result<Vec<u8>, StoreError>;

    /// Whether a blob named `sha256` is stored (its content is checked by [`get`](Self::get) only).
    ///
    /// For the host's own bookkeeping: blobs are shared by every tenant, so
    /// a tenant must never learn the answer.
    fn contains(&self, sha256: &str) -> Result<bool, StoreError>;

    /// Removes the blob named `sha256`; removing a missing blob is not an error.
    ///
    /// Only for a digest no tenant references any more, under the write
    /// lock ([`Store::collect_blob`](super::Store::collect_blob)).
    fn remove(&self, sha256: &str) -> Result<(), StoreError>;
}

/// A [`BlobStore`] in a local directory, one file per blob, written atomically.
#[derive(Debug, Clone)]
pub(super) struct BlobDir {
    dir: PathBuf,
}

impl BlobDir {
    /// Uses `dir` (normally `home/blobs/sha256`), which must already exist.
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Path where the blob named `sha256` lives (whether or not it exists yet).
    pub(super) fn path(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        validate_digest(sha256)?;
        Ok(self.dir.join(sha256))
    }

    /// Writes a temporary file next to `path`, syncs it, then renames it into
    /// place, so a reader sees either no blob or the whole blob.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let temp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = create_new_private(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(io_error(path, e));
        }
        // Make the rename itself durable.
        #[cfg(unix)]
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io_error(&self.dir, e))?;
        Ok(())
    }
}

impl BlobStore for BlobDir {
    fn put(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let path = self.dir.join(&sha256);
        // Idempotent, but not blind: a damaged copy is replaced.
        match fs::read(&path) {
            Ok(existing) if hex::encode(Sha256::digest(&existing)) == sha256 => return Ok(sha256),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
        self.write_atomically(&path, bytes)?;
        Ok(sha256)
    }

    fn get(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(sha256)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    kind: "blob",
                    name: sha256.to_owned(),
                });
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(StoreError::CorruptBlob {
                sha256: sha256.to_owned(),
            });
        }
        Ok(bytes)
    }

    fn contains(&self, sha256: &str) -> Result<bool, StoreError> {
        let path = self.path(sha256)?;
        path.try_exists().map_err(|e| io_error(&path, e))
    }

    fn remove(&self, sha256: &str) -> Result<(), StoreError> {
        let path = self.path(sha256)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        }
    }
}

/// Accepts exactly 64 lowercase hex characters, so a name can never leave the blob directory.
pub(super) fn validate_digest(sha256: &str) -> Result<(), StoreError> {
    let ok = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidDigest(sha256.to_owned()))
    }
}

/// Creates a file that did not exist, readable and writable by the owner only.
fn create_new_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The blob `sha256` from the database's `blobs` table (PostgreSQL), checked
/// against its digest.
pub(super) async fn get_from_database(
    db: &super::backend::Database,
    sha256: &str,
) -> Result<Vec<u8>, StoreError> {
    validate_digest(sha256)?;
    let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT content FROM blobs WHERE sha256 = $1")
        .bind(sha256)
        .fetch_optional(db.pool()?)
        .await?;
    let Some((bytes,)) = row else {
        return Err(StoreError::NotFound {
            kind: "blob",
            name: sha256.to_owned(),
        });
    };
    if hex::encode(Sha256::digest(&bytes)) != sha256 {
        return Err(StoreError::CorruptBlob {
            sha256: sha256.to_owned(),
        });
    }
    Ok(bytes)
}

/// Stores `bytes` in the database's `blobs` table inside the caller's
/// transaction (a copy already there is kept: rows are written whole or
/// not at all); returns its digest.
///
/// A copy already there is locked, not merely seen: with `DO NOTHING` a
/// collection could delete it between this statement and the flavor row
/// that references it (read committed), and the flavor's insert would fail
/// on the foreign key. `DO UPDATE` waits for a collection under way and,
/// when it removed the row, inserts it again.
pub(super) async fn put_in_database(
    conn: &mut super::backend::Connection,
    bytes: &[u8],
) -> Result<String, StoreError> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    sqlx::query(
        "INSERT INTO blobs (sha256, content, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (sha256) DO UPDATE SET created_at = blobs.created_at",
    )
    .bind(&sha256)
    .bind(bytes)
    .bind(super::timestamp::now_rfc3339())
    .execute(conn)
    .await?;
    Ok(sha256)
}
