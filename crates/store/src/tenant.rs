//! The tenant-scoped queries: every SQL statement the host runs against its
//! rows, each filtered by the tenant of the [`TenantStore`] running it.
//!
//! The SQL is portable: `$n` placeholders, types and syntax SQLite and
//! PostgreSQL both accept, no database-specific functions, ordering done in
//! Rust, timestamps written by the host. The database is named only through
//! the backend's `Db`, `Connection` and `Database`.

use std::sync::Arc;

use super::backend::{Connection, Database, Kind, WriteLock};
use super::blob::{self, BlobStore};
use super::egress_paths::require_no_overlap;
use super::error::{
    COMPONENT, FLAVOR, SECRET, StoreError, already_exists, component_write_error, corrupt,
    not_found,
};
use super::records::{
    ComponentRecord, FlavorOrigin, FlavorRecord, RowQuota, SecretRecord, SecretSummary,
};
use super::timestamp::now_rfc3339;

/// One tenant's view of the database; every query is filtered by the tenant.
#[derive(Debug, Clone)]
pub struct TenantStore {
    pub(super) db: Database,
    pub(super) tenant: String,
    quota: RowQuota,
    blobs: Arc<dyn BlobStore>,
    pub(super) job_history: super::jobs::JobHistory,
    /// The server whose jobs this handle writes (`local` unless set).
    pub(super) job_owner: String,
    /// The attempt at a job this handle writes as (see [`TenantStore::update_job`]).
    pub(super) job_attempt: u32,
    /// How long a job recorded through this handle stays its owner's
    /// without a renewal.
    pub(super) job_lease: std::time::Duration,
}

/// Row shapes, in column order.
type FlavorRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The columns of a [`FlavorRow`], in order.
const FLAVOR_COLUMNS: &str =
    "name, sha256, metadata_json, registered_at, origin_reference, origin_digest, origin_key";
type ComponentRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
);

/// A flavor row as read: its origin is all there (a reference and a
/// digest, perhaps a key) or not at all; a part of one is an error naming
/// the flavor, never read as no origin.
fn flavor_from_row(
    (name, sha256, metadata_json, registered_at, reference, digest, key): FlavorRow,
) -> Result<FlavorRecord, StoreError> {
    let origin = match (reference, digest, key) {
        (Some(reference), Some(digest), key) => Some(FlavorOrigin {
            reference,
            digest,
            key,
        }),
        (None, None, None) => None,
        (reference, digest, key) => {
            let part = |v: &Option<String>| if v.is_some() { "set" } else { "missing" };
            return Err(corrupt(
                FLAVOR,
                &name,
                format!(
                    "its origin is incomplete (origin_reference {}, origin_digest {}, origin_key {})",
                    part(&reference),
                    part(&digest),
                    part(&key)
                ),
            ));
        }
    };
    Ok(FlavorRecord {
        name,
        sha256,
        metadata_json,
        registered_at,
        origin,
    })
}

fn component_from_row(
    (name, flavor, uri, config_json, secret, flavor_sha256, created_at, updated_at, version): ComponentRow,
) -> ComponentRecord {
    ComponentRecord {
        name,
        flavor,
        uri,
        config_json,
        secret,
        flavor_sha256,
        created_at,
        updated_at,
        version,
    }
}

const COMPONENT_COLUMNS: &str =
    "name, flavor, uri, config_json, secret, flavor_sha256, created_at, updated_at, version";

impl TenantStore {
    /// A handle on `db` scoped to `tenant`.
    pub(super) fn new(db: Database, tenant: &str, blobs: Arc<dyn BlobStore>) -> TenantStore {
        TenantStore {
            db,
            tenant: tenant.to_owned(),
            quota: RowQuota::default(),
            blobs,
            job_history: super::jobs::JOB_HISTORY,
            job_owner: "local".to_owned(),
            job_attempt: 1,
            job_lease: super::jobs::JOB_LEASE,
        }
    }

    /// The same handle, keeping `history` of finished jobs.
    pub fn with_job_history(mut self, history: super::jobs::JobHistory) -> TenantStore {
        self.job_history = history;
        self
    }

    /// The same handle, recording and writing jobs as `owner`'s (a
    /// replica's name): see [`TenantStore::update_job`].
    pub fn with_job_owner(mut self, owner: &str) -> TenantStore {
        self.job_owner = owner.to_owned();
        self
    }

    /// The same handle, writing jobs as their `attempt`-th owner: a job
    /// taken over by another replica (or taken back after a restart) has a
    /// higher attempt, and a write of an older attempt changes nothing.
    pub fn with_job_attempt(mut self, attempt: u32) -> TenantStore {
        self.job_attempt = attempt;
        self
    }

    /// The same handle, recording jobs with a lease of `lease`
    /// ([`JOB_LEASE`](super::jobs::JOB_LEASE) unless set).
    pub fn with_job_lease(mut self, lease: std::time::Duration) -> TenantStore {
        self.job_lease = lease;
        self
    }

    /// The same handle, refusing inserts past `quota`.
    pub fn with_quota(mut self, quota: RowQuota) -> TenantStore {
        self.quota = quota;
        self
    }

    /// The tenant this handle is scoped to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    // ----- flavors -----

    /// Registers a flavor and stores its `content` (whose SHA-256 must be
    /// `r.sha256`); the store sets `registered_at`. Returns `false` when the
    /// tenant already has this flavor with this content: nothing changes
    /// but the blob, which is checked and rewritten if it was damaged.
    ///
    /// The blob is written inside the write transaction, so a blob
    /// collection (which holds the same lock, in any process) never runs
    /// between storing the blob and recording the row that keeps it.
    /// `content` is `None` only where the blob is stored otherwise (tests
    /// of the rows alone). A name taken by other content is
    /// [`StoreError::AlreadyExists`].
    pub async fn insert_flavor(
        &self,
        r: &FlavorRecord,
        content: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        blob::validate_digest(&r.sha256)?;
        let mut tx = self.db.begin_write(WriteLock::Tenant(&self.tenant)).await?;
        let existing: Option<(String,)> =
            sqlx::query_as("SELECT sha256 FROM flavors WHERE tenant = $1 AND name = $2")
                .bind(&self.tenant)
                .bind(&r.name)
                .fetch_optional(&mut *tx)
                .await?;
        match existing {
            Some((sha256,)) if sha256 == r.sha256 => {
                self.put_blob(&mut tx, r, content).await?;
                tx.commit().await?;
                return Ok(false);
            }
            Some(_) => {
                return Err(StoreError::AlreadyExists {
                    kind: FLAVOR,
                    name: r.name.clone(),
                });
            }
            None => {}
        }
        require_room(
            &mut tx,
            "flavors",
            &self.tenant,
            FLAVOR,
            self.quota.max_flavors,
        )
        .await?;
        self.put_blob(&mut tx, r, content).await?;
        sqlx::query(
            "INSERT INTO flavors (tenant, name, sha256, metadata_json, registered_at, \
             origin_reference, origin_digest, origin_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&self.tenant)
        .bind(&r.name)
        .bind(&r.sha256)
        .bind(&r.metadata_json)
        .bind(now_rfc3339())
        .bind(r.origin.as_ref().map(|o| &o.reference))
        .bind(r.origin.as_ref().map(|o| &o.digest))
        .bind(r.origin.as_ref().and_then(|o| o.key.as_ref()))
        .execute(&mut *tx)
        .await
        .map_err(|e| already_exists(e, FLAVOR, &r.name))?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores `content` as the blob of `r` (checking an existing copy and
    /// replacing a damaged one), refusing content that is not `r.sha256`.
    ///
    /// On SQLite the blob is a file, written under the database's write
    /// lock; on PostgreSQL it is a row written in `tx`, which the flavor row
    /// then references.
    async fn put_blob(
        &self,
        tx: &mut Connection,
        r: &FlavorRecord,
        content: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let Some(content) = content else {
            return Ok(());
        };
        let stored = match self.db.kind() {
            Kind::Sqlite => self.blobs.put(content)?,
            Kind::Postgres => blob::put_in_database(tx, content).await?,
        };
        if stored != r.sha256 {
            return Err(StoreError::InvalidDigest(r.sha256.clone()));
        }
        Ok(())
    }

    /// The registered flavor called `name`, if any.
    pub async fn get_flavor(&self, name: &str) -> Result<Option<FlavorRecord>, StoreError> {
        let row: Option<FlavorRow> = sqlx::query_as(&format!(
            "SELECT {FLAVOR_COLUMNS} FROM flavors WHERE tenant = $1 AND name = $2"
        ))
        .bind(&self.tenant)
        .bind(name)
        .fetch_optional(self.db.pool()?)
        .await?;
        row.map(flavor_from_row).transpose()
    }

    /// All registered flavors, ordered by name.
    pub async fn list_flavors(&self) -> Result<Vec<FlavorRecord>, StoreError> {
        let rows: Vec<FlavorRow> = sqlx::query_as(&format!(
            "SELECT {FLAVOR_COLUMNS} FROM flavors WHERE tenant = $1"
        ))
        .bind(&self.tenant)
        .fetch_all(self.db.pool()?)
        .await?;
        let mut flavors = rows
            .into_iter()
            .map(flavor_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here rather than by ORDER BY: SQLite and PostgreSQL collate
        // text differently, and the order should not depend on the database.
        flavors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(flavors)
    }

    /// Replaces the content of flavor `r.name` (registered from an OCI
    /// source whose tag moved): content, metadata and origin, if it still
    /// has the content `expected_sha256`; else a conflict. Returns the
    /// registry components that were validated by the old content (they
    /// must be validated again before they push).
    ///
    /// `content` is stored as in [`insert_flavor`](Self::insert_flavor).
    pub async fn replace_flavor(
        &self,
        r: &FlavorRecord,
        expected_sha256: &str,
        content: Option<&[u8]>,
    ) -> Result<Vec<String>, StoreError> {
        blob::validate_digest(&r.sha256)?;
        let mut tx = self.db.begin_write(WriteLock::Tenant(&self.tenant)).await?;
        self.put_blob(&mut tx, r, content).await?;
        let changed = sqlx::query(
            "UPDATE flavors SET sha256 = $1, metadata_json = $2, registered_at = $3, \
             origin_reference = $4, origin_digest = $5, origin_key = $6 \
             WHERE tenant = $7 AND name = $8 AND sha256 = $9",
        )
        .bind(&r.sha256)
        .bind(&r.metadata_json)
        .bind(now_rfc3339())
        .bind(r.origin.as_ref().map(|o| &o.reference))
        .bind(r.origin.as_ref().map(|o| &o.digest))
        .bind(r.origin.as_ref().and_then(|o| o.key.as_ref()))
        .bind(&self.tenant)
        .bind(&r.name)
        .bind(expected_sha256)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Conflict {
                kind: FLAVOR,
                name: r.name.clone(),
            });
        }
        let by = names_where(&mut tx, &self.tenant, "flavor", &r.name).await?;
        tx.commit().await?;
        Ok(by)
    }

    /// Unregisters a flavor, refusing while a registry component uses it.
    ///
    /// The blob stays: blobs are shared and content-addressed.
    pub async fn delete_flavor(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(WriteLock::Tenant(&self.tenant)).await?;
        let deleted = sqlx::query("DELETE FROM flavors WHERE tenant = $1 AND name = $2")
            .bind(&self.tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(FLAVOR, name));
        }
        let by = names_where(&mut tx, &self.tenant, "flavor", name).await?;
        if !by.is_empty() {
            // Dropping `tx` rolls the delete back.
            return Err(StoreError::InUse {
                kind: FLAVOR,
                name: name.to_owned(),
                by,
            });
        }
        tx.commit().await?;
        Ok(())
    }

    // ----- registry components -----

    /// Creates a registry component; its secret, if named, must exist. The
    /// store sets both timestamps and version 1.
    pub async fn insert_component(&self, r: &ComponentRecord) -> Result<(), StoreError> {
        self.insert_component_guarded(r, None).await
    }

    /// [`Self::insert_component`], refused with [`StoreError::PathTaken`]
    /// when `overlaps` holds for a uri another tenant's component uses,
    /// decided in the insert's transaction (`egress_paths`).
    pub async fn insert_component_guarded(
        &self,
        r: &ComponentRecord,
        overlaps: Option<&(dyn Fn(&str) -> bool + Send + Sync)>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .db
            .begin_write(WriteLock::TenantAndPaths(&self.tenant))
            .await?;
        if let Some(secret) = &r.secret {
            require_secret(&mut tx, &self.tenant, secret).await?;
        }
        require_flavor_digest(&mut tx, &self.tenant, r).await?;
        require_no_overlap(&mut tx, &self.tenant, &r.uri, overlaps).await?;
        require_room(
            &mut tx,
            "components",
            &self.tenant,
            COMPONENT,
            self.quota.max_components,
        )
        .await?;
        let now = now_rfc3339();
        sqlx::query(
            "INSERT INTO components \
             (tenant, name, flavor, uri, config_json, secret, flavor_sha256, created_at, updated_at, \
              version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)",
        )
        .bind(&self.tenant)
        .bind(&r.name)
        .bind(&r.flavor)
        .bind(&r.uri)
        .bind(&r.config_json)
        .bind(&r.secret)
        .bind(&r.flavor_sha256)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| component_write_error(e, r))?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a registry component's flavor, URI, config and secret; keeps
    /// `created_at`, bumps `updated_at` and `version`.
    ///
    /// `r.version` must be the version read before the change: if another
    /// writer changed the component since, the update is refused with
    /// [`StoreError::Conflict`] instead of silently undoing that change.
    pub async fn update_component(&self, r: &ComponentRecord) -> Result<(), StoreError> {
        self.update_component_guarded(r, None).await
    }

    /// [`Self::update_component`], refused with [`StoreError::PathTaken`]
    /// when `overlaps` holds for a uri another tenant's component uses,
    /// decided in the update's transaction (`egress_paths`).
    pub async fn update_component_guarded(
        &self,
        r: &ComponentRecord,
        overlaps: Option<&(dyn Fn(&str) -> bool + Send + Sync)>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .db
            .begin_write(WriteLock::TenantAndPaths(&self.tenant))
            .await?;
        // The row is written first so that a missing or changed component is
        // reported as such before anything about its new contents; a check
        // that fails below drops `tx`, which rolls the write back.
        let updated = sqlx::query(
            "UPDATE components SET flavor = $3, uri = $4, config_json = $5, secret = $6, \
             flavor_sha256 = $7, updated_at = $8, version = version + 1 \
             WHERE tenant = $1 AND name = $2 AND version = $9",
        )
        .bind(&self.tenant)
        .bind(&r.name)
        .bind(&r.flavor)
        .bind(&r.uri)
        .bind(&r.config_json)
        .bind(&r.secret)
        .bind(&r.flavor_sha256)
        .bind(now_rfc3339())
        .bind(r.version)
        .execute(&mut *tx)
        .await
        .map_err(|e| component_write_error(e, r))?
        .rows_affected();
        if updated == 0 {
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT name FROM components WHERE tenant = $1 AND name = $2")
                    .bind(&self.tenant)
                    .bind(&r.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match exists {
                None => not_found(COMPONENT, &r.name),
                Some(_) => StoreError::Conflict {
                    kind: COMPONENT,
                    name: r.name.clone(),
                },
            });
        }
        if let Some(secret) = &r.secret {
            require_secret(&mut tx, &self.tenant, secret).await?;
        }
        require_flavor_digest(&mut tx, &self.tenant, r).await?;
        require_no_overlap(&mut tx, &self.tenant, &r.uri, overlaps).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The registry component called `name`, if any.
    pub async fn get_component(&self, name: &str) -> Result<Option<ComponentRecord>, StoreError> {
        let row: Option<ComponentRow> = sqlx::query_as(&format!(
            "SELECT {COMPONENT_COLUMNS} FROM components WHERE tenant = $1 AND name = $2"
        ))
        .bind(&self.tenant)
        .bind(name)
        .fetch_optional(self.db.pool()?)
        .await?;
        Ok(row.map(component_from_row))
    }

    /// All registry components, ordered by name.
    pub async fn list_components(&self) -> Result<Vec<ComponentRecord>, StoreError> {
        let rows: Vec<ComponentRow> = sqlx::query_as(&format!(
            "SELECT {COMPONENT_COLUMNS} FROM components WHERE tenant = $1"
        ))
        .bind(&self.tenant)
        .fetch_all(self.db.pool()?)
        .await?;
        let mut components: Vec<_> = rows.into_iter().map(component_from_row).collect();
        components.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(components)
    }

    /// Deletes a registry component.
    pub async fn delete_component(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(WriteLock::Tenant(&self.tenant)).await?;
        let deleted = sqlx::query("DELETE FROM components WHERE tenant = $1 AND name = $2")
            .bind(&self.tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(COMPONENT, name));
        }
        tx.commit().await
    }

    /// [`get_component`](Self::get_component) through this process's
    /// cache (see [`CACHE_TTL`](crate::CACHE_TTL)): for reads that decide
    /// a flavor call, never a write.
    pub async fn get_component_cached(
        &self,
        name: &str,
    ) -> Result<Option<ComponentRecord>, StoreError> {
        self.db
            .cache
            .tenant_row(&self.tenant, name, || self.get_component(name))
            .await
    }

    /// [`get_flavor`](Self::get_flavor) through this process's cache (see
    /// [`CACHE_TTL`](crate::CACHE_TTL)): for reads that decide a flavor
    /// call, never a write.
    pub async fn get_flavor_cached(&self, name: &str) -> Result<Option<FlavorRecord>, StoreError> {
        self.db
            .cache
            .tenant_row(&self.tenant, name, || self.get_flavor(name))
            .await
    }

    /// Names of the registry components that use `flavor`, sorted.
    pub async fn components_using_flavor(&self, flavor: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.db.pool()?.acquire().await?;
        names_where(&mut conn, &self.tenant, "flavor", flavor).await
    }

    // ----- secrets -----

    /// Stores registry credentials under `name`.
    pub async fn create_secret(
        &self,
        name: &str,
        username: &str,
        password: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(WriteLock::Tenant(&self.tenant)).await?;
        require_room(
            &mut tx,
            "secrets",
            &self.tenant,
            SECRET,
            self.quota.max_secrets,
        )
        .await?;
        if let Some(max) = self.quota.max_secret_bytes {
            let (held,): (i64,) = sqlx::query_as(
                "SELECT COALESCE(SUM(LENGTH(username) + LENGTH(password)), 0) FROM secrets \
                 WHERE tenant = $1",
            )
            .bind(&self.tenant)
            .fetch_one(&mut *tx)
            .await?;
            let adding = (username.len() + password.len()) as u64;
            if u64::try_from(held).unwrap_or(0).saturating_add(adding) > max {
                return Err(StoreError::BytesQuotaExceeded { kind: SECRET, max });
            }
        }
        sqlx::query(
            "INSERT INTO secrets (tenant, name, username, password, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&self.tenant)
        .bind(name)
        .bind(username)
        .bind(password)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(|e| already_exists(e, SECRET, name))?;
        tx.commit().await?;
        Ok(())
    }

    /// The secret called `name`, password included, if any. For the host's push only.
    pub async fn get_secret(&self, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT name, username, password FROM secrets WHERE tenant = $1 AND name = $2",
        )
        .bind(&self.tenant)
        .bind(name)
        .fetch_optional(self.db.pool()?)
        .await?;
        Ok(row.map(|(name, username, password)| SecretRecord {
            name,
            username,
            password: password.into(),
        }))
    }

    /// All secrets without their passwords, ordered by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretSummary>, StoreError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, username, created_at FROM secrets WHERE tenant = $1")
                .bind(&self.tenant)
                .fetch_all(self.db.pool()?)
                .await?;
        let mut secrets: Vec<_> = rows
            .into_iter()
            .map(|(name, username, created_at)| SecretSummary {
                name,
                username,
                created_at,
            })
            .collect();
        secrets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(secrets)
    }

    /// Deletes a secret, refusing while a registry component references it.
    pub async fn delete_secret(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(WriteLock::Tenant(&self.tenant)).await?;
        let by = names_where(&mut tx, &self.tenant, "secret", name).await?;
        if !by.is_empty() {
            return Err(StoreError::InUse {
                kind: SECRET,
                name: name.to_owned(),
                by,
            });
        }
        let deleted = sqlx::query("DELETE FROM secrets WHERE tenant = $1 AND name = $2")
            .bind(&self.tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(SECRET, name));
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Sorted names of the tenant's components whose `column` (`flavor` or `secret`) equals `value`.
async fn names_where(
    conn: &mut Connection,
    tenant: &str,
    column: &'static str,
    value: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT name FROM components WHERE tenant = $1 AND {column} = $2"
    ))
    .bind(tenant)
    .bind(value)
    .fetch_all(conn)
    .await?;
    let mut names: Vec<String> = rows.into_iter().map(|(n,)| n).collect();
    names.sort();
    Ok(names)
}

/// Fails with [`StoreError::QuotaExceeded`] when the tenant already has
/// `max` rows in `table`; run inside the write transaction that inserts.
async fn require_room(
    conn: &mut Connection,
    table: &'static str,
    tenant: &str,
    kind: &'static str,
    max: Option<u64>,
) -> Result<(), StoreError> {
    let Some(max) = max else { return Ok(()) };
    let (count,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM {table} WHERE tenant = $1"))
            .bind(tenant)
            .fetch_one(conn)
            .await?;
    if u64::try_from(count).unwrap_or(0) >= max {
        return Err(StoreError::QuotaExceeded { kind, max });
    }
    Ok(())
}

/// Fails with [`StoreError::SecretNotFound`] unless the tenant has the secret.
async fn require_secret(
    conn: &mut Connection,
    tenant: &str,
    secret: &str,
) -> Result<(), StoreError> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT name FROM secrets WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(secret)
            .fetch_optional(conn)
            .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::SecretNotFound(secret.to_owned())),
    }
}

/// Checks, inside the write transaction, that a component's flavor digest is
/// the one the tenant's registered flavor of that name has now.
async fn require_flavor_digest(
    conn: &mut Connection,
    tenant: &str,
    r: &ComponentRecord,
) -> Result<(), StoreError> {
    let Some(expected) = &r.flavor_sha256 else {
        return Ok(());
    };
    let found: Option<(String,)> =
        sqlx::query_as("SELECT sha256 FROM flavors WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(&r.flavor)
            .fetch_optional(conn)
            .await?;
    match found {
        Some((sha256,)) if &sha256 == expected => Ok(()),
        _ => Err(StoreError::FlavorReplaced(r.flavor.clone())),
    }
}
