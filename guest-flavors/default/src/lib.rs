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
                          (`registry.example.com/team`), including self-managed GitLab and \
                          GitHub Enterprise Server registries. Use a specific flavor where one \
                          exists for its stricter URI checks."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/default"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/docker.png".into(),
            config_schema: validate::config_schema(
                "Default container registry",
                "Registry URI: `host[:port]` with an optional path of lowercase path components \
                 (letters and digits, optionally separated by `.`, `_`, `__` or `-`), no scheme, \
                 tag or digest.",
                &[
                    "localhost:5000",
                    EXAMPLE,
                    "registry.example.com:5050/group/project",
                    "[::1]:5000",
                ],
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

/// Any registry: the rules are the kit's
/// ([`validate::check_any_registry`], shared with the `policy` flavor).
fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    validate::check_any_registry(uri, EXAMPLE, issues);
}

flavor_kit::export_flavor!(Default);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(config: &str) -> Result<String, Vec<ConfigIssue>> {
        Default::validate_config(&NoHost, config)
    }

    fn validate_uri(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        validate(&format!(r#"{{"uri":"{uri}"}}"#))
    }

    /// URIs accepted as they are.
    const ACCEPTED: &[&str] = &[
        "localhost:5000",
        "localhost",
        "127.0.0.1:5000/ml",
        "[::1]:5000",
        "[::1]",
        "registry.example.com",
        "registry.example.com/team",
        "registry.example.com/team/sub",
        "registry.example.com:5050/group/sub-group/project",
        "registry.example.com:65535/a.b/c_d/e__f/g---h",
        // Hosts with a flavor of their own are still plain registries here.
        "docker.io/me",
        "ghcr.io/me/nested/path",
        "containers.github.example.com/my-org",
    ];

    /// URIs as typed, and the URI they are normalised to.
    const NORMALISED: &[(&str, &str)] = &[
        ("index.docker.io/me/", "docker.io/me"),
        ("Registry.Example.COM/team/", "registry.example.com/team"),
        ("  localhost:5000  ", "localhost:5000"),
    ];

    /// URIs refused, with what the message on `uri` must contain.
    const REFUSED: &[(&str, &[&str])] = &[
        // Ports.
        (
            "localhost:50a0",
            &["the port `50a0`", "is not a number", "`localhost:5000`"],
        ),
        ("localhost:", &["the port ``", "is not a number"]),
        (
            "localhost:65536",
            &["the port `65536`", "is not a TCP port (1 to 65535)"],
        ),
        ("localhost:0", &["the port `0`", "is not a TCP port"]),
        (
            "localhost:999999",
            &["the port `999999`", "is not a TCP port"],
        ),
        // Upper case in the path.
        (
            "registry.example.com/Team",
            &["path segment `Team`", "`registry.example.com/team`"],
        ),
        ("localhost:5000/team/App", &["path segment `App`"]),
        // Bad path components.
        ("registry.example.com/-team", &["path segment `-team`"]),
        ("registry.example.com/team_", &["path segment `team_`"]),
        ("registry.example.com/te..am", &["path segment `te..am`"]),
        ("registry.example.com/te___am", &["path segment `te___am`"]),
        (
            "registry.example.com/team//app",
            &["empty path segment (`//`)"],
        ),
        (
            "registry.example.com/team:tag",
            &["path segment `team:tag`"],
        ),
        // Scheme and whitespace.
        (
            "https://registry.example.com",
            &["must not include a scheme (`https://`)"],
        ),
        (
            "registry.example.com/my team",
            &["must not contain whitespace"],
        ),
    ];

    #[test]
    fn accepts_any_registry() {
        for uri in ACCEPTED {
            assert_eq!(accepted(validate_uri(uri))["uri"], *uri, "{uri}");
        }
        for (input, uri) in NORMALISED {
            assert_eq!(accepted(validate_uri(input))["uri"], *uri, "{input}");
        }
    }

    #[test]
    fn refuses_bad_ports_and_paths() {
        for (uri, needles) in REFUSED {
            let issues = issues(validate_uri(uri));
            let mut needles = needles.to_vec();
            needles.push("An example of a valid URI is: `");
            assert_issue(&issues, "uri", &needles);
        }
        let long = format!("registry.example.com/{}", "a".repeat(256));
        assert_issue(&issues(validate_uri(&long)), "uri", &["longer than 255"]);
    }

    #[test]
    fn collects_every_issue() {
        let i = issues(validate(r#"{"uri":"localhost:50a0/Team","user":"x"}"#));
        assert_issue(&i, "user", &["accepts: uri, default_repository"]);
        assert_issue(&i, "uri", &["port", "localhost:5000"]);
        assert_issue(&i, "uri", &["`Team`", EXAMPLE]);
        assert_eq!(i.len(), 3);
        assert_issue(&issues(validate("{}")), "uri", &["required"]);
        assert_issue(&issues(validate(r#"{"uri":5}"#)), "uri", &["string"]);
    }

    #[test]
    fn checks_default_repository() {
        let c = accepted(validate(
            r#"{"uri":"localhost:5000","default_repository":"team/app"}"#,
        ));
        assert_eq!(c["default_repository"], "team/app");
        let i = issues(validate(
            r#"{"uri":"localhost:5000","default_repository":"Team/App"}"#,
        ));
        assert_eq!(i.len(), 1, "{i:#?}");
        assert_issue(
            &i,
            "default_repository",
            &["`Team/App` is not a valid repository name"],
        );
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
        assert_metadata(&m, "default");
        assert!(m.capabilities.is_empty());
        let schema: flavor_kit::serde_json::Value =
            flavor_kit::serde_json::from_str(&m.config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            accepted(validate_uri(example.as_str().unwrap()));
        }
    }
}
