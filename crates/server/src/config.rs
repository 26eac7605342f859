//! The operator's settings: a TOML file (`--config`), flags that override
//! it, and two secrets from the environment (the admin token and the path of
//! the secrets key), with an optional third (the metrics token, or its file
//! in the config). Everything is checked before the server binds: a typo,
//! a contradiction or a missing secret stops it with a message.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! allow_registry = ["127.0.0.1:5000"]   # egress exceptions for every tenant, host[:port][/path]
//! allow_shared_registry_paths = false   # may two tenants hold overlapping paths of an allowlisted registry
//! max_concurrent_calls = 8              # sandbox calls at once (pool size)
//! max_queued_calls = 64                 # waiting calls; past it, 503
//! max_concurrent_compiles = 1           # compiles of uploads at once (default: half the cores)
//! max_queued_compiles = 16              # waiting compiles; past it, 503
//! max_running_jobs = 2                  # push jobs at once
//! max_running_jobs_per_tenant = 1       # of them, one tenant's (default: half, at least 1)
//! job_timeout_secs = 900                # a push job is stopped and failed after
//! job_lease_secs = 30                   # a replica that stops renewing loses its jobs after
//! uploads_store = "s3://bucket/prefix"  # uploads shared by replicas (AWS_* variables configure it)
//! auth_failure_burst = 20               # requests with a missing or bad token per source address...
//! auth_failures_per_sec = 10            # ...and their refill; past them, 429
//! auth_failure_sources = 65536          # source addresses tracked at once
//! drain_timeout_secs = 60               # in-flight requests and jobs at SIGTERM
//! header_timeout_secs = 10              # a request's headers must arrive within
//! idle_timeout_secs = 60                # a connection with no request is closed after
//! body_timeout_secs = 30                # longest pause between chunks of a body
//! max_connections = 1024                # open connections; past it, 503 and close
//! sweep_interval_secs = 600             # removal of dead uploads
//! audit_retention_days = 90             # audit rows older than this are removed by the sweep
//! max_image_unpacked_mib = 8192         # what a pushed image's layers may expand to
//! metrics_token_file = "/etc/flavorbox/metrics.token"   # /metrics needs it as a bearer token
//!
//! [quotas]                              # every tenant's default
//! max_flavors = 50
//! max_registries = 200
//! max_wasm_mib = 16
//! fuel = 2000000000
//! timeout_ms = 10000
//! memory_mib = 128
//! max_concurrent_calls = 2
//! max_queued_calls = 16
//! cpu_ms_per_minute = 30000             # CPU of flavor calls and compiles together
//! max_queued_compiles = 1               # uploads waiting behind the tenant's one compile; past it, 429
//! max_upload_mib = 2048
//! max_uploads_in_flight = 2             # uploads arriving or held by jobs; past it, 429
//! max_upload_disk_mib = 4096            # their bytes on disk (default: 2 x max_upload_mib)
//! max_jobs = 4                          # push jobs queued or running (an upload arriving included); past it, 429
//! max_secrets = 100
//! max_secret_kib = 256                  # all of a tenant's secrets together
//!
//! [tenants.acme]                        # one tenant's exceptions
//! max_flavors = 200
//! allow_registry = ["registry.internal:5000/acme"]   # egress exceptions for this tenant only
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use flavorbox_app::{AllowedHost, EgressPolicy};
use flavorbox_app::{AppConfigBuilder, CallBounds, Quotas, SecretKey, TenantQuota};
use secrecy::SecretString;

/// Environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "FLAVORBOX_ADMIN_TOKEN";
/// Environment variable naming the secrets key file.
pub const SECRETS_KEY_ENV: &str = "FLAVORBOX_SECRETS_KEY_FILE";
/// Environment variable holding the token `/metrics` requires (instead of
/// `metrics_token_file`).
pub const METRICS_TOKEN_ENV: &str = "FLAVORBOX_METRICS_TOKEN";
/// Shortest admin token accepted.
const MIN_ADMIN_TOKEN: usize = 32;

/// What the server needs beyond the application's configuration.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The admin token (redacted when printed, never logged).
    pub admin_token: SecretString,
    /// The token `/metrics` requires, if the operator set one (redacted when
    /// printed, never logged); without it `/metrics` is open.
    pub metrics_token: Option<SecretString>,
    /// Push jobs running at once.
    pub max_running_jobs: usize,
    /// Push jobs of one tenant running at once (at most `max_running_jobs`).
    pub max_running_jobs_per_tenant: usize,
    /// How long a push job may run once it has a worker; then it is
    /// stopped and marked failed.
    pub job_timeout: Duration,
    /// The bound on requests that fail authentication, per source address.
    pub auth_failures: AuthFailureLimits,
    /// How long in-flight requests and running jobs get at shutdown.
    pub drain_timeout: Duration,
    /// Largest upload for a tenant without a quota of its own.
    pub max_upload_bytes: u64,
    /// Bounds of the HTTP edge: what a slow or silent client may hold.
    pub edge: EdgeLimits,
    /// How often dead uploads (and the state's leftovers) are swept.
    pub sweep_interval: Duration,
    /// How long audit rows are kept.
    pub audit_retention: Duration,
    /// Where uploads are kept so that any replica can take a job over
    /// (`s3://BUCKET[/PREFIX]` or `file:///DIR`); none keeps them on this
    /// server's disk only.
    pub uploads_store: Option<String>,
}

/// What one client connection may hold, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// A connection that starts a request (or has just been accepted) must
    /// have sent the request's complete headers within this.
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// A request body that delivers nothing for this long ends with 408.
    pub body_timeout: Duration,
    /// Connections open at once; one past it is answered 503 and closed.
    pub max_connections: usize,
}

impl Default for EdgeLimits {
    fn default() -> EdgeLimits {
        EdgeLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// How many requests with a missing or invalid token one source address
/// may make: a token bucket per address (an IPv6 address counts by its
/// /64), in a map of bounded size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailureLimits {
    /// Failures in a burst (the bucket's size).
    pub burst: u32,
    /// Failures per second allowed past the burst (its refill).
    pub per_second: u32,
    /// Source addresses tracked at once; past it the least limited are
    /// forgotten first.
    pub max_sources: usize,
}

impl Default for AuthFailureLimits {
    fn default() -> AuthFailureLimits {
        AuthFailureLimits {
            burst: DEFAULT_AUTH_FAILURE_BURST,
            per_second: DEFAULT_AUTH_FAILURES_PER_SEC,
            max_sources: DEFAULT_AUTH_FAILURE_SOURCES,
        }
    }
}

/// Default burst of failed authentications per source address.
pub const DEFAULT_AUTH_FAILURE_BURST: u32 = 20;
/// Default refill of failed authentications per source address, per second.
pub const DEFAULT_AUTH_FAILURES_PER_SEC: u32 = 10;
/// Default bound on the source addresses tracked.
pub const DEFAULT_AUTH_FAILURE_SOURCES: usize = 65_536;
/// Default deadline of a push job, from the moment it gets a worker: a
/// 2 GiB tarball (the default upload bound) pushes in it at 2.5 MB/s.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Default time for a request's headers to arrive.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a keep-alive connection may sit between requests.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default longest pause inside a request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default period of the upload sweep.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Days audit rows are kept unless the config says otherwise.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 90;

/// The file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    listen: Option<SocketAddr>,
    #[serde(default)]
    allow_registry: Vec<String>,
    allow_shared_registry_paths: Option<bool>,
    max_concurrent_calls: Option<usize>,
    max_queued_calls: Option<usize>,
    queue_wait_ms: Option<u64>,
    max_concurrent_compiles: Option<usize>,
    max_queued_compiles: Option<usize>,
    max_loaded_flavors: Option<usize>,
    max_running_jobs: Option<usize>,
    max_running_jobs_per_tenant: Option<usize>,
    job_timeout_secs: Option<u64>,
    job_lease_secs: Option<u64>,
    uploads_store: Option<String>,
    auth_failure_burst: Option<u32>,
    auth_failures_per_sec: Option<u32>,
    auth_failure_sources: Option<usize>,
    drain_timeout_secs: Option<u64>,
    header_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    sweep_interval_secs: Option<u64>,
    audit_retention_days: Option<u64>,
    max_image_unpacked_mib: Option<u64>,
    metrics_token_file: Option<PathBuf>,
    #[serde(default)]
    quotas: QuotaFile,
    #[serde(default)]
    tenants: HashMap<String, QuotaFile>,
}

/// One quota table of the file: `[quotas]` or a `[tenants.NAME]`, which may
/// also bind `allow_registry` entries to its tenant.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaFile {
    allow_registry: Option<Vec<String>>,
    max_flavors: Option<u64>,
    max_registries: Option<u64>,
    max_wasm_mib: Option<u64>,
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    max_concurrent_calls: Option<usize>,
    max_queued_calls: Option<usize>,
    cpu_ms_per_minute: Option<u64>,
    max_queued_compiles: Option<usize>,
    max_upload_mib: Option<u64>,
    max_uploads_in_flight: Option<usize>,
    max_upload_disk_mib: Option<u64>,
    max_jobs: Option<u64>,
    max_secrets: Option<u64>,
    max_secret_kib: Option<u64>,
}

const MIB: u64 = 1 << 20;

impl QuotaFile {
    /// This table over `base` (a tenant's table over the defaults).
    fn over(&self, base: &TenantQuota) -> TenantQuota {
        let mib = |m: u64| usize::try_from(m.saturating_mul(MIB)).unwrap_or(usize::MAX);
        TenantQuota {
            max_flavors: self.max_flavors.or(base.max_flavors),
            max_components: self.max_registries.or(base.max_components),
            max_component_bytes: self.max_wasm_mib.map(mib).or(base.max_component_bytes),
            fuel: self.fuel.or(base.fuel),
            timeout: self.timeout_ms.map(Duration::from_millis).or(base.timeout),
            memory_bytes: self.memory_mib.map(mib).or(base.memory_bytes),
            max_concurrent_calls: self.max_concurrent_calls.or(base.max_concurrent_calls),
            max_queued_calls: self.max_queued_calls.or(base.max_queued_calls),
            cpu_per_minute: self
                .cpu_ms_per_minute
                .map(Duration::from_millis)
                .or(base.cpu_per_minute),
            max_queued_compiles: self.max_queued_compiles.or(base.max_queued_compiles),
            max_upload_bytes: self
                .max_upload_mib
                .map(|m| m.saturating_mul(MIB))
                .or(base.max_upload_bytes),
            max_uploads_in_flight: self.max_uploads_in_flight.or(base.max_uploads_in_flight),
            // Unset beside a new upload size: room for two such uploads.
            max_upload_disk_bytes: self
                .max_upload_disk_mib
                .or(self.max_upload_mib.map(|m| m.saturating_mul(2)))
                .map(|m| m.saturating_mul(MIB))
                .or(base.max_upload_disk_bytes),
            max_jobs: self.max_jobs.or(base.max_jobs),
            max_secrets: self.max_secrets.or(base.max_secrets),
            max_secret_bytes: self
                .max_secret_kib
                .map(|k| k.saturating_mul(1024))
                .or(base.max_secret_bytes),
        }
    }
}

/// A shared server's default quota: bounded everywhere. A tenant's calls at
/// once default to half the cores (at least one), so a tenant that spins on
/// every call it may run never holds all the CPUs.
pub fn default_quota() -> TenantQuota {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    TenantQuota {
        max_flavors: Some(50),
        max_components: Some(200),
        max_component_bytes: Some(16 << 20),
        fuel: None,
        timeout: None,
        memory_bytes: None,
        max_concurrent_calls: Some((cores / 2).max(1)),
        max_queued_calls: Some(16),
        cpu_per_minute: Some(Duration::from_secs(30)),
        max_queued_compiles: Some(1),
        max_upload_bytes: Some(2048 * MIB),
        max_uploads_in_flight: Some(2),
        max_upload_disk_bytes: Some(2 * 2048 * MIB),
        max_jobs: Some(4),
        max_secrets: Some(100),
        max_secret_bytes: Some(256 << 10),
    }
}

/// Reads the config file; a missing `--config` means every default.
pub fn read_file(path: Option<&Path>) -> anyhow::Result<ServerFile> {
    let Some(path) = path else {
        return Ok(ServerFile::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the server config {}: {e}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid server config {}: {e}", path.display()))
}

/// Flags of `flavorbox serve`, already parsed.
#[derive(Debug, Clone, Default)]
pub struct ServeFlags {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--allow-registry`, repeatable.
    pub allow_registry: Vec<String>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--max-concurrent-calls`.
    pub max_concurrent_calls: Option<usize>,
}

/// Checks everything and returns the application's configuration and the
/// server's options. `builder` carries the global limit flags.
pub fn load(
    builder: AppConfigBuilder,
    flags: &ServeFlags,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(flavorbox_app::AppConfig, ServeOptions)> {
    let file = read_file(flags.config.as_deref())?;
    let admin_token = env(ADMIN_TOKEN_ENV).filter(|t| !t.is_empty()).ok_or_else(|| {
        anyhow::anyhow!(
            "{ADMIN_TOKEN_ENV} is not set: the server needs an admin token (at least {MIN_ADMIN_TOKEN} characters), e.g. `export {ADMIN_TOKEN_ENV}=$(head -c 32 /dev/urandom | base64)`"
        )
    })?;
    if admin_token.len() < MIN_ADMIN_TOKEN {
        anyhow::bail!(
            "{ADMIN_TOKEN_ENV} is {} characters long: use at least {MIN_ADMIN_TOKEN} random characters",
            admin_token.len()
        );
    }
    let key_path = env(SECRETS_KEY_ENV).filter(|p| !p.is_empty()).ok_or_else(|| {
        anyhow::anyhow!(
            "{SECRETS_KEY_ENV} is not set: the server encrypts secrets at rest with a 32-byte key file, e.g. `head -c 32 /dev/urandom > secrets.key && chmod 600 secrets.key && export {SECRETS_KEY_ENV}=$PWD/secrets.key`"
        )
    })?;
    let key = SecretKey::from_file(Path::new(&key_path))?;
    let metrics_token = metrics_token(file.metrics_token_file.as_deref(), env(METRICS_TOKEN_ENV))?;

    let allow = allowlist(&file, flags)?;
    let tenant_allow = tenant_allowlists(&file)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let calls = CallBounds {
        max_concurrent: flags
            .max_concurrent_calls
            .or(file.max_concurrent_calls)
            .unwrap_or((2 * cores).max(4)),
        max_queued: file.max_queued_calls.unwrap_or(256),
        max_wait: Duration::from_millis(file.queue_wait_ms.unwrap_or(10_000)),
    };
    let default_compiles = CallBounds::compiles();
    let compiles = CallBounds {
        max_concurrent: file
            .max_concurrent_compiles
            .unwrap_or(default_compiles.max_concurrent),
        max_queued: file
            .max_queued_compiles
            .unwrap_or(default_compiles.max_queued),
        ..default_compiles
    };
    let default = file.quotas.over(&default_quota());
    let tenants = file
        .tenants
        .iter()
        .map(|(name, table)| (name.clone(), table.over(&default)))
        .collect();
    let mut builder = builder
        .egress(EgressPolicy::public_only(allow))
        .tenant_allowlists(tenant_allow)
        .shared_registry_paths(file.allow_shared_registry_paths.unwrap_or(false))
        .calls(calls)
        .compiles(compiles)
        .quotas(Quotas { default, tenants })
        .secrets_key(key);
    if let Some(n) = file.max_loaded_flavors {
        builder = builder.max_loaded_flavors(n);
    }
    let unpacked_default = flavorbox_app::ArchiveLimits::default().max_unpacked_bytes / MIB;
    builder = builder.archive_limits(flavorbox_app::ArchiveLimits {
        max_unpacked_bytes: MIB
            * bounded(
                "max_image_unpacked_mib",
                file.max_image_unpacked_mib,
                1..=16 << 20,
                unpacked_default,
                "the MiB a pushed image's layers may expand to, all together",
            )?,
        ..flavorbox_app::ArchiveLimits::default()
    });
    builder = builder.job_lease(seconds(
        "job_lease_secs",
        file.job_lease_secs,
        flavorbox_app::MIN_JOB_LEASE.as_secs()..=3600,
        flavorbox_app::JOB_LEASE,
        "how long a push job stays its replica's without a renewal (renewed every third of it)",
    )?);
    let config = builder.build()?;
    let max_running_jobs = file.max_running_jobs.unwrap_or(2).max(1);
    let options = ServeOptions {
        listen: flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        admin_token: admin_token.into(),
        metrics_token: metrics_token.map(SecretString::from),
        max_running_jobs,
        max_running_jobs_per_tenant: bounded(
            "max_running_jobs_per_tenant",
            file.max_running_jobs_per_tenant,
            1..=max_running_jobs,
            super::workers::default_share(max_running_jobs),
            "push jobs one tenant may run at once, at most max_running_jobs",
        )?,
        job_timeout: seconds(
            "job_timeout_secs",
            file.job_timeout_secs,
            1..=7 * 86_400,
            DEFAULT_JOB_TIMEOUT,
            "how long a push job may run before it is stopped and failed",
        )?,
        auth_failures: AuthFailureLimits {
            burst: bounded(
                "auth_failure_burst",
                file.auth_failure_burst,
                1..=1_000_000,
                DEFAULT_AUTH_FAILURE_BURST,
                "requests with a missing or invalid token one source address may make in a burst",
            )?,
            per_second: bounded(
                "auth_failures_per_sec",
                file.auth_failures_per_sec,
                1..=1_000_000,
                DEFAULT_AUTH_FAILURES_PER_SEC,
                "requests with a missing or invalid token one source address may make per second past the burst",
            )?,
            max_sources: bounded(
                "auth_failure_sources",
                file.auth_failure_sources,
                16..=10_000_000,
                DEFAULT_AUTH_FAILURE_SOURCES,
                "source addresses whose failed authentications are counted at once",
            )?,
        },
        drain_timeout: seconds(
            "drain_timeout_secs",
            file.drain_timeout_secs,
            0..=3600,
            super::DEFAULT_DRAIN,
            "how long in-flight requests and push jobs get at SIGTERM; 0 stops at once",
        )?,
        max_upload_bytes: 2048 * MIB,
        edge: EdgeLimits {
            header_timeout: seconds(
                "header_timeout_secs",
                file.header_timeout_secs,
                1..=600,
                DEFAULT_HEADER_TIMEOUT,
                "the time a client has to send a request's headers",
            )?,
            idle_timeout: seconds(
                "idle_timeout_secs",
                file.idle_timeout_secs,
                1..=3600,
                DEFAULT_IDLE_TIMEOUT,
                "how long a keep-alive connection may sit between requests",
            )?,
            body_timeout: seconds(
                "body_timeout_secs",
                file.body_timeout_secs,
                1..=3600,
                DEFAULT_BODY_TIMEOUT,
                "the longest pause allowed inside a request body",
            )?,
            max_connections: bounded(
                "max_connections",
                file.max_connections,
                1..=1_000_000,
                DEFAULT_MAX_CONNECTIONS,
                "client connections open at once",
            )?,
        },
        sweep_interval: seconds(
            "sweep_interval_secs",
            file.sweep_interval_secs,
            10..=7 * 86_400,
            DEFAULT_SWEEP_INTERVAL,
            "how often dead uploads are removed",
        )?,
        audit_retention: bounded(
            "audit_retention_days",
            file.audit_retention_days,
            1..=36_500,
            DEFAULT_AUDIT_RETENTION_DAYS,
            "days audit rows are kept",
        )
        .map(|days| Duration::from_secs(days * 86_400))?,
        uploads_store: file.uploads_store.clone(),
    };
    Ok((config, options))
}

/// The server-wide allowlist (the file's `allow_registry`, then the
/// `--allow-registry` flags). An entry without a path lets every tenant use
/// every path of that registry: said once, at start, with how to bind it.
fn allowlist(file: &ServerFile, flags: &ServeFlags) -> anyhow::Result<Vec<AllowedHost>> {
    let from_file = file.allow_registry.iter().map(|e| ("allow_registry", e));
    let from_flags = flags.allow_registry.iter().map(|e| ("--allow-registry", e));
    let mut allow = Vec::new();
    for (key, entry) in from_file.chain(from_flags) {
        let parsed = allowed_host(key, entry)?;
        if parsed.namespace().is_none() {
            tracing::warn!(
                entry = %parsed,
                "`{key}` entry `{parsed}` has no path: every tenant may use any path on that registry (tenants are still refused overlapping paths unless `allow_shared_registry_paths = true`); to reserve a namespace for one tenant, bind it in its table instead, e.g. `[tenants.NAME] allow_registry = [\"{parsed}/NAME\"]`"
            );
        }
        allow.push(parsed);
    }
    Ok(allow)
}

/// The allowlist entries bound to tenants (`[tenants.NAME] allow_registry`);
/// `[quotas]` cannot hold any, since it is every tenant's default.
fn tenant_allowlists(file: &ServerFile) -> anyhow::Result<HashMap<String, Vec<AllowedHost>>> {
    if file.quotas.allow_registry.is_some() {
        anyhow::bail!(
            "invalid server config: `quotas.allow_registry` is not a key: put entries every tenant may use in the top-level `allow_registry`, and one tenant's in `[tenants.NAME] allow_registry`"
        );
    }
    let mut bound = HashMap::new();
    for (tenant, table) in &file.tenants {
        let Some(entries) = &table.allow_registry else {
            continue;
        };
        let key = format!("tenants.{tenant}.allow_registry");
        flavorbox_app::check_tenant_name(tenant)
            .map_err(|e| anyhow::anyhow!("invalid server config: `{key}`: {e}"))?;
        let parsed = entries
            .iter()
            .map(|entry| allowed_host(&key, entry))
            .collect::<anyhow::Result<Vec<_>>>()?;
        bound.insert(tenant.clone(), parsed);
    }
    Ok(bound)
}

/// One allowlist entry; an error names the key it came from.
fn allowed_host(key: &str, entry: &str) -> anyhow::Result<AllowedHost> {
    AllowedHost::parse(entry).map_err(|e| anyhow::anyhow!("invalid server config: `{key}`: {e}"))
}

/// Longest bearer token a request may carry (see `auth::bearer`).
const MAX_BEARER: usize = 512;

/// The token `/metrics` requires: from `metrics_token_file` (private to the
/// server's user, like the secrets key; surrounding whitespace such as a
/// final newline is not part of it) or from the environment, not both; at
/// least [`MIN_ADMIN_TOKEN`] characters, all of them visible ASCII, since it
/// travels in a header.
fn metrics_token(file: Option<&Path>, env: Option<String>) -> anyhow::Result<Option<String>> {
    let env = env.filter(|t| !t.is_empty());
    let (token, source) = match (file, env) {
        (None, None) => return Ok(None),
        (Some(path), Some(_)) => anyhow::bail!(
            "both `metrics_token_file = {:?}` and {METRICS_TOKEN_ENV} are set: keep one",
            path.display().to_string()
        ),
        (None, Some(token)) => (token, METRICS_TOKEN_ENV.to_string()),
        (Some(path), None) => {
            let source = format!("metrics token file {}", path.display());
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the {source}: {e}"))?;
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| anyhow::anyhow!("cannot read the {source}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "the {source} may be read by group or others (mode {:o}): `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                );
            }
            (text.trim().to_string(), source)
        }
    };
    let length = token.chars().count();
    if !(MIN_ADMIN_TOKEN..=MAX_BEARER).contains(&length) {
        anyhow::bail!(
            "the {source} holds {length} characters: use {MIN_ADMIN_TOKEN} to {MAX_BEARER} random ones, e.g. `head -c 32 /dev/urandom | base64`"
        );
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "the {source} holds spaces, control or non-ASCII characters: a bearer token is visible ASCII, e.g. `head -c 32 /dev/urandom | base64`"
        );
    }
    Ok(Some(token))
}

/// A count from the file, its default when absent; out of `range` is an
/// error naming the key, the range and what the key means.
fn bounded<T>(
    key: &str,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
    default: T,
    meaning: &str,
) -> anyhow::Result<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    match value {
        None => Ok(default),
        Some(v) if range.contains(&v) => Ok(v),
        Some(v) => anyhow::bail!(
            "invalid server config: `{key} = {v}` is out of range; use {} to {} ({meaning}; default {default})",
            range.start(),
            range.end()
        ),
    }
}

/// A duration in whole seconds from the file (see [`bounded`]).
fn seconds(
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    default: Duration,
    meaning: &str,
) -> anyhow::Result<Duration> {
    bounded(key, value, range, default.as_secs(), meaning).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn env_with(key: &Path) -> impl Fn(&str) -> Option<String> {
        let key = key.display().to_string();
        move |name| match name {
            ADMIN_TOKEN_ENV => Some("a".repeat(40)),
            SECRETS_KEY_ENV => Some(key.clone()),
            _ => None,
        }
    }

    fn key_file(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("secrets.key");
        std::fs::write(&path, [1u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn the_file_sets_quotas_and_tenants_override_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("server.toml");
        std::fs::write(
            &config,
            "allow_registry = [\"127.0.0.1:5000\"]\nmax_concurrent_calls = 3\n[quotas]\nmax_flavors = 2\ncpu_ms_per_minute = 100\n[tenants.big]\nmax_flavors = 9\n",
        )
        .unwrap();
        let flags = ServeFlags {
            config: Some(config),
            ..ServeFlags::default()
        };
        let (app, options) = load(
            flavorbox_app::AppConfig::builder(dir.path().join("home")),
            &flags,
            env_with(&key_file(dir.path())),
        )
        .expect("valid");
        assert_eq!(app.calls().max_concurrent, 3);
        assert_eq!(app.quota("anyone").max_flavors, Some(2));
        assert_eq!(app.quota("big").max_flavors, Some(9));
        assert_eq!(
            app.quota("big").cpu_per_minute,
            Some(Duration::from_millis(100)),
            "a tenant's table inherits the defaults"
        );
        assert!(app.restricts_egress());
        assert_eq!(options.listen.port(), 8080);
        assert_eq!(options.edge, EdgeLimits::default(), "the edge's defaults");
        assert_eq!(options.sweep_interval, DEFAULT_SWEEP_INTERVAL);
        assert_eq!(
            (options.max_running_jobs_per_tenant, options.job_timeout),
            (1, DEFAULT_JOB_TIMEOUT),
            "half of the two workers, and the default deadline"
        );
        assert_eq!(options.auth_failures, AuthFailureLimits::default());
    }

    #[test]
    fn job_shares_deadlines_and_the_auth_failure_bound_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let load_text = |text: &str| {
            let path = dir.path().join("jobs.toml");
            std::fs::write(&path, text).unwrap();
            let flags = ServeFlags {
                config: Some(path),
                ..ServeFlags::default()
            };
            load(
                flavorbox_app::AppConfig::builder(dir.path().join("home")),
                &flags,
                env_with(&key),
            )
        };
        let (_, options) = load_text(
            "max_running_jobs = 6\njob_timeout_secs = 60\nauth_failure_burst = 5\nauth_failures_per_sec = 2\nauth_failure_sources = 100\n",
        )
        .expect("valid");
        assert_eq!(options.max_running_jobs_per_tenant, 3, "half by default");
        assert_eq!(options.job_timeout, Duration::from_secs(60));
        assert_eq!(
            options.auth_failures,
            AuthFailureLimits {
                burst: 5,
                per_second: 2,
                max_sources: 100,
            }
        );
        let (_, options) = load_text("max_running_jobs = 6\nmax_running_jobs_per_tenant = 6\n")
            .expect("a tenant may be allowed every worker");
        assert_eq!(options.max_running_jobs_per_tenant, 6);
        for (text, key) in [
            (
                "max_running_jobs = 2\nmax_running_jobs_per_tenant = 3",
                "max_running_jobs_per_tenant",
            ),
            (
                "max_running_jobs_per_tenant = 0",
                "max_running_jobs_per_tenant",
            ),
            ("job_timeout_secs = 0", "job_timeout_secs"),
            ("auth_failure_burst = 0", "auth_failure_burst"),
            ("auth_failures_per_sec = 0", "auth_failures_per_sec"),
            ("auth_failure_sources = 1", "auth_failure_sources"),
        ] {
            let err = load_text(text).expect_err(text).to_string();
            assert!(err.contains(key) && err.contains("out of range"), "{err}");
        }
    }

    #[test]
    fn edge_limits_come_from_the_file_and_out_of_range_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let load_text = |text: &str| {
            let path = dir.path().join("edge.toml");
            std::fs::write(&path, text).unwrap();
            let flags = ServeFlags {
                config: Some(path),
                ..ServeFlags::default()
            };
            load(
                flavorbox_app::AppConfig::builder(dir.path().join("home")),
                &flags,
                env_with(&key),
            )
        };
        let (_, options) = load_text(
            "drain_timeout_secs = 2\nheader_timeout_secs = 1\nidle_timeout_secs = 5\nbody_timeout_secs = 3\nmax_connections = 7\nsweep_interval_secs = 60\n",
        )
        .expect("valid");
        assert_eq!(options.drain_timeout, Duration::from_secs(2));
        assert_eq!(
            options.edge,
            EdgeLimits {
                header_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(5),
                body_timeout: Duration::from_secs(3),
                max_connections: 7,
            }
        );
        assert_eq!(options.sweep_interval, Duration::from_secs(60));
        for (text, key) in [
            ("header_timeout_secs = 0", "header_timeout_secs"),
            ("idle_timeout_secs = 0", "idle_timeout_secs"),
            ("body_timeout_secs = 99999", "body_timeout_secs"),
            ("max_connections = 0", "max_connections"),
            ("drain_timeout_secs = 86400", "drain_timeout_secs"),
            ("sweep_interval_secs = 1", "sweep_interval_secs"),
        ] {
            let err = load_text(text).expect_err(text).to_string();
            assert!(err.contains(key) && err.contains("out of range"), "{err}");
        }
    }

    #[test]
    fn allowlist_entries_bind_paths_to_tenants_and_bad_ones_name_their_key() {
        use flavorbox_app::Endpoint;
        use flavorbox_grammar::RegistryUri;
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let load_with = |text: &str, flag: Option<&str>| {
            let path = dir.path().join("allow.toml");
            std::fs::write(&path, text).unwrap();
            let flags = ServeFlags {
                config: Some(path),
                allow_registry: flag.into_iter().map(str::to_string).collect(),
                ..ServeFlags::default()
            };
            load(
                flavorbox_app::AppConfig::builder(dir.path().join("home")),
                &flags,
                env_with(&key),
            )
        };
        let at = |uri: &str| Endpoint::of(&RegistryUri::parse(uri).unwrap()).unwrap();
        let (app, _) = load_with(
            "allow_registry = [\"127.0.0.1:5000/shared\"]\nallow_shared_registry_paths = true\n[tenants.acme]\nallow_registry = [\"127.0.0.1:6000/team-a\", \"10.0.0.1\"]\nmax_flavors = 3\n[tenants.globex]\nmax_flavors = 4\n",
            Some("registry.internal:5000"),
        )
        .expect("valid");
        assert!(app.shares_registry_paths());
        assert_eq!(
            app.quota("acme").max_flavors,
            Some(3),
            "quota keys still work"
        );
        assert_eq!(app.quota("globex").max_flavors, Some(4));
        let acme = app.egress_for("acme");
        for uri in [
            "127.0.0.1:6000",
            "10.0.0.1:5000",
            "127.0.0.1:5000",
            "registry.internal:5000",
        ] {
            assert!(acme.addresses.allowlists(&at(uri)), "acme: {uri}");
        }
        for tenant in ["globex", "anyone"] {
            let policy = app.egress_for(tenant);
            assert!(
                !policy.addresses.allowlists(&at("127.0.0.1:6000")),
                "{tenant}"
            );
            assert!(!policy.addresses.allowlists(&at("10.0.0.1")), "{tenant}");
            assert!(
                policy.addresses.allowlists(&at("127.0.0.1:5000")),
                "{tenant}"
            );
        }
        let (app, _) = load_with("", None).expect("valid");
        assert!(!app.shares_registry_paths(), "sharing is off by default");

        for (text, flag, needle) in [
            (
                "allow_registry = [\"https://r.io\"]",
                None,
                "`allow_registry`",
            ),
            ("allow_registry = [\"r.io/Team\"]", None, "lowercase"),
            ("allow_registry = [\"r.io/team/\"]", None, "trailing"),
            ("", Some("r.io:port"), "`--allow-registry`"),
            (
                "[tenants.acme]\nallow_registry = [\"r.io/a b\"]",
                None,
                "`tenants.acme.allow_registry`",
            ),
            (
                "[tenants.\"bad name\"]\nallow_registry = [\"r.io/x\"]",
                None,
                "`tenants.bad name.allow_registry`",
            ),
            (
                "[quotas]\nallow_registry = [\"r.io/x\"]",
                None,
                "`quotas.allow_registry`",
            ),
            (
                "allow_shared_registry_paths = \"yes\"",
                None,
                "allow_shared_registry_paths",
            ),
            ("allow_registry = \"r.io\"", None, "allow_registry"),
        ] {
            let err = load_with(text, flag).expect_err(text).to_string();
            assert!(err.contains(needle), "{text} {flag:?}: {err}");
        }
    }

    #[test]
    fn the_metrics_token_comes_from_its_private_file_or_the_environment_and_is_checked() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let token = "m".repeat(40);
        let file = dir.path().join("metrics.token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.path().join("server.toml");
        std::fs::write(
            &config,
            format!("metrics_token_file = {:?}\n", file.display().to_string()),
        )
        .unwrap();
        let flags = ServeFlags {
            config: Some(config),
            ..ServeFlags::default()
        };
        let builder = || flavorbox_app::AppConfig::builder(dir.path().join("home"));
        let (_, options) = load(builder(), &flags, env_with(&key)).expect("from the file");
        assert_eq!(
            options.metrics_token.as_ref().map(|t| t.expose_secret()),
            Some(token.as_str()),
            "the final newline is not part of it"
        );
        let (_, options) = load(builder(), &ServeFlags::default(), env_with(&key)).expect("none");
        assert!(options.metrics_token.is_none(), "unset: /metrics is open");

        assert_eq!(
            metrics_token(None, Some(token.clone())).unwrap(),
            Some(token.clone())
        );
        assert_eq!(metrics_token(None, Some(String::new())).unwrap(), None);
        let missing = dir.path().join("missing");
        for (file, env, needle) in [
            (Some(file.as_path()), Some(token.clone()), "keep one"),
            (None, Some("short".to_string()), "5 characters"),
            (None, Some("x".repeat(600)), "600 characters"),
            (None, Some(format!("{token} x")), "visible ASCII"),
            (Some(missing.as_path()), None, "cannot read"),
        ] {
            let err = metrics_token(file, env).expect_err(needle).to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains(&token), "the token is never shown: {err}");
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = metrics_token(Some(&file), None).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn upload_bounds_default_to_two_uploads_and_twice_the_upload_size() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let config = dir.path().join("server.toml");
        std::fs::write(
            &config,
            "[quotas]\nmax_upload_mib = 10\n[tenants.wide]\nmax_uploads_in_flight = 5\nmax_upload_disk_mib = 100\n[tenants.big]\nmax_upload_mib = 30\n",
        )
        .unwrap();
        let flags = ServeFlags {
            config: Some(config),
            ..ServeFlags::default()
        };
        let (app, _) = load(
            flavorbox_app::AppConfig::builder(dir.path().join("home")),
            &flags,
            env_with(&key),
        )
        .expect("valid");
        let bounds = |tenant: &str| {
            let quota = app.quota(tenant);
            (quota.max_uploads_in_flight, quota.max_upload_disk_bytes)
        };
        assert_eq!(bounds("anyone"), (Some(2), Some(20 * MIB)));
        assert_eq!(bounds("wide"), (Some(5), Some(100 * MIB)));
        assert_eq!(
            bounds("big"),
            (Some(2), Some(60 * MIB)),
            "a table's own upload size sets its disk default"
        );
        assert_eq!(
            (
                default_quota().max_uploads_in_flight,
                default_quota().max_upload_disk_bytes
            ),
            (Some(2), Some(4096 * MIB))
        );
    }

    #[test]
    fn missing_secrets_and_typos_stop_the_server_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let builder = || flavorbox_app::AppConfig::builder(dir.path().join("home"));
        let none = |_: &str| None;
        let err = load(builder(), &ServeFlags::default(), none).unwrap_err();
        assert!(err.to_string().contains(ADMIN_TOKEN_ENV), "{err}");
        let short = |name: &str| (name == ADMIN_TOKEN_ENV).then(|| "short".to_string());
        let err = load(builder(), &ServeFlags::default(), short).unwrap_err();
        assert!(err.to_string().contains("at least"), "{err}");
        let no_key = |name: &str| (name == ADMIN_TOKEN_ENV).then(|| "a".repeat(40));
        let err = load(builder(), &ServeFlags::default(), no_key).unwrap_err();
        assert!(err.to_string().contains(SECRETS_KEY_ENV), "{err}");
        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "[quotas]\nmax_flavours = 2\n").unwrap();
        let flags = ServeFlags {
            config: Some(typo),
            ..ServeFlags::default()
        };
        let err = load(builder(), &flags, env_with(&key)).unwrap_err();
        assert!(err.to_string().contains("max_flavours"), "{err}");
    }

    #[test]
    fn compile_bounds_and_a_tenants_compile_line_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("server.toml");
        let home = || flavorbox_app::AppConfig::builder(dir.path().join("home"));
        let flags = ServeFlags {
            config: Some(config.clone()),
            ..ServeFlags::default()
        };
        std::fs::write(&config, "").unwrap();
        let (app, _) = load(home(), &flags, env_with(&key_file(dir.path()))).expect("valid");
        assert_eq!(app.compiles(), CallBounds::compiles(), "the defaults");
        assert_eq!(app.quota("anyone").max_queued_compiles, Some(1));

        std::fs::write(
            &config,
            "max_concurrent_compiles = 3\nmax_queued_compiles = 5\n[quotas]\nmax_queued_compiles = 2\n[tenants.big]\nmax_queued_compiles = 4\n",
        )
        .unwrap();
        let (app, _) = load(home(), &flags, env_with(&key_file(dir.path()))).expect("valid");
        assert_eq!(
            (app.compiles().max_concurrent, app.compiles().max_queued),
            (3, 5)
        );
        assert_eq!(app.quota("anyone").max_queued_compiles, Some(2));
        assert_eq!(app.quota("big").max_queued_compiles, Some(4));

        std::fs::write(&config, "max_concurrent_compiles = 0\n").unwrap();
        let err = load(home(), &flags, env_with(&key_file(dir.path()))).unwrap_err();
        assert!(err.to_string().contains("concurrent compiles"), "{err}");
    }
}
