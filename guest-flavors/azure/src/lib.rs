//! The `azure` flavor: Azure Container Registry, `<name>.azurecr.io` with an
//! optional repository path.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `azure` flavor.
pub struct Azure;

const SUFFIX: &str = ".azurecr.io";
const EXAMPLE: &str = "myregistry.azurecr.io";

impl Flavor for Azure {
    fn metadata() -> Metadata {
        Metadata {
            name: "azure".into(),
            display_name: "Azure Container Registry".into(),
            description: "Azure Container Registry: the login server of a registry \
                          (`<name>.azurecr.io`), optionally followed by a repository path."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/azure"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/azure.png".into(),
            config_schema: validate::config_schema(
                "Azure container registry",
                "`<name>.azurecr.io[/<path>...]`: the registry's login server, where the \
                 registry name is 5 to 50 lowercase letters and digits.",
                &[EXAMPLE, "myregistry.azurecr.io/team"],
                &[],
            ),
            capabilities: vec![],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        validate::validate_uri_config(config, EXAMPLE, check_uri)
    }

    fn prepare_image_push(host: &dyn Host, _config: &str, image: &ImageReference) -> PushDecision {
        validate::approve_push(host, "azure", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    match uri.domain.strip_suffix(SUFFIX) {
        Some(name) => {
            let valid = (5..=50).contains(&name.len())
                && name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !valid {
                issues.push(ConfigIssue::with_example(
                    "uri",
                    format!(
                        "`{name}` is not a valid Azure Container Registry name: use 5 to 50 \
                         letters and digits (lowercase in the URI), without `-`, `_` or `.`"
                    ),
                    EXAMPLE,
                ));
            }
        }
        None => issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{}` is not an Azure Container Registry URI: its domain must be \
                 `<name>.azurecr.io`, not `{}`",
                uri.uri, uri.domain
            ),
            EXAMPLE,
        )),
    }
    validate::check_path_components("uri", uri, "myregistry.azurecr.io/team", issues);
}

flavor_kit::export_flavor!(Azure);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        Azure::validate_config(&NoHost, &format!(r#"{{"uri":"{uri}"}}"#))
    }

    #[test]
    fn accepts_login_servers() {
        for uri in [
            "myregistry.azurecr.io",
            "abcde.azurecr.io/team",
            "reg123.azurecr.io/a/b",
        ] {
            assert_eq!(accepted(validate(uri))["uri"], uri);
        }
        let max = format!("{}.azurecr.io", "a".repeat(50));
        accepted(validate(&max));
        // The domain is case-insensitive: normalised to lowercase.
        assert_eq!(
            accepted(validate("MyRegistry.azurecr.io/"))["uri"],
            "myregistry.azurecr.io"
        );
    }

    #[test]
    fn rejects_bad_names() {
        let long = "a".repeat(51);
        for bad in ["abcd", "my-registry", "my_registry", long.as_str()] {
            assert_issue(
                &issues(validate(&format!("{bad}.azurecr.io"))),
                "uri",
                &[bad, EXAMPLE],
            );
        }
        assert_issue(
            &issues(validate("azurecr.io")),
            "uri",
            &["<name>.azurecr.io", EXAMPLE],
        );
    }

    #[test]
    fn rejects_other_registries_and_bad_paths() {
        let i = issues(Azure::validate_config(
            &NoHost,
            r#"{"uri":"myregistry.example.com/Team","tenant":"t"}"#,
        ));
        assert_issue(&i, "tenant", &["accepts: uri"]);
        assert_issue(&i, "uri", &["not an Azure Container Registry URI", EXAMPLE]);
        assert_issue(&i, "uri", &["`Team`", "myregistry.azurecr.io/team"]);
    }

    #[test]
    fn approves_every_push() {
        let d = Azure::prepare_image_push(
            &NoHost,
            r#"{"uri":"myregistry.azurecr.io"}"#,
            &image("myregistry.azurecr.io", "app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        assert_metadata(&Azure::metadata(), "azure");
    }
}
