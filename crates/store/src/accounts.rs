//! The server's tenants (a name and the SHA-256 of its bearer token) and the
//! questions that span tenants: which blobs any tenant still uses, which
//! jobs a restart interrupted. Tenant-scoped queries stay in `tenant.rs`.

use super::Store;
use super::backend::{Kind, WriteLock};
use super::cache::ACCOUNTS;
use super::error::{StoreError, TENANT, already_exists, not_found};
use super::timestamp::now_rfc3339;

impl Store {
    /// Records a tenant with the SHA-256 (hex) of its token.
    pub async fn create_tenant(&self, name: &str, token_sha256: &str) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write(WriteLock::Tenant(name)).await?;
        tx.changes(ACCOUNTS);
        sqlx::query("INSERT INTO tenants (name, token_sha256, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(token_sha256)
            .bind(now_rfc3339())
            .execute(&mut *tx)
            .await
            .map_err(|e| already_exists(e, TENANT, name))?;
        tx.commit().await
    }

    /// [`tenant_for_token`](Self::tenant_for_token) through this process's
    /// cache: no round trip while no tenant was created or deleted (here,
    /// or on any replica) and the entry is younger than
    /// [`CACHE_TTL`](crate::CACHE_TTL). A token that matches nothing is
    /// not kept.
    pub async fn tenant_for_token_cached(
        &self,
        token_sha256: &str,
    ) -> Result<Option<String>, StoreError> {
        let cache = &self.db.cache;
        if let Some(tenant) = cache.token(token_sha256) {
            return Ok(Some(tenant));
        }
        let before = cache.stamp(ACCOUNTS);
        let found = self.tenant_for_token(token_sha256).await?;
        if let Some(tenant) = &found {
            cache.keep_token(token_sha256, tenant, before);
        }
        Ok(found)
    }

    /// The tenant whose token hashes to `token_sha256`, if any.
    pub async fn tenant_for_token(&self, token_sha256: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT name, token_sha256 FROM tenants WHERE token_sha256 = $1")
                .bind(token_sha256)
                .fetch_optional(self.db.pool()?)
                .await?;
        // The lookup compares hashes of high-entropy tokens; the equality
        // the caller relies on is checked again in constant time.
        Ok(row.and_then(|(name, stored)| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                stored.as_bytes(),
                token_sha256.as_bytes(),
            ))
            .then_some(name)
        }))
    }

    /// Whether a tenant called `name` exists.
    pub async fn tenant_exists(&self, name: &str) -> Result<bool, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT name FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db.pool()?)
            .await?;
        Ok(row.is_some())
    }

    /// Removes a tenant and every row it owns, in one transaction; returns
    /// the digests of the flavors it had registered, for blob collection.
    pub async fn delete_tenant(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let mut tx = self.db.begin_write(WriteLock::Tenant(name)).await?;
        tx.changes(ACCOUNTS);
        let digests: Vec<(String,)> =
            sqlx::query_as("SELECT sha256 FROM flavors WHERE tenant = $1")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
        // Components first: they refer to secrets. The audit trail goes too:
        // a later tenant of the same name must not read this one's.
        for table in ["components", "secrets", "flavors", "jobs", "audit"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant = $1"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(TENANT, name));
        }
        tx.commit().await?;
        let mut digests: Vec<String> = digests.into_iter().map(|(d,)| d).collect();
        digests.sort();
        digests.dedup();
        Ok(digests)
    }

    /// Removes the blob `sha256` if no tenant's flavor uses it; whether it did.
    ///
    /// SQLite: decided and done under the database's write lock, which
    /// every registration holds from storing its blob to committing its row
    /// (in this process or any other), so a blob is never removed between
    /// another registration's put and its insert. PostgreSQL: one statement,
    /// which the flavors' foreign key makes fail while any flavor (of any
    /// tenant, on any replica, committed or about to be) uses the blob.
    pub async fn collect_blob(&self, sha256: &str) -> Result<bool, StoreError> {
        if self.db.kind() == Kind::Postgres {
            return collect_from_database(self.db.pool()?, Some(sha256))
                .await
                .map(|n| n > 0);
        }
        let mut tx = self.db.begin_write(WriteLock::None).await?;
        let used: Option<(String,)> =
            sqlx::query_as("SELECT name FROM flavors WHERE sha256 = $1 LIMIT 1")
                .bind(sha256)
                .fetch_optional(&mut *tx)
                .await?;
        if used.is_some() {
            tx.commit().await?;
            return Ok(false);
        }
        self.blobs().remove(sha256)?;
        tx.commit().await?;
        Ok(true)
    }

    /// The digest of every blob some tenant's flavor uses.
    pub(super) async fn referenced_blobs(
        &self,
        conn: Option<&mut super::backend::Connection>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let query = sqlx::query_as::<_, (String,)>("SELECT DISTINCT sha256 FROM flavors");
        let rows = match conn {
            Some(conn) => query.fetch_all(conn).await?,
            None => query.fetch_all(self.db.pool()?).await?,
        };
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Every registered flavor's digest, with its tenant and name: for
    /// checking at start-up that each still loads.
    pub async fn all_flavors(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT tenant, name, sha256 FROM flavors")
            .fetch_all(self.db.pool()?)
            .await?)
    }
}

/// A stored secret, for checking the secrets key against it.
#[derive(Debug)]
pub struct SealedSecret {
    /// Its tenant.
    pub tenant: String,
    /// Its name.
    pub name: String,
    /// The value as stored (sealed, or plain if it was stored without a key).
    pub stored: String,
}

impl Store {
    /// What the secrets key sealed when it first served this database, if
    /// a key ever did.
    pub async fn secrets_key_canary(&self) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT sealed FROM secrets_key_canary WHERE singleton = 1")
                .fetch_optional(self.db.pool()?)
                .await?;
        Ok(row.map(|(sealed,)| sealed))
    }

    /// Records the canary unless one is there (two servers starting at once:
    /// the first wins, and each checks what was kept).
    pub async fn keep_secrets_key_canary(&self, sealed: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets_key_canary (singleton, sealed, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (singleton) DO NOTHING",
        )
        .bind(sealed)
        .bind(now_rfc3339())
        .execute(self.db.pool()?)
        .await?;
        Ok(())
    }

    /// One stored secret of any tenant (the oldest), if there is one.
    pub async fn any_secret(&self) -> Result<Option<SealedSecret>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT tenant, name, password FROM secrets ORDER BY created_at, tenant, name LIMIT 1",
        )
        .fetch_optional(self.db.pool()?)
        .await?;
        Ok(row.map(|(tenant, name, stored)| SealedSecret {
            tenant,
            name,
            stored,
        }))
    }
}

/// Deletes the database blob `sha256` (or, with `None`, every blob) that no
/// flavor uses; how many went. A flavor that takes a blob up meanwhile
/// makes the delete fail on the foreign key, which is "in use", not an error.
pub(super) async fn collect_from_database(
    pool: &sqlx::Pool<super::backend::Db>,
    sha256: Option<&str>,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM blobs WHERE ($1 IS NULL OR sha256 = $1) \
         AND NOT EXISTS (SELECT 1 FROM flavors WHERE flavors.sha256 = blobs.sha256)",
    )
    .bind(sha256)
    .execute(pool)
    .await;
    match result {
        Ok(done) => Ok(done.rows_affected()),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(0),
        Err(e) => Err(e.into()),
    }
}
