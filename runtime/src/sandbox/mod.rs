//! The wasmtime sandbox that runs untrusted flavor components.
//!
//! Every call gets a fresh store and a fresh instance from a pre-linked
//! `InstancePre`, bounded by fuel, an epoch deadline, a memory cap (over the
//! guest's memories and what the host holds for it), the engine's wasm stack
//! limit, a host-call budget and a cap on the bytes returned. WASI 0.2 and
//! `wasi:http` are linked deny-by-default, so components built by toolchains
//! that import them still load, but can reach nothing, and no host-side wait
//! outlives the call's deadline.
//!
//! The sandbox knows nothing of the store, the push, the CLI or the server:
//! the caller hands in per-call limits, the tenant, and a
//! [`RepositoryLookup`] that answers the `repository-exists` import when the
//! sandbox's [`Grants`] allow it.
//!
//! - [`engine`]: the engine's configuration and the linker.
//! - [`loader`]: checks before compiling, the authenticated code cache, metadata.
//! - [`call`]: one call in a fresh store; typed errors.
//! - [`state`]: the store data, each capability's state behind a projection.
//! - [`limits`]: limits, grants and the memory limiter.
//! - [`wasi`], [`http`]: the deny-by-default WASI and `wasi:http` contexts.
//! - [`host`]: the flavor world's host imports (log, repository lookup).
//! - [`text`]: guest text made safe to show.

mod call;
mod engine;
mod error;
mod host;
mod http;
mod limits;
mod loader;
mod measure;
mod state;
mod text;
mod wasi;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Linker;

pub use self::call::{CallContext, Outcome};
pub use self::error::{CallError, CallErrorKind, LoadError};
pub use self::host::{LookupError, MAX_LOOKUPS_PER_CALL, RepositoryLookup};
pub use self::limits::{Grants, Limits, MIN_MEMORY_BYTES, SandboxConfig};
pub use self::state::CallState;
pub use self::text::{clean, clean_truncated};
pub use crate::flavor::{LogLevel, LogLine};

use self::loader::CodeCache;
use crate::flavor::{ConfigIssue, DeclaredMetadata, FlavorMetadata, PushDecision};
use crate::reference::Reference;
use crate::world::v0_1;

/// A flavor's verdict on a config: the normalised config, or every issue.
pub type Validation = Result<serde_json::Map<String, serde_json::Value>, Vec<ConfigIssue>>;

/// A loaded, checked flavor component, ready to be called.
pub struct LoadedFlavor {
    sha256: String,
    metadata: FlavorMetadata,
    pre: v0_1::ContainerRegistryFlavorPre<CallState>,
}

impl LoadedFlavor {
    /// SHA-256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// The metadata the flavor returned when loaded.
    pub fn metadata(&self) -> &FlavorMetadata {
        &self.metadata
    }
    /// The flavor's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

impl std::fmt::Debug for LoadedFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedFlavor")
            .field("name", &self.metadata.name)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The engine, the deny-by-default linker and the loaded flavors.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    config: SandboxConfig,
    code_cache: Option<CodeCache>,
    loaded: Mutex<Loaded>,
}

/// Loaded flavors by content hash, least recently used dropped past a bound.
struct Loaded {
    map: HashMap<String, (Arc<LoadedFlavor>, u64)>,
    clock: u64,
    capacity: usize,
}

impl Loaded {
    fn get(&mut self, sha256: &str) -> Option<Arc<LoadedFlavor>> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(sha256).map(|(flavor, used)| {
            *used = clock;
            flavor.clone()
        })
    }

    fn insert(&mut self, sha256: String, flavor: Arc<LoadedFlavor>) {
        self.clock += 1;
        self.map.insert(sha256, (flavor, self.clock));
        while self.map.len() > self.capacity.max(1) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.map.remove(&k),
                None => break,
            };
        }
    }
}

impl Sandbox {
    /// Checks the configuration, creates an engine configured for untrusted
    /// code and starts its epoch ticker.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        config
            .check()
            .map_err(|e| anyhow::anyhow!("invalid sandbox configuration: {e}"))?;
        let engine = engine::engine(&config).map_err(to_anyhow)?;
        let linker = engine::linker(&engine).map_err(to_anyhow)?;
        engine::start_epoch_ticker(&engine)?;
        let code_cache = match &config.code_cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Some(CodeCache::new(dir.clone(), config.code_cache_key))
            }
            None => None,
        };
        Ok(Sandbox {
            engine,
            linker,
            loaded: Mutex::new(Loaded {
                map: HashMap::new(),
                clock: 0,
                capacity: config.max_loaded_flavors,
            }),
            code_cache,
            config,
        })
    }

    /// The sandbox's engine-wide settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Reads a component file and loads it (see [`Sandbox::load`]); refuses
    /// a file over the size cap before reading it.
    pub fn load_file(&self, path: &Path) -> Result<Arc<LoadedFlavor>, LoadError> {
        let cannot_read =
            |e: std::io::Error| LoadError::Invalid(format!("cannot read {}: {e}", path.display()));
        let size = std::fs::metadata(path).map_err(cannot_read)?.len();
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > self.config.max_component_bytes {
            return Err(LoadError::TooLarge {
                size,
                max: self.config.max_component_bytes,
            });
        }
        let bytes = std::fs::read(path).map_err(cannot_read)?;
        self.load(&bytes)
    }

    /// Checks bytes against the flavor world (by name before compiling, by
    /// type after), compiles them (or reuses authenticated precompiled code
    /// for the same content), calls `metadata`, and only then caches the
    /// compiled code.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedFlavor>, LoadError> {
        self.load_from(bytes, None)
    }

    /// [`Sandbox::load`], with the compiled code taken from `precompiled`
    /// (what [`Sandbox::precompile`] made of the same code in this process)
    /// instead of a compile or the code cache: the benchmark and the tests
    /// load a thousand distinct flavors this way without a thousand compiles.
    pub(crate) fn load_from(
        &self,
        bytes: &[u8],
        precompiled: Option<&[u8]>,
    ) -> Result<Arc<LoadedFlavor>, LoadError> {
        loader::check_header(bytes, self.config.max_component_bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(found) = self.lock_loaded().get(&sha256) {
            return Ok(found.clone());
        }
        let version = loader::check_names(bytes)?;
        let compiled = match precompiled {
            Some(code) => loader::Compiled {
                component: loader::deserialize_own(&self.engine, code)?,
                to_cache: None,
            },
            None => loader::compile(&self.engine, self.code_cache.as_ref(), bytes, &sha256)?,
        };
        loader::check_export_kind(&self.engine, &compiled.component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(|e| loader::unsatisfied_import(&format!("{e:#}")))?;
        let pre = v0_1::ContainerRegistryFlavorPre::new(instance_pre)
            .map_err(|e| LoadError::WrongWorld(text::first_line(&format!("{e:#}"))))?;

        let mut flavor = LoadedFlavor {
            sha256: sha256.clone(),
            metadata: FlavorMetadata {
                // Until `metadata` answers, errors name the content hash.
                name: format!("sha256:{}", &sha256[..12]),
                display_name: String::new(),
                description: String::new(),
                docs_url: String::new(),
                logo_url: String::new(),
                config_schema: serde_json::Value::Null,
                capabilities: Vec::new(),
                wit_version: version.clone(),
            },
            pre,
        };
        // Exports are type-checked when an instance is made: a component
        // whose functions have the wrong types fails here.
        let declared = self
            .declared_metadata(&flavor, &CallContext::default())
            .map_err(|e| match e.kind {
                CallErrorKind::Instantiate(msg) => LoadError::WrongWorld(msg),
                _ => LoadError::Metadata(e),
            })?;
        flavor.metadata = loader::check_metadata(declared.value, version)?;
        if let (Some(cache), Some((path, code))) = (&self.code_cache, &compiled.to_cache) {
            cache.put(path, &sha256, code);
        }
        let flavor = Arc::new(flavor);
        self.lock_loaded().insert(sha256, flavor.clone());
        Ok(flavor)
    }

    /// The loaded flavor with this content hash, if it is in memory.
    pub fn cached(&self, sha256: &str) -> Option<Arc<LoadedFlavor>> {
        self.lock_loaded().get(sha256)
    }

    /// How many loaded flavors are in memory.
    pub fn loaded_count(&self) -> usize {
        self.lock_loaded().map.len()
    }

    /// Drops a component no one references any more: from memory and from
    /// the code cache.
    pub fn forget(&self, sha256: &str) {
        self.lock_loaded().map.remove(sha256);
        if let Some(cache) = &self.code_cache {
            cache.remove(sha256);
        }
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, Loaded> {
        // A poisoned map only means another thread panicked mid-insert of an
        // `Arc`; the map itself is still consistent.
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn declared_metadata(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
    ) -> Result<Outcome<DeclaredMetadata>, CallError> {
        let outcome = self.call(flavor, ctx, "metadata", |bindings, store| {
            bindings.flavorbox_registry_flavor().call_metadata(store)
        })?;
        let declared = DeclaredMetadata::from(outcome.value);
        self.check_size(flavor, ctx, "metadata", declared.size())?;
        Ok(Outcome {
            value: declared,
            logs: outcome.logs,
        })
    }

    /// Calls `metadata` in a fresh instance.
    pub fn metadata(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
    ) -> Result<Outcome<FlavorMetadata>, CallError> {
        let declared = self.declared_metadata(flavor, ctx)?;
        let metadata = loader::check_metadata(declared.value, flavor.metadata.wit_version.clone())
            .map_err(|e| CallError {
                flavor: flavor.name().to_string(),
                function: "metadata",
                kind: CallErrorKind::BadOutput(e.to_string()),
            })?;
        Ok(Outcome {
            value: metadata,
            logs: declared.logs,
        })
    }

    /// Calls `validate-config` in a fresh instance. `Ok(Err(issues))` is a
    /// rejected config; `Err` is a failed call.
    pub fn validate_config(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        config_json: &str,
    ) -> Result<Outcome<Validation>, CallError> {
        const F: &str = "validate-config";
        let outcome = self.call(flavor, ctx, F, |bindings, store| {
            bindings
                .flavorbox_registry_flavor()
                .call_validate_config(store, config_json)
        })?;
        Ok(Outcome {
            value: self.check_validation(flavor, ctx, outcome.value)?,
            logs: outcome.logs,
        })
    }

    /// What the host makes of a `validate-config` result: the normalised
    /// config as a JSON object, or the issues, within the output cap and
    /// with guest text made safe to show.
    fn check_validation(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        raw: Result<String, Vec<v0_1::wit::ConfigIssue>>,
    ) -> Result<Validation, CallError> {
        const F: &str = "validate-config";
        let bad = |msg: String| CallError {
            flavor: flavor.name().to_string(),
            function: F,
            kind: CallErrorKind::BadOutput(msg),
        };
        match raw {
            Ok(text) => {
                self.check_size(flavor, ctx, F, text.len())?;
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Object(map)) => Ok(Ok(map)),
                    Ok(_) => Err(bad("the normalised config is not a JSON object".into())),
                    Err(e) => Err(bad(format!("the normalised config is not valid JSON: {e}"))),
                }
            }
            Err(issues) => {
                let size: usize = issues
                    .iter()
                    .map(|i| i.field.len() + i.message.len() + 1)
                    .sum();
                self.check_size(flavor, ctx, F, size)?;
                if issues.is_empty() {
                    return Err(bad("rejected the config without naming an issue".into()));
                }
                Ok(Err(issues
                    .into_iter()
                    .map(ConfigIssue::from)
                    .map(|i| ConfigIssue {
                        field: clean(&i.field),
                        message: clean(&i.message),
                    })
                    .collect()))
            }
        }
    }

    /// Calls `prepare-image-push` in a fresh instance with a host-parsed reference.
    pub fn prepare_image_push(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        config_json: &str,
        image: &Reference,
    ) -> Result<Outcome<PushDecision>, CallError> {
        const F: &str = "prepare-image-push";
        let wit_image = v0_1::wit::ImageReference::from(image);
        let outcome = self.call(flavor, ctx, F, |bindings, store| {
            bindings
                .flavorbox_registry_flavor()
                .call_prepare_image_push(store, config_json, &wit_image)
        })?;
        let value = match PushDecision::from(outcome.value) {
            PushDecision::Approve { warnings } => {
                let size = warnings.iter().map(|w| w.len() + 1).sum();
                self.check_size(flavor, ctx, F, size)?;
                PushDecision::Approve {
                    warnings: warnings.iter().map(|w| clean(w)).collect(),
                }
            }
            PushDecision::Deny { reason } => {
                self.check_size(flavor, ctx, F, reason.len())?;
                PushDecision::Deny {
                    reason: clean(&reason),
                }
            }
        };
        Ok(Outcome {
            value,
            logs: outcome.logs,
        })
    }
}

fn to_anyhow(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}
