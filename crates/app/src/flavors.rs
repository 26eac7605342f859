//! Flavors: the built-ins (embedded, loaded once per process) and each
//! tenant's registered ones (stored by content hash, checked against the
//! world, precompiled).
//!
//! A registration refuses what it can before it compiles anything: the
//! size, the header and the world's names (read without compiling), a name
//! the tenant already holds with other content, a built-in's name, content
//! the tenant already registered under another name, and the tenant's
//! flavor quota. Only then is the component compiled, as admitted work
//! (`Admission::admit_compile`: bounded server-wide, one at a time per
//! tenant, its CPU time charged to the tenant's budget), into the tenant's
//! own space of compiled code (`sandbox::CodeOwner`), and the code is kept
//! only once the flavor is stored: a refused attempt leaves no compiled
//! code behind.
//!
//! A file upload, a pull from an OCI registry and a `flavor update` that
//! replaces a flavor's content all take this one sequence
//! ([`TenantApp::register`]); they differ only in where the bytes came
//! from, the origin recorded, and whether the store adds or replaces.

use std::collections::HashMap;
use std::sync::Arc;

use super::{App, AppError, FlavorInfo, TenantApp, blocking, quota};
use flavorbox_builtin as builtin;
use flavorbox_sandbox::flavor::FlavorMetadata;
use flavorbox_sandbox::{CodeOwner, LoadedFlavor, Prepared};
use flavorbox_store::{FlavorOrigin, FlavorRecord, StoreError};

/// Registrations in progress, by tenant and content: identical uploads of
/// one tenant wait for each other instead of compiling side by side.
#[derive(Default)]
pub(super) struct SameContent {
    turns: std::sync::Mutex<HashMap<(String, String), TurnLock>>,
}

/// The lock one content's registrations take turns at.
type TurnLock = Arc<tokio::sync::Mutex<()>>;

/// One registration's turn at its content; the map entry goes with the
/// last holder.
pub(super) struct Turn<'a> {
    owner: &'a SameContent,
    key: (String, String),
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl SameContent {
    /// Waits until no other registration of `sha256` by `tenant` runs.
    pub(super) async fn turn(&self, tenant: &str, sha256: &str) -> Turn<'_> {
        let key = (tenant.to_string(), sha256.to_string());
        let lock = self
            .turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        Turn {
            owner: self,
            key,
            lock: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        let mut turns = self.owner.turns.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map holds it: nobody waits for this content.
        if turns
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            turns.remove(&self.key);
        }
    }
}

impl App {
    /// Loads every built-in flavor (once per process; compiled code is cached on disk).
    pub(super) async fn builtins(&self) -> Result<Vec<Arc<LoadedFlavor>>, AppError> {
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

    /// The built-in flavor named `name`, if there is one. Only that one is
    /// loaded (a compile in a fresh home, the code cache after), not all of
    /// them: a command needs one flavor.
    pub(super) async fn builtin(&self, name: &str) -> Result<Option<Arc<LoadedFlavor>>, AppError> {
        if let Some(all) = self.builtins.get() {
            return Ok(all.iter().find(|f| f.name() == name).cloned());
        }
        let Some(bytes) = builtin::component(name) else {
            return Ok(None);
        };
        let sandbox = self.sandbox.clone();
        Ok(Some(blocking(move || sandbox.load(bytes)).await??))
    }
}

impl TenantApp<'_> {
    /// Checks a component against the world, stores it by content hash
    /// (precompiling it) and records it under the name from its metadata.
    pub async fn register_flavor(&self, bytes: Vec<u8>) -> Result<FlavorInfo, AppError> {
        self.register_flavor_as(bytes, None).await
    }

    /// [`register_flavor`](Self::register_flavor), refused (before anything
    /// is stored) unless the component names itself `expected`.
    pub async fn register_flavor_as(
        &self,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<FlavorInfo, AppError> {
        let registered = self
            .register(bytes, Registration::Add { expected }, None)
            .await?;
        Ok(registered.info)
    }

    /// The one registration sequence, for a file upload and an OCI pull
    /// alike (see the module docs): the size, the header and the world's
    /// names; the refusals that need no compile (`Add` only); the admitted
    /// compile; the name; then the store, which records `origin` (the OCI
    /// artifact the bytes came from, if they did) in the same write; and
    /// only then the compiled code is kept.
    pub(super) async fn register(
        &self,
        bytes: Vec<u8>,
        registration: Registration<'_>,
        origin: Option<FlavorOrigin>,
    ) -> Result<Registered, AppError> {
        let max = self.app.config.tenant_component_bytes(self.tenant.name());
        if bytes.len() > max {
            return Err(AppError::Load(flavorbox_sandbox::LoadError::TooLarge {
                size: bytes.len(),
                max,
            }));
        }
        let bytes = Arc::new(bytes);
        let sandbox = self.app.sandbox.clone();
        let to_check = bytes.clone();
        // Hashing and parsing an upload is heavy work too: it yields to calls.
        let sha256 =
            flavorbox_net::background::run("flavorbox-check", move || sandbox.check(&to_check))
                .await
                .ok_or_else(|| AppError::Internal("the upload check thread failed".into()))??;
        // Identical uploads of one tenant take turns: the first compiles and
        // stores, the others then find it stored and compile nothing (nor
        // take a compile slot while they wait).
        let _turn = self.app.registering.turn(self.tenant.name(), &sha256).await;
        if let Registration::Add { expected } = registration
            && let Some(same) = self
                .before_compile(&sha256, expected, bytes.as_slice())
                .await?
        {
            return Ok(Registered {
                info: same,
                revalidate: Vec::new(),
            });
        }
        // Compiled as the tenant's admitted, charged work, in its own space.
        let prepared = self.compile(bytes.clone()).await?;
        let flavor = prepared.flavor().clone();
        let name = flavor.name().to_string();
        if let Some(wanted) = registration.name()
            && wanted != name
        {
            return Err(AppError::NameMismatch {
                path: shown_name(wanted),
                name,
            });
        }
        if builtin::component(&name).is_some() {
            return Err(AppError::BuiltinName(name));
        }
        let record = FlavorRecord {
            name: name.clone(),
            sha256: flavor.sha256().to_string(),
            metadata_json: serde_json::to_string(flavor.metadata())
                .map_err(|e| AppError::Internal(e.to_string()))?,
            // The store stamps the time.
            registered_at: String::new(),
            origin,
        };
        // The blob is stored in the same transaction as the row; the same
        // bytes again (also from a concurrent identical upload) are no
        // change, and repair a damaged blob.
        let revalidate = match registration {
            Registration::Add { .. } => {
                match self
                    .store
                    .insert_flavor(&record, Some(bytes.as_slice()))
                    .await
                {
                    Ok(_) => Vec::new(),
                    Err(StoreError::AlreadyExists { .. }) => {
                        let sha256 = self
                            .store
                            .get_flavor(&name)
                            .await?
                            .map(|existing| existing.sha256)
                            .unwrap_or_default();
                        return Err(AppError::FlavorExists { name, sha256 });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Registration::Replace { previous, .. } => {
                self.store
                    .replace_flavor(&record, previous, Some(bytes.as_slice()))
                    .await?
            }
        };
        // Stored: only now is the compiled code worth keeping.
        self.app.sandbox.keep(prepared);
        let action = match registration {
            Registration::Add { .. } => "flavor.register",
            Registration::Replace { .. } => "flavor.replace",
        };
        self.record_change(action, None, Some((&record.name, &record.sha256)))
            .await?;
        if let Registration::Replace { previous, .. } = registration {
            self.release_content(previous).await?;
        }
        Ok(Registered {
            info: self.registered_info(&record).await?,
            revalidate,
        })
    }

    /// What goes when the tenant no longer has content `sha256` under a
    /// name: its own compiled code (unless it still has the content under
    /// another name), and the blob with every tenant's code once no tenant
    /// uses it.
    async fn release_content(&self, sha256: &str) -> Result<(), AppError> {
        if !self
            .store
            .list_flavors()
            .await?
            .iter()
            .any(|r| r.sha256 == sha256)
        {
            self.app.sandbox.forget_owned(&self.code_owner(), sha256);
        }
        self.app.collect_blobs(&[sha256.to_string()]).await
    }

    /// The flavor `record` registered, as stored now; as registered when a
    /// concurrent delete (another process, say) removed it since: the
    /// registration itself succeeded.
    async fn registered_info(&self, record: &FlavorRecord) -> Result<FlavorInfo, AppError> {
        match self.store.get_flavor(&record.name).await? {
            Some(stored) => info_from_record(stored),
            None => {
                let mut info = info_from_record(record.clone())?;
                if info.registered_at.as_deref() == Some("") {
                    info.registered_at = None;
                }
                Ok(info)
            }
        }
    }

    /// What answers a registration of content `sha256` without compiling
    /// it: a refusal (a built-in's name, a name held by other content, the
    /// content held under another name than `expected`, the flavor quota),
    /// or the stored flavor when the tenant already has this content under
    /// this name (its blob checked and repaired, as a registration would).
    /// `None`: the content is new to the tenant and must be compiled.
    ///
    /// The store decides again when it inserts; this only makes sure a
    /// request that will be refused is refused before any compile.
    async fn before_compile(
        &self,
        sha256: &str,
        expected: Option<&str>,
        bytes: &[u8],
    ) -> Result<Option<FlavorInfo>, AppError> {
        if let Some(name) = expected
            && builtin::component(name).is_some()
        {
            return Err(AppError::BuiltinName(name.to_string()));
        }
        let registered = self.store.list_flavors().await?;
        let by_name = expected.and_then(|name| registered.iter().find(|r| r.name == name));
        let by_content = registered.iter().find(|r| r.sha256 == sha256);
        let same = match (expected, by_name, by_content) {
            (Some(name), Some(held), _) if held.sha256 != sha256 => {
                return Err(AppError::FlavorExists {
                    name: name.to_string(),
                    sha256: held.sha256.clone(),
                });
            }
            (Some(_), Some(held), _) => held,
            // The content's name is the one it was registered under: its
            // metadata said so then, and `flavor` refuses to run it if it
            // ever says otherwise.
            (Some(name), None, Some(held)) => {
                return Err(AppError::NameMismatch {
                    path: shown_name(name),
                    name: held.name.clone(),
                });
            }
            (None, _, Some(held)) => held,
            (_, _, None) => {
                if let Some(max) = self.quota.max_flavors
                    && u64::try_from(registered.len()).unwrap_or(u64::MAX) >= max
                {
                    return Err(StoreError::QuotaExceeded {
                        kind: "flavor",
                        max,
                    }
                    .into());
                }
                return Ok(None);
            }
        };
        // No change but the blob, which is checked and rewritten if damaged.
        self.store.insert_flavor(same, Some(bytes)).await?;
        self.registered_info(same).await.map(Some)
    }

    /// This tenant's space of compiled code.
    fn code_owner(&self) -> CodeOwner {
        CodeOwner::tenant(self.tenant.name())
    }

    /// Compiles `bytes` for this tenant (or takes its own cached code) as
    /// admitted work: a compile slot, within the tenant's share, its CPU
    /// time charged to the tenant's budget. The slot and the charge go with
    /// the compile itself, so a client that hangs up mid-compile neither
    /// frees the slot early nor escapes the charge. The code is not kept
    /// until [`Sandbox::keep`](flavorbox_sandbox::Sandbox::keep).
    /// Refuses at once an upload the tenant has no compile room for (its
    /// CPU budget spent, or its compile and line taken): the server asks
    /// before reading the body. Admission decides again at the compile.
    pub fn check_compile_room(&self) -> Result<(), AppError> {
        self.app
            .admission
            .check_compile_room(self.tenant.name(), &self.quota)
    }

    pub(super) async fn compile(&self, bytes: Arc<Vec<u8>>) -> Result<Prepared, AppError> {
        let permit = self
            .app
            .admission
            .admit_compile(self.tenant.name(), &self.quota)
            .await?;
        let sandbox = self.app.sandbox.clone();
        let owner = self.code_owner();
        // One thread, at a lower priority than calls: the tenant's compile
        // engine never spreads a compile over others, so this clock sees
        // all of it, and a compile takes only the CPU calls leave.
        let prepared = flavorbox_net::background::run("flavorbox-compile", move || {
            let start = quota::thread_cpu_time();
            let prepared = sandbox.prepare(&owner, &bytes);
            permit.charge(quota::thread_cpu_time().saturating_sub(start));
            prepared
        })
        .await
        .ok_or_else(|| AppError::Internal("the compile thread failed".into()))??;
        Ok(prepared)
    }

    /// [`compile`](Self::compile), keeping the code at once: for content
    /// the caller stores whatever the flavor turns out to be.
    pub(super) async fn compile_flavor(
        &self,
        bytes: Arc<Vec<u8>>,
    ) -> Result<Arc<LoadedFlavor>, AppError> {
        let prepared = self.compile(bytes).await?;
        Ok(self.app.sandbox.keep(prepared))
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
                origin: None,
            })
            .collect();
        builtins.sort_by(|a, b| a.name.cmp(&b.name));
        for record in self.store.list_flavors().await? {
            builtins.push(info_from_record(record)?);
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
        let record = self
            .store
            .get_flavor(name)
            .await?
            .ok_or_else(|| AppError::UnknownFlavor(name.to_string()))?;
        match self.store.delete_flavor(name).await {
            Err(StoreError::NotFound { .. }) => Err(AppError::UnknownFlavor(name.to_string())),
            Err(e) => Err(e.into()),
            // The tenant's own code goes even while others still use the
            // blob (under another name, the tenant may still have it: then
            // it is compiled again when next loaded).
            Ok(()) => {
                self.record_change("flavor.delete", None, Some((name, &record.sha256)))
                    .await?;
                self.release_content(&record.sha256).await
            }
        }
    }

    /// Records a change of a flavor or component in the audit trail.
    pub(super) async fn record_change(
        &self,
        action: &str,
        component: Option<&str>,
        flavor: Option<(&str, &str)>,
    ) -> Result<(), AppError> {
        self.record(
            flavorbox_store::AuditEntry {
                action: action.to_string(),
                verdict: "changed".to_string(),
                component: component.map(str::to_string),
                flavor: flavor.map(|(name, _)| name.to_string()),
                flavor_sha256: flavor.map(|(_, sha256)| sha256.to_string()),
                ..Default::default()
            },
            false,
        )
        .await
    }

    /// Loads a flavor by name: built-in, or registered by this tenant.
    pub(super) async fn flavor(&self, name: &str) -> Result<Arc<LoadedFlavor>, AppError> {
        if let Some(found) = self.app.builtin(name).await? {
            return Ok(found);
        }
        let record = self
            .store
            .get_flavor_cached(name)
            .await?
            .ok_or_else(|| AppError::UnknownFlavor(name.to_string()))?;
        let owner = self.code_owner();
        let loaded = match self.app.sandbox.cached_owned(&owner, &record.sha256) {
            Some(loaded) => loaded,
            None => {
                // The tenant's cached code is loaded as a call; only a
                // miss (evicted, or a new wasmtime) is compiled, as a compile.
                let bytes = Arc::new(self.app.store.blob(&record.sha256).await?);
                let to_load = bytes.clone();
                let cached = self
                    .sandbox_call(move |sandbox| sandbox.load_cached(&owner, &to_load))
                    .await??;
                match cached {
                    Some(loaded) => loaded,
                    None => self.compile_flavor(bytes).await?,
                }
            }
        };
        // What runs must be what was registered (and shown by `describe`):
        // a flavor whose metadata changed between calls does not get to
        // widen its grants or its name.
        let registered = stored_metadata(&record)?;
        let now = loaded.metadata();
        if now.name != registered.name || now.capabilities != registered.capabilities {
            return Err(AppError::FlavorChanged(name.to_string()));
        }
        Ok(loaded)
    }

    /// The digest a component records for its flavor: the registered
    /// flavor's content hash, `None` for a built-in.
    pub(super) async fn registered_digest(
        &self,
        flavor: &LoadedFlavor,
    ) -> Result<Option<String>, AppError> {
        Ok(match self.app.builtin(flavor.name()).await? {
            Some(_) => None,
            None => Some(flavor.sha256().to_string()),
        })
    }
}

/// What a registration does with the flavor it checked and compiled.
#[derive(Debug, Clone, Copy)]
pub(super) enum Registration<'r> {
    /// Adds a flavor under the name its metadata gives, refused unless
    /// that is `expected` (when given); the content the tenant already has
    /// under that name is no change.
    Add {
        /// The name the caller says the component has.
        expected: Option<&'r str>,
    },
    /// Replaces the content `previous` of flavor `name` (the OCI tag it
    /// was registered from moved); the new content must name itself `name`.
    Replace {
        /// The flavor replaced.
        name: &'r str,
        /// The content it has now (else the store refuses: a conflict).
        previous: &'r str,
    },
}

impl Registration<'_> {
    /// The name the component must give itself, if one is required.
    fn name(&self) -> Option<&str> {
        match *self {
            Registration::Add { expected } => expected,
            Registration::Replace { name, .. } => Some(name),
        }
    }
}

/// What a registration stored.
pub(super) struct Registered {
    /// The flavor as registered.
    pub(super) info: FlavorInfo,
    /// The registry components validated by replaced content: to be
    /// validated again before they push (empty for `Add`).
    pub(super) revalidate: Vec<String>,
}

/// A name a caller gave, as an error shows it: cut to 200 characters and
/// cleaned of what a terminal would interpret.
fn shown_name(name: &str) -> String {
    flavorbox_sandbox::clean(&name.chars().take(200).collect::<String>())
}

/// What a stored flavor's metadata said when it was registered.
fn stored_metadata(record: &FlavorRecord) -> Result<FlavorMetadata, AppError> {
    serde_json::from_str(&record.metadata_json)
        .map_err(|e| AppError::corrupt_record("flavor", &record.name, format!("its metadata: {e}")))
}

pub(super) fn info_from_record(record: FlavorRecord) -> Result<FlavorInfo, AppError> {
    let metadata = stored_metadata(&record)?;
    Ok(FlavorInfo {
        name: record.name,
        builtin: false,
        sha256: record.sha256,
        registered_at: Some(record.registered_at),
        metadata,
        origin: record.origin.map(|o| super::FlavorOriginInfo {
            reference: o.reference,
            digest: o.digest,
            signed_by: o.key,
        }),
    })
}
