//! The `dockerhub` flavor: a Docker Hub account or organization,
//! `docker.io/<account>` (or `registry-1.docker.io/<account>`).

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `dockerhub` flavor.
pub struct DockerHub;

/// Docker Hub's canonical reference domain: `DefaultNamespace = "docker.io"`,
/// `IndexName = "docker.io"` (docker/cli constants, mirrored in
/// https://pkg.go.dev/github.com/docker/compose/v5/internal/registry). The
/// host rewrites the legacy index host `index.docker.io` to it before a
/// flavor runs (`flavor_kit::validate::normalize_uri`), and ZenML treats the
/// two as the same prefix
/// (https://github.com/zenml-io/zenml/blob/main/src/zenml/container_registries/base_container_registry.py).
const DOCKER_IO: &str = "docker.io";
/// Docker Hub's registry API host: "DefaultRegistryHost … references using
/// the docker.io domain name, which is used as canonical reference for images
/// on Docker Hub, but does not match the domain-name of Docker Hub's
/// registry" (same source). Accepted as written: a flavor may not rewrite the
/// domain of `uri`.
const REGISTRY_1: &str = "registry-1.docker.io";

const EXAMPLE: &str = "docker.io/my-account";
const REPOSITORY_NAME_EXAMPLE: &str = "my-app";

impl Flavor for DockerHub {
    fn metadata() -> Metadata {
        Metadata {
            name: "dockerhub".into(),
            display_name: "Docker Hub".into(),
            description: "Docker Hub, the public registry of Docker: images are pushed to the \
                          repositories of one Docker Hub account or organization \
                          (`docker.io/<account>`, or `registry-1.docker.io/<account>`)."
                .into(),
            docs_url:
                "https://docs.zenml.io/stacks/stack-components/container-registries/dockerhub"
                    .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/docker.png".into(),
            config_schema: validate::config_schema(
                "Docker Hub container registry",
                "`docker.io/<account>`: the Docker Hub user or organization that owns the \
                 repositories, in lowercase (`index.docker.io/<account>` is written as \
                 `docker.io`; the registry host `registry-1.docker.io/<account>` is also \
                 accepted). A bare `<account>` is read as a registry domain: write \
                 `docker.io/<account>`.",
                &[EXAMPLE, "docker.io/zenml", "registry-1.docker.io/zenml"],
                &[],
            ),
            capabilities: vec![],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        let mut cfg = validate::ConfigCheck::parse(config, validate::BASE_FIELDS)?;
        let uri = cfg.uri(EXAMPLE);
        if let Some(uri) = &uri {
            check_uri(uri, &mut cfg.issues);
        }
        // Docker Hub repositories are `<namespace>/<name>`: with the account
        // in `uri`, the default repository is one name, without `/`.
        // https://docs.docker.com/docker-hub/repos/create/
        if let Some(repository) = cfg.default_repository(uri.as_ref())
            && repository.contains('/')
        {
            cfg.issue(
                "default_repository",
                format!(
                    "`default_repository` `{repository}` has a `/`: a Docker Hub repository is \
                     `<account>/<name>`, and the account is already in `uri`"
                ),
                REPOSITORY_NAME_EXAMPLE,
            );
        }
        cfg.finish()
    }

    fn prepare_image_push(host: &dyn Host, _config: &str, image: &ImageReference) -> PushDecision {
        validate::approve_push(host, "dockerhub", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    let host = uri.host();
    if host == DOCKER_IO || host == REGISTRY_1 {
        if let Some(port) = uri.port() {
            issues.push(ConfigIssue::with_example(
                "uri",
                format!(
                    "`uri` `{}` must not include a port (`:{port}`): Docker Hub is reached as \
                     `{host}`",
                    uri.uri
                ),
                EXAMPLE,
            ));
        }
    } else if is_bare_name(uri) {
        // ZenML's docs allow a bare `<ACCOUNT_NAME>`
        // (https://docs.zenml.io/stacks/stack-components/container-registries/dockerhub),
        // but the host reads the first segment of `uri` as the registry
        // domain, so it cannot mean Docker Hub here.
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` names no Docker Hub registry: its first segment `{}` is read as \
                 the registry's domain, not as a Docker Hub account; write \
                 `docker.io/<account>` (`docker.io/{}`)",
                uri.uri, uri.domain, uri.domain
            ),
            EXAMPLE,
        ));
        return;
    } else {
        // The whole host is compared: `docker.io.evil.com` and
        // `evil-docker.io` are refused.
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` is not a Docker Hub URI: its domain must be `{DOCKER_IO}`, not `{}` \
                 (`{REGISTRY_1}` is also accepted){}",
                uri.uri,
                uri.domain,
                web_host_hint(host)
            ),
            EXAMPLE,
        ));
    }

    // Docker Hub repositories are `<namespace>/<repository>`, and ZenML's
    // `uri` is a prefix that images are appended to (`<uri>/<repository>`),
    // so the URI is exactly the namespace. Without one, only official images
    // could be pushed ("For Docker Hub this would mean only official images
    // can be pushed",
    // https://github.com/zenml-io/zenml/blob/main/src/zenml/container_registries/base_container_registry.py).
    let registry = if host == REGISTRY_1 {
        REGISTRY_1
    } else {
        DOCKER_IO
    };
    if !validate::expect_segments(
        "uri",
        uri,
        1..=1,
        &format!("exactly one Docker Hub account or organization after `{registry}`"),
        EXAMPLE,
        issues,
    ) {
        return;
    }
    let account = &uri.segments[0];
    if account.bytes().any(|c| c.is_ascii_uppercase()) {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "the Docker Hub account `{account}` must be lowercase in an image path \
                 (`{registry}/{}`)",
                account.to_ascii_lowercase()
            ),
            EXAMPLE,
        ));
    } else if !is_account(account) {
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

/// A first segment with no `.`, `:` or brackets that is not `localhost`: a
/// bare name such as `zenml`, which the host took for a registry domain.
fn is_bare_name(uri: &RegistryUri) -> bool {
    let domain = uri.domain.as_str();
    domain != "localhost" && !domain.contains(['.', ':', '['])
}

/// A hint for Docker's web hosts, which people paste instead of `docker.io`.
fn web_host_hint(host: &str) -> String {
    match host {
        "hub.docker.com" | "www.hub.docker.com" | "docker.com" | "www.docker.com" => format!(
            "; `{host}` is Docker Hub's website, not its registry: write `docker.io/<account>`"
        ),
        // An alias of the same backend (docker/hub-feedback#2113), not a
        // documented registry URI.
        "registry.hub.docker.com" => "; write Docker Hub as `docker.io/<account>`".to_string(),
        _ => String::new(),
    }
}

/// A Docker Hub namespace: `[a-z0-9]+` runs joined by single `-` or `_`,
/// 2 to 255 characters.
///
/// Docker documents only the rule for personal Docker IDs: "Your Docker ID
/// must be between 4 and 30 characters long, and can only contain numbers
/// and lowercase letters" (https://docs.docker.com/accounts/create-account/).
/// The rules for organizations and older namespaces are not documented, and
/// real namespaces break the Docker ID rule: Docker's own `ai` namespace has
/// 2 characters (`docker model pull ai/smollm2`,
/// https://docs.docker.com/reference/cli/docker/model/pull), and third-party
/// tools that push to Docker Hub allow `-` and `_` in namespaces ("Allowed:
/// lowercase letters, digits, '-', and '_'",
/// https://ngrok.com/docs/errors/err_ngrok_ship_publish_target_repository_prefix_illegal_character).
/// Refusing them would refuse real accounts, so this keeps the Docker-grammar
/// superset the flavor always accepted (lowercase, per
/// https://github.com/distribution/reference/blob/main/reference.go), with
/// single separators only.
fn is_account(s: &str) -> bool {
    (2..=validate::MAX_PATH_LEN).contains(&s.len())
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

    /// URIs accepted as they are.
    const ACCEPTED: &[&str] = &[
        "docker.io/zenml",
        "docker.io/my-account",
        "docker.io/myaccount1234",
        "docker.io/a_b9",
        "docker.io/a_b-c",
        // Shorter than a Docker ID, like Docker's own `ai` namespace.
        "docker.io/ai",
        "docker.io/abc",
        "docker.io/0123",
        "registry-1.docker.io/zenml",
        "registry-1.docker.io/my-account",
    ];

    /// URIs as typed, and the URI they are normalised to.
    const NORMALISED: &[(&str, &str)] = &[
        ("index.docker.io/me-too/", "docker.io/me-too"),
        ("Index.Docker.IO/zenml", "docker.io/zenml"),
        ("Docker.IO/me-too", "docker.io/me-too"),
        ("Registry-1.Docker.io/zenml/", "registry-1.docker.io/zenml"),
    ];

    /// URIs refused, with what the message on `uri` must contain (besides the example).
    const REFUSED: &[(&str, &[&str])] = &[
        // Look-alike and other hosts: the whole host is compared.
        (
            "docker.io.evil.com/zenml",
            &["its domain must be `docker.io`, not `docker.io.evil.com`"],
        ),
        ("evil-docker.io/zenml", &["not `evil-docker.io`"]),
        ("evildocker.io/zenml", &["not `evildocker.io`"]),
        (
            "registry-1.docker.io.evil.com/zenml",
            &["not `registry-1.docker.io.evil.com`"],
        ),
        (
            "registry-2.docker.io/zenml",
            &["not `registry-2.docker.io`"],
        ),
        (
            "docker.com/zenml",
            &["not `docker.com`", "Docker Hub's website"],
        ),
        (
            "ghcr.io/me",
            &["its domain must be `docker.io`, not `ghcr.io`"],
        ),
        // The web UI and other Docker hosts, pointing at `docker.io`.
        (
            "hub.docker.com/zenml",
            &[
                "not `hub.docker.com`",
                "Docker Hub's website, not its registry: write `docker.io/<account>`",
            ],
        ),
        (
            "registry.hub.docker.com/zenml",
            &["not `registry.hub.docker.com`", "`docker.io/<account>`"],
        ),
        // A bare account, as ZenML's docs allow: the host reads it as a domain.
        (
            "zenml",
            &[
                "first segment `zenml` is read as the registry's domain",
                "write `docker.io/<account>` (`docker.io/zenml`)",
            ],
        ),
        (
            "my-account/app",
            &["write `docker.io/<account>` (`docker.io/my-account`)"],
        ),
        // Ports.
        ("docker.io:443/zenml", &["must not include a port (`:443`)"]),
        (
            "registry-1.docker.io:443/zenml",
            &["must not include a port"],
        ),
        ("localhost:5000/zenml", &["not `localhost:5000`"]),
        // Upper case in the path.
        (
            "docker.io/ZenML",
            &["account `ZenML` must be lowercase in an image path (`docker.io/zenml`)"],
        ),
        (
            "registry-1.docker.io/My-Account",
            &["must be lowercase", "(`registry-1.docker.io/my-account`)"],
        ),
        // Bad namespaces.
        ("docker.io/x", &["`x` is not a valid Docker Hub account"]),
        (
            "docker.io/-me",
            &["`-me` is not a valid Docker Hub account"],
        ),
        ("docker.io/me-", &["`me-` is not a valid"]),
        (
            "docker.io/a--b",
            &["`a--b` is not a valid Docker Hub account"],
        ),
        ("docker.io/me__too", &["`me__too` is not a valid"]),
        ("docker.io/me.too", &["`me.too` is not a valid"]),
        ("docker.io/_me", &["`_me` is not a valid"]),
        // Wrong segment counts.
        (
            "docker.io",
            &[
                "exactly one Docker Hub account or organization after `docker.io`",
                "has no path",
            ],
        ),
        (
            "registry-1.docker.io",
            &["exactly one Docker Hub account or organization after `registry-1.docker.io`"],
        ),
        ("docker.io/team/app", &["has 2 path segments (`team/app`)"]),
        ("docker.io//zenml", &["has 2 path segments"]),
    ];

    #[test]
    fn accepts_docker_io_and_registry_1() {
        for uri in ACCEPTED {
            assert_eq!(accepted(validate(uri))["uri"], *uri, "{uri}");
        }
        for (input, uri) in NORMALISED {
            assert_eq!(accepted(validate(input))["uri"], *uri, "{input}");
        }
        accepted(validate(&format!("docker.io/{}", "a".repeat(255))));
    }

    #[test]
    fn refuses_look_alikes_and_malformed_uris() {
        for (uri, needles) in REFUSED {
            let issues = issues(validate(uri));
            let mut needles = needles.to_vec();
            needles.push("An example of a valid URI is: `docker.io/my-account`");
            assert_issue(&issues, "uri", &needles);
        }
        assert_issue(
            &issues(validate(&format!("docker.io/{}", "a".repeat(256)))),
            "uri",
            &["is not a valid Docker Hub account"],
        );
    }

    #[test]
    fn collects_every_issue() {
        let i = issues(DockerHub::validate_config(
            &NoHost,
            r#"{"uri":"ghcr.io/Me","password":"x"}"#,
        ));
        assert_eq!(i.len(), 3, "{i:#?}");
        assert_issue(&i, "password", &["accepts: uri"]);
        assert_issue(&i, "uri", &["`docker.io`", EXAMPLE]);
        assert_issue(&i, "uri", &["`Me` must be lowercase", EXAMPLE]);
        // A bare name is one issue, not also a segment-count one.
        assert_eq!(issues(validate("zenml")).len(), 1);
    }

    #[test]
    fn checks_default_repository() {
        let c = accepted(DockerHub::validate_config(
            &NoHost,
            r#"{"uri":"docker.io/zenml","default_repository":"my-app"}"#,
        ));
        assert_eq!(c["default_repository"], "my-app");
        let i = issues(DockerHub::validate_config(
            &NoHost,
            r#"{"uri":"docker.io/zenml","default_repository":"Team/App"}"#,
        ));
        assert_eq!(i.len(), 1, "{i:#?}");
        assert_issue(
            &i,
            "default_repository",
            &["`Team/App` is not a valid repository name"],
        );
        // One repository name: the account is already in `uri`.
        let i = issues(DockerHub::validate_config(
            &NoHost,
            r#"{"uri":"docker.io/zenml","default_repository":"team/app"}"#,
        ));
        assert_issue(
            &i,
            "default_repository",
            &["has a `/`", REPOSITORY_NAME_EXAMPLE],
        );
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
        let m = DockerHub::metadata();
        assert_metadata(&m, "dockerhub");
        let schema: flavor_kit::serde_json::Value =
            flavor_kit::serde_json::from_str(&m.config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            accepted(validate(example.as_str().unwrap()));
        }
    }
}
