//! The `gitlab` flavor: GitLab.com Container Registry,
//! `registry.gitlab.com/<group>[/<subgroup-or-project>...]`.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `gitlab` flavor.
pub struct GitLab;

const DOMAIN: &str = "registry.gitlab.com";
const EXAMPLE: &str = "registry.gitlab.com/my-group/my-project";

impl Flavor for GitLab {
    fn metadata() -> Metadata {
        Metadata {
            name: "gitlab".into(),
            display_name: "GitLab Container Registry".into(),
            description: "The Container Registry of GitLab.com: images are pushed under a group, \
                          subgroup or project (`registry.gitlab.com/<group>[/<project>...]`). \
                          For a self-managed GitLab registry, use the `default` flavor."
                .into(),
            docs_url: "https://docs.gitlab.com/user/packages/container_registry/".into(),
            logo_url: String::new(),
            config_schema: validate::config_schema(
                "GitLab container registry",
                "`registry.gitlab.com/<group>[/<subgroup-or-project>...]`, in lowercase.",
                &[EXAMPLE, "registry.gitlab.com/my-group"],
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
    validate::expect_domain("uri", uri, DOMAIN, "GitLab.com registry", EXAMPLE, issues);
    if validate::expect_segments(
        "uri",
        uri,
        1..=usize::MAX,
        "at least a group after `registry.gitlab.com`",
        EXAMPLE,
        issues,
    ) {
        validate::check_path_components("uri", uri, EXAMPLE, issues);
    }
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

    #[test]
    fn accepts_groups_and_projects() {
        for uri in [
            "registry.gitlab.com/my-group",
            "registry.gitlab.com/my-group/my-project",
            "registry.gitlab.com/my-group/sub.group/my_project",
        ] {
            assert_eq!(accepted(validate(uri))["uri"], uri);
        }
        assert_eq!(
            accepted(validate("registry.gitlab.com/g/"))["uri"],
            "registry.gitlab.com/g"
        );
    }

    #[test]
    fn rejects_bad_uris() {
        assert_issue(
            &issues(validate("registry.gitlab.com")),
            "uri",
            &["at least", EXAMPLE],
        );
        assert_issue(
            &issues(validate("registry.gitlab.com/My-Group")),
            "uri",
            &["`My-Group`", EXAMPLE],
        );
        assert_issue(
            &issues(validate("registry.gitlab.com/g//p")),
            "uri",
            &["empty", EXAMPLE],
        );
        assert_issue(
            &issues(validate("gitlab.com/g")),
            "uri",
            &["registry.gitlab.com", EXAMPLE],
        );
        let i = issues(GitLab::validate_config(
            &NoHost,
            r#"{"uri":"registry.gitlab.com/g","x":1}"#,
        ));
        assert_issue(&i, "x", &["accepts: uri"]);
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
        assert_metadata(&GitLab::metadata(), "gitlab");
    }
}
