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
//! - [`loader`]: checks before compiling, the authenticated code cache (one
//!   space per tenant, see [`CodeOwner`]), metadata.
//! - [`call`]: one call in a fresh store; typed errors.
//! - [`state`]: the store data, each capability's state behind a projection.
//! - [`limits`]: limits, grants and the memory limiter.
//! - [`wasi`], [`http`]: the deny-by-default WASI and `wasi:http` contexts.
//! - [`host`]: the flavor world's host imports (log, repository lookup),
//!   version-neutral.
//! - [`text`]: guest text made safe to show.
//! - [`world`]: the WIT contract, one module per released version, each
//!   generated from its own frozen WIT (`wit/v0.N/`), and the
//!   dispatch type ([`world`]'s `FlavorPre`/`Flavor`) a loaded flavor is
//!   called through, chosen by the version the loader found. Only `world`
//!   names a version: a new WIT version is a new frozen folder, a new module
//!   and a new variant there (see its docs), not edits across the sandbox.

mod call;
mod engine;
mod error;
pub mod flavor;
mod host;
mod http;
mod limits;
mod loader;
#[cfg(any(test, feature = "bench"))]
pub mod measure;
mod state;
mod text;
mod wasi;
pub mod world;

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
pub use self::loader::CodeOwner;
pub use self::state::CallState;
pub use self::text::{clean, clean_truncated};
pub use crate::flavor::{LogLevel, LogLine};

use self::loader::CodeCache;
use crate::flavor::{ConfigIssue, DeclaredMetadata, FlavorMetadata, PushDecision};
use crate::world::FlavorPre;
use flavorbox_grammar::{ImageFacts, Reference};

/// A flavor's verdict on a config: the normalised config, or every issue.
pub type Validation = Result<serde_json::Map<String, serde_json::Value>, Vec<ConfigIssue>>;

/// A loaded, checked flavor component, ready to be called.
pub struct LoadedFlavor {
    sha256: String,
    metadata: FlavorMetadata,
    /// Linked for the WIT version the flavor was built against.
    pre: FlavorPre,
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
    /// Whether the flavor asked to see the image (`image-info`, WIT 0.2
    /// on): the host reads the image for a push only when it did.
    pub fn wants_image_info(&self) -> bool {
        self.metadata
            .capabilities
            .contains(&crate::flavor::Capability::ImageInfo)
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

/// A flavor compiled, checked and asked for its metadata, whose code is not
/// kept yet: [`Sandbox::keep`] caches it (on disk and in memory) once the
/// caller's own checks pass; dropped, it leaves nothing behind.
pub struct Prepared {
    flavor: Arc<LoadedFlavor>,
    owner: CodeOwner,
    to_cache: Option<(std::path::PathBuf, Vec<u8>)>,
}

impl Prepared {
    /// The flavor, ready to be called.
    pub fn flavor(&self) -> &Arc<LoadedFlavor> {
        &self.flavor
    }
}

/// Where [`Sandbox::prepare_with`] takes the compiled code from.
enum CodeSource<'a> {
    /// The cache, else a compile.
    CacheOrCompile,
    /// The cache only: `None` rather than a compile.
    CacheOnly,
    /// What [`Sandbox::precompile`] made in this process.
    #[cfg_attr(not(any(test, feature = "bench")), allow(dead_code))]
    Precompiled(&'a [u8]),
}

/// The engine, the deny-by-default linker and the loaded flavors.
pub struct Sandbox {
    engine: Engine,
    /// Compiles tenants' uploads on one thread ([`engine::compile_engine`]).
    compiler: Engine,
    linker: Linker<CallState>,
    config: SandboxConfig,
    code_cache: Option<CodeCache>,
    loaded: Mutex<Loaded>,
}

/// The key of a loaded flavor: its owner and content hash.
type LoadedKey = (CodeOwner, String);

/// Loaded flavors by owner and content hash, least recently used dropped
/// past a bound.
struct Loaded {
    map: HashMap<LoadedKey, (Arc<LoadedFlavor>, u64)>,
    clock: u64,
    capacity: usize,
}

impl Loaded {
    fn get(&mut self, owner: &CodeOwner, sha256: &str) -> Option<Arc<LoadedFlavor>> {
        self.clock += 1;
        let clock = self.clock;
        self.map
            .get_mut(&(owner.clone(), sha256.to_string()))
            .map(|(flavor, used)| {
                *used = clock;
                flavor.clone()
            })
    }

    fn insert(&mut self, key: LoadedKey, flavor: Arc<LoadedFlavor>) {
        self.clock += 1;
        self.map.insert(key, (flavor, self.clock));
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
        let compiler = engine::compile_engine(&config).map_err(to_anyhow)?;
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
            compiler,
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
    /// compiled code, shared (see [`CodeOwner::Shared`]).
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedFlavor>, LoadError> {
        self.load_owned(&CodeOwner::Shared, bytes)
    }

    /// [`Sandbox::load`] into `owner`'s space of compiled code.
    pub fn load_owned(
        &self,
        owner: &CodeOwner,
        bytes: &[u8],
    ) -> Result<Arc<LoadedFlavor>, LoadError> {
        let prepared = self.prepare(owner, bytes)?;
        Ok(self.keep(prepared))
    }

    /// What can be refused without compiling: the size cap, the header, and
    /// the world's imports and exports by name. Returns the content hash.
    pub fn check(&self, bytes: &[u8]) -> Result<String, LoadError> {
        loader::check_header(bytes, self.config.max_component_bytes)?;
        loader::check_names(bytes)?;
        Ok(hex::encode(Sha256::digest(bytes)))
    }

    /// [`Sandbox::load`] into `owner`'s space, without keeping the code:
    /// the caller [`keep`](Sandbox::keep)s it once its own checks pass. A
    /// tenant's cache miss is compiled on the calling thread only (its CPU
    /// time is that thread's; see [`engine::compile_engine`]).
    pub fn prepare(&self, owner: &CodeOwner, bytes: &[u8]) -> Result<Prepared, LoadError> {
        self.prepare_with(owner, bytes, CodeSource::CacheOrCompile)?
            .ok_or_else(|| LoadError::Invalid("the component was not compiled".into()))
    }

    /// `owner`'s loaded flavor for `bytes` if that needs no compile (in
    /// memory, or its code in the cache); `None` when it would.
    pub fn load_cached(
        &self,
        owner: &CodeOwner,
        bytes: &[u8],
    ) -> Result<Option<Arc<LoadedFlavor>>, LoadError> {
        Ok(self
            .prepare_with(owner, bytes, CodeSource::CacheOnly)?
            .map(|prepared| self.keep(prepared)))
    }

    /// Keeps a prepared flavor's code: in the code cache (when it was
    /// compiled) and among the loaded flavors.
    pub fn keep(&self, prepared: Prepared) -> Arc<LoadedFlavor> {
        let Prepared {
            flavor,
            owner,
            to_cache,
        } = prepared;
        if let (Some(cache), Some((path, code))) = (&self.code_cache, &to_cache) {
            cache.put(path, flavor.sha256(), &owner, code);
        }
        self.lock_loaded()
            .insert((owner, flavor.sha256().to_string()), flavor.clone());
        flavor
    }

    fn prepare_with(
        &self,
        owner: &CodeOwner,
        bytes: &[u8],
        source: CodeSource<'_>,
    ) -> Result<Option<Prepared>, LoadError> {
        loader::check_header(bytes, self.config.max_component_bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(found) = self.lock_loaded().get(owner, &sha256) {
            return Ok(Some(Prepared {
                flavor: found,
                owner: owner.clone(),
                to_cache: None,
            }));
        }
        let version = loader::check_names(bytes)?;
        let compiler = match owner {
            CodeOwner::Shared => loader::Compiler::Parallel,
            CodeOwner::Tenant(_) => loader::Compiler::OneThread(&self.compiler),
        };
        let cache = self.code_cache.as_ref();
        let compiled = match source {
            CodeSource::Precompiled(code) => loader::Compiled {
                component: loader::deserialize_own(&self.engine, code)?,
                to_cache: None,
            },
            CodeSource::CacheOrCompile => {
                loader::compile(&self.engine, compiler, cache, bytes, &sha256, owner)?
            }
            CodeSource::CacheOnly => {
                match cache.and_then(|c| c.get(&self.engine, &sha256, owner)) {
                    Some(component) => loader::Compiled {
                        component,
                        to_cache: None,
                    },
                    None => return Ok(None),
                }
            }
        };
        loader::check_export_kind(&self.engine, &compiled.component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(|e| loader::unsatisfied_import(&format!("{e:#}")))?;
        let pre = FlavorPre::new(&version, instance_pre)?;

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
        Ok(Some(Prepared {
            flavor: Arc::new(flavor),
            owner: owner.clone(),
            to_cache: compiled.to_cache,
        }))
    }

    /// The shared loaded flavor with this content hash, if it is in memory.
    pub fn cached(&self, sha256: &str) -> Option<Arc<LoadedFlavor>> {
        self.cached_owned(&CodeOwner::Shared, sha256)
    }

    /// `owner`'s loaded flavor with this content hash, if it is in memory.
    pub fn cached_owned(&self, owner: &CodeOwner, sha256: &str) -> Option<Arc<LoadedFlavor>> {
        self.lock_loaded().get(owner, sha256)
    }

    /// How many loaded flavors are in memory.
    pub fn loaded_count(&self) -> usize {
        self.lock_loaded().map.len()
    }

    /// Drops a component no one references any more: every owner's copy,
    /// from memory and from the code cache.
    pub fn forget(&self, sha256: &str) {
        self.lock_loaded().map.retain(|(_, sha), _| sha != sha256);
        if let Some(cache) = &self.code_cache {
            cache.remove(sha256);
        }
    }

    /// Drops `owner`'s copy of a component it no longer has (others may
    /// still have theirs): from memory and from the code cache.
    pub fn forget_owned(&self, owner: &CodeOwner, sha256: &str) {
        self.lock_loaded()
            .map
            .remove(&(owner.clone(), sha256.to_string()));
        if let Some(cache) = &self.code_cache {
            cache.remove_owned(sha256, owner);
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
        let outcome = self.call(flavor, ctx, "metadata", |instance, store| {
            instance.metadata(store)
        })?;
        let declared = outcome.value;
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
        let outcome = self.call(flavor, ctx, F, |instance, store| {
            instance.validate_config(store, config_json)
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
        raw: Result<String, Vec<ConfigIssue>>,
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
                    .map(|i| ConfigIssue {
                        field: clean(&i.field),
                        message: clean(&i.message),
                    })
                    .collect()))
            }
        }
    }

    /// Calls `prepare-image-push` in a fresh instance with a host-parsed
    /// reference and what the host read from the image (`info`, read by
    /// the caller before the call and outside its deadline). The info
    /// reaches only a flavor that asked for [`Capability::ImageInfo`] and
    /// was built for a WIT version that has it; see [`wants_image_info`].
    ///
    /// [`wants_image_info`]: LoadedFlavor::wants_image_info
    pub fn prepare_image_push(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        config_json: &str,
        image: &Reference,
        info: Option<&ImageFacts>,
    ) -> Result<Outcome<PushDecision>, CallError> {
        const F: &str = "prepare-image-push";
        let info = info.filter(|_| flavor.wants_image_info());
        let outcome = self.call(flavor, ctx, F, |instance, store| {
            instance.prepare_image_push(store, config_json, image, info)
        })?;
        let value = match outcome.value {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn default_flavor() -> &'static [u8] {
        flavorbox_builtin::component("default").expect("the default flavor is built in")
    }

    fn cached_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("cache dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cwasm"))
            .collect();
        names.sort();
        names
    }

    fn cached_sandbox(dir: &Path) -> Sandbox {
        Sandbox::new(SandboxConfig {
            code_cache_dir: Some(dir.to_path_buf()),
            code_cache_key: [9; 32],
            pooling: false,
            ..SandboxConfig::default()
        })
        .expect("sandbox")
    }

    #[test]
    fn each_tenant_compiles_into_its_own_space_and_never_hits_anothers_code() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = cached_sandbox(dir.path());
        let bytes = crate::measure::distinct_variant(default_flavor(), 0x7e4a);
        let (a, b) = (CodeOwner::tenant("a"), CodeOwner::tenant("b"));

        // Compiled on the one-thread engine, run in the pooled one.
        let first = sandbox.load_owned(&a, &bytes).expect("a's compile loads");
        assert_eq!(first.name(), "default");
        let after_a = cached_files(dir.path());
        assert_eq!(after_a.len(), 1, "{after_a:?}");
        assert!(
            after_a[0].starts_with(&format!("{}-t", first.sha256())),
            "{after_a:?}"
        );

        // b has nothing cached, in memory or on disk, though a has it all.
        assert!(sandbox.cached_owned(&b, first.sha256()).is_none());
        assert!(sandbox.cached(first.sha256()).is_none());
        assert!(sandbox.load_cached(&b, &bytes).expect("checks").is_none());
        let second = sandbox.load_owned(&b, &bytes).expect("b's own compile");
        assert!(!Arc::ptr_eq(&first, &second), "b got a's loaded flavor");
        let after_b = cached_files(dir.path());
        assert_eq!(
            after_b.len(),
            2,
            "b's compile has its own file: {after_b:?}"
        );

        // A fresh process finds each tenant's own file, and only its own.
        let restarted = cached_sandbox(dir.path());
        assert!(restarted.load_cached(&a, &bytes).expect("a").is_some());
        assert!(
            restarted
                .load_cached(&CodeOwner::tenant("c"), &bytes)
                .expect("c")
                .is_none()
        );

        // A tenant's file renamed to another tenant's name does not verify.
        let a_path = restarted.code_cache.as_ref().expect("cache").path(
            &restarted.engine,
            first.sha256(),
            &a,
        );
        let c_path = restarted.code_cache.as_ref().expect("cache").path(
            &restarted.engine,
            first.sha256(),
            &CodeOwner::tenant("c"),
        );
        std::fs::copy(&a_path, &c_path).expect("plant");
        assert!(
            restarted
                .load_cached(&CodeOwner::tenant("c"), &bytes)
                .expect("c")
                .is_none()
        );
        assert!(!c_path.exists(), "the planted file is removed");

        // A tenant that lets go of it loses only its own copy.
        restarted.forget_owned(&a, first.sha256());
        sandbox.forget_owned(&a, first.sha256());
        let left = cached_files(dir.path());
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(sandbox.load_cached(&b, &bytes).expect("b").is_some());
        sandbox.forget(first.sha256());
        assert!(cached_files(dir.path()).is_empty());
    }

    #[test]
    fn a_prepared_flavor_leaves_nothing_until_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = cached_sandbox(dir.path());
        let bytes = crate::measure::distinct_variant(default_flavor(), 0x9e7);
        let owner = CodeOwner::tenant("t");
        let prepared = sandbox.prepare(&owner, &bytes).expect("compiles");
        assert_eq!(prepared.flavor().name(), "default");
        assert!(cached_files(dir.path()).is_empty(), "nothing cached yet");
        assert_eq!(sandbox.loaded_count(), 0, "nothing in memory yet");
        drop(prepared);
        assert!(
            sandbox
                .load_cached(&owner, &bytes)
                .expect("checks")
                .is_none()
        );

        let kept = sandbox.keep(sandbox.prepare(&owner, &bytes).expect("compiles"));
        assert_eq!(cached_files(dir.path()).len(), 1);
        assert!(Arc::ptr_eq(
            &kept,
            &sandbox
                .cached_owned(&owner, kept.sha256())
                .expect("in memory")
        ));
    }

    #[test]
    fn what_is_refused_by_name_is_refused_before_any_compile() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = cached_sandbox(dir.path());
        assert!(matches!(
            sandbox.check(b"not wasm"),
            Err(LoadError::NotWasm)
        ));
        let sha = sandbox.check(default_flavor()).expect("a flavor");
        assert_eq!(sha, hex::encode(Sha256::digest(default_flavor())));
        assert!(cached_files(dir.path()).is_empty());
    }

    #[test]
    fn each_builtin_is_found_under_the_name_its_metadata_gives() {
        let sandbox = Sandbox::new(Default::default()).expect("sandbox");
        for (package, bytes) in flavorbox_builtin::BUILTIN_COMPONENTS {
            let flavor = sandbox.load(bytes).expect("loads");
            assert_eq!(Some(flavor.name()), package.strip_prefix("flavor-"));
            assert_eq!(flavorbox_builtin::component(flavor.name()), Some(*bytes));
        }
        assert_eq!(flavorbox_builtin::component("nope"), None);
    }
}
