//! The `repository-exists` import as the host answers it for one registry
//! component: its registry, its credentials, and only repositories inside
//! its URI. The guest learns yes, no or a coarse reason, never the
//! registry's or the network's own error text.

use std::time::Duration;

use crate::push::Credentials;
use crate::reference::RegistryUri;
use crate::registry_api::{RegistryApi, RegistryApiError};
use crate::sandbox::{LookupError, RepositoryLookup};

/// Answers `repository-exists` for one component: its registry, its
/// credentials, and only repositories inside its URI.
pub(super) struct ComponentLookup {
    pub(super) api: RegistryApi,
    pub(super) uri: RegistryUri,
    pub(super) credentials: Option<Credentials>,
}

impl RepositoryLookup for ComponentLookup {
    fn repository_exists(&self, repository: &str, timeout: Duration) -> Result<bool, LookupError> {
        let inside = match self.uri.path() {
            None => true,
            Some(prefix) => {
                repository == prefix
                    || repository
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        };
        if !inside {
            return Err(LookupError::Failed(format!(
                "repository `{repository}` is outside this component's registry `{}`",
                self.uri
            )));
        }
        match self.api.repository_exists(
            self.uri.domain(),
            repository,
            self.credentials.as_ref(),
            timeout,
        ) {
            Ok(exists) => Ok(exists),
            Err(RegistryApiError::TimedOut { .. }) => Err(LookupError::TimedOut),
            Err(e) => Err(LookupError::Failed(e.to_string())),
        }
    }
}
