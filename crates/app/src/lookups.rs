//! The `repository-exists` import as the host answers it for one registry
//! component: its registry, its credentials, and only repositories inside
//! its URI. The guest learns yes, no or a coarse reason, never the
//! registry's or the network's own error text.

use std::time::Duration;

use flavorbox_grammar::RegistryUri;
use flavorbox_net::credentials::Credentials;
use flavorbox_net::registry_api::{RegistryApi, RegistryApiError};
use flavorbox_sandbox::{LookupError, RepositoryLookup};

/// Answers `repository-exists` for one component: its registry, its
/// credentials, and only repositories inside its URI.
pub(super) struct ComponentLookup {
    pub(super) api: RegistryApi,
    pub(super) uri: RegistryUri,
    pub(super) credentials: Option<Credentials>,
}

impl RepositoryLookup for ComponentLookup {
    fn repository_exists(&self, repository: &str, timeout: Duration) -> Result<bool, LookupError> {
        let path = self
            .uri
            .repository(repository)
            .map_err(|e| LookupError::Failed(e.to_string()))?;
        if !self.uri.contains_repository(&path) {
            return Err(LookupError::Failed(format!(
                "repository `{repository}` is outside this component's registry `{}`",
                self.uri
            )));
        }
        self.api
            .repository_exists(&self.uri, &path, self.credentials.as_ref(), timeout)
            .map_err(|e| lookup_error(&self.uri, e))
    }
}

/// What a guest learns of a failed lookup: timed out, refused credentials,
/// or unavailable; the detail (network errors included) goes to the log.
fn lookup_error(uri: &RegistryUri, error: RegistryApiError) -> LookupError {
    if let RegistryApiError::TimedOut { .. } = error {
        return LookupError::TimedOut;
    }
    tracing::warn!(registry = %uri, "repository-exists lookup failed: {error}");
    LookupError::Failed(match error {
        RegistryApiError::Auth { .. } => {
            "registry unavailable: authentication failed with this component's credentials".into()
        }
        _ => "registry unavailable".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_learns_timeout_auth_or_unavailable_never_the_network_error() {
        let uri = RegistryUri::parse("registry.io/team").expect("valid");
        let domain = "registry.io".to_string();
        let secret_detail = "dial tcp 10.1.2.3:443: connection refused";
        let cases = [
            RegistryApiError::Unreachable {
                domain: domain.clone(),
                message: secret_detail.into(),
            },
            RegistryApiError::Refused {
                domain: domain.clone(),
                reason: format!("{secret_detail} (private)"),
            },
            RegistryApiError::Protocol {
                domain: domain.clone(),
                message: secret_detail.into(),
            },
            RegistryApiError::Auth {
                domain: domain.clone(),
                message: secret_detail.into(),
            },
        ];
        for error in cases {
            let LookupError::Failed(text) = lookup_error(&uri, error) else {
                panic!("only a timeout ends the call");
            };
            assert!(text.starts_with("registry unavailable"), "{text}");
            assert!(
                !text.contains("10.1.2.3") && !text.contains("dial"),
                "{text}"
            );
        }
        let timed_out = RegistryApiError::TimedOut {
            domain,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(lookup_error(&uri, timed_out), LookupError::TimedOut);
    }
}
