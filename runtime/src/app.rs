//! The application layer: register a flavor, register a registry component,
//! check, push. The CLI (and later the HTTP server) are thin edges over this,
//! so both compose the core the same way.
//!
//! Order of a push: the host parses the image reference and checks that it
//! belongs to the component's registry (before any flavor code runs), then the
//! flavor's `prepare-image-push` decides, then the host pushes with the
//! component's credentials. Nothing is stored unless every check passed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::builtin;
use crate::config;
use crate::credentials::Credentials;
use crate::flavor::{Capability, ConfigIssue, FlavorMetadata, PushDecision};
use crate::push::{self, PushError, PushEvent};
use crate::reference::{Reference, ReferenceError, RegistryUri};
use crate::registry_api::{EgressPolicy, RegistryApi, RegistryApiError};
use crate::sandbox::{
    CallContext, CallError, Limits, LoadError, LoadedFlavor, LogLine, LookupError,
    RepositoryLookup, Sandbox, SandboxConfig,
};
use crate::store::{ComponentRecord, FlavorRecord, SecretSummary, Store, StoreError, TenantStore};

/// The tenant the CLI acts as.
pub const DEFAULT_TENANT: &str = "default";

/// What the operator allows flavors to do, and their per-call limits.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Whether flavors that ask for `repository-exists` get it.
    pub allow_repository_exists: bool,
    /// Limits of every flavor call.
    pub limits: Limits,
    /// Where the host's own registry requests may go.
    pub egress: EgressPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_repository_exists: true,
            limits: Limits::default(),
            egress: EgressPolicy::allow_all(),
        }
    }
}

/// Every failure of an application operation, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The component could not be loaded as a flavor.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A flavor call failed (trap, limit, bad output).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The config was rejected (by the host's base rules or the flavor).
    #[error("invalid config for flavor `{flavor}`:{}", list_issues(.issues))]
    InvalidConfig {
        /// The flavor that judged it.
        flavor: String,
        /// Every issue found.
        issues: Vec<ConfigIssue>,
    },
    /// A registered flavor may not take a built-in's name.
    #[error("flavor `{0}` is built in; give your flavor another name in its metadata")]
    BuiltinName(String),
    /// Built-in flavors cannot be deleted.
    #[error("flavor `{0}` is built in and cannot be deleted")]
    BuiltinDelete(String),
    /// A flavor with this name but other content is registered.
    #[error(
        "a different flavor named `{name}` is already registered (sha256 {sha256}); delete it first with `flavorbox flavor delete {name}`"
    )]
    FlavorExists {
        /// The flavor name.
        name: String,
        /// The registered content's hash.
        sha256: String,
    },
    /// A registered flavor no longer describes itself as it did when registered.
    #[error(
        "flavor `{0}` now reports a different name or capabilities than when it was registered; it is not trusted to run: delete and register it again"
    )]
    FlavorChanged(String),
    /// The registered flavor is not the content that validated the component.
    #[error(
        "flavor `{flavor}` was replaced since registry component `{component}` was validated; validate it again with `flavorbox registry update {component}`"
    )]
    FlavorReplaced {
        /// The flavor name.
        flavor: String,
        /// The component.
        component: String,
    },
    /// No such flavor.
    #[error("no flavor named `{0}`; see `flavorbox flavor list`")]
    UnknownFlavor(String),
    /// No such registry component.
    #[error("no registry component named `{0}`; see `flavorbox registry list`")]
    UnknownComponent(String),
    /// A name is not acceptable.
    #[error(
        "invalid {kind} name `{name}`: use letters, digits, `.`, `-`, `_` (1 to 128 characters, starting with a letter or digit)"
    )]
    InvalidName {
        /// What is being named.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// The image reference does not parse.
    #[error("invalid image reference `{image}`: {reason}")]
    BadReference {
        /// The text given.
        image: String,
        /// Why it is invalid.
        reason: ReferenceError,
    },
    /// The image is not inside the component's registry.
    #[error(
        "image `{image}` does not belong to registry component `{component}` (uri `{uri}`); tag it under `{uri}/...` first, e.g. `docker tag {image} {uri}/<name>:<tag>`"
    )]
    OutsideRegistry {
        /// The normalised image reference.
        image: String,
        /// The component name.
        component: String,
        /// The component's registry URI.
        uri: String,
    },
    /// Pushes go by tag, not by digest.
    #[error("cannot push by digest (`{0}`): push a tag, e.g. `{1}:latest`")]
    DigestPush(String, String),
    /// The flavor denied the push.
    #[error("flavor `{flavor}` denied the push of `{image}`: {reason}")]
    Denied {
        /// The flavor.
        flavor: String,
        /// The image.
        image: String,
        /// Its reason.
        reason: String,
    },
    /// The push failed.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A background task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

fn list_issues(issues: &[ConfigIssue]) -> String {
    issues.iter().map(|i| format!("\n  - {i}")).collect()
}

/// What an update does to a component's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    /// Leave it as it is.
    Keep,
    /// Use this secret.
    Set(String),
    /// Push without credentials.
    Remove,
}

/// A flavor as listed and described.
#[derive(Debug, Clone, Serialize)]
pub struct FlavorInfo {
    /// Its name.
    pub name: String,
    /// Shipped with the host, or registered by a user.
    pub builtin: bool,
    /// SHA-256 of the component.
    pub sha256: String,
    /// When it was registered (registered flavors only).
    pub registered_at: Option<String>,
    /// What the flavor says about itself.
    pub metadata: FlavorMetadata,
}

/// A registry component as listed and described.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    /// Its name.
    pub name: String,
    /// The flavor that validates and approves for it.
    pub flavor: String,
    /// The registry URI.
    pub uri: String,
    /// ZenML's `is_local`: the uri is `localhost:PORT`.
    pub is_local: bool,
    /// The normalised config.
    pub config: Value,
    /// Name of the secret with its credentials.
    pub secret: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it was last changed.
    pub updated_at: String,
    /// Log lines the flavor emitted while validating (register/update only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
}

/// What happens during a push, as it happens.
#[derive(Debug, Clone)]
pub enum PushProgress {
    /// The flavor decided (approve or deny); its log lines and warnings.
    Flavor {
        /// The flavor's name.
        flavor: String,
        /// The flavor's log lines.
        logs: Vec<LogLine>,
        /// The flavor's warnings (empty on a denial).
        warnings: Vec<String>,
    },
    /// The engine reported progress.
    Engine(PushEvent),
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The normalised reference pushed.
    pub image: String,
    /// The manifest digest the registry reported (none on a dry run).
    pub digest: Option<String>,
    /// The flavor's warnings.
    pub warnings: Vec<String>,
    /// Whether the engine was left out.
    #[serde(skip)]
    pub dry_run: bool,
}

/// The sandbox, the store and the operator's policy.
pub struct App {
    sandbox: Arc<Sandbox>,
    store: Store,
    policy: Policy,
    registry_api: RegistryApi,
    builtins: OnceLock<Vec<Arc<LoadedFlavor>>>,
}

impl App {
    /// Opens the state in `home` (created if needed) with precompiled code
    /// cached in `home/cache`.
    pub async fn open(home: &Path, policy: Policy) -> Result<App, AppError> {
        let store = Store::open(home).await?;
        let sandbox = Sandbox::new(SandboxConfig {
            code_cache_dir: Some(home.join("cache").join("code")),
            default_limits: policy.limits.clone(),
            ..SandboxConfig::default()
        })
        .map_err(|e| AppError::Internal(format!("cannot start the sandbox: {e:#}")))?;
        Ok(App {
            sandbox: Arc::new(sandbox),
            store,
            registry_api: RegistryApi::new(policy.egress.clone()),
            policy,
            builtins: OnceLock::new(),
        })
    }

    /// The default state directory: `$FLAVORBOX_HOME`, else the user's data dir.
    pub fn default_home() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("flavorbox")
    }

    /// Operations on behalf of one tenant.
    pub fn tenant(&self, tenant: &str) -> TenantApp<'_> {
        TenantApp {
            app: self,
            store: self.store.tenant(tenant),
            tenant: tenant.to_string(),
        }
    }

    /// Loads every built-in flavor (once per process; compiled code is cached on disk).
    async fn builtins(&self) -> Result<Vec<Arc<LoadedFlavor>>, AppError> {
        if let Some(found) = self.builtins.get() {
            return Ok(found.clone());
        }
        let sandbox = self.sandbox.clone();
        let loaded = blocking(move || {
            builtin::components()
                .map(|bytes| sandbox.load(bytes))
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        let _ = self.builtins.set(loaded.clone());
        Ok(loaded)
    }

    async fn builtin(&self, name: &str) -> Result<Option<Arc<LoadedFlavor>>, AppError> {
        Ok(self
            .builtins()
            .await?
            .into_iter()
            .find(|f| f.name() == name))
    }
}

/// Runs blocking work (sandbox calls) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("sandbox task failed: {e}")))
}

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
            name: name.to_string(),
        })
    }
}

/// Application operations for one tenant.
pub struct TenantApp<'a> {
    app: &'a App,
    store: TenantStore,
    tenant: String,
}

impl TenantApp<'_> {
    fn call_context(&self, lookup: Option<Arc<dyn RepositoryLookup>>) -> CallContext {
        CallContext {
            tenant: self.tenant.clone(),
            limits: Some(self.app.policy.limits.clone()),
            repository_lookup: if self.app.policy.allow_repository_exists {
                lookup
            } else {
                None
            },
        }
    }

    /// Checks a component against the world, stores it by content hash
    /// (precompiling it) and records it under the name from its metadata.
    pub async fn register_flavor(&self, bytes: Vec<u8>) -> Result<FlavorInfo, AppError> {
        let sandbox = self.app.sandbox.clone();
        let bytes = Arc::new(bytes);
        let to_load = bytes.clone();
        let flavor = blocking(move || sandbox.load(&to_load)).await??;
        let name = flavor.name().to_string();
        if self.app.builtin(&name).await?.is_some() {
            return Err(AppError::BuiltinName(name));
        }
        if let Some(existing) = self.store.get_flavor(&name).await? {
            if existing.sha256 == flavor.sha256() {
                return self.info_from_record(existing);
            }
            return Err(AppError::FlavorExists {
                name,
                sha256: existing.sha256,
            });
        }
        let sha256 = self.app.store.blobs().put(&bytes)?;
        debug_assert_eq!(sha256, flavor.sha256());
        let record = FlavorRecord {
            name: name.clone(),
            sha256,
            metadata_json: serde_json::to_string(flavor.metadata())
                .map_err(|e| AppError::Internal(e.to_string()))?,
            // The store stamps the time.
            registered_at: String::new(),
        };
        self.store.insert_flavor(&record).await?;
        let stored = self
            .store
            .get_flavor(&name)
            .await?
            .ok_or_else(|| AppError::UnknownFlavor(name.clone()))?;
        self.info_from_record(stored)
    }

    fn info_from_record(&self, record: FlavorRecord) -> Result<FlavorInfo, AppError> {
        let metadata: FlavorMetadata =
            serde_json::from_str(&record.metadata_json).map_err(|e| {
                AppError::Internal(format!("stored metadata of `{}`: {e}", record.name))
            })?;
        Ok(FlavorInfo {
            name: record.name,
            builtin: false,
            sha256: record.sha256,
            registered_at: Some(record.registered_at),
            metadata,
        })
    }

    /// Built-in and registered flavors, built-ins first, each group by name.
    pub async fn list_flavors(&self) -> Result<Vec<FlavorInfo>, AppError> {
        let mut builtins: Vec<FlavorInfo> = self
            .app
            .builtins()
            .await?
            .iter()
            .map(|f| FlavorInfo {
                name: f.name().to_string(),
                builtin: true,
                sha256: f.sha256().to_string(),
                registered_at: None,
                metadata: f.metadata().clone(),
            })
            .collect();
        builtins.sort_by(|a, b| a.name.cmp(&b.name));
        for record in self.store.list_flavors().await? {
            builtins.push(self.info_from_record(record)?);
        }
        Ok(builtins)
    }

    /// One flavor's description.
    pub async fn describe_flavor(&self, name: &str) -> Result<FlavorInfo, AppError> {
        self.list_flavors()
            .await?
            .into_iter()
            .find(|f| f.name == name)
            .ok_or_else(|| AppError::UnknownFlavor(name.to_string()))
    }

    /// Deletes a registered flavor; refused while a component uses it.
    pub async fn delete_flavor(&self, name: &str) -> Result<(), AppError> {
        if self.app.builtin(name).await?.is_some() {
            return Err(AppError::BuiltinDelete(name.to_string()));
        }
        match self.store.delete_flavor(name).await {
            Err(StoreError::NotFound { .. }) => Err(AppError::UnknownFlavor(name.to_string())),
            other => Ok(other?),
        }
    }

    /// Loads a flavor by name: built-in, or registered by this tenant.
    async fn flavor(&self, name: &str) -> Result<Arc<LoadedFlavor>, AppError> {
        if let Some(found) = self.app.builtin(name).await? {
            return Ok(found);
        }
        let record = self
            .store
            .get_flavor(name)
            .await?
            .ok_or_else(|| AppError::UnknownFlavor(name.to_string()))?;
        let bytes = self.app.store.blobs().get(&record.sha256)?;
        let sandbox = self.app.sandbox.clone();
        let loaded = blocking(move || sandbox.load(&bytes)).await??;
        // What runs must be what was registered (and shown by `describe`):
        // a flavor whose metadata changed between calls does not get to
        // widen its grants or its name.
        let registered: FlavorMetadata = serde_json::from_str(&record.metadata_json)
            .map_err(|e| AppError::Internal(format!("stored metadata of `{name}`: {e}")))?;
        let now = loaded.metadata();
        if now.name != registered.name || now.capabilities != registered.capabilities {
            return Err(AppError::FlavorChanged(name.to_string()));
        }
        Ok(loaded)
    }

    /// Validates a config with the host's base rules, then the flavor.
    async fn validate(
        &self,
        flavor: &Arc<LoadedFlavor>,
        config: Map<String, Value>,
    ) -> Result<(RegistryUri, Map<String, Value>, Vec<LogLine>), AppError> {
        let invalid = |issues| AppError::InvalidConfig {
            flavor: flavor.name().to_string(),
            issues,
        };
        let (uri, config) = config::apply_base_rules(config).map_err(invalid)?;
        let text = Value::Object(config).to_string();
        let sandbox = self.app.sandbox.clone();
        let ctx = self.call_context(None);
        let loaded = flavor.clone();
        let outcome = blocking(move || sandbox.validate_config(&loaded, &ctx, &text)).await??;
        let normalised = outcome.value.map_err(invalid)?;
        let normalised =
            config::check_normalised(&uri, normalised).map_err(|reason| CallError {
                flavor: flavor.name().to_string(),
                function: "validate-config",
                kind: crate::sandbox::CallErrorKind::BadOutput(reason),
            })?;
        Ok((uri, normalised, outcome.logs))
    }

    /// The digest a component records for its flavor: the registered
    /// flavor's content hash, `None` for a built-in.
    async fn registered_digest(&self, flavor: &LoadedFlavor) -> Result<Option<String>, AppError> {
        Ok(match self.app.builtin(flavor.name()).await? {
            Some(_) => None,
            None => Some(flavor.sha256().to_string()),
        })
    }

    /// Registers a registry component whose config the flavor validated;
    /// nothing is stored when validation fails.
    pub async fn register_component(
        &self,
        name: &str,
        flavor: &str,
        uri: &str,
        options: Map<String, Value>,
        secret: Option<String>,
    ) -> Result<ComponentInfo, AppError> {
        check_name("registry component", name)?;
        let loaded = self.flavor(flavor).await?;
        let mut config = options;
        config.insert("uri".into(), Value::String(uri.to_string()));
        let (uri, config, logs) = self.validate(&loaded, config).await?;
        let record = ComponentRecord {
            name: name.to_string(),
            flavor: flavor.to_string(),
            uri: uri.to_string(),
            config_json: Value::Object(config).to_string(),
            secret,
            flavor_sha256: self.registered_digest(&loaded).await?,
            created_at: String::new(),
            updated_at: String::new(),
        };
        self.store.insert_component(&record).await?;
        let mut info = self.describe_component(name).await?;
        info.logs = logs;
        Ok(info)
    }

    /// Updates a component: a new uri, config keys (`null` removes a key),
    /// or secret; the merged config is validated again before it is stored.
    pub async fn update_component(
        &self,
        name: &str,
        uri: Option<&str>,
        options: Map<String, Value>,
        secret: SecretChange,
    ) -> Result<ComponentInfo, AppError> {
        let existing = self
            .store
            .get_component(name)
            .await?
            .ok_or_else(|| AppError::UnknownComponent(name.to_string()))?;
        let loaded = self.flavor(&existing.flavor).await?;
        let mut config = match serde_json::from_str::<Value>(&existing.config_json) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for (key, value) in options {
            if value.is_null() {
                config.remove(&key);
            } else {
                config.insert(key, value);
            }
        }
        if let Some(uri) = uri {
            config.insert("uri".into(), Value::String(uri.to_string()));
        }
        let (uri, config, logs) = self.validate(&loaded, config).await?;
        let record = ComponentRecord {
            uri: uri.to_string(),
            config_json: Value::Object(config).to_string(),
            secret: match secret {
                SecretChange::Keep => existing.secret.clone(),
                SecretChange::Set(name) => Some(name),
                SecretChange::Remove => None,
            },
            flavor_sha256: self.registered_digest(&loaded).await?,
            ..existing
        };
        self.store.update_component(&record).await?;
        let mut info = self.describe_component(name).await?;
        info.logs = logs;
        Ok(info)
    }

    /// Every registry component of the tenant.
    pub async fn list_components(&self) -> Result<Vec<ComponentInfo>, AppError> {
        self.store
            .list_components()
            .await?
            .into_iter()
            .map(component_info)
            .collect()
    }

    /// One registry component.
    pub async fn describe_component(&self, name: &str) -> Result<ComponentInfo, AppError> {
        let record = self
            .store
            .get_component(name)
            .await?
            .ok_or_else(|| AppError::UnknownComponent(name.to_string()))?;
        component_info(record)
    }

    /// Deletes a registry component.
    pub async fn delete_component(&self, name: &str) -> Result<(), AppError> {
        match self.store.delete_component(name).await {
            Err(StoreError::NotFound { .. }) => Err(AppError::UnknownComponent(name.to_string())),
            other => Ok(other?),
        }
    }

    /// Stores a secret (username and password) for registry credentials.
    pub async fn create_secret(
        &self,
        name: &str,
        username: &str,
        password: &str,
    ) -> Result<(), AppError> {
        check_name("secret", name)?;
        Ok(self.store.create_secret(name, username, password).await?)
    }

    /// Secret names and usernames; never values.
    pub async fn list_secrets(&self) -> Result<Vec<SecretSummary>, AppError> {
        Ok(self.store.list_secrets().await?)
    }

    /// Deletes a secret; refused while a component uses it.
    pub async fn delete_secret(&self, name: &str) -> Result<(), AppError> {
        Ok(self.store.delete_secret(name).await?)
    }

    async fn credentials(&self, secret: Option<&str>) -> Result<Option<Credentials>, AppError> {
        let Some(name) = secret else { return Ok(None) };
        let record = self
            .store
            .get_secret(name)
            .await?
            .ok_or_else(|| StoreError::SecretNotFound(name.to_string()))?;
        Ok(Some(Credentials {
            username: record.username,
            password: record.password,
        }))
    }

    /// Pushes `image` to the registry of component `component`: host checks,
    /// then the flavor's decision, then (unless `dry_run`) the engine's push.
    pub async fn push(
        &self,
        image: &str,
        component: &str,
        dry_run: bool,
        on_event: &mut (dyn FnMut(PushProgress) + Send),
    ) -> Result<PushReport, AppError> {
        let reference = Reference::parse(image).map_err(|reason| AppError::BadReference {
            image: image.to_string(),
            reason,
        })?;
        let record = self
            .store
            .get_component(component)
            .await?
            .ok_or_else(|| AppError::UnknownComponent(component.to_string()))?;
        let uri = RegistryUri::parse(&record.uri)
            .map_err(|e| AppError::Internal(format!("stored uri of `{component}`: {e}")))?;
        if !uri.contains(&reference) {
            return Err(AppError::OutsideRegistry {
                image: reference.to_string(),
                component: component.to_string(),
                uri: uri.to_string(),
            });
        }
        if reference.digest().is_some() {
            return Err(AppError::DigestPush(
                reference.to_string(),
                reference.name(),
            ));
        }
        let reference = reference.with_default_tag();

        let flavor = self.flavor(&record.flavor).await?;
        if let Some(validated_by) = &record.flavor_sha256
            && validated_by != flavor.sha256()
        {
            return Err(AppError::FlavorReplaced {
                flavor: record.flavor.clone(),
                component: component.to_string(),
            });
        }
        let credentials = self.credentials(record.secret.as_deref()).await?;
        let lookup: Option<Arc<dyn RepositoryLookup>> = flavor
            .metadata()
            .capabilities
            .contains(&Capability::RepositoryExists)
            .then(|| {
                Arc::new(ComponentLookup {
                    api: self.app.registry_api.clone(),
                    uri: uri.clone(),
                    credentials: credentials.clone(),
                }) as Arc<dyn RepositoryLookup>
            });
        let ctx = self.call_context(lookup);
        let sandbox = self.app.sandbox.clone();
        let loaded = flavor.clone();
        let image_ref = reference.clone();
        let config = record.config_json.clone();
        let outcome =
            blocking(move || sandbox.prepare_image_push(&loaded, &ctx, &config, &image_ref))
                .await??;
        // Shown before the push starts (and on a denial), so a warning such
        // as "create the repository first" is seen even when the push fails.
        on_event(PushProgress::Flavor {
            flavor: flavor.name().to_string(),
            logs: outcome.logs,
            warnings: match &outcome.value {
                PushDecision::Approve { warnings } => warnings.clone(),
                PushDecision::Deny { .. } => Vec::new(),
            },
        });
        let warnings = match outcome.value {
            PushDecision::Approve { warnings } => warnings,
            PushDecision::Deny { reason } => {
                return Err(AppError::Denied {
                    flavor: flavor.name().to_string(),
                    image: reference.to_string(),
                    reason,
                });
            }
        };
        let mut report = PushReport {
            image: reference.to_string(),
            digest: None,
            warnings,
            dry_run,
        };
        if dry_run {
            return Ok(report);
        }
        let docker = push::connect().await?;
        let outcome = push::push_image(&docker, &reference, credentials.as_ref(), &mut |event| {
            on_event(PushProgress::Engine(event))
        })
        .await?;
        report.digest = Some(outcome.digest);
        Ok(report)
    }
}

fn component_info(record: ComponentRecord) -> Result<ComponentInfo, AppError> {
    let is_local = RegistryUri::parse(&record.uri)
        .map(|u| u.is_local())
        .unwrap_or(false);
    let config = serde_json::from_str(&record.config_json)
        .map_err(|e| AppError::Internal(format!("stored config of `{}`: {e}", record.name)))?;
    Ok(ComponentInfo {
        name: record.name,
        flavor: record.flavor,
        uri: record.uri,
        is_local,
        config,
        secret: record.secret,
        created_at: record.created_at,
        updated_at: record.updated_at,
        logs: Vec::new(),
    })
}

/// Answers `repository-exists` for one component: its registry, its
/// credentials, and only repositories inside its URI.
struct ComponentLookup {
    api: RegistryApi,
    uri: RegistryUri,
    credentials: Option<Credentials>,
}

impl RepositoryLookup for ComponentLookup {
    fn repository_exists(&self, repository: &str, timeout: Duration) -> Result<bool, LookupError> {
        let path = self
            .uri
            .repository(repository)
            .map_err(|e| LookupError::Failed(e.to_string()))?;
        if !self.uri.contains_repository(&path) {
            return Err(LookupError::Failed(format!(
                "repository `{repository}` is outside this component's registry `{}`",
                self.uri
            )));
        }
        self.api
            .repository_exists(&self.uri, &path, self.credentials.as_ref(), timeout)
            .map_err(|e| lookup_error(&self.uri, e))
    }
}

/// What a guest learns of a failed lookup: timed out, refused credentials,
/// or unavailable; the detail (network errors included) goes to the log.
fn lookup_error(uri: &RegistryUri, error: RegistryApiError) -> LookupError {
    if let RegistryApiError::TimedOut { .. } = error {
        return LookupError::TimedOut;
    }
    tracing::warn!(registry = %uri, "repository-exists lookup failed: {error}");
    LookupError::Failed(match error {
        RegistryApiError::Auth { .. } => {
            "registry unavailable: authentication failed with this component's credentials".into()
        }
        _ => "registry unavailable".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_learns_timeout_auth_or_unavailable_never_the_network_error() {
        let uri = RegistryUri::parse("registry.io/team").expect("valid");
        let domain = "registry.io".to_string();
        let secret_detail = "dial tcp 10.1.2.3:443: connection refused";
        let cases = [
            RegistryApiError::Unreachable {
                domain: domain.clone(),
                message: secret_detail.into(),
            },
            RegistryApiError::Refused {
                domain: domain.clone(),
                reason: format!("{secret_detail} (private)"),
            },
            RegistryApiError::Protocol {
                domain: domain.clone(),
                message: secret_detail.into(),
            },
            RegistryApiError::Auth {
                domain: domain.clone(),
                message: secret_detail.into(),
            },
        ];
        for error in cases {
            let LookupError::Failed(text) = lookup_error(&uri, error) else {
                panic!("only a timeout ends the call");
            };
            assert!(text.starts_with("registry unavailable"), "{text}");
            assert!(
                !text.contains("10.1.2.3") && !text.contains("dial"),
                "{text}"
            );
        }
        let timed_out = RegistryApiError::TimedOut {
            domain,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(lookup_error(&uri, timed_out), LookupError::TimedOut);
    }
}
