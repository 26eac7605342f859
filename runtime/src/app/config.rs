//! The operator's configuration, built and checked once: where the state
//! lives, the limits of every flavor call, the grants, the component size
//! cap. A contradiction is refused with a message when the configuration is
//! built, never clamped silently later.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::AppError;
use crate::registry_api::EgressPolicy;
use crate::sandbox::{Grants, Limits, SandboxConfig};

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct AppConfig {
    home: PathBuf,
    limits: Limits,
    grants: Grants,
    max_component_bytes: usize,
    egress: EgressPolicy,
}

impl AppConfig {
    /// A builder for state in `home`, with every default.
    pub fn builder(home: impl Into<PathBuf>) -> AppConfigBuilder {
        let sandbox = SandboxConfig::default();
        AppConfigBuilder {
            home: home.into(),
            limits: sandbox.default_limits,
            grants: sandbox.grants,
            max_component_bytes: sandbox.max_component_bytes,
            egress: EgressPolicy::allow_all(),
        }
    }

    /// The state directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The limits of every flavor call.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What flavors that ask may use.
    pub fn grants(&self) -> Grants {
        self.grants
    }

    /// The largest flavor component accepted.
    pub fn max_component_bytes(&self) -> usize {
        self.max_component_bytes
    }

    /// Where the host's own registry requests may go.
    pub fn egress(&self) -> &EgressPolicy {
        &self.egress
    }
}

/// Collects settings; [`AppConfigBuilder::build`] checks them together.
#[derive(Debug, Clone)]
pub struct AppConfigBuilder {
    home: PathBuf,
    limits: Limits,
    grants: Grants,
    max_component_bytes: usize,
    egress: EgressPolicy,
}

impl AppConfigBuilder {
    /// Fuel per call.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = fuel;
        self
    }

    /// Wall-clock deadline per call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// Memory per call, in MiB.
    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.limits.memory_bytes =
            usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        self
    }

    /// Every per-call limit at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether flavors that ask for `repository-exists` get it.
    pub fn repository_lookup(mut self, allowed: bool) -> Self {
        self.grants.repository_exists = allowed;
        self
    }

    /// The largest flavor component accepted, in MiB.
    pub fn max_component_mib(mut self, mib: u64) -> Self {
        self.max_component_bytes =
            usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        self
    }

    /// Where the host's own registry requests may go (default: anywhere,
    /// as a local CLI expects; a shared server restricts it).
    pub fn egress(mut self, egress: EgressPolicy) -> Self {
        self.egress = egress;
        self
    }

    /// Checks the settings together and against the sandbox's ceilings.
    pub fn build(self) -> Result<AppConfig, AppError> {
        let sandbox = SandboxConfig {
            default_limits: self.limits.clone(),
            grants: self.grants,
            max_component_bytes: self.max_component_bytes,
            ..SandboxConfig::default()
        };
        sandbox.check().map_err(AppError::Config)?;
        Ok(AppConfig {
            home: self.home,
            limits: self.limits,
            grants: self.grants,
            max_component_bytes: self.max_component_bytes,
            egress: self.egress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictions_are_refused_up_front() {
        assert!(AppConfig::builder("/tmp/x").build().is_ok());
        for (builder, needle) in [
            (AppConfig::builder("/tmp/x").memory_mib(4096), "maximum"),
            (AppConfig::builder("/tmp/x").fuel(0), "fuel"),
            (
                AppConfig::builder("/tmp/x").timeout(Duration::ZERO),
                "timeout",
            ),
            (
                AppConfig::builder("/tmp/x").max_component_mib(0),
                "size cap",
            ),
        ] {
            let err = builder.build().expect_err("refused").to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
