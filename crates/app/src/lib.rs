//! The application layer: register a flavor, register a registry component,
//! check, push. The CLI (locally) and the HTTP server are thin edges over
//! this, so both compose the core the same way; the CLI's remote mode talks
//! to the server, which calls this.
//!
//! Order of a push: the host parses the image reference and checks that it
//! belongs to the component's registry (before any flavor code runs), then the
//! flavor's `prepare-image-push` decides, then the host pushes with the
//! component's credentials. Nothing is stored unless every check passed.
//!
//! - [`config`]: the one checked configuration (limits, grants, caps).
//! - [`error`]: every failure, with what to do, and its [`ErrorCode`].
//! - [`wire`]: inputs and outputs, serde both ways.
//! - `flavors`, `components`, `secrets`, `push`, `lookups`: the operations.

pub mod audit;
mod cipher;
mod components;
pub mod config;
mod distribution;
mod error;
mod flavors;
mod jobs;
mod lookups;
mod push;
pub mod quota;
pub mod registry_config;
mod secrets;
pub mod wire;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use flavorbox_builtin as builtin;
use flavorbox_grammar::Reference;
use flavorbox_sandbox::{LoadedFlavor, Sandbox, SandboxConfig};
use flavorbox_store::{Store, TenantStore};

use crate::audit::{AuditLog, Caller};

pub use self::cipher::SecretKey;
pub use self::config::{AppConfig, AppConfigBuilder, MIN_JOB_LEASE, Quotas};
pub use self::error::{AppError, ErrorCode};
pub use self::jobs::new_job_id;
pub use self::push::{PushSource, PushUpdate};
pub use self::quota::{Admission, CallBounds, TenantQuota};
pub use self::wire::{
    CheckReport, CheckRequest, ComponentInfo, CreateSecret, FlavorInfo, FlavorOriginInfo,
    FlavorUpdate, ImageInfo, ImageSeen, JobError, JobInfo, JobStatus, PublishReport, PushProgress,
    PushReport, PushRequest, RegisterComponent, RegisterFromOci, RegistryBody, SecretBody,
    SecretChange, SecretInfo, UpdateComponent,
};
pub use crate::registry_config::parse_options;
// The inner layers' types that are part of this layer's API. The edges
// name them through here and depend on no inner crate themselves.
pub use flavorbox_net::image_info::archive_facts;
pub use flavorbox_net::oci::{OciSource, PublicKey, SigningKey};
pub use flavorbox_net::push::{ArchiveLimits, PushEvent, save_image};
pub use flavorbox_net::registry_api::{AllowedHost, EgressPolicy, Endpoint};
pub use flavorbox_sandbox::flavor::{ConfigIssue, LogLine, is_valid_name as is_valid_flavor_name};
pub use flavorbox_store::{
    ClaimedJob, JOB_LEASE, JOB_LEASE_RENEW, MAX_JOB_ATTEMPTS, StoreError, is_postgres_url,
    redact_database_url,
};

/// A tenant whose identity has been established: the local user of the CLI,
/// or a caller the server authenticated. Every operation acts for one.
/// Two are the same tenant when their names are; the caller (token and
/// request ids, for the audit trail) travels along, into jobs too.
#[derive(Debug, Clone)]
pub struct Tenant {
    name: String,
    caller: Option<Arc<Caller>>,
}

impl PartialEq for Tenant {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Tenant {}

impl std::hash::Hash for Tenant {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Tenant {
    /// The name the single-user CLI acts as.
    pub const LOCAL: &'static str = "default";

    /// The local user of the CLI (no authentication: the state is theirs).
    pub fn local() -> Tenant {
        Tenant::verified(Self::LOCAL)
    }

    /// A tenant an authentication layer has verified (the server's bearer
    /// tokens). Never build one from a name a caller merely claims.
    pub fn verified(name: impl Into<String>) -> Tenant {
        Tenant {
            name: name.into(),
            caller: None,
        }
    }

    /// The same tenant, acting through `caller` (recorded in the audit trail).
    pub fn with_caller(mut self, caller: Caller) -> Tenant {
        self.caller = Some(Arc::new(caller));
        self
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who is asking, when the server said.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_deref()
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The sandbox, the store, the registry client and the Docker engine, with
/// the operator's configuration.
pub struct App {
    sandbox: Arc<Sandbox>,
    store: Store,
    config: AppConfig,
    registry_api: flavorbox_net::registry_api::RegistryApi,
    docker: tokio::sync::OnceCell<bollard::Docker>,
    builtins: OnceLock<Vec<Arc<LoadedFlavor>>>,
    admission: Admission,
    registering: flavors::SameContent,
    /// Pushes in progress, by target: one push per tag at a time in this
    /// process (and, on a shared database, across replicas: see
    /// `jobs.rs`).
    pushing: flavors::SameContent,
    /// This process's side of the audit trail.
    audit: AuditLog,
}

impl App {
    /// Opens the state in the configuration's home (created if needed),
    /// with precompiled code cached where the store keeps it.
    pub async fn open(config: AppConfig) -> Result<App, AppError> {
        let store = match config.database() {
            Some(url) => Store::open_shared(config.home(), url, true).await?,
            None => Store::open(config.home()).await?,
        };
        if let Some(key) = config.secrets_key() {
            cipher::check_secrets_key(&store, key).await?;
        }
        let calls = config.calls();
        let sandbox = Sandbox::new(SandboxConfig {
            // A read-only home's cache is used if it is there, never made.
            code_cache_dir: (!store.is_read_only() || store.code_cache_dir().is_dir())
                .then(|| store.code_cache_dir().to_path_buf()),
            code_cache_key: store.code_cache_key(),
            ..Self::sandbox_config(&config)
        })
        .map_err(|e| AppError::Config(format!("{e:#}")))?;
        let app = App {
            sandbox: Arc::new(sandbox),
            store,
            registry_api: flavorbox_net::registry_api::RegistryApi::new(config.egress().clone()),
            admission: Admission::new(calls).with_compiles(config.compiles()),
            audit: AuditLog::new(audit::replica_name()),
            config,
            docker: tokio::sync::OnceCell::new(),
            builtins: OnceLock::new(),
            registering: flavors::SameContent::default(),
            pushing: flavors::SameContent::default(),
        };
        // What a killed process left behind goes before anything else runs;
        // a sweep that fails never stops the command.
        if let Err(e) = app.sweep().await {
            tracing::warn!(error = %e, "sweeping leftovers of earlier runs failed");
        }
        Ok(app)
    }

    /// Brings the shared PostgreSQL database at `url` up to this version's
    /// schema without opening anything else; the versions it applied.
    pub async fn migrate_database(url: &str) -> Result<Vec<i64>, AppError> {
        Ok(Store::migrate(url).await?)
    }

    /// Removes what killed processes left in the state directory (temporary
    /// files, blobs and compiled code nothing uses), logging what went.
    /// Runs at every open; the server runs it periodically too. Nothing on
    /// a read-only home.
    pub async fn sweep(&self) -> Result<flavorbox_store::SweepReport, AppError> {
        if self.store.is_read_only() {
            return Ok(flavorbox_store::SweepReport::default());
        }
        let report = self.store.sweep(builtin::digests).await?;
        if !report.is_empty() {
            tracing::info!(
                temp_files = report.temp_files,
                orphan_blobs = report.orphan_blobs,
                orphan_code = report.orphan_code,
                bytes = report.bytes,
                "swept leftovers of earlier runs"
            );
        }
        Ok(report)
    }

    /// The sandbox settings the configuration asks for, without a code cache
    /// (the store provides one; the benchmark uses its own).
    pub fn sandbox_config(config: &AppConfig) -> SandboxConfig {
        let calls = config.calls();
        SandboxConfig {
            default_limits: config.limits().clone(),
            grants: config.grants(),
            max_component_bytes: config.max_component_bytes(),
            // Every running call holds one admission slot and one instance
            // slot; loads (one `metadata` call each, under a compile's
            // admission or none) take a slot too.
            max_concurrent_instances: u32::try_from(
                calls.max_concurrent + config.compiles().max_concurrent + 8,
            )
            .unwrap_or(u32::MAX),
            max_loaded_flavors: config.max_loaded_flavors(),
            pooling: config.pooling(),
            ..SandboxConfig::default()
        }
    }

    /// The admission of sandbox calls, for metrics.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// How many flavors are loaded in memory now, for metrics.
    pub fn loaded_flavors(&self) -> usize {
        self.sandbox.loaded_count()
    }

    /// Records a server tenant with the SHA-256 (hex) of its bearer token,
    /// after checking its name ([`check_tenant_name`]).
    pub async fn create_tenant(&self, name: &str, token_sha256: &str) -> Result<(), AppError> {
        check_tenant_name(name)?;
        Ok(self.store.create_tenant(name, token_sha256).await?)
    }

    /// The tenant whose bearer token hashes to `token_sha256` (hex), if
    /// any: the one way a server establishes a [`Tenant`] from a request.
    pub async fn authenticate(&self, token_sha256: &str) -> Result<Option<Tenant>, AppError> {
        Ok(self
            .store
            .tenant_for_token_cached(token_sha256)
            .await?
            .map(Tenant::verified))
    }

    /// Whether the database is still the one opened: an error
    /// ([`StoreError::DatabaseGone`], code `unavailable`) once its file was
    /// removed or replaced. A `stat`, cheap enough for every readiness probe.
    pub fn check_database(&self) -> Result<(), AppError> {
        Ok(self.store.check_database()?)
    }

    /// Whether the database answers now: for SQLite the file check of
    /// [`App::check_database`], for a shared PostgreSQL database one round
    /// trip, bounded by `within`. For `/readyz`.
    pub async fn database_ready(&self, within: std::time::Duration) -> Result<(), AppError> {
        if self.store.database_kind() == flavorbox_store::DatabaseKind::Sqlite {
            return self.check_database();
        }
        match tokio::time::timeout(within, self.store.ping_database()).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(AppError::Store(
                flavorbox_store::StoreError::DatabaseUnreachable {
                    url: self
                        .config
                        .database()
                        .map(flavorbox_store::redact_database_url)
                        .unwrap_or_default(),
                    reason: format!("no answer within {within:?}"),
                },
            )),
        }
    }

    /// Marks the push jobs this server can no longer finish `interrupted`,
    /// at start-up (what its last run left) and at the end of its drain
    /// (what it could not finish); how many. On SQLite, the one server of
    /// its database, that is every queued or running job. On a shared
    /// database it is this replica's own jobs (by its name, so a restart
    /// under the same `FLAVORBOX_REPLICA` takes back its own) and those
    /// whose lease ran out: never a job another live replica runs.
    pub async fn interrupt_unfinished_jobs(&self) -> Result<u64, AppError> {
        let detail = jobs::interrupted_detail();
        Ok(match self.store.database_kind() {
            flavorbox_store::DatabaseKind::Sqlite => {
                self.store.fail_unfinished_jobs(&detail).await?
            }
            flavorbox_store::DatabaseKind::Postgres => {
                self.store
                    .interrupt_lost_jobs(Some(self.replica()), &detail)
                    .await?
            }
        })
    }

    /// On a shared database, what every replica does every second: reports
    /// the CPU time it spent per tenant since the last time, and learns what
    /// the other replicas spent this minute, which admission then counts
    /// against each tenant's budget with its own. Nothing on SQLite.
    pub async fn exchange_cpu_usage(&self) -> Result<(), AppError> {
        if self.store.database_kind() == flavorbox_store::DatabaseKind::Sqlite {
            return Ok(());
        }
        let reports = self.admission.take_cpu_reports();
        let used: Vec<(String, i64)> = reports
            .iter()
            .map(|(tenant, cpu)| {
                (
                    tenant.clone(),
                    i64::try_from(cpu.as_micros()).unwrap_or(i64::MAX),
                )
            })
            .collect();
        let elsewhere = match self.store.exchange_cpu_usage(self.replica(), &used).await {
            Ok(elsewhere) => elsewhere,
            Err(e) => {
                // Not lost: counted again with the next report.
                for (tenant, cpu) in reports {
                    self.admission.return_cpu_report(&tenant, cpu);
                }
                return Err(e.into());
            }
        };
        self.admission.set_cpu_elsewhere(
            elsewhere
                .into_iter()
                .map(|(tenant, micros)| {
                    (
                        tenant,
                        std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0)),
                    )
                })
                .collect(),
        );
        Ok(())
    }

    /// What every replica does every third of its job lease
    /// ([`AppConfig::job_lease`]): renews the leases of the jobs it runs,
    /// and marks `interrupted` the jobs whose lease ran out (their replica
    /// died, was paused or lost the database) unless another replica can
    /// take them over ([`claim_lost_jobs`](Self::claim_lost_jobs)).
    /// Returns how many it marked. A server that cannot take jobs over
    /// (`can_take_over` false: it has no shared uploads store) marks every
    /// lost job, so none waits forever for a claim.
    pub async fn tend_jobs(&self, can_take_over: bool) -> Result<u64, AppError> {
        self.store
            .renew_job_leases(self.replica(), self.config.job_lease())
            .await?;
        let detail = jobs::interrupted_detail();
        Ok(if can_take_over {
            self.store.interrupt_lost_jobs(None, &detail).await?
        } else {
            self.store.interrupt_all_lost_jobs(&detail).await?
        })
    }

    /// Claims for this replica at most `limit` push jobs whose owner
    /// stopped renewing their lease (or gave them up at a restart or a
    /// drain) and whose upload is in the shared uploads store: the caller
    /// fetches each upload and runs the job with
    /// [`TenantApp::at_attempt`] set to the claimed attempt.
    pub async fn claim_lost_jobs(
        &self,
        limit: usize,
    ) -> Result<Vec<flavorbox_store::ClaimedJob>, AppError> {
        Ok(self
            .store
            .claim_lost_jobs(self.replica(), self.config.job_lease(), limit)
            .await?)
    }

    /// Closes the state's database connections (checkpointing its log);
    /// the last thing a process does with the app.
    pub async fn close(&self) {
        // The allowed checks that wait are written first.
        if let Err(e) = self.flush_audit().await {
            tracing::warn!("the audit trail's last batch was not written: {e}");
        }
        self.store.close().await;
    }

    /// Removes the blob and compiled code of each digest no tenant uses
    /// any more (decided under the database's write lock, so no
    /// registration in any process loses its blob).
    pub async fn collect_blobs(&self, digests: &[String]) -> Result<(), AppError> {
        for sha256 in digests {
            if self.store.collect_blob(sha256).await? {
                self.sandbox.forget(sha256);
            }
        }
        Ok(())
    }

    /// Removes a tenant and everything it owns; what only it used is collected.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<(), AppError> {
        let digests = self.store.delete_tenant(tenant).await?;
        self.admission.forget(tenant);
        let owner = flavorbox_sandbox::CodeOwner::tenant(tenant);
        for sha256 in &digests {
            self.sandbox.forget_owned(&owner, sha256);
        }
        self.collect_blobs(&digests).await
    }

    /// Loads every tenant's registered flavors once, so a component that no
    /// longer loads is found (and logged) at start-up rather than on first
    /// use; a failure never stops the others. Returns (tenant, flavor, error)
    /// for each failure.
    pub async fn preload_flavors(&self) -> Vec<(String, String, String)> {
        let mut failed = Vec::new();
        let flavors = match self.store.all_flavors().await {
            Ok(all) => all,
            Err(e) => return vec![(String::new(), String::new(), e.to_string())],
        };
        for (tenant, name, sha256) in flavors.into_iter().take(self.config.max_loaded_flavors()) {
            let bytes = match self.store.blob(&sha256).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    failed.push((tenant, name, e.to_string()));
                    continue;
                }
            };
            let sandbox = self.sandbox.clone();
            // Into the tenant's own space of compiled code, where its
            // requests look for it (see `sandbox::CodeOwner`).
            let owner = flavorbox_sandbox::CodeOwner::tenant(&tenant);
            match blocking(move || sandbox.load_owned(&owner, &bytes)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failed.push((tenant, name, e.to_string())),
                Err(e) => failed.push((tenant, name, e.to_string())),
            }
        }
        failed
    }

    /// The default state directory: the user's data dir, `flavorbox/` in it.
    pub fn default_home() -> Result<PathBuf, AppError> {
        dirs::data_dir()
            .map(|dir| dir.join("flavorbox"))
            .ok_or_else(|| {
                AppError::Config(
                    "no data directory for this user (is HOME set?): pass --home DIR or set FLAVORBOX_HOME"
                        .into(),
                )
            })
    }

    /// The configuration the app was opened with.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Operations on behalf of one tenant, within its quota and under its
    /// egress policy (the server-wide one plus the tenant's own entries).
    pub fn tenant(&self, tenant: &Tenant) -> TenantApp<'_> {
        let quota = self.config.quota(tenant.name()).clone();
        let registry_api = match self.config.egress_for(tenant.name()) {
            std::borrow::Cow::Borrowed(_) => self.registry_api.clone(),
            std::borrow::Cow::Owned(policy) => {
                flavorbox_net::registry_api::RegistryApi::new(policy)
            }
        }
        .for_tenant(tenant.name());
        TenantApp {
            app: self,
            store: self
                .store
                .tenant(tenant.name())
                .with_quota(quota.rows())
                .with_job_owner(self.replica())
                .with_job_lease(self.config.job_lease()),
            limits: self.config.tenant_limits(tenant.name()),
            quota,
            tenant: tenant.clone(),
            registry_api,
        }
    }

    /// The Docker engine, connected on first use and kept.
    async fn docker(&self) -> Result<&bollard::Docker, AppError> {
        self.docker
            .get_or_try_init(|| async {
                flavorbox_net::push::connect().await.map_err(AppError::from)
            })
            .await
    }
}

/// Application operations for one tenant.
pub struct TenantApp<'a> {
    app: &'a App,
    store: TenantStore,
    tenant: Tenant,
    quota: TenantQuota,
    limits: flavorbox_sandbox::Limits,
    /// The registry client under this tenant's egress policy: every
    /// lookup, destination check and OCI exchange for the tenant uses it.
    registry_api: flavorbox_net::registry_api::RegistryApi,
}

impl TenantApp<'_> {
    /// The tenant acted for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The tenant's quota.
    pub fn quota(&self) -> &TenantQuota {
        &self.quota
    }

    /// The `.wasm` component of the tenant's registered flavor `name`, or
    /// `None` when it has no such flavor (built-ins are not registered).
    pub async fn flavor_component(&self, name: &str) -> Result<Option<Vec<u8>>, AppError> {
        let Some(record) = self.store.get_flavor(name).await? else {
            return Ok(None);
        };
        Ok(Some(self.app.store.blob(&record.sha256).await?))
    }

    /// Runs sandbox work for this tenant off the async runtime, once
    /// admission grants it a slot, and charges the CPU time it used.
    async fn sandbox_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Sandbox) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = self
            .app
            .admission
            .admit(self.tenant.name(), &self.quota)
            .await?;
        let sandbox = self.app.sandbox.clone();
        // The permit goes with the call and is charged when it ends: a
        // client that hangs up neither frees the slot while the call still
        // runs nor escapes the charge.
        blocking(move || {
            let start = quota::thread_cpu_time();
            let value = f(&sandbox);
            permit.charge(quota::thread_cpu_time().saturating_sub(start));
            value
        })
        .await
    }
}

/// Parses and normalises an image reference with Docker's grammar.
pub fn parse_image(text: &str) -> Result<ImageInfo, AppError> {
    Ok(ImageInfo::from(&parse_reference(text)?))
}

/// The host's parse of an image reference, as an application error.
fn parse_reference(text: &str) -> Result<Reference, AppError> {
    Reference::parse(text).map_err(|reason| AppError::BadReference {
        image: text.to_string(),
        reason,
    })
}

/// Runs blocking work (sandbox calls) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("sandbox task failed: {e}")))
}

/// Checks a server tenant's name: the rule of every name, and not the
/// local CLI's tenant, whose state has no token.
pub fn check_tenant_name(name: &str) -> Result<(), AppError> {
    check_name("tenant", name)?;
    if name == Tenant::LOCAL {
        return Err(AppError::InvalidName {
            kind: "tenant",
            name: format!("{name}` is reserved for the local CLI; choose another name and `"),
        });
    }
    Ok(())
}

/// Checks a component or secret name.
fn check_name(kind: &'static str, name: &str) -> Result<(), AppError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(AppError::InvalidName {
            kind,
            name: flavorbox_sandbox::clean(&name.chars().take(200).collect::<String>()),
        })
    }
}
