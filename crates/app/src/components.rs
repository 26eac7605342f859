//! Registry components: a flavor bound to a registry URI and a config the
//! host's base rules and then the flavor validated. Nothing is stored when
//! validation fails.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    AppError, ComponentInfo, RegisterComponent, SecretChange, TenantApp, UpdateComponent, blocking,
    check_name,
};
use crate::registry_config as config;
use flavorbox_grammar::RegistryUri;
use flavorbox_net::registry_api::egress;
use flavorbox_sandbox::flavor::LogLine;
use flavorbox_sandbox::{CallContext, CallError, CallErrorKind, LoadedFlavor};
use flavorbox_store::{ComponentRecord, StoreError};

impl TenantApp<'_> {
    /// A call context for this tenant; the lookup reaches the guest only
    /// where the sandbox's grants allow it.
    pub(super) fn call_context(
        &self,
        lookup: Option<Arc<dyn flavorbox_sandbox::RepositoryLookup>>,
    ) -> CallContext {
        CallContext {
            tenant: self.tenant.name().to_string(),
            limits: Some(self.limits.clone()),
            repository_lookup: lookup,
        }
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
        self.check_destination(&uri).await?;
        let text = Value::Object(config).to_string();
        let ctx = self.call_context(None);
        let loaded = flavor.clone();
        let outcome = self
            .sandbox_call(move |sandbox| sandbox.validate_config(&loaded, &ctx, &text))
            .await??;
        let normalised = outcome.value.map_err(invalid)?;
        let normalised =
            config::check_normalised(&uri, normalised).map_err(|reason| CallError {
                flavor: flavor.name().to_string(),
                function: "validate-config",
                kind: CallErrorKind::BadOutput(reason),
            })?;
        Ok((uri, normalised, outcome.logs))
    }

    /// On a server whose egress policy restricts addresses, refuses a
    /// registry the host (and the engine) may not reach under this tenant's
    /// policy (a path outside the allowlist entries that name its registry
    /// included), before the flavor runs or anything is stored.
    pub(super) async fn check_destination(&self, uri: &RegistryUri) -> Result<(), AppError> {
        if !self.app.config.restricts_egress() {
            return Ok(());
        }
        let api = self.registry_api.clone();
        let target = uri.clone();
        let timeout = self.app.config.egress().timeouts.connect;
        blocking(move || api.check_destination(&target, timeout))
            .await?
            .map_err(|e| AppError::EgressRefused {
                uri: uri.to_string(),
                reason: e.to_string(),
            })
    }

    /// The test the store runs, in the write's transaction, on each of the
    /// other tenants' component uris: whether it overlaps `uri` (one
    /// contains the other) on the same registry. Only for a registry this
    /// tenant reaches through an allowlist entry, where two tenants sharing
    /// a path could push into each other's namespace; a public registry's
    /// namespaces are its own to guard, and the operator may allow sharing
    /// (`allow_shared_registry_paths`).
    fn overlap_guard(&self, uri: &RegistryUri) -> Option<OverlapGuard> {
        let config = &self.app.config;
        if !config.restricts_egress()
            || config.shares_registry_paths()
            || !self.registry_api.allowlisted(uri)
        {
            return None;
        }
        let uri = uri.clone();
        Some(Box::new(move |other: &str| {
            // A stored uri passed this grammar when it was written; one that
            // no longer parses cannot be pushed to either (`check_target`).
            RegistryUri::parse(other).is_ok_and(|other| egress::overlap(&uri, &other))
        }))
    }

    /// Registers a registry component whose config the flavor validated;
    /// nothing is stored when validation fails.
    pub async fn register_component(
        &self,
        request: RegisterComponent,
    ) -> Result<ComponentInfo, AppError> {
        check_name("registry component", &request.name)?;
        let loaded = self.flavor(&request.flavor).await?;
        let mut config = request.config;
        config.insert("uri".into(), Value::String(request.uri));
        let (uri, config, logs) = self.validate(&loaded, config).await?;
        let record = ComponentRecord {
            name: request.name.clone(),
            flavor: request.flavor,
            uri: uri.to_string(),
            config_json: Value::Object(config).to_string(),
            secret: request.secret,
            flavor_sha256: self.registered_digest(&loaded).await?,
            created_at: String::new(),
            updated_at: String::new(),
            version: 0,
        };
        let guard = self.overlap_guard(&uri);
        self.store
            .insert_component_guarded(&record, guard.as_deref())
            .await?;
        self.record_change(
            "component.register",
            Some(&request.name),
            Some((&record.flavor, loaded.sha256())),
        )
        .await?;
        let mut info = self.describe_component(&request.name).await?;
        info.logs = logs;
        Ok(info)
    }

    /// Updates a component: a new uri, config keys (`null` removes a key),
    /// or secret; the merged config is validated again before it is stored.
    pub async fn update_component(
        &self,
        name: &str,
        update: UpdateComponent,
    ) -> Result<ComponentInfo, AppError> {
        let existing = self
            .store
            .get_component(name)
            .await?
            .ok_or_else(|| AppError::UnknownComponent(name.to_string()))?;
        let loaded = self.flavor(&existing.flavor).await?;
        let mut config = stored_config(&existing)?;
        for (key, value) in update.config {
            if value.is_null() {
                config.remove(&key);
            } else {
                config.insert(key, value);
            }
        }
        if let Some(uri) = update.uri {
            config.insert("uri".into(), Value::String(uri));
        }
        let (uri, config, logs) = self.validate(&loaded, config).await?;
        let record = ComponentRecord {
            uri: uri.to_string(),
            config_json: Value::Object(config).to_string(),
            secret: match update.secret {
                SecretChange::Keep => existing.secret.clone(),
                SecretChange::Set(name) => Some(name),
                SecretChange::Remove => None,
            },
            flavor_sha256: self.registered_digest(&loaded).await?,
            ..existing
        };
        let guard = self.overlap_guard(&uri);
        self.store
            .update_component_guarded(&record, guard.as_deref())
            .await?;
        self.record_change(
            "component.update",
            Some(name),
            Some((&record.flavor, loaded.sha256())),
        )
        .await?;
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
            Err(e) => Err(e.into()),
            Ok(()) => {
                self.record_change("component.delete", Some(name), None)
                    .await
            }
        }
    }
}

/// A test of another tenant's component uri; `true` refuses the write.
type OverlapGuard = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// A stored component's registry URI, which passed the grammar when it
/// was written; one that no longer does is an error naming the component.
pub(super) fn stored_uri(record: &ComponentRecord) -> Result<RegistryUri, AppError> {
    RegistryUri::parse(&record.uri).map_err(|e| {
        AppError::corrupt_record("registry component", &record.name, format!("its uri: {e}"))
    })
}

/// A stored component's config, a JSON object when it was written; one
/// that no longer is is an error naming the component, never read as empty.
fn stored_config(record: &ComponentRecord) -> Result<Map<String, Value>, AppError> {
    match serde_json::from_str::<Value>(&record.config_json) {
        Ok(Value::Object(config)) => Ok(config),
        Ok(_) => Err(AppError::corrupt_record(
            "registry component",
            &record.name,
            "its config is not a JSON object",
        )),
        Err(e) => Err(AppError::corrupt_record(
            "registry component",
            &record.name,
            format!("its config: {e}"),
        )),
    }
}

fn component_info(record: ComponentRecord) -> Result<ComponentInfo, AppError> {
    let is_local = stored_uri(&record)?.is_local();
    let config = Value::Object(stored_config(&record)?);
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
