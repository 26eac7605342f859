//! The built-in flavors' logic compiled natively: the benchmark's physical
//! limit (a plain function call), and what its process-per-call baseline
//! runs in a short-lived process.

use flavor_kit::{ConfigIssue, Flavor, NoHost};

/// A flavor's `validate-config`, natively.
pub type NativeValidate = fn(&str) -> Result<String, Vec<ConfigIssue>>;

fn validate<F: Flavor>(config: &str) -> Result<String, Vec<ConfigIssue>> {
    F::validate_config(&NoHost, config)
}

/// The one table of the built-in flavors' native types (the guest crates
/// can only be named in code); a test holds it to the embedded built-ins,
/// whose list is `guest-flavors/` itself.
macro_rules! natives {
    ($($name:literal => $flavor:ty),* $(,)?) => {
        /// Every built-in flavor's name, as its metadata gives it.
        pub const NAMES: &[&str] = &[$($name),*];

        /// The native `validate-config` of the built-in flavor named `name`.
        pub fn validate_fn(name: &str) -> Option<NativeValidate> {
            match name {
                $($name => Some(validate::<$flavor>),)*
                _ => None,
            }
        }

        #[cfg(test)]
        fn metadata_name(name: &str) -> Option<String> {
            match name {
                $($name => Some(<$flavor as Flavor>::metadata().name),)*
                _ => None,
            }
        }
    };
}

natives! {
    "aws" => flavor_aws::Aws,
    "azure" => flavor_azure::Azure,
    "default" => flavor_default::Default,
    "digitalocean" => flavor_digitalocean::DigitalOcean,
    "dockerhub" => flavor_dockerhub::DockerHub,
    "gcp" => flavor_gcp::Gcp,
    "github" => flavor_github::GitHub,
    "gitlab" => flavor_gitlab::GitLab,
    "policy" => flavor_policy::Policy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_its_native_logic_under_its_own_name() {
        assert_eq!(
            NAMES,
            flavorbox_builtin::names().collect::<Vec<_>>(),
            "the native table and guest-flavors/ list the same built-ins"
        );
        for name in NAMES {
            let validate = validate_fn(name).expect("native logic");
            assert_eq!(metadata_name(name).as_deref(), Some(*name));
            assert!(
                validate("{}").is_err(),
                "{name} accepted a config without uri"
            );
        }
    }
}
