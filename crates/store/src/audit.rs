//! The audit trail: decisions and changes, one row each, scoped to their
//! tenant like every other row; the admin reads across tenants.

use super::error::StoreError;
use super::{Store, TenantStore, backend};

/// One event to record; the store adds the time (the database's clock), the
/// id and the tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// What happened: `check`, `push`, `dry-run`, `flavor.register`, ...
    pub action: String,
    /// How it ended: `allowed`, `denied`, `refused`, `pushed`, `failed`,
    /// `changed`.
    pub verdict: String,
    /// The image reference, for decisions.
    pub image: Option<String>,
    /// The registry component.
    pub component: Option<String>,
    /// The flavor.
    pub flavor: Option<String>,
    /// The flavor component's sha256.
    pub flavor_sha256: Option<String>,
    /// The flavor's or the host's reason, for a refusal or failure.
    pub reason: Option<String>,
    /// The manifest digest pushed.
    pub digest: Option<String>,
    /// The caller's token (a non-secret id of it), on a server.
    pub token_id: Option<String>,
    /// The request that caused it, on a server.
    pub request_id: Option<String>,
    /// The process (server replica, or the CLI's host) that decided.
    pub replica: String,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing with time within one database: the paging key.
    pub id: i64,
    /// When, by the database's clock (RFC 3339 UTC, milliseconds).
    pub at: String,
    /// Whose.
    pub tenant: String,
    /// What.
    pub entry: AuditEntry,
}

/// Which rows to read: newest first, at most `limit`, older than the row
/// `before` (the last id of the previous page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this image reference.
    pub image: Option<String>,
    /// Only this verdict.
    pub verdict: Option<String>,
    /// Only at or after this time (the store's RFC 3339 format).
    pub since: Option<String>,
    /// Only before this time.
    pub until: Option<String>,
    /// Only rows older than this id.
    pub before: Option<i64>,
    /// At most this many rows.
    pub limit: u32,
}

type AuditRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

const COLUMNS: &str = "id, at, tenant, action, verdict, image, component, flavor, flavor_sha256, \
                       reason, digest, token_id, request_id, replica";

fn record_from_row(row: AuditRow) -> AuditRecord {
    let (id, at, tenant, action, verdict, image, component, flavor, flavor_sha256) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8,
    );
    let (reason, digest, token_id, request_id, replica) = (row.9, row.10, row.11, row.12, row.13);
    AuditRecord {
        id,
        at,
        tenant,
        entry: AuditEntry {
            action,
            verdict,
            image,
            component,
            flavor,
            flavor_sha256,
            reason,
            digest,
            token_id,
            request_id,
            replica,
        },
    }
}

/// Rows one INSERT writes at most (1,200 parameters, far below both
/// databases' limits).
const ROWS_PER_INSERT: usize = 100;

/// Appends `entries` of `tenant`s in one transaction.
async fn append(
    db: &backend::Database,
    entries: &[(String, AuditEntry)],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write(backend::WriteLock::None).await?;
    // Many rows a statement: a batch is a few round trips, not one a row
    // (on PostgreSQL each is a trip to the server). 12 parameters a row.
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=12).map(|j| db.placeholder(i * 12 + j)).collect();
                format!("({}, {})", db.now(), p.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit (at, tenant, action, verdict, image, component, flavor, \
             flavor_sha256, reason, digest, token_id, request_id, replica) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (tenant, e) in chunk {
            query = query
                .bind(tenant)
                .bind(&e.action)
                .bind(&e.verdict)
                .bind(&e.image)
                .bind(&e.component)
                .bind(&e.flavor)
                .bind(&e.flavor_sha256)
                .bind(&e.reason)
                .bind(&e.digest)
                .bind(&e.token_id)
                .bind(&e.request_id)
                .bind(&e.replica);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Reads a page under `filter`, of `tenant` or of every tenant.
async fn page(
    db: &backend::Database,
    tenant: Option<&str>,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    // Every condition is bound; an absent one is a NULL that matches all.
    let rows: Vec<AuditRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit \
         WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR image = $2) \
         AND ($3 IS NULL OR verdict = $3) AND ($4 IS NULL OR at >= $4) \
         AND ($5 IS NULL OR at < $5) AND ($6 IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    ))
    .bind(tenant)
    .bind(&filter.image)
    .bind(&filter.verdict)
    .bind(&filter.since)
    .bind(&filter.until)
    .bind(filter.before)
    .bind(i64::from(filter.limit))
    .fetch_all(db.pool()?)
    .await?;
    Ok(rows.into_iter().map(record_from_row).collect())
}

impl TenantStore {
    /// Records `entry` for this tenant.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        append(&self.db, &[(self.tenant.clone(), entry.clone())]).await
    }

    /// This tenant's rows under `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        page(&self.db, Some(&self.tenant), filter).await
    }
}

impl Store {
    /// Records rows of any tenants in one transaction (a batch).
    pub async fn append_audit(&self, entries: &[(String, AuditEntry)]) -> Result<(), StoreError> {
        append(&self.db, entries).await
    }

    /// Rows under `filter` across tenants (or of `tenant`), newest first:
    /// the operator's view.
    pub async fn audit(
        &self,
        tenant: Option<&str>,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        page(&self.db, tenant, filter).await
    }

    /// Removes rows older than `cutoff` (RFC 3339, the store's format); how many.
    pub async fn prune_audit(&self, cutoff: &str) -> Result<u64, StoreError> {
        let mut tx = self.db.begin_write(backend::WriteLock::None).await?;
        let removed = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }
}
