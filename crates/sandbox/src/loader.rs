//! Turning bytes into a flavor the host will run: size cap, header check,
//! the world's imports and exports checked by name *before* anything is
//! compiled, compilation (or authenticated precompiled code from the cache),
//! the world's types checked by linking, then `metadata`. Nothing is written
//! to the code cache for a component that fails any of these, and a caller
//! that has more to check (a name already taken, a quota) keeps the code
//! only once those pass too (`Sandbox::keep`).
//!
//! Compiled code has an owner ([`CodeOwner`]). The built-ins (and code the
//! host loads for itself) are shared; a tenant's upload is compiled into
//! that tenant's own space: its own cache file (the owner in the file name
//! and under the HMAC tag) and its own entry in memory. A cache hit, the
//! only thing that makes a registration fast, can then come only from the
//! tenant's own earlier registration of the same bytes: how long an upload
//! takes never tells a tenant whether *another* tenant has the same
//! component. The price is one compile per tenant per component, the
//! same as if the tenants ran servers of their own.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::error::LoadError;
use super::text::{clean, first_line, truncate};
use crate::flavor::{Capability, DeclaredMetadata, FlavorMetadata};
use crate::world;

/// Length of the tag in front of every cached artifact.
const TAG_LEN: usize = 32;

/// Refuses what is too large, not wasm, or a core module.
pub fn check_header(bytes: &[u8], max_bytes: usize) -> Result<(), LoadError> {
    if bytes.len() > max_bytes {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
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

/// The names a component imports and exports at its top level.
struct Surface {
    imports: Vec<String>,
    exports: Vec<String>,
}

/// Reads the top-level import and export names without compiling anything.
fn surface(bytes: &[u8]) -> Result<Surface, LoadError> {
    use wasmparser::{Parser, Payload};
    let mut surface = Surface {
        imports: Vec::new(),
        exports: Vec::new(),
    };
    // Nested modules and components start with their own header and end
    // with their own `End`; only depth 1 is the component itself.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::Invalid(first_line(&e.to_string())))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import =
                        import.map_err(|e| LoadError::Invalid(first_line(&e.to_string())))?;
                    surface.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export =
                        export.map_err(|e| LoadError::Invalid(first_line(&e.to_string())))?;
                    surface.exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(surface)
}

/// Checks exports and imports by name and version before compiling;
/// returns the WIT version the flavor implements.
pub fn check_names(bytes: &[u8]) -> Result<String, LoadError> {
    let surface = surface(bytes)?;
    let export_prefix = format!("{}/flavor@", world::PACKAGE);
    let mut version = None;
    for name in &surface.exports {
        if let Some(v) = name.strip_prefix(&export_prefix) {
            check_version(name, v)?;
            version = Some(v.to_string());
        }
    }
    let Some(version) = version else {
        return Err(LoadError::MissingExport {
            expected: format!("{}/flavor@{}", world::PACKAGE, world::NEWEST_VERSION),
            found: if surface.exports.is_empty() {
                "nothing".into()
            } else {
                clean(&truncate(&surface.exports.join(", "), 500))
            },
        });
    };
    let host_prefix = format!("{}/host@", world::PACKAGE);
    for name in &surface.imports {
        if let Some(v) = name.strip_prefix(&host_prefix) {
            check_version(name, v)?;
        } else if !name.starts_with("wasi:") {
            return Err(LoadError::UnknownImport {
                name: clean(&truncate(name, 200)),
            });
        }
    }
    Ok(version)
}

/// Refuses an export or import of the flavor package at an unsupported version.
fn check_version(name: &str, version: &str) -> Result<(), LoadError> {
    if world::supported(version) {
        return Ok(());
    }
    Err(LoadError::UnsupportedVersion {
        found: clean(&truncate(name, 200)),
        supported: world::supported_range(),
    })
}

/// Checks, after compiling, that the flavor export is an interface.
pub fn check_export_kind(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let prefix = format!("{}/flavor@", world::PACKAGE);
    for (name, item) in component.component_type().exports(engine) {
        if name.starts_with(&prefix) && !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return Err(LoadError::WrongWorld(format!(
                "`{}` is not an interface",
                clean(&truncate(name, 200))
            )));
        }
    }
    Ok(())
}

/// Whose compiled code it is: the cache and the loaded flavors in memory
/// are kept apart per owner, so one tenant's uploads never hit another's
/// cache (see the module's docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CodeOwner {
    /// The built-ins and what the host loads for itself (the CLI's file
    /// arguments, the benchmark): one copy for everyone.
    Shared,
    /// One tenant's registered flavors.
    Tenant(String),
}

impl CodeOwner {
    /// The space of `tenant`'s uploads.
    pub fn tenant(tenant: &str) -> CodeOwner {
        CodeOwner::Tenant(tenant.to_string())
    }

    /// What the HMAC tag binds besides the content hash: nothing for shared
    /// code (so the built-ins' cache of an earlier version stays valid).
    fn label(&self) -> Option<String> {
        match self {
            CodeOwner::Shared => None,
            CodeOwner::Tenant(name) => Some(format!("\ntenant:{name}\n")),
        }
    }
}

/// Precompiled code cached on disk, keyed by content hash, owner and engine
/// configuration, each artifact authenticated with an HMAC-SHA256 tag under
/// a key only the host knows, over the content hash, the owner and the
/// code. A file whose tag does not verify (written by someone else, moved
/// from another owner's name, truncated, or corrupted) is never
/// deserialised: the component is compiled again.
///
/// File names start with the content hash (`<sha256>-…`), so the state's
/// sweep removes every owner's code of a component no flavor uses any more.
pub struct CodeCache {
    dir: PathBuf,
    key: [u8; 32],
}

/// A compiled component and, when it came from a compile, the artifact to
/// cache once the component has passed every check.
pub struct Compiled {
    /// The component, ready to link.
    pub component: Component,
    /// Serialised code to store if the load succeeds.
    pub to_cache: Option<(PathBuf, Vec<u8>)>,
}

impl CodeCache {
    /// A cache in `dir` (which the caller created owner-only) under `key`.
    pub fn new(dir: PathBuf, key: [u8; 32]) -> Self {
        CodeCache { dir, key }
    }

    /// `<sha256>-<engine>.cwasm` for shared code, `<sha256>-t<owner>-<engine>.cwasm`
    /// for a tenant's, where `<owner>` is a keyed hash of the tenant's name
    /// (no tenant name on disk, and a fixed length).
    pub(super) fn path(&self, engine: &Engine, sha256: &str, owner: &CodeOwner) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine = hasher.finish();
        let name = match owner {
            CodeOwner::Shared => format!("{sha256}-{engine:016x}.cwasm"),
            CodeOwner::Tenant(_) => {
                format!("{sha256}-{}-{engine:016x}.cwasm", self.owner_part(owner))
            }
        };
        self.dir.join(name)
    }

    /// The name part of an owner's files: `t` and 16 hex digits.
    fn owner_part(&self, owner: &CodeOwner) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(b"flavorbox code owner");
        mac.update(owner.label().unwrap_or_default().as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("t{}", hex::encode(&tag[..8]))
    }

    /// Removes the precompiled code of `sha256`, for every owner and engine
    /// configuration: the component is no longer registered anywhere.
    pub fn remove(&self, sha256: &str) {
        self.remove_prefix(&format!("{sha256}-"));
    }

    /// Removes `owner`'s precompiled code of `sha256` (every engine
    /// configuration): the owner no longer has it, though others may.
    pub fn remove_owned(&self, sha256: &str, owner: &CodeOwner) {
        match owner {
            // Shared code goes only with the component itself.
            CodeOwner::Shared => {}
            CodeOwner::Tenant(_) => {
                self.remove_prefix(&format!("{sha256}-{}-", self.owner_part(owner)));
            }
        }
    }

    fn remove_prefix(&self, prefix: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                // Best effort: a file left behind is only disk, never trusted without its tag.
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn mac(&self, sha256: &str, owner: &CodeOwner) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        // The tag binds the code to the component it was compiled from and
        // to its owner: one tenant's file renamed to another's never verifies.
        mac.update(sha256.as_bytes());
        if let Some(label) = owner.label() {
            mac.update(label.as_bytes());
        }
        mac
    }

    fn tag(&self, sha256: &str, owner: &CodeOwner, code: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac(sha256, owner);
        mac.update(code);
        mac.finalize().into_bytes().into()
    }

    /// Loads `owner`'s verified code for `sha256`, if the cache holds some.
    pub(super) fn get(
        &self,
        engine: &Engine,
        sha256: &str,
        owner: &CodeOwner,
    ) -> Option<Component> {
        let path = self.path(engine, sha256, owner);
        let file = std::fs::read(&path).ok()?;
        if file.len() < TAG_LEN {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let (tag, code) = file.split_at(TAG_LEN);
        let mut mac = self.mac(sha256, owner);
        mac.update(code);
        if mac.verify_slice(tag).is_err() {
            tracing::warn!(path = %path.display(), "precompiled code failed authentication; recompiling");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: `code` is exactly what `Component::serialize` produced in
        // this host for this engine configuration: its HMAC tag, under a
        // key only the host holds, verified above, over the bytes in memory
        // (not a file that could change after the check). wasmtime also
        // checks the version and configuration embedded in it.
        match unsafe { Component::deserialize(engine, code) } {
            Ok(component) => Some(component),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `owner`'s code for `sha256` (best effort: a cache that
    /// cannot be written only costs a compile next time).
    pub fn put(&self, path: &Path, sha256: &str, owner: &CodeOwner, code: &[u8]) {
        let mut file = Vec::with_capacity(TAG_LEN + code.len());
        file.extend_from_slice(&self.tag(sha256, owner, code));
        file.extend_from_slice(code);
        if let Err(e) = write_atomic(path, &file) {
            tracing::debug!(path = %path.display(), "cannot cache precompiled code: {e}");
        }
    }
}

/// Code this process precompiled with this engine (or the compile engine
/// made from the same settings) a moment ago (see `Sandbox::precompile`),
/// never code read from anywhere else.
pub fn deserialize_own(engine: &Engine, code: &[u8]) -> Result<Component, LoadError> {
    // SAFETY: the caller passes what `Engine::precompile_component` returned
    // in this process for this engine's settings; wasmtime also checks the
    // version and configuration embedded in it.
    unsafe { Component::deserialize(engine, code) }
        .map_err(|e| LoadError::Invalid(first_line(&format!("{e:#}"))))
}

/// How a cache miss is compiled.
pub enum Compiler<'a> {
    /// In the engine that runs the code, on every core (trusted, shared code).
    Parallel,
    /// In this single-threaded engine of the same settings, on the calling
    /// thread (a tenant's upload: its CPU time is the thread's).
    OneThread(&'a Engine),
}

/// Compiles a component for `owner`, or takes `owner`'s verified
/// precompiled code from the cache.
pub fn compile(
    engine: &Engine,
    compiler: Compiler<'_>,
    cache: Option<&CodeCache>,
    bytes: &[u8],
    sha256: &str,
    owner: &CodeOwner,
) -> Result<Compiled, LoadError> {
    if let Some(cache) = cache
        && let Some(component) = cache.get(engine, sha256, owner)
    {
        return Ok(Compiled {
            component,
            to_cache: None,
        });
    }
    let invalid = |e: wasmtime::Error| LoadError::Invalid(first_line(&format!("{e:#}")));
    let (component, code) = match compiler {
        Compiler::Parallel => {
            let component = Component::new(engine, bytes).map_err(invalid)?;
            let code = cache.and_then(|_| component.serialize().ok());
            (component, code)
        }
        Compiler::OneThread(compile_engine) => {
            let code = compile_engine
                .precompile_component(bytes)
                .map_err(invalid)?;
            (deserialize_own(engine, &code)?, Some(code))
        }
    };
    let to_cache = match (cache, code) {
        (Some(cache), Some(code)) => Some((cache.path(engine, sha256, owner), code)),
        _ => None,
    };
    Ok(Compiled {
        component,
        to_cache,
    })
}

/// Maps a linking failure to the import it names, when it names one
/// (wasmtime: "component imports instance `X`, but a matching implementation
/// was not found in the linker").
pub fn unsatisfied_import(message: &str) -> LoadError {
    if message.contains("matching implementation was not found")
        && let Some(name) = message.split('`').nth(1)
    {
        return LoadError::UnknownImport {
            name: clean(&truncate(name, 200)),
        };
    }
    LoadError::WrongWorld(clean(&first_line(message)))
}

/// Checks what a flavor says about itself.
pub fn check_metadata(
    m: DeclaredMetadata,
    wit_version: String,
) -> Result<FlavorMetadata, LoadError> {
    if !crate::flavor::is_valid_name(&m.name) {
        return Err(LoadError::BadMetadata(format!(
            "name `{}` is not an identifier (lowercase letters, digits, `-`, `_`; 1 to 63 characters, starting with a letter or digit)",
            clean(&truncate(&m.name, 80))
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
    let mut capabilities: Vec<Capability> = Vec::new();
    for c in m.capabilities {
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

/// Writes `bytes` to `path` through a temporary file named `.tmp-<pid>-…`:
/// the state directory's sweep removes such a file once its writer is gone.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-", std::process::id()))
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
