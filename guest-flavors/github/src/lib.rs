//! The `github` flavor: GitHub's container registries.
//!
//! - GitHub Container Registry, `ghcr.io/<user-or-org>`;
//! - the same registry for GHE.com (data residency) enterprises,
//!   `containers.<subdomain>.ghe.com/<user-or-org>`;
//! - the legacy Docker registry, `docker.pkg.github.com/<owner>/<repository>`.
//!
//! GitHub Enterprise Server (`containers.<your-hostname>`) has an arbitrary
//! host, so it belongs to the `default` flavor.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `github` flavor.
pub struct GitHub;

/// GitHub Container Registry on GitHub.com: "If you access GitHub at
/// GitHub.com, you will publish packages to ghcr.io"
/// (https://docs.github.com/en/packages/working-with-a-github-packages-registry/working-with-the-container-registry).
const GHCR: &str = "ghcr.io";
/// The legacy Docker registry, `docker.pkg.github.com/OWNER/REPOSITORY/IMAGE_NAME`
/// (https://docs.github.com/en/packages/working-with-a-github-packages-registry/working-with-the-docker-registry);
/// superseded by ghcr.io, but "Any scripts or GitHub Actions workflows that use
/// the namespace for the Docker registry, docker.pkg.github.com, will continue
/// to work after migration to the Container registry at ghcr.io"
/// (https://docs.github.com/en/packages/working-with-a-github-packages-registry/migrating-to-the-container-registry-from-the-docker-registry).
const LEGACY: &str = "docker.pkg.github.com";

const EXAMPLE: &str = "ghcr.io/my-organization";
const GHE_EXAMPLE: &str = "containers.octocorp.ghe.com/my-organization";
const LEGACY_EXAMPLE: &str = "docker.pkg.github.com/my-organization/my-repository";

/// The longest GitHub login: "a 39-character limit"
/// (https://docs.github.com/en/enterprise-cloud@latest/admin/managing-iam/iam-configuration-reference/username-considerations-for-external-authentication).
const MAX_LOGIN_LEN: usize = 39;

impl Flavor for GitHub {
    fn metadata() -> Metadata {
        Metadata {
            name: "github".into(),
            display_name: "GitHub Container Registry".into(),
            description: "GitHub Container Registry: images are pushed to the packages of one \
                          GitHub user or organization (`ghcr.io/<user-or-org>`, or \
                          `containers.<subdomain>.ghe.com/<user-or-org>` for a GHE.com \
                          enterprise). The legacy Docker registry \
                          (`docker.pkg.github.com/<owner>/<repository>`) is also accepted. For \
                          GitHub Enterprise Server, use the `default` flavor."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/github"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/github.png".into(),
            config_schema: validate::config_schema(
                "GitHub container registry",
                "`ghcr.io/<user-or-org>` (GitHub.com), `containers.<subdomain>.ghe.com/<user-or-org>` \
                 (GHE.com) or the legacy `docker.pkg.github.com/<owner>/<repository>`. The user \
                 or organization login is written in lowercase: 1 to 39 letters and digits, \
                 optionally separated by single hyphens.",
                &[EXAMPLE, "ghcr.io/zenml", GHE_EXAMPLE, LEGACY_EXAMPLE],
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

/// Which of GitHub's registries a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registry {
    /// `ghcr.io`.
    Ghcr,
    /// `containers.<subdomain>.ghe.com`.
    GheCom,
    /// `docker.pkg.github.com`.
    Legacy,
}

impl Registry {
    /// The registry a (lowercased, port-less) host is; the whole host is
    /// compared, so `ghcr.io.evil.com` or `evilghcr.io` are none of them.
    fn of(host: &str) -> Option<Registry> {
        match host {
            GHCR => Some(Registry::Ghcr),
            LEGACY => Some(Registry::Legacy),
            // GHE.com: "If you access GitHub at another domain, such as
            // octocorp.ghe.com, replace "ghcr.io" with
            // https://containers.SUBDOMAIN.ghe.com, where SUBDOMAIN is your
            // enterprise's unique subdomain."
            // (https://docs.github.com/en/enterprise-cloud@latest/packages/working-with-a-github-packages-registry/working-with-the-container-registry)
            // SUBDOMAIN is exactly one DNS label.
            _ => host
                .strip_prefix("containers.")
                .and_then(|rest| rest.strip_suffix(".ghe.com"))
                .filter(|subdomain| validate::is_dns_label(subdomain))
                .map(|_| Registry::GheCom),
        }
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    let host = uri.host();
    let registry = match Registry::of(host) {
        Some(registry) => {
            if let Some(port) = uri.port() {
                issues.push(ConfigIssue::with_example(
                    "uri",
                    format!(
                        "`uri` `{}` must not include a port (`:{port}`): GitHub's registry is \
                         reached as `{host}`",
                        uri.uri
                    ),
                    EXAMPLE,
                ));
            }
            registry
        }
        None => {
            issues.push(ConfigIssue::with_example(
                "uri",
                format!(
                    "`uri` `{}` is not a GitHub Container Registry URI: its domain must be \
                     `{GHCR}`, not `{}` (or `containers.<subdomain>.ghe.com` for a GHE.com \
                     enterprise, or the legacy `{LEGACY}`){}",
                    uri.uri,
                    uri.domain,
                    web_host_hint(host)
                ),
                EXAMPLE,
            ));
            // Check the path as if it were on ghcr.io, so every issue shows
            // at once.
            Registry::Ghcr
        }
    };

    // ZenML's `uri` is a prefix: images go to `<uri>/<repository>`. GitHub
    // documents images as `ghcr.io/NAMESPACE/IMAGE_NAME` only (same page as
    // above), so the URI is exactly the namespace; a nested prefix such as
    // `ghcr.io/<org>/team` is not documented and stays refused, as before.
    // The legacy registry documents `docker.pkg.github.com/OWNER/REPOSITORY/IMAGE_NAME`,
    // so its URI is exactly the owner and the repository.
    let example = match registry {
        Registry::Ghcr => EXAMPLE.to_string(),
        Registry::GheCom => format!("{host}/my-organization"),
        Registry::Legacy => LEGACY_EXAMPLE.to_string(),
    };
    let host_name = match registry {
        Registry::Ghcr => GHCR,
        Registry::GheCom => host,
        Registry::Legacy => LEGACY,
    };
    let (count, shape) = match registry {
        Registry::Ghcr | Registry::GheCom => (
            1,
            format!("exactly one GitHub user or organization after `{host_name}`"),
        ),
        Registry::Legacy => (
            2,
            format!("exactly an owner and a repository after `{LEGACY}`"),
        ),
    };
    if !validate::expect_segments("uri", uri, count..=count, &shape, &example, issues) {
        return;
    }

    let lowercase = format!("{host_name}/{}", uri.path().to_ascii_lowercase());
    if let Err(problem) = check_login(&uri.segments[0], &lowercase) {
        issues.push(ConfigIssue::with_example("uri", problem, &example));
    }
    if registry == Registry::Legacy
        && let Err(problem) = check_repository(&uri.segments[1], &lowercase)
    {
        issues.push(ConfigIssue::with_example("uri", problem, &example));
    }
}

/// A hint for the web hosts people paste instead of the registry's.
fn web_host_hint(host: &str) -> String {
    if host == "github.com" || host == "www.github.com" {
        return format!("; `{host}` is GitHub's website, its container registry is `{GHCR}`");
    }
    match host.strip_suffix(".ghe.com") {
        Some(subdomain) if subdomain != "containers" && validate::is_dns_label(subdomain) => {
            format!(
                "; `{host}` is the GHE.com website, its container registry is \
             `containers.{host}`"
            )
        }
        _ => String::new(),
    }
}

/// A GitHub login as it appears in an image path. GitHub's username rules:
/// "alphanumeric and `-` only", cannot start or end with `-`, no consecutive
/// `-`, "a 39-character limit"
/// (https://docs.github.com/en/enterprise-cloud@latest/admin/managing-iam/iam-configuration-reference/username-considerations-for-external-authentication).
/// Logins are case-insensitive but image names must be lowercase (the Docker
/// reference grammar, https://github.com/distribution/reference/blob/main/reference.go),
/// so only lowercase is accepted. `_` (managed-user shortcodes) never appears:
/// managed users "can publish to an organization's namespace" only
/// (https://docs.github.com/en/enterprise-cloud@latest/packages/working-with-a-github-packages-registry/working-with-the-container-registry).
fn check_login(login: &str, lowercase_uri: &str) -> Result<(), String> {
    if login.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "the GitHub login `{login}` must be lowercase in an image path (`{lowercase_uri}`)"
        ));
    }
    let valid = (1..=MAX_LOGIN_LEN).contains(&login.len())
        && login.split('-').all(|run| {
            !run.is_empty()
                && run
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{login}` is not a valid GitHub user or organization: use 1 to {MAX_LOGIN_LEN} \
             lowercase letters and digits, optionally separated by single hyphens, not starting \
             or ending with one"
        ))
    }
}

/// The repository of a legacy `docker.pkg.github.com/<owner>/<repository>`
/// URI: a lowercase path component of the Docker reference grammar
/// (https://github.com/distribution/reference/blob/main/reference.go).
fn check_repository(repository: &str, lowercase_uri: &str) -> Result<(), String> {
    if repository.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "the repository `{repository}` must be lowercase in an image path \
             (`{lowercase_uri}`)"
        ));
    }
    if validate::is_path_component(repository) {
        Ok(())
    } else {
        Err(format!(
            "`{repository}` is not a valid repository in an image path: use {}",
            validate::PATH_COMPONENT_RULE
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

    /// URIs accepted as they are.
    const ACCEPTED: &[&str] = &[
        "ghcr.io/zenml",
        "ghcr.io/my-organization",
        "ghcr.io/a",
        "ghcr.io/0",
        "ghcr.io/a1-b2-c3",
        "containers.octocorp.ghe.com/my-organization",
        "containers.a1-b2.ghe.com/zenml",
        "docker.pkg.github.com/zenml-io/zenml",
        "docker.pkg.github.com/my-org/my.repo_name",
        "docker.pkg.github.com/a/b--c",
    ];

    /// URIs as typed, and the URI they are normalised to.
    const NORMALISED: &[(&str, &str)] = &[
        ("GHCR.io/zenml/", "ghcr.io/zenml"),
        (
            "Containers.OctoCorp.GHE.com/zenml",
            "containers.octocorp.ghe.com/zenml",
        ),
        (
            "Docker.Pkg.GitHub.com/zenml-io/zenml",
            "docker.pkg.github.com/zenml-io/zenml",
        ),
    ];

    /// URIs refused, with what the message on `uri` must contain (besides the example).
    const REFUSED: &[(&str, &[&str])] = &[
        // Look-alike and other hosts: the whole host is compared.
        (
            "ghcr.io.evil.com/zenml",
            &["its domain must be `ghcr.io`, not `ghcr.io.evil.com`"],
        ),
        (
            "ghcr.evil.io/zenml",
            &["its domain must be `ghcr.io`, not `ghcr.evil.io`"],
        ),
        ("evilghcr.io/zenml", &["not `evilghcr.io`"]),
        ("ghcr.com/zenml", &["not `ghcr.com`"]),
        (
            "containers.octocorp.ghe.com.evil.com/zenml",
            &["not `containers.octocorp.ghe.com.evil.com`"],
        ),
        ("containers.ghe.com/zenml", &["not `containers.ghe.com`"]),
        (
            "containers.a.b.ghe.com/zenml",
            &["not `containers.a.b.ghe.com`"],
        ),
        (
            "containers.-bad.ghe.com/zenml",
            &["not `containers.-bad.ghe.com`"],
        ),
        (
            "registry.octocorp.ghe.com/zenml",
            &["not `registry.octocorp.ghe.com`"],
        ),
        (
            "docker.pkg.github.com.evil.com/o/r",
            &["not `docker.pkg.github.com.evil.com`"],
        ),
        ("pkg.github.com/o/r", &["not `pkg.github.com`"]),
        (
            "docker.io/me",
            &["its domain must be `ghcr.io`, not `docker.io`"],
        ),
        // Web hosts, with a pointer to the registry.
        (
            "github.com/zenml",
            &["`github.com` is GitHub's website", "`ghcr.io`"],
        ),
        (
            "octocorp.ghe.com/zenml",
            &["GHE.com website", "`containers.octocorp.ghe.com`"],
        ),
        // Ports.
        ("ghcr.io:443/zenml", &["must not include a port (`:443`)"]),
        (
            "containers.octocorp.ghe.com:443/zenml",
            &["must not include a port"],
        ),
        // Upper case in the path.
        (
            "ghcr.io/ZenML",
            &["must be lowercase in an image path (`ghcr.io/zenml`)"],
        ),
        (
            "containers.octocorp.ghe.com/MyOrg",
            &["must be lowercase", "`containers.octocorp.ghe.com/myorg`"],
        ),
        (
            "docker.pkg.github.com/zenml-io/ZenML",
            &[
                "repository `ZenML` must be lowercase",
                "`docker.pkg.github.com/zenml-io/zenml`",
            ],
        ),
        // Bad logins and repositories.
        (
            "ghcr.io/-org",
            &["`-org` is not a valid GitHub user or organization"],
        ),
        ("ghcr.io/org-", &["`org-` is not a valid GitHub user"]),
        ("ghcr.io/my--org", &["`my--org` is not a valid GitHub user"]),
        ("ghcr.io/my_org", &["`my_org` is not a valid GitHub user"]),
        ("ghcr.io/my.org", &["`my.org` is not a valid GitHub user"]),
        (
            "containers.octocorp.ghe.com/-org",
            &["`-org` is not a valid GitHub user"],
        ),
        (
            "docker.pkg.github.com/my_org/repo",
            &["`my_org` is not a valid GitHub user"],
        ),
        (
            "docker.pkg.github.com/o/-repo",
            &["`-repo` is not a valid repository"],
        ),
        (
            "docker.pkg.github.com/o/re..po",
            &["`re..po` is not a valid repository"],
        ),
        // Wrong segment counts.
        (
            "ghcr.io",
            &[
                "exactly one GitHub user or organization after `ghcr.io`",
                "has no path",
            ],
        ),
        (
            "ghcr.io/org/app",
            &["exactly one GitHub user", "has 2 path segments (`org/app`)"],
        ),
        (
            "ghcr.io//org",
            &["exactly one GitHub user", "has 2 path segments"],
        ),
        (
            "containers.octocorp.ghe.com",
            &["exactly one GitHub user or organization after `containers.octocorp.ghe.com`"],
        ),
        (
            "docker.pkg.github.com/zenml-io",
            &["exactly an owner and a repository", "has 1 path segment"],
        ),
        (
            "docker.pkg.github.com/o/r/image",
            &["exactly an owner and a repository", "has 3 path segments"],
        ),
    ];

    #[test]
    fn accepts_every_documented_form() {
        for uri in ACCEPTED {
            assert_eq!(accepted(validate(uri))["uri"], *uri, "{uri}");
        }
        for (input, uri) in NORMALISED {
            assert_eq!(accepted(validate(input))["uri"], *uri, "{input}");
        }
    }

    #[test]
    fn logins_have_at_most_39_characters() {
        let longest = "a1-".repeat(13);
        let longest = format!("{}z", &longest[..38]);
        assert_eq!(longest.len(), MAX_LOGIN_LEN);
        accepted(validate(&format!("ghcr.io/{longest}")));
        accepted(validate(&format!("docker.pkg.github.com/{longest}/r")));
        let too_long = format!("{longest}b");
        assert_issue(
            &issues(validate(&format!("ghcr.io/{too_long}"))),
            "uri",
            &[
                &format!("`{too_long}` is not a valid GitHub user"),
                "1 to 39",
            ],
        );
    }

    #[test]
    fn refuses_look_alikes_and_malformed_uris() {
        for (uri, needles) in REFUSED {
            let issues = issues(validate(uri));
            let mut needles = needles.to_vec();
            needles.push("An example of a valid URI is: `");
            assert_issue(&issues, "uri", &needles);
        }
    }

    #[test]
    fn examples_match_the_registry() {
        assert_issue(&issues(validate("ghcr.io/My_Org")), "uri", &[EXAMPLE]);
        assert_issue(
            &issues(validate("containers.octocorp.ghe.com")),
            "uri",
            &["`containers.octocorp.ghe.com/my-organization`"],
        );
        assert_issue(
            &issues(validate("docker.pkg.github.com/o")),
            "uri",
            &[LEGACY_EXAMPLE],
        );
        // An unknown host still has its path checked, so every issue shows.
        let i = issues(validate("ghcr.io.evil.com/Me"));
        assert_eq!(i.len(), 2, "{i:#?}");
        assert_issue(&i, "uri", &["`Me` must be lowercase"]);
    }

    #[test]
    fn checks_default_repository_and_unknown_fields() {
        let c = accepted(GitHub::validate_config(
            &NoHost,
            r#"{"uri":"ghcr.io/zenml","default_repository":"team/app"}"#,
        ));
        assert_eq!(c["default_repository"], "team/app");
        let i = issues(GitHub::validate_config(
            &NoHost,
            r#"{"uri":"ghcr.io/zenml","default_repository":"Team/App"}"#,
        ));
        assert_eq!(i.len(), 1, "{i:#?}");
        assert_issue(
            &i,
            "default_repository",
            &["`Team/App` is not a valid repository name"],
        );
        let i = issues(GitHub::validate_config(
            &NoHost,
            r#"{"uri":"ghcr.io/o","token":"t"}"#,
        ));
        assert_issue(&i, "token", &["accepts: uri, default_repository"]);
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
        let m = GitHub::metadata();
        assert_metadata(&m, "github");
        let schema: flavor_kit::serde_json::Value =
            flavor_kit::serde_json::from_str(&m.config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            let uri = example.as_str().unwrap();
            accepted(validate(uri));
        }
    }
}
