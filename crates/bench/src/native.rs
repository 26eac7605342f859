//! The built-in flavors' logic compiled natively: the benchmark's physical
//! limit (a plain function call), and what its process-per-call baseline
//! runs in a short-lived process.

use flavor_kit::{ConfigIssue, Flavor, NoHost};

/// A flavor's `validate-config`, natively.
pub type NativeValidate = fn(&str) -> Result<String, Vec<ConfigIssue>>;

fn validate<F: Flavor>(config: &str) -> Result<String, Vec<ConfigIssue>> {
    F::validate_config(&NoHost, config)
}

/// The native `validate-config` of the built-in flavor named `name`.
pub fn validate_fn(name: &str) -> Option<NativeValidate> {
    Some(match name {
        "aws" => validate::<flavor_aws::Aws>,
        "azure" => validate::<flavor_azure::Azure>,
        "default" => validate::<flavor_default::Default>,
        "digitalocean" => validate::<flavor_digitalocean::DigitalOcean>,
        "dockerhub" => validate::<flavor_dockerhub::DockerHub>,
        "gcp" => validate::<flavor_gcp::Gcp>,
        "github" => validate::<flavor_github::GitHub>,
        "gitlab" => validate::<flavor_gitlab::GitLab>,
        _ => return None,
    })
}

/// Every built-in flavor's name, as its metadata gives it.
pub const NAMES: &[&str] = &[
    "aws",
    "azure",
    "default",
    "digitalocean",
    "dockerhub",
    "gcp",
    "github",
    "gitlab",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_its_native_logic_under_its_own_name() {
        for name in NAMES {
            let validate = validate_fn(name).expect("native logic");
            let metadata_name = match *name {
                "aws" => flavor_aws::Aws::metadata().name,
                "azure" => flavor_azure::Azure::metadata().name,
                "default" => flavor_default::Default::metadata().name,
                "digitalocean" => flavor_digitalocean::DigitalOcean::metadata().name,
                "dockerhub" => flavor_dockerhub::DockerHub::metadata().name,
                "gcp" => flavor_gcp::Gcp::metadata().name,
                "github" => flavor_github::GitHub::metadata().name,
                "gitlab" => flavor_gitlab::GitLab::metadata().name,
                _ => unreachable!(),
            };
            assert_eq!(&metadata_name, name);
            assert!(
                validate("{}").is_err(),
                "{name} accepted a config without uri"
            );
        }
        assert_eq!(NAMES.len(), flavorbox_builtin::components().count());
    }
}
