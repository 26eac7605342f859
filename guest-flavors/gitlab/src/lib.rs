//! The `gitlab` flavor: GitLab.com Container Registry,
//! `registry.gitlab.com/<namespace>[/<subgroup>...][/<project>]`.
//!
//! Self-managed and Dedicated GitLab registries have arbitrary hosts, so they
//! belong to the `default` flavor.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `gitlab` flavor.
pub struct GitLab;

/// GitLab.com's registry host. GitLab's own docs pull GitLab.com images from it
/// (e.g. `registry.gitlab.com/gitlab-org/build/cng/gitlab-container-registry:v3.15.0-gitlab`,
/// https://docs.gitlab.com/administration/packages/container_registry/), and
/// ZenML's `uri` description names it ("'registry.gitlab.com' for GitLab
/// Container Registry",
/// https://github.com/zenml-io/zenml/blob/main/src/zenml/container_registries/base_container_registry.py).
const DOMAIN: &str = "registry.gitlab.com";
/// GitLab.com's web host, often pasted instead of the registry's.
const WEB_HOST: &str = "gitlab.com";
const EXAMPLE: &str = "registry.gitlab.com/my-group/my-project";

impl Flavor for GitLab {
    fn metadata() -> Metadata {
        Metadata {
            name: "gitlab".into(),
            display_name: "GitLab Container Registry".into(),
            description: "The Container Registry of GitLab.com: images are pushed under a group, \
                          subgroup or project \
                          (`registry.gitlab.com/<group>[/<subgroup>...][/<project>]`). For a \
                          self-managed or Dedicated GitLab registry, use the `default` flavor."
                .into(),
            docs_url: "https://docs.gitlab.com/user/packages/container_registry/".into(),
            logo_url: String::new(),
            config_schema: validate::config_schema(
                "GitLab container registry",
                "`registry.gitlab.com/<group>[/<subgroup>...][/<project>]` (the registry host, \
                 not `gitlab.com`). Each path segment is a GitLab group or project path in \
                 lowercase: letters and digits, optionally separated by single `.`, `_` or `-`, \
                 not ending in `.git` or `.atom`.",
                &[
                    EXAMPLE,
                    "registry.gitlab.com/my-group",
                    "registry.gitlab.com/my-group/my-subgroup/my-project",
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
        validate::approve_push(host, "gitlab", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    let host = uri.host();
    if host != DOMAIN {
        // The whole host is compared: `registry.gitlab.com.evil.com` and
        // `evil-registry.gitlab.com` are refused.
        let hint = if host == WEB_HOST || host == "www.gitlab.com" {
            let suggestion = if uri.segments.is_empty() {
                EXAMPLE.to_string()
            } else {
                format!("{DOMAIN}/{}", uri.path())
            };
            format!(
                "; `{host}` is GitLab's website, images are pushed to its container registry \
                 `{DOMAIN}` (`{suggestion}`)"
            )
        } else {
            String::new()
        };
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` is not a GitLab.com registry URI: its domain must be `{DOMAIN}`, \
                 not `{}`{hint}",
                uri.uri, uri.domain
            ),
            EXAMPLE,
        ));
    } else if let Some(port) = uri.port() {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` must not include a port (`:{port}`): GitLab.com's registry is \
                 reached as `{DOMAIN}`",
                uri.uri
            ),
            EXAMPLE,
        ));
    }

    // Image names are `<registry server>/<namespace>/<project>[/<optional path>]`
    // ("Naming convention for your container images",
    // https://docs.gitlab.com/user/packages/container_registry/#naming-convention-for-your-container-images).
    // ZenML's `uri` is a prefix (images go to `<uri>/<repository>`), so the
    // URI may stop at the group, a subgroup or the project: which segment is
    // the project cannot be told offline. The number of segments is not
    // limited here (GitLab's subgroup depth limit was not verified); the
    // whole path is limited to 255 characters, as in Docker.
    if !validate::expect_segments(
        "uri",
        uri,
        1..=usize::MAX,
        &format!("at least a group after `{DOMAIN}`"),
        EXAMPLE,
        issues,
    ) {
        return;
    }
    validate::check_segments("uri", uri, 0, EXAMPLE, issues, check_segment);
}

/// One group, subgroup or project path in an image name (never empty:
/// [`validate::check_segments`] refuses those); `Err` completes
/// "path segment `<segment>` of `uri` `<uri>` ...".
///
/// Two rules apply at once:
/// - the Docker reference grammar: a lowercase path component
///   (https://github.com/distribution/reference/blob/main/reference.go);
/// - GitLab's path rules: "Must start and end with a letter (a-zA-Z) or
///   digit (0-9). Must not contain consecutive special characters. Cannot end
///   in .git or .atom. Must contain only letters (a-zA-Z), digits (0-9),
///   underscores (_), dots (.), or dashes (-)."
///   (https://docs.gitlab.com/user/reserved_names/, "Rules for usernames,
///   project and group names, and slugs"). Leading or trailing `_`/`.` also
///   break the registry (https://gitlab.com/gitlab-org/gitlab/-/issues/349047).
///
/// Together: lowercase letters and digits separated by single `.`, `_` or
/// `-`, not ending in `.git` or `.atom`.
fn check_segment(segment: &str) -> Result<(), String> {
    if segment.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "must be lowercase in an image path (`{}`)",
            segment.to_ascii_lowercase()
        ));
    }
    validate::path_component(segment)?;
    let special = |c: u8| matches!(c, b'.' | b'_' | b'-');
    if segment
        .as_bytes()
        .windows(2)
        .any(|pair| special(pair[0]) && special(pair[1]))
    {
        return Err(
            "is not a valid GitLab path: it must not contain consecutive special characters \
             (`.`, `_`, `-`)"
                .to_string(),
        );
    }
    if let Some(suffix) = [".git", ".atom"]
        .into_iter()
        .find(|suffix| segment.ends_with(suffix))
    {
        return Err(format!(
            "is not a valid GitLab path: it must not end in `{suffix}`"
        ));
    }
    Ok(())
}

flavor_kit::export_flavor!(GitLab);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        GitLab::validate_config(&NoHost, &format!(r#"{{"uri":"{uri}"}}"#))
    }

    /// URIs accepted as they are.
    const ACCEPTED: &[&str] = &[
        "registry.gitlab.com/my-group",
        "registry.gitlab.com/my-group/my-project",
        "registry.gitlab.com/my-group/sub/my-project",
        "registry.gitlab.com/my-group/sub.group/my_project",
        "registry.gitlab.com/g/p",
        "registry.gitlab.com/0/1",
        "registry.gitlab.com/a.b-c_d/e/f/g/h",
        // `.git` / `.atom` only matter at the end.
        "registry.gitlab.com/my.gitlab/project.atomic",
        "registry.gitlab.com/g/git",
    ];

    /// URIs as typed, and the URI they are normalised to.
    const NORMALISED: &[(&str, &str)] = &[
        ("registry.gitlab.com/g/", "registry.gitlab.com/g"),
        ("Registry.GitLab.COM/g/p", "registry.gitlab.com/g/p"),
    ];

    /// URIs refused, with what the message on `uri` must contain (besides the example).
    const REFUSED: &[(&str, &[&str])] = &[
        // Look-alike and other hosts: the whole host is compared.
        (
            "registry.gitlab.com.evil.com/g/p",
            &["its domain must be `registry.gitlab.com`, not `registry.gitlab.com.evil.com`"],
        ),
        (
            "evil-registry.gitlab.com/g/p",
            &["not `evil-registry.gitlab.com`"],
        ),
        ("registry.gitlab.co/g/p", &["not `registry.gitlab.co`"]),
        (
            "registry.gitlab.example.com/g/p",
            &["not `registry.gitlab.example.com`"],
        ),
        ("gitlab.example.com/g/p", &["not `gitlab.example.com`"]),
        ("ghcr.io/g", &["not `ghcr.io`"]),
        // The web host, pointing at the registry.
        (
            "gitlab.com/g/p",
            &[
                "its domain must be `registry.gitlab.com`, not `gitlab.com`",
                "`gitlab.com` is GitLab's website",
                "(`registry.gitlab.com/g/p`)",
            ],
        ),
        (
            "www.gitlab.com/g",
            &["GitLab's website", "(`registry.gitlab.com/g`)"],
        ),
        // Ports.
        (
            "registry.gitlab.com:443/g/p",
            &["must not include a port (`:443`)"],
        ),
        // Upper case in the path.
        (
            "registry.gitlab.com/My-Group/p",
            &[
                "path segment `My-Group`",
                "must be lowercase",
                "(`my-group`)",
            ],
        ),
        (
            "registry.gitlab.com/g/Project",
            &["path segment `Project`", "must be lowercase"],
        ),
        // Docker grammar.
        (
            "registry.gitlab.com/_g/p",
            &["path segment `_g`", "not valid in an image name"],
        ),
        (
            "registry.gitlab.com/g./p",
            &["path segment `g.`", "not valid in an image name"],
        ),
        ("registry.gitlab.com/-g/p", &["path segment `-g`"]),
        ("registry.gitlab.com/g/p~x", &["path segment `p~x`"]),
        ("registry.gitlab.com/g//p", &["empty path segment (`//`)"]),
        // GitLab's slug rules beyond the Docker grammar.
        (
            "registry.gitlab.com/g--x/p",
            &["path segment `g--x`", "consecutive special characters"],
        ),
        (
            "registry.gitlab.com/g/p__x",
            &["path segment `p__x`", "consecutive special characters"],
        ),
        (
            "registry.gitlab.com/g/p.git",
            &["path segment `p.git`", "end in `.git`"],
        ),
        (
            "registry.gitlab.com/g.atom/p",
            &["path segment `g.atom`", "end in `.atom`"],
        ),
        // Wrong segment counts.
        (
            "registry.gitlab.com",
            &[
                "at least a group after `registry.gitlab.com`",
                "has no path",
            ],
        ),
    ];

    #[test]
    fn accepts_groups_subgroups_and_projects() {
        for uri in ACCEPTED {
            assert_eq!(accepted(validate(uri))["uri"], *uri, "{uri}");
        }
        for (input, uri) in NORMALISED {
            assert_eq!(accepted(validate(input))["uri"], *uri, "{input}");
        }
    }

    #[test]
    fn refuses_look_alikes_and_malformed_uris() {
        for (uri, needles) in REFUSED {
            let issues = issues(validate(uri));
            let mut needles = needles.to_vec();
            needles.push("An example of a valid URI is: `registry.gitlab.com/my-group/my-project`");
            assert_issue(&issues, "uri", &needles);
        }
    }

    #[test]
    fn limits_the_path_length() {
        let long = format!("{DOMAIN}/{}/{}", "a".repeat(200), "b".repeat(55));
        assert_eq!(long.len() - DOMAIN.len() - 1, 256);
        assert_issue(&issues(validate(&long)), "uri", &["longer than 255"]);
        accepted(validate(&long[..long.len() - 1]));
    }

    #[test]
    fn reports_every_bad_segment() {
        let i = issues(validate("gitlab.com/G/p.git"));
        assert_eq!(i.len(), 3, "{i:#?}");
    }

    #[test]
    fn checks_default_repository_and_unknown_fields() {
        let c = accepted(GitLab::validate_config(
            &NoHost,
            r#"{"uri":"registry.gitlab.com/g/p","default_repository":"team/app"}"#,
        ));
        assert_eq!(c["default_repository"], "team/app");
        let i = issues(GitLab::validate_config(
            &NoHost,
            r#"{"uri":"registry.gitlab.com/g/p","default_repository":"Team/App"}"#,
        ));
        assert_eq!(i.len(), 1, "{i:#?}");
        assert_issue(
            &i,
            "default_repository",
            &["`Team/App` is not a valid repository name"],
        );
        let i = issues(GitLab::validate_config(
            &NoHost,
            r#"{"uri":"registry.gitlab.com/g","x":1}"#,
        ));
        assert_issue(&i, "x", &["accepts: uri, default_repository"]);
    }

    #[test]
    fn approves_every_push() {
        let d = GitLab::prepare_image_push(
            &NoHost,
            r#"{"uri":"registry.gitlab.com/g"}"#,
            &image("registry.gitlab.com", "g/app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        let m = GitLab::metadata();
        assert_metadata(&m, "gitlab");
        let schema: flavor_kit::serde_json::Value =
            flavor_kit::serde_json::from_str(&m.config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            accepted(validate(example.as_str().unwrap()));
        }
    }
}
