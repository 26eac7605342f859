//! The rows callers read and write, as plain values.
//!
//! They carry no database types, so the application layer (and a server's
//! JSON) depends on these shapes and never on the backend or its queries.

use std::fmt;

use secrecy::SecretString;

/// A flavor registered from a `.wasm` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorRecord {
    /// Flavor name, unique within the tenant.
    pub name: String,
    /// SHA-256 of the component in the blob store.
    pub sha256: String,
    /// The flavor's `metadata()` as JSON.
    pub metadata_json: String,
    /// When it was registered (RFC 3339 UTC); set by the store on insert.
    pub registered_at: String,
    /// Where it was pulled from; `None` for a flavor registered from a file.
    pub origin: Option<FlavorOrigin>,
}

/// The OCI artifact a flavor was registered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorOrigin {
    /// The `oci://` source as given (a tag, a digest or both).
    pub reference: String,
    /// The manifest digest it resolved to when pulled.
    pub digest: String,
    /// The id of the key whose signature was verified, if one was required.
    pub key: Option<String>,
}

/// A registry component: a flavor bound to a registry URI and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRecord {
    /// Component name, unique within the tenant.
    pub name: String,
    /// Flavor name (registered or built-in).
    pub flavor: String,
    /// Registry URI.
    pub uri: String,
    /// The validated config as JSON.
    pub config_json: String,
    /// Name of the secret the host pushes with, if any.
    pub secret: Option<String>,
    /// SHA-256 of the registered flavor that validated the config; `None`
    /// for a built-in flavor. The store refuses a digest the tenant's flavor
    /// of that name does not have.
    pub flavor_sha256: Option<String>,
    /// When it was created (RFC 3339 UTC); set by the store.
    pub created_at: String,
    /// When it was last changed (RFC 3339 UTC); set by the store.
    pub updated_at: String,
    /// Bumped by every update, starting at 1; ignored on insert. An update
    /// must carry the version it read, or it is refused as a conflict.
    pub version: i64,
}

/// Registry credentials, as the host uses them for a push.
#[derive(Debug, Clone)]
pub struct SecretRecord {
    /// Secret name, unique within the tenant.
    pub name: String,
    /// Registry user name.
    pub username: String,
    /// Registry password or token (sealed, when the server has a secrets key).
    pub password: SecretString,
}

/// What may be shown of a secret: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretSummary {
    /// Secret name.
    pub name: String,
    /// Registry user name.
    pub username: String,
    /// When it was created (RFC 3339 UTC).
    pub created_at: String,
}

/// A push job: an uploaded image pushed in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Job id, unique within the tenant.
    pub id: String,
    /// The registry component pushed to.
    pub component: String,
    /// The image reference, as given.
    pub image: String,
    /// Where the job is; stored as [`JobStatus::as_str`].
    pub status: JobStatus,
    /// Progress, digest, warnings, error: JSON the application layer owns.
    pub detail_json: String,
    /// When it was created (RFC 3339 UTC); set by the store.
    pub created_at: String,
    /// When it last changed (RFC 3339 UTC); set by the store.
    pub updated_at: String,
    /// How many servers have owned it: 1, then one more each time a
    /// replica takes it over after its owner stopped renewing its lease.
    /// Set by the store.
    pub attempt: u32,
    /// The replica that owns it now; set by the store.
    pub owner: String,
}

/// A job whose owner stopped renewing its lease, claimed by another
/// replica to run again from its shared upload
/// ([`Store::claim_lost_jobs`](crate::Store::claim_lost_jobs)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The tenant whose job it is.
    pub tenant: String,
    /// The job's id.
    pub id: String,
    /// The registry component pushed to.
    pub component: String,
    /// The image reference, as given.
    pub image: String,
    /// Whether the push was a dry run.
    pub dry_run: bool,
    /// Where its upload is in the shared uploads store.
    pub upload_key: String,
    /// The attempt the claimer now holds: its writes are fenced on it.
    pub attempt: u32,
}

/// Where a push job is, as the store keeps it (the word of
/// [`as_str`](Self::as_str) in the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Recorded, not started.
    Queued,
    /// Checking, loading or pushing.
    Running,
    /// Pushed.
    Succeeded,
    /// Failed; the detail says why.
    Failed,
    /// The server stopped before the job ended.
    Interrupted,
}

impl JobStatus {
    /// Every status, in the order a job may pass through them.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Interrupted,
    ];

    /// The word stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
        }
    }

    /// The status whose word is `text`; `None` for a word this version
    /// never writes.
    pub fn from_stored(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the job still holds a place in its tenant's job quota
    /// (queued or running).
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-tenant bounds the store enforces inside its write transactions, so
/// two concurrent registrations cannot both squeeze under the quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowQuota {
    /// Most registered flavors.
    pub max_flavors: Option<u64>,
    /// Most registry components.
    pub max_components: Option<u64>,
    /// Most secrets.
    pub max_secrets: Option<u64>,
    /// Most bytes all of a tenant's secrets may hold (username and stored
    /// password together).
    pub max_secret_bytes: Option<u64>,
}
