//! The `default` flavor: any registry URI, e.g. `localhost:5000` or
//! `registry.example.com/team`.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `default` flavor.
pub struct Default;

const EXAMPLE: &str = "registry.example.com/team";

impl Flavor for Default {
    fn metadata() -> Metadata {
        Metadata {
            name: "default".into(),
            display_name: "Default".into(),
            description: "Any Docker/OCI container registry reachable by URI, such as a local \
                          registry (`localhost:5000`) or a self-hosted one \
                          (`registry.example.com/team`). Use a specific flavor where one exists \
                          for its stricter URI checks."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/default"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/docker.png".into(),
            config_schema: validate::config_schema(
                "Default container registry",
                "Registry URI: `host[:port]` with an optional repository path, no scheme or tag.",
                &["localhost:5000", EXAMPLE],
                &[],
            ),
            capabilities: vec![],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        validate::validate_uri_config(config, EXAMPLE, check_uri)
    }

    fn prepare_image_push(host: &dyn Host, _config: &str, image: &ImageReference) -> PushDecision {
        validate::approve_push(host, "default", image)
    }
}

/// Any registry: a port, when given, is a number, and the path is made of
/// valid image path components.
fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    if let Some(port) = uri.port()
        && (port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()) || port.len() > 5)
    {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!("the port `{port}` of `uri` `{}` is not a number", uri.uri),
            "localhost:5000",
        ));
    }
    validate::check_path_components("uri", uri, EXAMPLE, issues);
}

flavor_kit::export_flavor!(Default);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, image, issues};

    fn validate(config: &str) -> Result<String, Vec<ConfigIssue>> {
        Default::validate_config(&NoHost, config)
    }

    #[test]
    fn accepts_any_registry() {
        for uri in [
            "localhost:5000",
            "registry.example.com/team",
            "registry.example.com/team/sub",
            "docker.io/me",
            "[::1]:5000",
        ] {
            let c = accepted(validate(&format!(r#"{{"uri":"{uri}"}}"#)));
            assert_eq!(c["uri"], uri);
        }
    }

    #[test]
    fn normalises_raw_input() {
        let c = accepted(validate(r#"{"uri":"index.docker.io/me/"}"#));
        assert_eq!(c["uri"], "docker.io/me");
    }

    #[test]
    fn rejects_bad_uris_and_unknown_fields() {
        let i = issues(validate(r#"{"uri":"localhost:50a0/Team","user":"x"}"#));
        assert_issue(&i, "user", &["accepts: uri"]);
        assert_issue(&i, "uri", &["port", "localhost:5000"]);
        assert_issue(&i, "uri", &["`Team`", EXAMPLE]);
        assert_eq!(i.len(), 3);
        assert_issue(&issues(validate("{}")), "uri", &["required"]);
        assert_issue(
            &issues(validate(r#"{"uri":"https://x.io"}"#)),
            "uri",
            &["scheme", EXAMPLE],
        );
        assert_issue(&issues(validate(r#"{"uri":5}"#)), "uri", &["string"]);
    }

    #[test]
    fn approves_every_push() {
        let d = Default::prepare_image_push(
            &NoHost,
            r#"{"uri":"localhost:5000"}"#,
            &image("localhost:5000", "app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        let m = Default::metadata();
        flavor_kit::testing::assert_metadata(&m, "default");
        assert!(m.capabilities.is_empty());
    }
}
