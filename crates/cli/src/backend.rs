//! What the CLI needs done, behind one trait: the local backend runs the
//! application layer in this process on the local state; a remote backend
//! (`flavorbox login`) sends the same requests to a server. The commands
//! are written once, against the trait.

use flavorbox_app::SigningKey;
use flavorbox_app::audit::{AuditPage, AuditQuery};
use flavorbox_app::{
    ComponentInfo, CreateSecret, FlavorInfo, FlavorUpdate, PublishReport, PushProgress, PushReport,
    PushRequest, RegisterComponent, RegisterFromOci, SecretInfo, TenantApp, UpdateComponent,
};

/// The operations the CLI's commands use.
pub(crate) trait Backend {
    /// Registers a flavor component.
    async fn register_flavor(&self, bytes: Vec<u8>) -> anyhow::Result<FlavorInfo>;
    /// Registers a flavor pulled from an OCI registry.
    async fn register_flavor_from_oci(
        &self,
        request: RegisterFromOci,
    ) -> anyhow::Result<FlavorInfo>;
    /// Publishes a registered flavor to an OCI registry.
    async fn publish_flavor(
        &self,
        name: &str,
        target: &str,
        secret: Option<String>,
        insecure: Vec<String>,
    ) -> anyhow::Result<PublishReport>;
    /// Signs an artifact's manifest digest; returns (digest, signature tag).
    async fn sign_flavor(
        &self,
        source: &str,
        key: &SigningKey,
        secret: Option<String>,
        insecure: Vec<String>,
    ) -> anyhow::Result<(String, String)>;
    /// Follows the tag a flavor was registered from.
    async fn update_flavor(
        &self,
        name: &str,
        secret: Option<String>,
        insecure: Vec<String>,
        verify_keys: Vec<String>,
    ) -> anyhow::Result<FlavorUpdate>;
    /// Built-in and registered flavors.
    async fn list_flavors(&self) -> anyhow::Result<Vec<FlavorInfo>>;
    /// One flavor.
    async fn describe_flavor(&self, name: &str) -> anyhow::Result<FlavorInfo>;
    /// Deletes a registered flavor.
    async fn delete_flavor(&self, name: &str) -> anyhow::Result<()>;
    /// Registers a registry component.
    async fn register_component(&self, request: RegisterComponent)
    -> anyhow::Result<ComponentInfo>;
    /// Updates a registry component.
    async fn update_component(
        &self,
        name: &str,
        update: UpdateComponent,
    ) -> anyhow::Result<ComponentInfo>;
    /// Every registry component.
    async fn list_components(&self) -> anyhow::Result<Vec<ComponentInfo>>;
    /// One registry component.
    async fn describe_component(&self, name: &str) -> anyhow::Result<ComponentInfo>;
    /// Deletes a registry component.
    async fn delete_component(&self, name: &str) -> anyhow::Result<()>;
    /// Stores a secret.
    async fn create_secret(&self, secret: CreateSecret) -> anyhow::Result<()>;
    /// Secret names and usernames.
    async fn list_secrets(&self) -> anyhow::Result<Vec<SecretInfo>>;
    /// Deletes a secret.
    async fn delete_secret(&self, name: &str) -> anyhow::Result<()>;
    /// Pushes, reporting progress as it happens.
    async fn push(
        &self,
        request: PushRequest,
        on_progress: &mut (dyn FnMut(PushProgress) + Send),
    ) -> anyhow::Result<PushReport>;
    /// A page of the tenant's audit trail, newest first.
    async fn audit(&self, query: AuditQuery) -> anyhow::Result<AuditPage>;
}

/// The application layer in this process, on the local state, as the local tenant.
pub(crate) struct LocalBackend<'a> {
    app: TenantApp<'a>,
}

impl<'a> LocalBackend<'a> {
    /// A backend over one tenant's operations.
    pub(crate) fn new(app: TenantApp<'a>) -> Self {
        LocalBackend { app }
    }
}

impl Backend for LocalBackend<'_> {
    async fn register_flavor(&self, bytes: Vec<u8>) -> anyhow::Result<FlavorInfo> {
        Ok(self.app.register_flavor(bytes).await?)
    }
    async fn register_flavor_from_oci(
        &self,
        request: RegisterFromOci,
    ) -> anyhow::Result<FlavorInfo> {
        Ok(self.app.register_flavor_from_oci(request).await?)
    }
    async fn publish_flavor(
        &self,
        name: &str,
        target: &str,
        secret: Option<String>,
        insecure: Vec<String>,
    ) -> anyhow::Result<PublishReport> {
        Ok(self
            .app
            .publish_flavor(name, target, secret.as_deref(), insecure)
            .await?)
    }
    async fn sign_flavor(
        &self,
        source: &str,
        key: &SigningKey,
        secret: Option<String>,
        insecure: Vec<String>,
    ) -> anyhow::Result<(String, String)> {
        Ok(self
            .app
            .sign_flavor_artifact(source, key, secret.as_deref(), insecure)
            .await?)
    }
    async fn update_flavor(
        &self,
        name: &str,
        secret: Option<String>,
        insecure: Vec<String>,
        verify_keys: Vec<String>,
    ) -> anyhow::Result<FlavorUpdate> {
        Ok(self
            .app
            .update_flavor(name, secret.as_deref(), insecure, &verify_keys)
            .await?)
    }
    async fn list_flavors(&self) -> anyhow::Result<Vec<FlavorInfo>> {
        Ok(self.app.list_flavors().await?)
    }
    async fn describe_flavor(&self, name: &str) -> anyhow::Result<FlavorInfo> {
        Ok(self.app.describe_flavor(name).await?)
    }
    async fn delete_flavor(&self, name: &str) -> anyhow::Result<()> {
        Ok(self.app.delete_flavor(name).await?)
    }
    async fn register_component(
        &self,
        request: RegisterComponent,
    ) -> anyhow::Result<ComponentInfo> {
        Ok(self.app.register_component(request).await?)
    }
    async fn update_component(
        &self,
        name: &str,
        update: UpdateComponent,
    ) -> anyhow::Result<ComponentInfo> {
        Ok(self.app.update_component(name, update).await?)
    }
    async fn list_components(&self) -> anyhow::Result<Vec<ComponentInfo>> {
        Ok(self.app.list_components().await?)
    }
    async fn describe_component(&self, name: &str) -> anyhow::Result<ComponentInfo> {
        Ok(self.app.describe_component(name).await?)
    }
    async fn delete_component(&self, name: &str) -> anyhow::Result<()> {
        Ok(self.app.delete_component(name).await?)
    }
    async fn create_secret(&self, secret: CreateSecret) -> anyhow::Result<()> {
        Ok(self.app.create_secret(secret).await?)
    }
    async fn list_secrets(&self) -> anyhow::Result<Vec<SecretInfo>> {
        Ok(self.app.list_secrets().await?)
    }
    async fn delete_secret(&self, name: &str) -> anyhow::Result<()> {
        Ok(self.app.delete_secret(name).await?)
    }
    async fn push(
        &self,
        request: PushRequest,
        on_progress: &mut (dyn FnMut(PushProgress) + Send),
    ) -> anyhow::Result<PushReport> {
        Ok(self.app.push_with(request, on_progress).await?)
    }
    async fn audit(&self, query: AuditQuery) -> anyhow::Result<AuditPage> {
        Ok(self.app.audit(&query).await?)
    }
}
