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
//! - [`error`]: every failure, with what to do.
//! - [`wire`]: inputs and outputs, serde both ways.
//! - `flavors`, `components`, `secrets`, `push`, `lookups`: the operations.

mod components;
pub mod config;
mod error;
mod flavors;
mod lookups;
mod push;
mod secrets;
pub mod wire;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::reference::Reference;
use crate::sandbox::{LoadedFlavor, Sandbox, SandboxConfig};
use crate::store::{Store, TenantStore};

pub use self::config::{AppConfig, AppConfigBuilder};
pub use self::error::AppError;
pub use self::push::PushUpdate;
pub use self::wire::{
    ComponentInfo, CreateSecret, FlavorInfo, ImageInfo, PushProgress, PushReport, PushRequest,
    RegisterComponent, SecretChange, SecretInfo, UpdateComponent,
};
pub use crate::config::parse_options;

/// A tenant whose identity has been established: the local user of the CLI,
/// or a caller the server authenticated. Every operation acts for one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    /// The name the single-user CLI acts as.
    pub const LOCAL: &'static str = "default";

    /// The local user of the CLI (no authentication: the state is theirs).
    pub fn local() -> Tenant {
        Tenant(Self::LOCAL.to_string())
    }

    /// A tenant an authentication layer has verified (the server's bearer
    /// tokens). Never build one from a name a caller merely claims.
    pub fn verified(name: impl Into<String>) -> Tenant {
        Tenant(name.into())
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sandbox, the store, the registry client and the Docker engine, with
/// the operator's configuration.
pub struct App {
    sandbox: Arc<Sandbox>,
    store: Store,
    config: AppConfig,
    registry_api: crate::registry_api::RegistryApi,
    docker: tokio::sync::OnceCell<bollard::Docker>,
    builtins: OnceLock<Vec<Arc<LoadedFlavor>>>,
}

impl App {
    /// Opens the state in the configuration's home (created if needed),
    /// with precompiled code cached where the store keeps it.
    pub async fn open(config: AppConfig) -> Result<App, AppError> {
        let store = Store::open(config.home()).await?;
        let sandbox = Sandbox::new(SandboxConfig {
            code_cache_dir: Some(store.code_cache_dir().to_path_buf()),
            code_cache_key: store.code_cache_key(),
            default_limits: config.limits().clone(),
            grants: config.grants(),
            max_component_bytes: config.max_component_bytes(),
            ..SandboxConfig::default()
        })
        .map_err(|e| AppError::Config(format!("{e:#}")))?;
        Ok(App {
            sandbox: Arc::new(sandbox),
            store,
            registry_api: crate::registry_api::RegistryApi::new(config.egress().clone()),
            config,
            docker: tokio::sync::OnceCell::new(),
            builtins: OnceLock::new(),
        })
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

    /// Operations on behalf of one tenant.
    pub fn tenant(&self, tenant: &Tenant) -> TenantApp<'_> {
        TenantApp {
            app: self,
            store: self.store.tenant(tenant.name()),
            tenant: tenant.clone(),
        }
    }

    /// The Docker engine, connected on first use and kept.
    async fn docker(&self) -> Result<&bollard::Docker, AppError> {
        self.docker
            .get_or_try_init(|| async { crate::push::connect().await.map_err(AppError::from) })
            .await
    }
}

/// Application operations for one tenant.
pub struct TenantApp<'a> {
    app: &'a App,
    store: TenantStore,
    tenant: Tenant,
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
            name: crate::sandbox::clean(&name.chars().take(200).collect::<String>()),
        })
    }
}
