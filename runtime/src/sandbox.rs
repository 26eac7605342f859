//! The wasmtime sandbox that runs untrusted flavor components.
//!
//! Every call gets a fresh store and a fresh instance from a pre-linked
//! `InstancePre`, bounded by fuel, an epoch deadline, a memory cap, the
//! engine's wasm stack limit and a cap on the bytes returned. WASI 0.2 is
//! linked deny-by-default (no preopens, env, args or sockets; stdio captured
//! into bounded log lines; a frozen wall clock), so components built by
//! toolchains that import all of WASI still load, but can reach nothing.
//!
//! The sandbox knows nothing of the store, the push, the CLI or the server: the
//! caller hands in per-call limits, the tenant, and (when granted) a
//! [`RepositoryLookup`] that answers the `repository-exists` import.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use crate::flavor::{Capability, ConfigIssue, FlavorMetadata, PushDecision};
use crate::reference::Reference;
use crate::world::{self, v0_1};

/// How often the epoch ticker advances the engine's epoch.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How many `repository-exists` lookups one call may make.
const MAX_LOOKUPS_PER_CALL: usize = 16;

/// Per-call limits. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (roughly wasm instructions) a call may burn.
    pub fuel: u64,
    /// Wall-clock deadline of a call, host imports included.
    pub timeout: Duration,
    /// Linear memory a call's instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Bytes of strings a call may return.
    pub max_output_bytes: usize,
    /// Log lines a call may emit (the rest are counted and dropped).
    pub max_log_lines: usize,
    /// Bytes of one log line (longer lines are truncated).
    pub max_log_line_bytes: usize,
    /// Bytes captured from the guest's stdout and from its stderr.
    pub max_stdio_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            timeout: Duration::from_secs(10),
            memory_bytes: 128 << 20,
            max_output_bytes: 1 << 20,
            max_log_lines: 100,
            max_log_line_bytes: 1024,
            max_stdio_bytes: 64 << 10,
        }
    }
}

/// Engine-wide settings, fixed when the sandbox is created.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Maximum wasm stack per call, in bytes.
    pub max_wasm_stack: usize,
    /// Use the pooling instance allocator (fast instantiation, bounded slots).
    pub pooling: bool,
    /// Instances that may exist at once (pooling slots).
    pub max_concurrent_instances: u32,
    /// Ceiling for any call's memory limit: the size of a pooling memory slot.
    pub max_memory_bytes: usize,
    /// Directory for precompiled code, keyed by content hash; none: compile in memory.
    pub code_cache_dir: Option<PathBuf>,
    /// Limits used when a call does not set its own.
    pub default_limits: Limits,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_wasm_stack: 512 << 10,
            pooling: true,
            max_concurrent_instances: 64,
            max_memory_bytes: 1 << 30,
            code_cache_dir: None,
            default_limits: Limits::default(),
        }
    }
}

/// Why a component could not be loaded as a flavor.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "not a WebAssembly file (no `\\0asm` header): build the flavor with `cargo build --target wasm32-wasip2`"
    )]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: build for `wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The flavor export is missing.
    #[error(
        "the component does not export `{expected}` (it exports: {found}); implement the `container-registry-flavor` world of wit/"
    )]
    MissingExport {
        /// The export the host looks for.
        expected: String,
        /// What the component exports instead.
        found: String,
    },
    /// Built against a WIT version this host does not support.
    #[error(
        "the component implements `{found}`, but this host supports {PACKAGE} versions {supported}; rebuild the flavor against a supported version",
        PACKAGE = world::PACKAGE
    )]
    UnsupportedVersion {
        /// The export or import found.
        found: String,
        /// The supported range.
        supported: String,
    },
    /// An import the host does not offer.
    #[error(
        "the component imports `{name}`, which this host does not offer (it offers {PACKAGE}/host and WASI 0.2, deny-by-default)",
        PACKAGE = world::PACKAGE
    )]
    UnknownImport {
        /// The import name.
        name: String,
    },
    /// The exports or imports do not match the world's types.
    #[error("the component does not match the `container-registry-flavor` world: {0}")]
    WrongWorld(String),
    /// Calling `metadata` failed.
    #[error(transparent)]
    Metadata(#[from] CallError),
    /// The metadata is unusable.
    #[error("bad metadata: {0}")]
    BadMetadata(String),
}

/// What went wrong in one call of a flavor; the host and other calls carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function} of flavor `{flavor}`: {kind}")]
pub struct CallError {
    /// The flavor called.
    pub flavor: String,
    /// The WIT function called (`metadata`, `validate-config`, `prepare-image-push`).
    pub function: &'static str,
    /// What went wrong.
    pub kind: CallErrorKind,
}

/// The kind of a call failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallErrorKind {
    /// The wall-clock deadline passed (in wasm or in a host import).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The fuel ran out.
    #[error("out of fuel after {0} units")]
    OutOfFuel(u64),
    /// The memory cap was hit.
    #[error("memory limit of {0} bytes exceeded")]
    MemoryLimit(usize),
    /// The wasm stack overflowed.
    #[error("wasm stack overflow (limit {0} bytes)")]
    StackOverflow(usize),
    /// Any other trap (panic, unreachable, out-of-bounds access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest returned too much or something malformed.
    #[error("bad output: {0}")]
    BadOutput(String),
    /// No instance could be created (e.g. every pooling slot is busy).
    #[error("could not instantiate: {0}")]
    Instantiate(String),
}

/// Why a `repository-exists` lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The lookup hit the call's deadline: the call times out.
    TimedOut,
    /// Any other failure; the reason is handed to the guest.
    Failed(String),
}

/// Answers the `repository-exists` import for one component's registry.
pub trait RepositoryLookup: Send + Sync {
    /// Whether `repository` exists; must return within `timeout`.
    fn repository_exists(&self, repository: &str, timeout: Duration) -> Result<bool, LookupError>;
}

/// Who is calling and with what grants and limits.
#[derive(Clone, Default)]
pub struct CallContext {
    /// Tenant the call is made for (attributed on every log line).
    pub tenant: String,
    /// Limits for this call; `None`: the sandbox's defaults.
    pub limits: Option<Limits>,
    /// Answers `repository-exists`, when the operator grants it. The flavor
    /// must also have asked for the capability in its metadata.
    pub repository_lookup: Option<Arc<dyn RepositoryLookup>>,
}

/// A log line emitted by a guest during a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`; `stdout`/`stderr` for captured output.
    pub level: &'static str,
    /// The (truncated) message.
    pub message: String,
}

/// A call's result with the log lines it emitted.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    /// What the guest returned, checked by the host.
    pub value: T,
    /// Log lines, in order.
    pub logs: Vec<LogLine>,
}

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
    loaded: Mutex<HashMap<String, Arc<LoadedFlavor>>>,
}

impl Sandbox {
    /// Creates an engine configured for untrusted code and starts its epoch ticker.
    pub fn new(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let mut wasm = Config::new();
        // Components only; no threads, no GC, nothing the flavor world needs not.
        wasm.wasm_component_model(true);
        // Deterministic CPU bound: fuel. Wall-clock bound: epochs.
        wasm.consume_fuel(true);
        wasm.epoch_interruption(true);
        // A guest's recursion is bounded well below the host thread's stack.
        wasm.max_wasm_stack(config.max_wasm_stack);
        wasm.cranelift_opt_level(wasmtime::OptLevel::Speed);
        if config.pooling {
            // Pooling: instantiation is a slot reuse, not an mmap per call.
            // Slots bound how many instances can exist at once; the memory
            // slot size is the ceiling of any call's memory limit.
            let mut pool = PoolingAllocationConfig::default();
            let n = config.max_concurrent_instances.max(1);
            pool.total_component_instances(n);
            pool.total_core_instances(n * 16);
            pool.total_memories(n * 4);
            pool.total_tables(n * 16);
            pool.max_core_instances_per_component(64);
            pool.max_memories_per_component(16);
            pool.max_tables_per_component(64);
            pool.max_memory_size(config.max_memory_bytes);
            pool.max_core_instance_size(4 << 20);
            pool.max_component_instance_size(4 << 20);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm).map_err(to_anyhow)?;

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(to_anyhow)?;
        bound_clock_waits(&mut linker).map_err(to_anyhow)?;
        // wasi:http too (componentize-js imports it for `fetch`), with every
        // outgoing request refused: linked, so such flavors load; denied, so
        // they reach nothing.
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(to_anyhow)?;
        v0_1::ContainerRegistryFlavor::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut linker,
            |state| state,
        )
        .map_err(to_anyhow)?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("flavorbox-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;

        if let Some(dir) = &config.code_cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Sandbox {
            engine,
            linker,
            config,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The sandbox's engine-wide settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Reads a component file and loads it (see [`Sandbox::load`]).
    pub fn load_file(&self, path: &Path) -> Result<Arc<LoadedFlavor>, LoadError> {
        let bytes = std::fs::read(path)
            .map_err(|e| LoadError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        self.load(&bytes)
    }

    /// Checks bytes against the flavor world, compiles them (or reuses the
    /// precompiled code for the same content), and calls `metadata`.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedFlavor>, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(found) = self.lock_loaded().get(&sha256) {
            return Ok(found.clone());
        }
        check_header(bytes)?;
        let component = self.compile(bytes, &sha256)?;
        let version = self.check_world(&component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| unsatisfied_import(&format!("{e:#}")))?;
        let pre = v0_1::ContainerRegistryFlavorPre::new(instance_pre)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;

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
        let raw = self
            .metadata_raw(&flavor, &CallContext::default())
            .map_err(|e| match e.kind {
                CallErrorKind::Instantiate(msg) => LoadError::WrongWorld(msg),
                _ => LoadError::Metadata(e),
            })?;
        flavor.metadata = check_metadata(raw.value, version)?;
        let flavor = Arc::new(flavor);
        self.lock_loaded().insert(sha256, flavor.clone());
        Ok(flavor)
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedFlavor>>> {
        // A poisoned map only means another thread panicked mid-insert of an
        // `Arc`; the map itself is still consistent.
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compiles a component, or deserialises precompiled code keyed by the
    /// content hash and the engine's compatibility hash.
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        let Some(dir) = &self.config.code_cache_dir else {
            return Component::new(&self.engine, bytes)
                .map_err(|e| LoadError::Invalid(format!("{e:#}")));
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let path = dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()));
        if path.exists() {
            // SAFETY: the cache directory is the host's own (owner-only), and
            // every file in it was written by `Component::serialize` below
            // for this engine configuration; wasmtime also checks the
            // version and configuration embedded in the file.
            if let Ok(component) = unsafe { Component::deserialize_file(&self.engine, &path) } {
                return Ok(component);
            }
            let _ = std::fs::remove_file(&path);
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        if let Ok(code) = component.serialize() {
            // Best effort: a cache that cannot be written only costs a compile.
            let _ = write_atomic(&path, &code);
        }
        Ok(component)
    }

    /// Checks exports and imports by name and version; returns the WIT version.
    fn check_world(&self, component: &Component) -> Result<String, LoadError> {
        let ty = component.component_type();
        let export_prefix = format!("{}/flavor@", world::PACKAGE);
        let mut exports = Vec::new();
        let mut version = None;
        for (name, item) in ty.exports(&self.engine) {
            exports.push(name.to_string());
            if let Some(v) = name.strip_prefix(&export_prefix) {
                if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                    return Err(LoadError::WrongWorld(format!(
                        "`{name}` is not an interface"
                    )));
                }
                if !supported(v) {
                    return Err(LoadError::UnsupportedVersion {
                        found: name.to_string(),
                        supported: supported_range(),
                    });
                }
                version = Some(v.to_string());
            }
        }
        let Some(version) = version else {
            return Err(LoadError::MissingExport {
                expected: format!("{}/flavor@{}", world::PACKAGE, v0_1::VERSION),
                found: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            });
        };
        let host_prefix = format!("{}/host@", world::PACKAGE);
        for (name, _) in ty.imports(&self.engine) {
            if let Some(v) = name.strip_prefix(&host_prefix) {
                if !supported(v) {
                    return Err(LoadError::UnsupportedVersion {
                        found: name.to_string(),
                        supported: supported_range(),
                    });
                }
            } else if !name.starts_with("wasi:") {
                return Err(LoadError::UnknownImport {
                    name: name.to_string(),
                });
            }
        }
        Ok(version)
    }

    fn metadata_raw(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
    ) -> Result<Outcome<v0_1::exports::flavorbox::registry::flavor::FlavorMetadata>, CallError>
    {
        self.call(flavor, ctx, "metadata", |bindings, store| {
            bindings.flavorbox_registry_flavor().call_metadata(store)
        })
        .and_then(|outcome| {
            let m = &outcome.value;
            let size = m.name.len()
                + m.display_name.len()
                + m.description.len()
                + m.docs_url.len()
                + m.logo_url.len()
                + m.config_schema.len()
                + m.capabilities.len();
            self.check_size(flavor, ctx, "metadata", size)?;
            Ok(outcome)
        })
    }

    /// Calls `metadata` in a fresh instance.
    pub fn metadata(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
    ) -> Result<Outcome<FlavorMetadata>, CallError> {
        let raw = self.metadata_raw(flavor, ctx)?;
        let metadata =
            check_metadata(raw.value, flavor.metadata.wit_version.clone()).map_err(|e| {
                CallError {
                    flavor: flavor.name().to_string(),
                    function: "metadata",
                    kind: CallErrorKind::BadOutput(e.to_string()),
                }
            })?;
        Ok(Outcome {
            value: metadata,
            logs: raw.logs,
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
        let bad = |msg: String| CallError {
            flavor: flavor.name().to_string(),
            function: F,
            kind: CallErrorKind::BadOutput(msg),
        };
        let value = match outcome.value {
            Ok(text) => {
                self.check_size(flavor, ctx, F, text.len())?;
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Object(map)) => Ok(map),
                    Ok(_) => return Err(bad("the normalised config is not a JSON object".into())),
                    Err(e) => {
                        return Err(bad(format!("the normalised config is not valid JSON: {e}")));
                    }
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
                Err(issues
                    .into_iter()
                    .map(|i| ConfigIssue {
                        field: clean(&i.field),
                        message: clean(&i.message),
                    })
                    .collect())
            }
        };
        Ok(Outcome {
            value,
            logs: outcome.logs,
        })
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
        let wit_image = v0_1::exports::flavorbox::registry::flavor::ImageReference {
            domain: image.domain().to_string(),
            path: image.path().to_string(),
            tag: image.tag().map(str::to_string),
            digest: image.digest().map(str::to_string),
            name: image.name(),
        };
        let outcome = self.call(flavor, ctx, F, |bindings, store| {
            bindings
                .flavorbox_registry_flavor()
                .call_prepare_image_push(store, config_json, &wit_image)
        })?;
        use v0_1::exports::flavorbox::registry::flavor::PushDecision as W;
        let value = match outcome.value {
            W::Approve(warnings) => {
                let size = warnings.iter().map(|w| w.len() + 1).sum();
                self.check_size(flavor, ctx, F, size)?;
                PushDecision::Approve {
                    warnings: warnings.iter().map(|w| clean(w)).collect(),
                }
            }
            W::Deny(reason) => {
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

    fn check_size(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        function: &'static str,
        size: usize,
    ) -> Result<(), CallError> {
        let max = self.limits(ctx).max_output_bytes;
        if size > max {
            return Err(CallError {
                flavor: flavor.name().to_string(),
                function,
                kind: CallErrorKind::BadOutput(format!(
                    "returned {size} bytes, more than the limit of {max}"
                )),
            });
        }
        Ok(())
    }

    fn limits<'a>(&'a self, ctx: &'a CallContext) -> &'a Limits {
        ctx.limits.as_ref().unwrap_or(&self.config.default_limits)
    }

    /// Runs one export in a fresh store and instance, with the call's limits.
    fn call<R>(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        function: &'static str,
        run: impl FnOnce(&v0_1::ContainerRegistryFlavor, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<Outcome<R>, CallError> {
        let limits = self.limits(ctx).clone();
        let error = |kind| CallError {
            flavor: flavor.name().to_string(),
            function,
            kind,
        };
        let memory_bytes = limits.memory_bytes.min(self.config.max_memory_bytes);
        // The lookup is granted only to a flavor that asked for it in its
        // metadata, and never while it is describing itself.
        let granted = function != "metadata"
            && flavor
                .metadata
                .capabilities
                .contains(&Capability::RepositoryExists);
        let stdout = CappedPipe::new(limits.max_stdio_bytes);
        let stderr = CappedPipe::new(limits.max_stdio_bytes);
        let started = Instant::now();
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenWallClock)
            .monotonic_clock(CallClock(started))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: DenyHttp,
            limiter: MemoryLimiter {
                max_bytes: memory_bytes,
                used_bytes: 0,
                hit: false,
            },
            logs: LogSink::new(&limits, flavor.name(), &ctx.tenant),
            lookup: if granted {
                ctx.repository_lookup.clone()
            } else {
                None
            },
            lookups: 0,
            deadline: started + limits.timeout,
            deadline_hit: false,
            clock: CallClock(started),
            wait_capped: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| error(CallErrorKind::Instantiate(format!("{e:#}"))))?;
        let ticks = limits.timeout.as_nanos() / EPOCH_TICK.as_nanos() + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();

        let result = match flavor.pre.instantiate(&mut store) {
            Ok(bindings) => match run(&bindings, &mut store) {
                // A guest woken at the deadline from a longer wait may return
                // before wasm code checks the epoch: it is still too late.
                Ok(_) if store.data().wait_capped && Instant::now() >= store.data().deadline => {
                    Err(CallErrorKind::Timeout(limits.timeout))
                }
                Ok(value) => Ok(value),
                Err(e) => Err(classify(e, &store, &limits, self)),
            },
            // A trap or a limit while instantiating (start functions, initial
            // memory) is that; anything else is the instance not fitting.
            Err(e) if e.downcast_ref::<Trap>().is_none() && !store.data().limiter.hit => {
                Err(CallErrorKind::Instantiate(first_line(&format!("{e:#}"))))
            }
            Err(e) => Err(classify(e, &store, &limits, self)),
        };
        let mut state = store.into_data();
        let stderr = stderr.contents();
        state.logs.capture("stdout", &stdout.contents());
        state.logs.capture("stderr", &stderr);
        let logs = state.logs.finish();
        match result {
            Ok(value) => Ok(Outcome { value, logs }),
            // A panicking guest says why on stderr: keep that with the trap.
            Err(CallErrorKind::Trap(msg)) => {
                let text = String::from_utf8_lossy(&stderr);
                Err(error(CallErrorKind::Trap(
                    match text
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty() && !l.starts_with("note: run with"))
                    {
                        Some(last) => {
                            format!("{msg}; guest stderr: {}", truncate(&clean(last), 300))
                        }
                        None => msg,
                    },
                )))
            }
            Err(kind) => Err(error(kind)),
        }
    }
}

/// Maps a failed call to its kind, using what the store observed.
fn classify(
    err: wasmtime::Error,
    store: &Store<CallState>,
    limits: &Limits,
    sandbox: &Sandbox,
) -> CallErrorKind {
    let state = store.data();
    if state.deadline_hit || err.downcast_ref::<DeadlineExceeded>().is_some() {
        return CallErrorKind::Timeout(limits.timeout);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallErrorKind::OutOfFuel(limits.fuel),
        Some(Trap::Interrupt) => CallErrorKind::Timeout(limits.timeout),
        Some(Trap::StackOverflow) => CallErrorKind::StackOverflow(sandbox.config.max_wasm_stack),
        _ if state.limiter.hit => CallErrorKind::MemoryLimit(state.limiter.max_bytes),
        Some(trap) => CallErrorKind::Trap(trap.to_string()),
        None => {
            let message = first_line(&format!("{err:#}"));
            // Lifting a result that is too large for the host to copy.
            if message.contains("too much data is being copied") {
                CallErrorKind::BadOutput(message)
            } else {
                CallErrorKind::Trap(message)
            }
        }
    }
}

/// Maps a linking failure to the import it names, when it names one
/// (wasmtime: "component imports instance `X`, but a matching implementation
/// was not found in the linker").
fn unsatisfied_import(message: &str) -> LoadError {
    if message.contains("matching implementation was not found")
        && let Some(name) = message.split('`').nth(1)
    {
        return LoadError::UnknownImport {
            name: name.to_string(),
        };
    }
    LoadError::WrongWorld(first_line(message))
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    truncate(line, 500)
}

/// Guest text made safe to show: control characters (terminal escapes,
/// newlines, ...) are replaced by their escaped form.
pub fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Truncates to at most `max` bytes on a char boundary, marking the cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    // Core modules have version 1 and layer 0; components a layer of 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

fn supported(version: &str) -> bool {
    world::SUPPORTED_VERSIONS.iter().any(|minor| {
        version.strip_prefix(minor).is_some_and(|rest| {
            rest.starts_with('.') && rest[1..].bytes().all(|b| b.is_ascii_digit()) && rest.len() > 1
        })
    })
}

fn supported_range() -> String {
    world::SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("{v}.x"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks what a flavor says about itself.
fn check_metadata(
    m: v0_1::exports::flavorbox::registry::flavor::FlavorMetadata,
    wit_version: String,
) -> Result<FlavorMetadata, LoadError> {
    if !crate::flavor::is_valid_name(&m.name) {
        return Err(LoadError::BadMetadata(format!(
            "name `{}` is not an identifier (lowercase letters, digits, `-`, `_`; 1 to 63 characters, starting with a letter or digit)",
            truncate(&m.name, 80)
        )));
    }
    let config_schema = match serde_json::from_str::<serde_json::Value>(&m.config_schema) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            return Err(LoadError::BadMetadata(
                "config-schema is not a JSON object (a JSON Schema)".into(),
            ));
        }
        Err(e) => {
            return Err(LoadError::BadMetadata(format!(
                "config-schema is not valid JSON: {e}"
            )));
        }
    };
    let mut capabilities = Vec::new();
    for c in m.capabilities {
        let c = match c {
            v0_1::exports::flavorbox::registry::flavor::Capability::RepositoryExists => {
                Capability::RepositoryExists
            }
        };
        if !capabilities.contains(&c) {
            capabilities.push(c);
        }
    }
    Ok(FlavorMetadata {
        name: m.name,
        display_name: clean(&m.display_name),
        description: clean(&m.description),
        docs_url: clean(&m.docs_url),
        logo_url: clean(&m.logo_url),
        config_schema,
        capabilities,
        wit_version,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn to_anyhow(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

/// The WASI version whose clock functions `bound_clock_waits` replaces: the
/// one wasmtime-wasi links (older 0.2 imports resolve to it by semver).
const WASI_CLOCKS: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces WASI's clock subscriptions with ones that end no later than the
/// call's deadline. Fuel and epochs only fire in wasm code; a guest that
/// sleeps waits in host code, so without this a `sleep(1 hour)` would hold
/// the call (and its thread and instance slot) for an hour.
fn bound_clock_waits(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::DynPollable;

    fn subscribe(
        state: &mut CallState,
        wait: Duration,
    ) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let remaining = state.deadline.saturating_duration_since(Instant::now());
        if wait > remaining {
            state.wait_capped = true;
        }
        let until = tokio::time::Instant::now() + wait.min(remaining);
        let sleep = state.table.push(CappedSleep(until))?;
        Ok((wasmtime_wasi::p2::subscribe(&mut state.table, sleep)?,))
    }

    linker.allow_shadowing(true);
    let mut clocks = linker.instance(WASI_CLOCKS)?;
    clocks.func_wrap("subscribe-duration", |mut store, (nanos,): (u64,)| {
        subscribe(store.data_mut(), Duration::from_nanos(nanos))
    })?;
    clocks.func_wrap("subscribe-instant", |mut store, (when,): (u64,)| {
        let state: &mut CallState = store.data_mut();
        let now = state.clock.now();
        subscribe(state, Duration::from_nanos(when.saturating_sub(now)))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A clock wait that ends at an instant no later than the call's deadline.
struct CappedSleep(tokio::time::Instant);

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for CappedSleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.0).await;
    }
}

/// Raised by a host import that ran into the call's deadline.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the call's deadline passed during a host call")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The data of one call's store: WASI (empty), limits, logs and grants.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: DenyHttp,
    limiter: MemoryLimiter,
    logs: LogSink,
    lookup: Option<Arc<dyn RepositoryLookup>>,
    lookups: usize,
    deadline: Instant,
    deadline_hit: bool,
    /// The guest's monotonic clock, for `subscribe-instant`.
    clock: CallClock,
    /// A clock wait was cut at the deadline.
    wait_capped: bool,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for CallState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            hooks: &mut self.http_hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// `wasi:http` hooks that refuse every outgoing request.
struct DenyHttp;

impl wasmtime_wasi_http::WasiHttpHooks for DenyHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<
                            dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                                + Send,
                        >,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl v0_1::flavorbox::registry::host::Host for CallState {
    fn log(
        &mut self,
        level: v0_1::flavorbox::registry::host::LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        use v0_1::flavorbox::registry::host::LogLevel as L;
        let level = match level {
            L::Trace => "trace",
            L::Debug => "debug",
            L::Info => "info",
            L::Warn => "warn",
            L::Error => "error",
        };
        self.logs.push(level, &message);
        Ok(())
    }

    fn repository_exists(&mut self, repository: String) -> wasmtime::Result<Result<bool, String>> {
        let Some(lookup) = self.lookup.clone() else {
            return Ok(Err(
                "capability `repository-exists` is not granted: the flavor must ask for it in its metadata, and the operator must allow it"
                    .into(),
            ));
        };
        if self.lookups >= MAX_LOOKUPS_PER_CALL {
            return Ok(Err(format!(
                "at most {MAX_LOOKUPS_PER_CALL} repository lookups per call"
            )));
        }
        self.lookups += 1;
        if repository.is_empty() || repository.len() > 255 {
            return Ok(Err("repository name must be 1 to 255 characters".into()));
        }
        let now = Instant::now();
        if now >= self.deadline {
            self.deadline_hit = true;
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        match lookup.repository_exists(&repository, self.deadline - now) {
            Ok(exists) => Ok(Ok(exists)),
            Err(LookupError::TimedOut) => {
                self.deadline_hit = true;
                Err(wasmtime::Error::new(DeadlineExceeded))
            }
            Err(LookupError::Failed(reason)) => Ok(Err(truncate(&reason, 1000))),
        }
    }
}

/// Caps the linear memory of a call (all of its memories together) and
/// remembers when the cap was hit.
struct MemoryLimiter {
    max_bytes: usize,
    used_bytes: usize,
    hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.used_bytes - current.min(self.used_bytes)).saturating_add(desired);
        if total > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.used_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Bounded log lines of one call, also forwarded to `tracing`.
struct LogSink {
    lines: Vec<LogLine>,
    dropped: usize,
    max_lines: usize,
    max_line_bytes: usize,
    flavor: String,
    tenant: String,
}

impl LogSink {
    fn new(limits: &Limits, flavor: &str, tenant: &str) -> Self {
        LogSink {
            lines: Vec::new(),
            dropped: 0,
            max_lines: limits.max_log_lines,
            max_line_bytes: limits.max_log_line_bytes,
            flavor: flavor.to_string(),
            tenant: tenant.to_string(),
        }
    }

    fn push(&mut self, level: &'static str, message: &str) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        let message = truncate(&clean(message), self.max_line_bytes);
        tracing::info!(target: "flavorbox::guest", flavor = %self.flavor, tenant = %self.tenant, level, "{message}");
        self.lines.push(LogLine { level, message });
    }

    fn capture(&mut self, level: &'static str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.push(level, line);
        }
    }

    fn finish(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            let dropped = self.dropped;
            self.max_lines += 1;
            self.push(
                "warn",
                &format!(
                    "{dropped} more log lines dropped (limit {})",
                    self.max_lines - 1
                ),
            );
        }
        self.lines
    }
}

/// Captures a guest's stdout or stderr up to a cap and drops the rest, so a
/// chatty guest is bounded without its writes failing (wasmtime's
/// `MemoryOutputPipe` traps the guest instead).
#[derive(Clone)]
struct CappedPipe {
    buffer: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl CappedPipe {
    fn new(capacity: usize) -> Self {
        CappedPipe {
            buffer: Arc::new(Mutex::new(Vec::new())),
            capacity,
        }
    }

    fn contents(&self) -> Vec<u8> {
        self.buffer.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Ok(mut buffer) = self.buffer.lock() {
            let room = self.capacity.saturating_sub(buffer.len());
            buffer.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        // Accept everything: what is over the cap is dropped, not refused.
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The guest's wall clock: frozen at the Unix epoch. The host's time is not
/// the guest's business.
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The guest's monotonic clock: nanoseconds since the call started.
#[derive(Clone, Copy)]
struct CallClock(Instant);

impl HostMonotonicClock for CallClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        // Millisecond resolution: enough to measure, too coarse for timing attacks.
        let ms = self.0.elapsed().as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX / 1_000_000) * 1_000_000
    }
}
