//! The operator's settings: a TOML file (`--config`), flags that override
//! it, and two secrets from the environment (the admin token and the path of
//! the secrets key). Everything is checked before the server binds: a typo,
//! a contradiction or a missing secret stops it with a message.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! allow_registry = ["127.0.0.1:5000"]   # egress exceptions, host[:port]
//! max_concurrent_calls = 8              # sandbox calls at once (pool size)
//! max_queued_calls = 64                 # waiting calls; past it, 503
//! max_running_jobs = 2                  # push jobs at once
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
//! cpu_ms_per_minute = 30000
//! max_upload_mib = 2048
//! max_jobs = 4
//!
//! [tenants.acme]                        # one tenant's exceptions
//! max_flavors = 200
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::app::{AppConfigBuilder, CallBounds, Quotas, SecretKey, TenantQuota};
use crate::registry_api::{AllowedHost, EgressPolicy};

/// Environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "FLAVORBOX_ADMIN_TOKEN";
/// Environment variable naming the secrets key file.
pub const SECRETS_KEY_ENV: &str = "FLAVORBOX_SECRETS_KEY_FILE";
/// Shortest admin token accepted.
const MIN_ADMIN_TOKEN: usize = 32;

/// What the server needs beyond the application's configuration.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The admin token (never logged).
    pub admin_token: String,
    /// Push jobs running at once.
    pub max_running_jobs: usize,
    /// How long running jobs get at shutdown.
    pub drain_timeout: Duration,
    /// Largest upload for a tenant without a quota of its own.
    pub max_upload_bytes: u64,
}

/// The file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    listen: Option<SocketAddr>,
    #[serde(default)]
    allow_registry: Vec<String>,
    max_concurrent_calls: Option<usize>,
    max_queued_calls: Option<usize>,
    queue_wait_ms: Option<u64>,
    max_loaded_flavors: Option<usize>,
    max_running_jobs: Option<usize>,
    drain_timeout_secs: Option<u64>,
    #[serde(default)]
    quotas: QuotaFile,
    #[serde(default)]
    tenants: HashMap<String, QuotaFile>,
}

/// One quota table of the file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaFile {
    max_flavors: Option<u64>,
    max_registries: Option<u64>,
    max_wasm_mib: Option<u64>,
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    max_concurrent_calls: Option<usize>,
    max_queued_calls: Option<usize>,
    cpu_ms_per_minute: Option<u64>,
    max_upload_mib: Option<u64>,
    max_jobs: Option<u64>,
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
            max_upload_bytes: self
                .max_upload_mib
                .map(|m| m.saturating_mul(MIB))
                .or(base.max_upload_bytes),
            max_jobs: self.max_jobs.or(base.max_jobs),
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
        max_upload_bytes: Some(2048 * MIB),
        max_jobs: Some(4),
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
) -> anyhow::Result<(crate::app::AppConfig, ServeOptions)> {
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

    let mut allow = Vec::new();
    for entry in file.allow_registry.iter().chain(&flags.allow_registry) {
        allow.push(AllowedHost::parse(entry)?);
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let calls = CallBounds {
        max_concurrent: flags
            .max_concurrent_calls
            .or(file.max_concurrent_calls)
            .unwrap_or((2 * cores).max(4)),
        max_queued: file.max_queued_calls.unwrap_or(256),
        max_wait: Duration::from_millis(file.queue_wait_ms.unwrap_or(10_000)),
    };
    let default = file.quotas.over(&default_quota());
    let tenants = file
        .tenants
        .iter()
        .map(|(name, table)| (name.clone(), table.over(&default)))
        .collect();
    let mut builder = builder
        .egress(EgressPolicy::public_only(allow))
        .calls(calls)
        .quotas(Quotas { default, tenants })
        .secrets_key(key);
    if let Some(n) = file.max_loaded_flavors {
        builder = builder.max_loaded_flavors(n);
    }
    let config = builder.build()?;
    let options = ServeOptions {
        listen: flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        admin_token,
        max_running_jobs: file.max_running_jobs.unwrap_or(2).max(1),
        drain_timeout: file
            .drain_timeout_secs
            .map_or(super::DEFAULT_DRAIN, Duration::from_secs),
        max_upload_bytes: 2048 * MIB,
    };
    Ok((config, options))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            crate::app::AppConfig::builder(dir.path().join("home")),
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
    }

    #[test]
    fn missing_secrets_and_typos_stop_the_server_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path());
        let builder = || crate::app::AppConfig::builder(dir.path().join("home"));
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
}
