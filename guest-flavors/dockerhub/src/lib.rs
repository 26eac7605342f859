//! The `dockerhub` flavor: a Docker Hub account, `docker.io/<account>`.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `dockerhub` flavor.
pub struct DockerHub;

const EXAMPLE: &str = "docker.io/my-account";

impl Flavor for DockerHub {
    fn metadata() -> Metadata {
        Metadata {
            name: "dockerhub".into(),
            display_name: "Docker Hub".into(),
            description: "Docker Hub, the public registry of Docker: images are pushed to the \
                          repositories of one Docker Hub account or organization \
                          (`docker.io/<account>`)."
                .into(),
            docs_url:
                "https://docs.zenml.io/stacks/stack-components/container-registries/dockerhub"
                    .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/docker.png".into(),
            config_schema: validate::config_schema(
                "Docker Hub container registry",
                "`docker.io/<account>`: the Docker Hub user or organization that owns the \
                 repositories (`index.docker.io/<account>` is accepted and written as `docker.io`).",
                &[EXAMPLE, "docker.io/zenml"],
                &[],
            ),
            capabilities: vec![],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        validate::validate_uri_config(config, EXAMPLE, check_uri)
    }

    fn prepare_image_push(host: &dyn Host, _config: &str, image: &ImageReference) -> PushDecision {
        validate::approve_push(host, "dockerhub", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    validate::expect_domain("uri", uri, "docker.io", "Docker Hub", EXAMPLE, issues);
    if !validate::expect_segments(
        "uri",
        uri,
        1..=1,
        "exactly one Docker Hub account or organization after `docker.io`",
        EXAMPLE,
        issues,
    ) {
        return;
    }
    let account = &uri.segments[0];
    if !is_account(account) {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{account}` is not a valid Docker Hub account: use 2 to 255 lowercase letters \
                 and digits, optionally separated by single `-` or `_`"
            ),
            EXAMPLE,
        ));
    }
}

/// A Docker Hub account or organization: `[a-z0-9]+` runs joined by single
/// `-` or `_`, 2 to 255 characters.
fn is_account(s: &str) -> bool {
    (2..=255).contains(&s.len())
        && s.split(['-', '_']).all(|run| {
            !run.is_empty()
                && run
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

flavor_kit::export_flavor!(DockerHub);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        DockerHub::validate_config(&NoHost, &format!(r#"{{"uri":"{uri}"}}"#))
    }

    #[test]
    fn accepts_accounts() {
        for uri in [
            "docker.io/my-account",
            "docker.io/zenml",
            "docker.io/a_b9",
            "docker.io/ab",
        ] {
            assert_eq!(accepted(validate(uri))["uri"], uri);
        }
    }

    #[test]
    fn normalises_index_docker_io_and_trailing_slash() {
        assert_eq!(
            accepted(validate("index.docker.io/me-too/"))["uri"],
            "docker.io/me-too"
        );
        assert_eq!(
            accepted(validate("Docker.IO/me-too"))["uri"],
            "docker.io/me-too"
        );
    }

    #[test]
    fn rejects_missing_or_extra_segments() {
        assert_issue(
            &issues(validate("docker.io")),
            "uri",
            &["has no path", EXAMPLE],
        );
        assert_issue(
            &issues(validate("docker.io/me/app")),
            "uri",
            &["exactly one", EXAMPLE],
        );
    }

    #[test]
    fn rejects_bad_accounts() {
        for bad in [
            "My-Account",
            "a",
            "-me",
            "me-",
            "me--too",
            "me.too",
            "me__too",
        ] {
            assert_issue(
                &issues(validate(&format!("docker.io/{bad}"))),
                "uri",
                &[bad, EXAMPLE],
            );
        }
    }

    #[test]
    fn rejects_other_registries_and_collects_all_issues() {
        let i = issues(DockerHub::validate_config(
            &NoHost,
            r#"{"uri":"ghcr.io/Me","password":"x"}"#,
        ));
        assert_issue(&i, "password", &["accepts: uri"]);
        assert_issue(&i, "uri", &["`docker.io`", EXAMPLE]);
        assert_issue(&i, "uri", &["`Me`", EXAMPLE]);
    }

    #[test]
    fn approves_every_push() {
        let d = DockerHub::prepare_image_push(
            &NoHost,
            r#"{"uri":"docker.io/me"}"#,
            &image("docker.io", "me/app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        assert_metadata(&DockerHub::metadata(), "dockerhub");
    }
}
