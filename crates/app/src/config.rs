//! The operator's configuration, built and checked once: where the state
//! lives, the limits of every flavor call, the grants, the component size
//! cap. A contradiction is refused with a message when the configuration is
//! built, never clamped silently later.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;

use super::AppError;
use super::cipher::SecretKey;
use super::quota::{CallBounds, TenantQuota};
use flavorbox_net::registry_api::{AddressFilter, AllowedHost, EgressPolicy};
use flavorbox_sandbox::{Grants, Limits, SandboxConfig};

/// The shortest push job lease a server may have.
pub const MIN_JOB_LEASE: Duration = Duration::from_secs(3);

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct AppConfig {
    home: PathBuf,
    limits: Limits,
    grants: Grants,
    max_component_bytes: usize,
    egress: EgressPolicy,
    tenant_allow: HashMap<String, Vec<AllowedHost>>,
    shared_registry_paths: bool,
    quotas: Quotas,
    calls: CallBounds,
    compiles: CallBounds,
    max_loaded_flavors: usize,
    pooling: bool,
    secrets_key: Option<SecretKey>,
    archive_limits: flavorbox_net::push::ArchiveLimits,
    database: Option<String>,
    job_lease: Duration,
}

/// Every tenant's quota: a default and named exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// What a tenant without an entry of its own gets.
    pub default: TenantQuota,
    /// Tenants with a quota of their own.
    pub tenants: HashMap<String, TenantQuota>,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            default: TenantQuota::unlimited(),
            tenants: HashMap::new(),
        }
    }
}

impl AppConfig {
    /// A builder for state in `home`, with every default.
    pub fn builder(home: impl Into<PathBuf>) -> AppConfigBuilder {
        let sandbox = SandboxConfig::default();
        AppConfigBuilder {
            home: home.into(),
            limits: sandbox.default_limits,
            grants: sandbox.grants,
            max_component_bytes: sandbox.max_component_bytes,
            egress: EgressPolicy::allow_all(),
            tenant_allow: HashMap::new(),
            shared_registry_paths: false,
            quotas: Quotas::default(),
            calls: CallBounds::default(),
            compiles: CallBounds::compiles(),
            max_loaded_flavors: sandbox.max_loaded_flavors,
            pooling: sandbox.pooling,
            secrets_key: None,
            archive_limits: flavorbox_net::push::ArchiveLimits::default(),
            database: None,
            job_lease: flavorbox_store::JOB_LEASE,
        }
    }

    /// The state directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The shared PostgreSQL database (a `postgres://` URL), if the state
    /// is there rather than in the home's SQLite file.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// A short fingerprint of everything that decides how this process
    /// treats tenants: limits, grants, quotas, egress and allowlists,
    /// archive bounds, whether a secrets key is set (never the key). Two
    /// replicas of one deployment must show the same; the state directory
    /// is not part of it.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        // Maps in a fixed order, so equal configs print alike.
        let tenant_allow: std::collections::BTreeMap<_, _> = self.tenant_allow.iter().collect();
        let quotas: std::collections::BTreeMap<_, _> = self.quotas.tenants.iter().collect();
        let text = format!(
            "{:?}|{:?}|{}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}|{}|{}|{:?}",
            self.limits,
            self.grants,
            self.max_component_bytes,
            self.egress,
            tenant_allow,
            self.shared_registry_paths,
            self.quotas.default,
            quotas,
            self.calls,
            self.compiles,
            self.max_loaded_flavors,
            self.pooling,
            self.archive_limits,
            self.secrets_key.is_some(),
            // Which kind of database, not where: replicas may reach one
            // server by different names.
            self.database.is_some(),
            self.job_lease,
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// The limits of every flavor call.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What flavors that ask may use.
    pub fn grants(&self) -> Grants {
        self.grants
    }

    /// The largest flavor component accepted.
    pub fn max_component_bytes(&self) -> usize {
        self.max_component_bytes
    }

    /// Where the host's own registry requests may go.
    pub fn egress(&self) -> &EgressPolicy {
        &self.egress
    }

    /// Whether registry hosts are checked against the egress policy before
    /// they are stored or pushed to (a shared server's policy).
    pub fn restricts_egress(&self) -> bool {
        restricts(&self.egress)
    }

    /// Where `tenant`'s registry requests may go: the server-wide policy
    /// with the allowlist entries bound to the tenant added (borrowed when
    /// it has none of its own).
    pub fn egress_for(&self, tenant: &str) -> Cow<'_, EgressPolicy> {
        match self.tenant_allow.get(tenant) {
            Some(own) if !own.is_empty() => Cow::Owned(self.egress.with_allowed(own)),
            _ => Cow::Borrowed(&self.egress),
        }
    }

    /// Whether tenants may register components whose paths overlap on an
    /// allow-listed registry (the operator's `allow_shared_registry_paths`).
    pub fn shares_registry_paths(&self) -> bool {
        self.shared_registry_paths
    }

    /// `tenant`'s quota.
    pub fn quota(&self, tenant: &str) -> &TenantQuota {
        self.quotas
            .tenants
            .get(tenant)
            .unwrap_or(&self.quotas.default)
    }

    /// Server-wide bounds on sandbox calls.
    pub fn calls(&self) -> CallBounds {
        self.calls
    }

    /// Server-wide bounds on compiles of tenants' uploads.
    pub fn compiles(&self) -> CallBounds {
        self.compiles
    }

    /// How many loaded flavors are kept in memory.
    pub fn max_loaded_flavors(&self) -> usize {
        self.max_loaded_flavors
    }

    /// Whether the sandbox pools instance slots.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The key secrets are encrypted with at rest, if any.
    pub fn secrets_key(&self) -> Option<&SecretKey> {
        self.secrets_key.as_ref()
    }

    /// What pushing an uploaded image archive may cost.
    pub fn archive_limits(&self) -> flavorbox_net::push::ArchiveLimits {
        self.archive_limits
    }

    /// How long a push job stays this process's without a renewal of its
    /// lease (renewed every third of it).
    pub fn job_lease(&self) -> Duration {
        self.job_lease
    }

    /// The limits of one of `tenant`'s calls: the server's, with those its
    /// quota sets in their place ([`TenantQuota::call_limits`]).
    pub fn tenant_limits(&self, tenant: &str) -> Limits {
        self.quota(tenant).call_limits(&self.limits)
    }

    /// The largest component `tenant` may register.
    pub fn tenant_component_bytes(&self, tenant: &str) -> usize {
        self.quota(tenant)
            .max_component_bytes
            .map_or(self.max_component_bytes, |q| {
                q.min(self.max_component_bytes)
            })
    }
}

/// Collects settings; [`AppConfigBuilder::build`] checks them together.
#[derive(Debug, Clone)]
pub struct AppConfigBuilder {
    home: PathBuf,
    limits: Limits,
    grants: Grants,
    max_component_bytes: usize,
    egress: EgressPolicy,
    tenant_allow: HashMap<String, Vec<AllowedHost>>,
    shared_registry_paths: bool,
    quotas: Quotas,
    calls: CallBounds,
    compiles: CallBounds,
    max_loaded_flavors: usize,
    pooling: bool,
    secrets_key: Option<SecretKey>,
    archive_limits: flavorbox_net::push::ArchiveLimits,
    database: Option<String>,
    job_lease: Duration,
}

impl AppConfigBuilder {
    /// Keeps the state in the PostgreSQL database at `url` (shared by
    /// replicas) instead of the home's SQLite file; the home keeps this
    /// process's compiled-code cache.
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database = Some(url.into());
        self
    }

    /// Fuel per call.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = fuel;
        self
    }

    /// Wall-clock deadline per call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// Memory per call, in MiB.
    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.limits.memory_bytes = mib_bytes(mib);
        self
    }

    /// Every per-call limit at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether the sandbox pools instance slots (the default, for a
    /// long-running host). A one-shot command makes a handful of instances:
    /// setting a pool up (hundreds of `mprotect`s, then unmapping it) cost
    /// it more than it saved (docs/performance.md).
    pub fn pooling(mut self, pooling: bool) -> Self {
        self.pooling = pooling;
        self
    }

    /// Whether flavors that ask for `repository-exists` get it.
    pub fn repository_lookup(mut self, allowed: bool) -> Self {
        self.grants.repository_exists = allowed;
        self
    }

    /// The largest flavor component accepted, in MiB.
    pub fn max_component_mib(mut self, mib: u64) -> Self {
        self.max_component_bytes = mib_bytes(mib);
        self
    }

    /// Where the host's own registry requests may go (default: anywhere,
    /// as a local CLI expects; a shared server restricts it).
    pub fn egress(mut self, egress: EgressPolicy) -> Self {
        self.egress = egress;
        self
    }

    /// Allowlist entries bound to one tenant each, added to the egress
    /// policy's for that tenant only (a restricting policy is needed).
    pub fn tenant_allowlists(mut self, allow: HashMap<String, Vec<AllowedHost>>) -> Self {
        self.tenant_allow = allow;
        self
    }

    /// Whether tenants may hold overlapping paths of an allow-listed
    /// registry (default: no, a second tenant's overlapping component is
    /// refused).
    pub fn shared_registry_paths(mut self, shared: bool) -> Self {
        self.shared_registry_paths = shared;
        self
    }

    /// Per-tenant quotas.
    pub fn quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Server-wide bounds on sandbox calls.
    pub fn calls(mut self, calls: CallBounds) -> Self {
        self.calls = calls;
        self
    }

    /// Server-wide bounds on compiles of tenants' uploads.
    pub fn compiles(mut self, compiles: CallBounds) -> Self {
        self.compiles = compiles;
        self
    }

    /// How many loaded flavors are kept in memory (least recently used go first).
    pub fn max_loaded_flavors(mut self, n: usize) -> Self {
        self.max_loaded_flavors = n;
        self
    }

    /// Encrypt secrets at rest with this key.
    pub fn secrets_key(mut self, key: SecretKey) -> Self {
        self.secrets_key = Some(key);
        self
    }

    /// What pushing an uploaded image archive may cost (the server).
    pub fn archive_limits(mut self, limits: flavorbox_net::push::ArchiveLimits) -> Self {
        self.archive_limits = limits;
        self
    }

    /// The lease of a push job ([`flavorbox_store::JOB_LEASE`] unless set;
    /// at least [`MIN_JOB_LEASE`]).
    pub fn job_lease(mut self, lease: Duration) -> Self {
        self.job_lease = lease;
        self
    }

    /// Checks the settings together and against the sandbox's ceilings.
    pub fn build(self) -> Result<AppConfig, AppError> {
        if self.job_lease < MIN_JOB_LEASE {
            return Err(AppError::Config(format!(
                "the push job lease must be at least {} s: a shorter one is renewed more often than a busy database answers",
                MIN_JOB_LEASE.as_secs()
            )));
        }
        if let Some(url) = &self.database
            && !flavorbox_store::is_postgres_url(url)
        {
            return Err(AppError::Config(format!(
                "--database `{}` is not a PostgreSQL URL: use postgres://USER:PASSWORD@HOST:PORT/DATABASE (leave it out to keep the state in the home's SQLite file)",
                flavorbox_store::redact_database_url(url)
            )));
        }
        let sandbox = SandboxConfig {
            default_limits: self.limits.clone(),
            grants: self.grants,
            max_component_bytes: self.max_component_bytes,
            ..SandboxConfig::default()
        };
        sandbox.check().map_err(AppError::Config)?;
        if self.calls.max_concurrent == 0 || self.calls.max_concurrent > 4096 {
            return Err(AppError::Config(
                "concurrent sandbox calls must be between 1 and 4096".into(),
            ));
        }
        if self.compiles.max_concurrent == 0 || self.compiles.max_concurrent > 256 {
            return Err(AppError::Config(
                "concurrent compiles must be between 1 and 256".into(),
            ));
        }
        if self.max_loaded_flavors == 0 {
            return Err(AppError::Config(
                "at least one loaded flavor must be kept".into(),
            ));
        }
        if !restricts(&self.egress)
            && let Some(tenant) = self.tenant_allow.keys().next()
        {
            return Err(AppError::Config(format!(
                "allowlist entries of tenant `{tenant}` need an egress policy that restricts addresses (a server's)"
            )));
        }
        let quotas = std::iter::once(("default", &self.quotas.default))
            .chain(self.quotas.tenants.iter().map(|(k, v)| (k.as_str(), v)));
        for (tenant, quota) in quotas {
            quota
                .call_limits(&self.limits)
                .check(sandbox.max_memory_bytes)
                .map_err(|e| AppError::Config(format!("quota of tenant `{tenant}`: {e}")))?;
            if quota.max_concurrent_calls == Some(0) {
                return Err(AppError::Config(format!(
                    "quota of tenant `{tenant}`: at least one concurrent call is needed"
                )));
            }
        }
        Ok(AppConfig {
            home: self.home,
            limits: self.limits,
            grants: self.grants,
            max_component_bytes: self.max_component_bytes,
            egress: self.egress,
            tenant_allow: self.tenant_allow,
            shared_registry_paths: self.shared_registry_paths,
            quotas: self.quotas,
            calls: self.calls,
            compiles: self.compiles,
            max_loaded_flavors: self.max_loaded_flavors,
            pooling: self.pooling,
            secrets_key: self.secrets_key,
            archive_limits: self.archive_limits,
            database: self.database,
            job_lease: self.job_lease,
        })
    }
}

/// Whether `egress` checks registry hosts (a shared server's policy), not
/// the local CLI's allow-all.
fn restricts(egress: &EgressPolicy) -> bool {
    !matches!(egress.addresses, AddressFilter::AllowAll)
}

/// `mib` MiB in bytes, saturating.
fn mib_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_the_settings_not_the_home_or_map_order() {
        let quota = |flavors| TenantQuota {
            max_flavors: Some(flavors),
            ..TenantQuota::unlimited()
        };
        let with = |home: &str, tenants: &[(&str, u64)]| {
            AppConfig::builder(home)
                .quotas(Quotas {
                    default: TenantQuota::unlimited(),
                    tenants: tenants
                        .iter()
                        .map(|(name, n)| (name.to_string(), quota(*n)))
                        .collect(),
                })
                .build()
                .unwrap()
                .fingerprint()
        };
        let many: Vec<(String, u64)> = (0..50).map(|i| (format!("t{i}"), i)).collect();
        let many: Vec<(&str, u64)> = many.iter().map(|(n, i)| (n.as_str(), *i)).collect();
        let reversed: Vec<(&str, u64)> = many.iter().rev().copied().collect();
        let fp = with("/srv/a", &many);
        assert_eq!(fp.len(), 16);
        assert_eq!(
            fp,
            with("/srv/b", &reversed),
            "another home, another map order"
        );
        assert_ne!(fp, with("/srv/a", &many[1..]), "another quota");
        assert_ne!(
            AppConfig::builder("/srv/a").build().unwrap().fingerprint(),
            AppConfig::builder("/srv/a")
                .fuel(7)
                .build()
                .unwrap()
                .fingerprint(),
            "another limit"
        );
    }

    #[test]
    fn contradictions_are_refused_up_front() {
        assert!(AppConfig::builder("/tmp/x").build().is_ok());
        for (builder, needle) in [
            (AppConfig::builder("/tmp/x").memory_mib(4096), "maximum"),
            (AppConfig::builder("/tmp/x").fuel(0), "fuel"),
            (
                AppConfig::builder("/tmp/x").timeout(Duration::ZERO),
                "timeout",
            ),
            (
                AppConfig::builder("/tmp/x").max_component_mib(0),
                "size cap",
            ),
        ] {
            let err = builder.build().expect_err("refused").to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn a_tenants_quota_replaces_the_limits_it_sets_and_is_held_to_the_ceilings() {
        let own = TenantQuota {
            fuel: Some(7),
            memory_bytes: Some(512 << 20),
            ..TenantQuota::unlimited()
        };
        let config = AppConfig::builder("/tmp/x")
            .memory_mib(64)
            .quotas(Quotas {
                default: TenantQuota::unlimited(),
                tenants: HashMap::from([("acme".to_string(), own)]),
            })
            .build()
            .expect("valid");
        let acme = config.tenant_limits("acme");
        assert_eq!(acme.fuel, 7, "lower than the server's");
        assert_eq!(acme.memory_bytes, 512 << 20, "higher than the server's");
        assert_eq!(
            acme.timeout,
            config.limits().timeout,
            "not set: the server's"
        );
        assert_eq!(&config.tenant_limits("globex"), config.limits());

        let err = AppConfig::builder("/tmp/x")
            .quotas(Quotas {
                default: TenantQuota {
                    memory_bytes: Some(usize::MAX),
                    ..TenantQuota::unlimited()
                },
                tenants: HashMap::new(),
            })
            .build()
            .expect_err("past the sandbox's ceiling")
            .to_string();
        assert!(err.contains("quota of tenant `default`"), "{err}");
    }

    #[test]
    fn a_tenants_egress_adds_only_its_own_entries_to_the_server_wide_ones() {
        use flavorbox_grammar::RegistryUri;
        use flavorbox_net::registry_api::Endpoint;
        let entry = |e: &str| AllowedHost::parse(e).expect(e);
        let at = |uri: &str| Endpoint::of(&RegistryUri::parse(uri).expect(uri)).expect(uri);
        let config = AppConfig::builder("/tmp/x")
            .egress(EgressPolicy::public_only(vec![entry("shared.internal")]))
            .tenant_allowlists(HashMap::from([
                ("acme".to_string(), vec![entry("127.0.0.1:5000/team-a")]),
                ("empty".to_string(), Vec::new()),
            ]))
            .build()
            .expect("valid");
        let acme = config.egress_for("acme");
        assert!(acme.addresses.allowlists(&at("127.0.0.1:5000")));
        assert!(acme.addresses.allowlists(&at("shared.internal")));
        for other in ["globex", "empty"] {
            let policy = config.egress_for(other);
            assert!(matches!(policy, Cow::Borrowed(_)), "{other}");
            assert!(
                !policy.addresses.allowlists(&at("127.0.0.1:5000")),
                "{other}"
            );
            assert!(
                policy.addresses.allowlists(&at("shared.internal")),
                "{other}"
            );
        }
        assert!(!config.shares_registry_paths());

        let err = AppConfig::builder("/tmp/x")
            .tenant_allowlists(HashMap::from([("acme".to_string(), Vec::new())]))
            .build()
            .expect_err("the CLI's allow-all policy has no exceptions to bind")
            .to_string();
        assert!(err.contains("acme"), "{err}");
    }
}
