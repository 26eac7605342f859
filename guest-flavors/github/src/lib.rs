//! The `github` flavor: GitHub Container Registry, `ghcr.io/<user-or-org>`.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `github` flavor.
pub struct GitHub;

const EXAMPLE: &str = "ghcr.io/my-organization";

impl Flavor for GitHub {
    fn metadata() -> Metadata {
        Metadata {
            name: "github".into(),
            display_name: "GitHub Container Registry".into(),
            description: "GitHub Container Registry (ghcr.io): images are pushed to the packages \
                          of one GitHub user or organization (`ghcr.io/<user-or-org>`)."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/github"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/github.png".into(),
            config_schema: validate::config_schema(
                "GitHub container registry",
                "`ghcr.io/<user-or-org>`: the GitHub user or organization login, in lowercase.",
                &[EXAMPLE, "ghcr.io/zenml"],
                &[],
            ),
            capabilities: vec![],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        validate::validate_uri_config(config, EXAMPLE, check_uri)
    }

    fn prepare_image_push(host: &dyn Host, _config: &str, image: &ImageReference) -> PushDecision {
        validate::approve_push(host, "github", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    validate::expect_domain(
        "uri",
        uri,
        "ghcr.io",
        "GitHub Container Registry",
        EXAMPLE,
        issues,
    );
    if !validate::expect_segments(
        "uri",
        uri,
        1..=1,
        "exactly one GitHub user or organization after `ghcr.io`",
        EXAMPLE,
        issues,
    ) {
        return;
    }
    let login = &uri.segments[0];
    if let Err(problem) = check_login(login) {
        issues.push(ConfigIssue::with_example("uri", problem, EXAMPLE));
    }
}

/// A GitHub login as it appears in an image path: 1 to 39 lowercase
/// letters, digits and single hyphens, not starting or ending with a hyphen.
fn check_login(login: &str) -> Result<(), String> {
    let lower = login.to_ascii_lowercase();
    if lower != login {
        return Err(format!(
            "the GitHub login `{login}` must be lowercase in an image path (`ghcr.io/{lower}`)"
        ));
    }
    let valid = (1..=39).contains(&login.len())
        && login
            .split('-')
            .all(|run| !run.is_empty() && run.bytes().all(|c| c.is_ascii_alphanumeric()));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{login}` is not a valid GitHub user or organization: use 1 to 39 letters and \
             digits, optionally separated by single hyphens, not starting or ending with one"
        ))
    }
}

flavor_kit::export_flavor!(GitHub);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        GitHub::validate_config(&NoHost, &format!(r#"{{"uri":"{uri}"}}"#))
    }

    #[test]
    fn accepts_logins() {
        for uri in [
            "ghcr.io/zenml",
            "ghcr.io/my-organization",
            "ghcr.io/a",
            "ghcr.io/a1-b2-c3",
        ] {
            assert_eq!(accepted(validate(uri))["uri"], uri);
        }
        let max = format!("ghcr.io/{}", "a".repeat(39));
        accepted(validate(&max));
        assert_eq!(accepted(validate("GHCR.io/zenml/"))["uri"], "ghcr.io/zenml");
    }

    #[test]
    fn rejects_uppercase_with_the_lowercase_form() {
        assert_issue(
            &issues(validate("ghcr.io/MyOrg")),
            "uri",
            &["lowercase", "ghcr.io/myorg", EXAMPLE],
        );
    }

    #[test]
    fn rejects_bad_logins() {
        let long = "a".repeat(40);
        for bad in ["-org", "org-", "my--org", "my_org", "my.org", long.as_str()] {
            assert_issue(
                &issues(validate(&format!("ghcr.io/{bad}"))),
                "uri",
                &[bad, EXAMPLE],
            );
        }
    }

    #[test]
    fn rejects_wrong_shape() {
        assert_issue(
            &issues(validate("ghcr.io")),
            "uri",
            &["exactly one", EXAMPLE],
        );
        assert_issue(
            &issues(validate("ghcr.io/org/app")),
            "uri",
            &["exactly one", EXAMPLE],
        );
        assert_issue(
            &issues(validate("docker.io/org")),
            "uri",
            &["`ghcr.io`", EXAMPLE],
        );
        let i = issues(GitHub::validate_config(
            &NoHost,
            r#"{"uri":"ghcr.io/o","token":"t"}"#,
        ));
        assert_issue(&i, "token", &["accepts: uri"]);
    }

    #[test]
    fn approves_every_push() {
        let d = GitHub::prepare_image_push(
            &NoHost,
            r#"{"uri":"ghcr.io/zenml"}"#,
            &image("ghcr.io", "zenml/app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        assert_metadata(&GitHub::metadata(), "github");
    }
}
