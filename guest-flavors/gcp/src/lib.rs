//! The `gcp` flavor: Google Container Registry (`gcr.io/<project>`,
//! `eu.gcr.io/<project>`, ...) and Artifact Registry
//! (`<location>-docker.pkg.dev/<project>/<repository>`).

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `gcp` flavor.
pub struct Gcp;

const GCR_EXAMPLE: &str = "gcr.io/my-project";
const AR_EXAMPLE: &str = "europe-west4-docker.pkg.dev/my-project/my-repository";
const ANY_EXAMPLE: &str =
    "europe-west4-docker.pkg.dev/my-project/my-repository` or `gcr.io/my-project";

impl Flavor for Gcp {
    fn metadata() -> Metadata {
        Metadata {
            name: "gcp".into(),
            display_name: "Google Cloud Artifact Registry".into(),
            description: "Google Cloud registries: Artifact Registry Docker repositories \
                          (`<location>-docker.pkg.dev/<project>/<repository>`) and Container \
                          Registry (`gcr.io/<project>`, or regional `us.gcr.io`, `eu.gcr.io`, \
                          `asia.gcr.io`)."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/gcp"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/gcp.png".into(),
            config_schema: validate::config_schema(
                "Google Cloud container registry",
                "Artifact Registry `<location>-docker.pkg.dev/<project>/<repository>` (location \
                 a region such as `us-central1` or a multi-region `us`, `europe`, `asia`), or \
                 Container Registry `[<region>.]gcr.io/<project>`. Project ids are 6 to 30 \
                 lowercase letters, digits and hyphens, starting with a letter.",
                &[AR_EXAMPLE, "us-docker.pkg.dev/my-project/images", GCR_EXAMPLE, "eu.gcr.io/my-project"],
                &[],
            ),
            capabilities: vec![],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        validate::validate_uri_config(config, AR_EXAMPLE, check_uri)
    }

    fn prepare_image_push(host: &dyn Host, _config: &str, image: &ImageReference) -> PushDecision {
        validate::approve_push(host, "gcp", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    let domain = uri.domain.as_str();
    let gcr = domain == "gcr.io"
        || domain
            .strip_suffix(".gcr.io")
            .is_some_and(validate::is_dns_label);
    if gcr {
        let shape = format!("exactly one project id after `{domain}`");
        if validate::expect_segments("uri", uri, 1..=1, &shape, GCR_EXAMPLE, issues) {
            check_project(&uri.segments[0], GCR_EXAMPLE, issues);
        }
    } else if let Some(location) = domain.strip_suffix("-docker.pkg.dev") {
        if !is_location(location) {
            issues.push(ConfigIssue::with_example(
                "uri",
                format!(
                    "`{location}` in `{domain}` is not an Artifact Registry location: use a \
                     region such as `us-central1` or `europe-west4`, or a multi-region `us`, \
                     `europe` or `asia`"
                ),
                AR_EXAMPLE,
            ));
        }
        let shape = format!("exactly a project id and a repository after `{domain}`");
        if validate::expect_segments("uri", uri, 2..=2, &shape, AR_EXAMPLE, issues) {
            check_project(&uri.segments[0], AR_EXAMPLE, issues);
            check_repository(&uri.segments[1], issues);
        }
    } else {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{}` is not a Google Cloud registry: its domain must be \
                 `<location>-docker.pkg.dev` (Artifact Registry) or `[<region>.]gcr.io` \
                 (Container Registry), not `{domain}`",
                uri.uri
            ),
            ANY_EXAMPLE,
        ));
    }
}

/// An Artifact Registry location: a multi-region or a region such as
/// `us-central1`, `northamerica-northeast1`.
fn is_location(s: &str) -> bool {
    if matches!(s, "us" | "europe" | "asia") {
        return true;
    }
    let Some((area, rest)) = s.split_once('-') else {
        return false;
    };
    let digits = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let direction_len = rest.len() - digits.len();
    !area.is_empty()
        && area.bytes().all(|c| c.is_ascii_lowercase())
        && direction_len > 0
        && !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
}

/// A Google Cloud project id: 6 to 30 lowercase letters, digits and hyphens,
/// starting with a letter and not ending with a hyphen.
fn check_project(project: &str, example: &str, issues: &mut Vec<ConfigIssue>) {
    let valid = (6..=30).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_lowercase())
        && !project.ends_with('-')
        && project
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if !valid {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{project}` is not a valid Google Cloud project id: use 6 to 30 lowercase \
                 letters, digits and hyphens, starting with a letter and not ending with a hyphen"
            ),
            example,
        ));
    }
}

/// An Artifact Registry repository id: 1 to 63 lowercase letters, digits and
/// hyphens, starting with a letter and ending with a letter or digit.
fn check_repository(repository: &str, issues: &mut Vec<ConfigIssue>) {
    let valid = validate::is_dns_label(repository)
        && repository.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{repository}` is not a valid Artifact Registry repository: use up to 63 \
                 lowercase letters, digits and hyphens, starting with a letter and ending with a \
                 letter or digit"
            ),
            AR_EXAMPLE,
        ));
    }
}

flavor_kit::export_flavor!(Gcp);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        Gcp::validate_config(&NoHost, &format!(r#"{{"uri":"{uri}"}}"#))
    }

    #[test]
    fn accepts_gcr_and_artifact_registry() {
        for uri in [
            "gcr.io/my-project",
            "eu.gcr.io/my-project",
            "us.gcr.io/project-123456",
            "asia.gcr.io/abcdef",
            "us-central1-docker.pkg.dev/my-project/my-repo",
            "europe-west4-docker.pkg.dev/my-project/images",
            "northamerica-northeast1-docker.pkg.dev/my-project/r",
            "us-docker.pkg.dev/my-project/images",
            "europe-docker.pkg.dev/my-project/images",
        ] {
            assert_eq!(accepted(validate(uri))["uri"], uri);
        }
        assert_eq!(
            accepted(validate("GCR.io/my-project/"))["uri"],
            "gcr.io/my-project"
        );
    }

    #[test]
    fn rejects_wrong_segment_counts() {
        assert_issue(
            &issues(validate("gcr.io")),
            "uri",
            &["exactly one project", GCR_EXAMPLE],
        );
        assert_issue(
            &issues(validate("gcr.io/my-project/app")),
            "uri",
            &["exactly one", GCR_EXAMPLE],
        );
        assert_issue(
            &issues(validate("us-docker.pkg.dev/my-project")),
            "uri",
            &["a repository", AR_EXAMPLE],
        );
        assert_issue(
            &issues(validate("us-docker.pkg.dev/my-project/repo/app")),
            "uri",
            &["a repository", AR_EXAMPLE],
        );
    }

    #[test]
    fn rejects_bad_projects_repositories_and_locations() {
        for bad in [
            "short",
            "1project",
            "my-project-",
            "My-Project",
            "my_project",
            &"a".repeat(31),
        ] {
            assert_issue(
                &issues(validate(&format!("gcr.io/{bad}"))),
                "uri",
                &[bad, "project id", GCR_EXAMPLE],
            );
        }
        assert_issue(
            &issues(validate("us-central1-docker.pkg.dev/my-project/1repo")),
            "uri",
            &["`1repo`", AR_EXAMPLE],
        );
        for bad in ["moon", "us-1", "central1", "us-central"] {
            assert_issue(
                &issues(validate(&format!("{bad}-docker.pkg.dev/my-project/repo"))),
                "uri",
                &["location", AR_EXAMPLE],
            );
        }
    }

    #[test]
    fn rejects_other_registries() {
        let i = issues(Gcp::validate_config(
            &NoHost,
            r#"{"uri":"docker.io/me","project":"p"}"#,
        ));
        assert_issue(&i, "project", &["accepts: uri"]);
        assert_issue(
            &i,
            "uri",
            &["not a Google Cloud registry", GCR_EXAMPLE, AR_EXAMPLE],
        );
        assert_issue(
            &issues(validate("docker.pkg.dev/p/r")),
            "uri",
            &["not a Google Cloud registry"],
        );
    }

    #[test]
    fn approves_every_push() {
        let d = Gcp::prepare_image_push(
            &NoHost,
            r#"{"uri":"gcr.io/my-project"}"#,
            &image("gcr.io", "my-project/app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        assert_metadata(&Gcp::metadata(), "gcp");
    }
}
