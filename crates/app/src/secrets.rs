//! Secrets: registry credentials a tenant stores for its components. Values
//! go in and are used by the host for pushes and lookups; they never come
//! back out.

use super::{AppError, CreateSecret, SecretInfo, TenantApp, check_name};
use flavorbox_net::credentials::Credentials;
use flavorbox_store::StoreError;
use secrecy::ExposeSecret as _;

impl TenantApp<'_> {
    /// Stores a secret (username and password) for registry credentials.
    pub async fn create_secret(&self, secret: CreateSecret) -> Result<(), AppError> {
        check_name("secret", &secret.name)?;
        let sealed;
        let stored = match self.app.config.secrets_key() {
            Some(key) => {
                sealed = key.seal(
                    self.tenant.name(),
                    &secret.name,
                    secret.password.expose_secret(),
                )?;
                sealed.as_str()
            }
            None => secret.password.expose_secret(),
        };
        Ok(self
            .store
            .create_secret(&secret.name, &secret.username, stored)
            .await?)
    }

    /// Secret names and usernames; never values.
    pub async fn list_secrets(&self) -> Result<Vec<SecretInfo>, AppError> {
        Ok(self
            .store
            .list_secrets()
            .await?
            .into_iter()
            .map(|s| SecretInfo {
                name: s.name,
                username: s.username,
                created_at: s.created_at,
            })
            .collect())
    }

    /// Deletes a secret; refused while a component uses it.
    pub async fn delete_secret(&self, name: &str) -> Result<(), AppError> {
        check_name("secret", name)?;
        Ok(self.store.delete_secret(name).await?)
    }

    /// The credentials a component's secret holds.
    pub(super) async fn credentials(
        &self,
        secret: Option<&str>,
    ) -> Result<Option<Credentials>, AppError> {
        let Some(name) = secret else { return Ok(None) };
        let record = self
            .store
            .get_secret(name)
            .await?
            .ok_or_else(|| StoreError::SecretNotFound(name.to_string()))?;
        let password = match self.app.config.secrets_key() {
            Some(key) => key
                .open(self.tenant.name(), name, record.password.expose_secret())?
                .into(),
            None => record.password,
        };
        Ok(Some(Credentials {
            username: record.username,
            password,
        }))
    }
}
