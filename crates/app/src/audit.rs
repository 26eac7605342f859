//! The audit trail: every decision (a check, a push and its outcome) and
//! every change of a flavor or registry component is a row in the store,
//! with who asked (tenant, token id, request id), what (image, component,
//! flavor and its sha256), the verdict and its reason, the digest pushed,
//! which process decided, and when by the database's clock.
//!
//! Denials, refusals and changes are written before the caller is
//! answered. Allowed checks, the one event a busy server sees thousands of
//! times a second, are batched: kept in memory and written together once
//! [`BATCH`] of them wait or the oldest waited [`BATCH_AGE`] (by the next
//! event, the server's sweep, a read of the trail, or closing): a crash
//! can lose at most that batch of approvals, never a denial.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use flavorbox_store::{AuditEntry, AuditFilter, AuditRecord, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{App, AppError, Tenant, TenantApp};

/// Allowed checks written in one transaction.
pub const BATCH: usize = 256;
/// The longest an allowed check waits in memory.
pub const BATCH_AGE: Duration = Duration::from_secs(1);
/// Rows a page holds unless the query says otherwise, and at most.
pub const PAGE: u32 = 100;
/// The most rows one page may ask for.
pub const MAX_PAGE: u32 = 1000;

/// Verdicts a row can have.
pub const VERDICTS: [&str; 6] = [
    "allowed", "denied", "refused", "pushed", "failed", "changed",
];

/// Who is asking, beyond the tenant: set by the server for each request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// A non-secret id of the bearer token (a prefix of its sha256).
    pub token_id: Option<String>,
    /// The request's id (the `x-request-id` the server answers with).
    pub request_id: Option<String>,
}

/// One row of the trail, as the API and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// The paging key: increases with time.
    pub id: i64,
    /// When, by the database's clock (RFC 3339 UTC).
    pub at: String,
    /// Whose.
    pub tenant: String,
    /// `check`, `push`, `dry-run`, `flavor.register`, `flavor.replace`,
    /// `flavor.delete`, `component.register`, `component.update`,
    /// `component.delete`.
    pub action: String,
    /// `allowed`, `denied` (by the flavor), `refused` (by the host's checks
    /// or an error before the decision), `pushed`, `failed` (after an
    /// approval), `changed`.
    pub verdict: String,
    /// The image, for decisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The registry component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The flavor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// The flavor component's sha256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flavor_sha256: Option<String>,
    /// Why it was denied, refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The manifest digest pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The caller's token id (server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The request id (server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The process that decided (a server replica, or the CLI's host).
    pub replica: String,
}

impl From<AuditRecord> for AuditEvent {
    fn from(r: AuditRecord) -> Self {
        let e = r.entry;
        AuditEvent {
            id: r.id,
            at: r.at,
            tenant: r.tenant,
            action: e.action,
            verdict: e.verdict,
            image: e.image,
            component: e.component,
            flavor: e.flavor,
            flavor_sha256: e.flavor_sha256,
            reason: e.reason,
            digest: e.digest,
            token_id: e.token_id,
            request_id: e.request_id,
            replica: e.replica,
        }
    }
}

/// A page of the trail, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The rows.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// Which rows: filters and the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this image reference, as recorded (`host/repo:tag`).
    pub image: Option<String>,
    /// Only this verdict: allowed, denied, refused, pushed, failed, changed.
    pub verdict: Option<String>,
    /// Only at or after this time (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
    pub since: Option<String>,
    /// Only before this time (RFC 3339).
    pub until: Option<String>,
    /// Only rows older than this id: the `next` of the previous page.
    pub before: Option<i64>,
    /// Rows per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// The store's filter, every field checked: a clear error names the
    /// field and what it takes.
    fn filter(&self) -> Result<AuditFilter, AppError> {
        if let Some(verdict) = &self.verdict
            && !VERDICTS.contains(&verdict.as_str())
        {
            return Err(AppError::BadAuditQuery(format!(
                "`verdict` is `{verdict}`; use one of {}",
                VERDICTS.join(", ")
            )));
        }
        let time = |field: &str, value: &Option<String>| -> Result<Option<String>, AppError> {
            value
                .as_deref()
                .map(|text| {
                    flavorbox_grammar::image::unix_seconds(text)
                        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
                        .map(flavorbox_store::format_rfc3339)
                        .ok_or_else(|| {
                            AppError::BadAuditQuery(format!(
                                "`{field}` is `{text}`, not an RFC 3339 time; write e.g. `2026-12-01T00:00:00Z`"
                            ))
                        })
                })
                .transpose()
        };
        let limit = self.limit.unwrap_or(PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::BadAuditQuery(format!(
                "`limit` is {limit}; ask for 1 to {MAX_PAGE} rows"
            )));
        }
        Ok(AuditFilter {
            image: self.image.clone(),
            verdict: self.verdict.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            before: self.before,
            limit,
        })
    }
}

/// A page read with one row more than asked, to know whether there is a next.
fn paged(mut records: Vec<AuditRecord>, limit: u32) -> AuditPage {
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next = more.then(|| records.last().map(|r| r.id)).flatten();
    AuditPage {
        events: records.into_iter().map(AuditEvent::from).collect(),
        next,
    }
}

/// The allowed checks waiting to be written.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    rows: Vec<(String, AuditEntry)>,
    oldest: Option<Instant>,
}

/// The process's side of the trail: its name and the batch.
#[derive(Debug)]
pub(crate) struct AuditLog {
    replica: String,
    pending: Mutex<Pending>,
    /// Held from taking rows out of the batch until they are written, so a
    /// flush before a read waits for a write already under way and the
    /// read sees its rows.
    writing: tokio::sync::Mutex<()>,
}

impl AuditLog {
    /// `replica` names this process in every row.
    pub(crate) fn new(replica: String) -> AuditLog {
        AuditLog {
            replica,
            pending: Mutex::new(Pending::default()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds an allowed check to the batch; whether the batch is due
    /// (full, or its oldest row waited long enough).
    fn join(&self, row: (String, AuditEntry)) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.rows.push(row);
        let oldest = *pending.oldest.get_or_insert_with(Instant::now);
        pending.rows.len() >= BATCH || oldest.elapsed() >= BATCH_AGE
    }

    /// Writes the batch, and `row` with it, in one transaction.
    async fn write(
        &self,
        store: &Store,
        row: Option<(String, AuditEntry)>,
    ) -> Result<(), AppError> {
        let _writing = self.writing.lock().await;
        let mut rows = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.oldest = None;
            std::mem::take(&mut pending.rows)
        };
        rows.extend(row);
        store.append_audit(&rows).await?;
        Ok(())
    }

    /// Records `entry` for `tenant`: batched when `batch`, else written
    /// now (with whatever waits).
    async fn record(
        &self,
        store: &Store,
        tenant: &Tenant,
        mut entry: AuditEntry,
        batch: bool,
    ) -> Result<(), AppError> {
        // A home opened read-only (a backup, a read-only mount) can be
        // inspected and checked against, and keeps no trail.
        if store.is_read_only() {
            return Ok(());
        }
        entry.replica = self.replica.clone();
        if let Some(caller) = tenant.caller() {
            entry.token_id = caller.token_id.clone();
            entry.request_id = caller.request_id.clone();
        }
        let row = (tenant.name().to_string(), entry);
        if !batch {
            return self.write(store, Some(row)).await;
        }
        if self.join(row) {
            self.write(store, None).await?;
        }
        Ok(())
    }

    /// Writes what waits.
    pub(crate) async fn flush(&self, store: &Store) -> Result<(), AppError> {
        if store.is_read_only() {
            return Ok(());
        }
        self.write(store, None).await
    }
}

/// The name of this process in the trail: `FLAVORBOX_REPLICA`, else the
/// host's name and the process id.
pub(crate) fn replica_name() -> String {
    if let Ok(name) = std::env::var("FLAVORBOX_REPLICA")
        && !name.trim().is_empty()
    {
        return name.trim().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

impl App {
    /// The name this process records in the audit trail.
    pub fn replica(&self) -> &str {
        &self.audit.replica
    }

    /// Writes the allowed checks that wait (the server's sweep calls this
    /// every few seconds; closing does too).
    pub async fn flush_audit(&self) -> Result<(), AppError> {
        self.audit.flush(&self.store).await
    }

    /// The trail across tenants, or of `tenant`: the operator's view.
    pub async fn audit(
        &self,
        tenant: Option<&str>,
        query: &AuditQuery,
    ) -> Result<AuditPage, AppError> {
        self.audit_page(query, async |filter| {
            self.store.audit(tenant, &filter).await
        })
        .await
    }

    /// The page `query` asks for, read by `read` once the batch is written,
    /// with one row more than asked to know whether there is a next.
    async fn audit_page(
        &self,
        query: &AuditQuery,
        read: impl AsyncFnOnce(AuditFilter) -> Result<Vec<AuditRecord>, flavorbox_store::StoreError>,
    ) -> Result<AuditPage, AppError> {
        let mut filter = query.filter()?;
        self.flush_audit().await?;
        let limit = filter.limit;
        filter.limit += 1;
        Ok(paged(read(filter).await?, limit))
    }

    /// Removes rows older than `retention`; how many.
    pub async fn prune_audit(&self, retention: Duration) -> Result<u64, AppError> {
        let cutoff = time::OffsetDateTime::now_utc() - retention;
        Ok(self
            .store
            .prune_audit(&flavorbox_store::format_rfc3339(cutoff))
            .await?)
    }
}

impl TenantApp<'_> {
    /// This tenant's trail.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, AppError> {
        self.app
            .audit_page(query, async |filter| self.store.audit(&filter).await)
            .await
    }

    /// Records `entry` for this tenant; see the module docs for `batch`.
    /// A failure to record is the caller's error: nothing is decided
    /// without its row.
    pub(crate) async fn record(&self, entry: AuditEntry, batch: bool) -> Result<(), AppError> {
        self.app
            .audit
            .record(&self.app.store, &self.tenant, entry, batch)
            .await
    }
}
