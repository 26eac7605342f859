//! The `gcp` flavor: Google Container Registry (`gcr.io/<project>`,
//! `us.gcr.io`, `eu.gcr.io`, `asia.gcr.io`) and Artifact Registry
//! (`<location>-docker.pkg.dev/<project>/<repository>`), with domain-scoped
//! projects (`example.com:my-project`, written `example.com/my-project`) and
//! optional nested paths after the project or repository.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `gcp` flavor.
pub struct Gcp;

const GCR_EXAMPLE: &str = "gcr.io/my-project";
const GCR_NESTED_EXAMPLE: &str = "gcr.io/my-project/team";
const AR_EXAMPLE: &str = "europe-west4-docker.pkg.dev/my-project/my-repository";
const AR_NESTED_EXAMPLE: &str = "europe-west4-docker.pkg.dev/my-project/my-repository/team";
const GCR_DOMAIN_EXAMPLE: &str = "gcr.io/example.com/my-project";
const AR_DOMAIN_EXAMPLE: &str = "us-west1-docker.pkg.dev/example.com/my-project/my-repository";
const ANY_EXAMPLE: &str =
    "europe-west4-docker.pkg.dev/my-project/my-repository` or `gcr.io/my-project";

/// The Container Registry hosts, matched exactly: "HOSTNAME is ... gcr.io
/// ... us.gcr.io ... eu.gcr.io ... asia.gcr.io".
/// <https://cloud.google.com/container-registry/docs/overview>; the domain
/// keeps working through Artifact Registry's gcr.io repositories,
/// <https://cloud.google.com/artifact-registry/docs/transition/gcr-repositories>.
const GCR_HOSTS: &[&str] = &["gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io"];

/// The Artifact Registry repositories named after a gcr.io host, with the
/// only location each may be in (`gcr.io` → `us`, `us.gcr.io` → `us`,
/// `eu.gcr.io` → `europe`, `asia.gcr.io` → `asia`).
/// <https://cloud.google.com/artifact-registry/docs/transition/gcr-repositories>;
/// gcloud's `_ALLOWED_GCR_REPO_LOCATION` in `command_lib/artifacts/util.py`.
const GCR_REPOSITORIES: &[(&str, &str)] = &[
    ("gcr.io", "us"),
    ("us.gcr.io", "us"),
    ("eu.gcr.io", "europe"),
    ("asia.gcr.io", "asia"),
];

impl Flavor for Gcp {
    fn metadata() -> Metadata {
        Metadata {
            name: "gcp".into(),
            display_name: "Google Cloud Artifact Registry".into(),
            description: "Google Cloud registries: Artifact Registry Docker repositories \
                          (`<location>-docker.pkg.dev/<project>/<repository>`, including the \
                          `gcr.io` repositories) and Container Registry (`gcr.io/<project>`, \
                          `us.gcr.io`, `eu.gcr.io`, `asia.gcr.io`). Domain-scoped projects are \
                          written `<domain>/<project>`; further path segments may follow."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/gcp"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/gcp.png".into(),
            config_schema: validate::config_schema(
                "Google Cloud container registry",
                "Artifact Registry `<location>-docker.pkg.dev/<project>/<repository>[/<path>...]` \
                 (location a region such as `us-central1` or a multi-region `us`, `europe`, \
                 `asia`; repository lowercase letters, digits and hyphens starting with a \
                 letter, or the gcr.io repositories `gcr.io`/`us.gcr.io` in `us`, `eu.gcr.io` \
                 in `europe`, `asia.gcr.io` in `asia`), or Container Registry \
                 `<host>/<project>[/<path>...]` with host exactly `gcr.io`, `us.gcr.io`, \
                 `eu.gcr.io` or `asia.gcr.io`. Project ids are 6 to 30 lowercase letters, \
                 digits and hyphens, starting with a letter and not ending with a hyphen; a \
                 domain-scoped project `example.com:my-project` is written \
                 `example.com/my-project`. Further path segments are lowercase path components.",
                &[
                    AR_EXAMPLE,
                    "us-docker.pkg.dev/my-project/images",
                    "us-west1-docker.pkg.dev/example.com/my-project/my-repository",
                    "us-docker.pkg.dev/my-project/gcr.io",
                    GCR_EXAMPLE,
                    "eu.gcr.io/my-project",
                    GCR_NESTED_EXAMPLE,
                    "gcr.io/example.com/my-project",
                ],
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
    let host = uri.host();
    // No documented Google registry host takes a port (hosts above and
    // https://cloud.google.com/artifact-registry/docs/docker/names).
    if let Some(port) = uri.port() {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` must not include a port (`:{port}`): Google Cloud registries take none",
                uri.uri
            ),
            ANY_EXAMPLE,
        ));
    }
    // Whole-host comparisons only: `gcr.io.evil.com`, `evilgcr.io`,
    // `us-docker.pkg.dev.evil.com` and `us-docker-pkg.dev` never match.
    if GCR_HOSTS.contains(&host) {
        check_gcr(uri, issues);
    } else if let Some(location) = host.strip_suffix("-docker.pkg.dev") {
        check_artifact_registry(uri, location, issues);
    } else if host.ends_with(".gcr.io") {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{host}` is not a Container Registry host: use exactly `gcr.io`, `us.gcr.io`, \
                 `eu.gcr.io` or `asia.gcr.io`"
            ),
            GCR_EXAMPLE,
        ));
    } else {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{}` is not a Google Cloud registry: its domain must be \
                 `<location>-docker.pkg.dev` (Artifact Registry) or `gcr.io`, `us.gcr.io`, \
                 `eu.gcr.io` or `asia.gcr.io` (Container Registry), not `{}`",
                uri.uri, uri.domain
            ),
            ANY_EXAMPLE,
        ));
    }
}

/// Container Registry: `HOSTNAME/PROJECT-ID[/IMAGE...]`.
/// <https://cloud.google.com/container-registry/docs/overview>. Nested paths
/// after the project are accepted by Google's tooling (gcloud treats the
/// image as `.*`) though not spelled out in the docs.
fn check_gcr(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    let host = uri.host();
    if has_empty_segment(uri, GCR_EXAMPLE, issues) {
        return;
    }
    let missing = format!(
        "has no project id: add it after `{host}` (`{host}/<project>`, or \
         `{host}/<domain>/<project>` for a domain-scoped project)"
    );
    let Some(used) = check_project(uri, &missing, [GCR_EXAMPLE, GCR_DOMAIN_EXAMPLE], issues) else {
        return;
    };
    check_rest(uri, used, GCR_NESTED_EXAMPLE, issues);
}

/// Artifact Registry: `LOCATION-docker.pkg.dev/PROJECT-ID/REPOSITORY[/IMAGE...]`.
/// <https://cloud.google.com/artifact-registry/docs/docker/names>
fn check_artifact_registry(uri: &RegistryUri, location: &str, issues: &mut Vec<ConfigIssue>) {
    let host = uri.host();
    if !is_location(location) {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{location}` in `{host}` is not an Artifact Registry location: use a \
                 region such as `us-central1` or `europe-west4`, or a multi-region `us`, \
                 `europe` or `asia`"
            ),
            AR_EXAMPLE,
        ));
    }
    if has_empty_segment(uri, AR_EXAMPLE, issues) {
        return;
    }
    let shape = format!(
        "the path after `{host}` must begin with exactly a project id and a repository \
         (`<project>/<repository>`, or `<domain>/<project>/<repository>` for a domain-scoped \
         project)"
    );
    let Some(used) = check_project(
        uri,
        &format!("has no project id: {shape}"),
        [AR_EXAMPLE, AR_DOMAIN_EXAMPLE],
        issues,
    ) else {
        return;
    };
    let Some(repository) = uri.segments.get(used) else {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!("`uri` `{}` has no repository: {shape}", uri.uri),
            AR_EXAMPLE,
        ));
        return;
    };
    check_repository(repository, location, issues);
    check_rest(uri, used + 1, AR_NESTED_EXAMPLE, issues);
}

/// Records an issue when `uri` has an empty path segment (`//`); the other
/// checks are skipped then, as every segment position would be off.
fn has_empty_segment(uri: &RegistryUri, example: &str, issues: &mut Vec<ConfigIssue>) -> bool {
    let empty = uri.segments.iter().any(String::is_empty);
    if empty {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!("`uri` `{}` has an empty path segment (`//`)", uri.uri),
            example,
        ));
    }
    empty
}

/// An Artifact Registry location: a multi-region (`us`, `europe`, `asia`) or
/// a region `<area>-<direction><N>` such as `us-central1`,
/// `northamerica-northeast1`.
/// <https://cloud.google.com/artifact-registry/docs/repositories/repo-locations>
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

/// Checks the project at the start of the path: `<project>`, or the
/// domain-scoped `<domain>/<project>` (recognised by a `.` in the first
/// segment). Returns how many segments it takes, or `None` (with an issue
/// whose message is `missing`, or says the project id is missing after a
/// domain) when the path ends too early. `examples` are a valid URI with a
/// plain project and one with a domain-scoped project, for the messages.
///
/// Domain-scoped projects: "the colon in the project id will be replaced with
/// a forward slash in the image specification",
/// <https://cloud.google.com/artifact-registry/docs/docker/names>; gcloud's
/// `GCR_DOCKER_DOMAIN_SCOPED_REPO_REGEX` requires a `.` in the domain.
fn check_project(
    uri: &RegistryUri,
    missing: &str,
    [example, domain_example]: [&str; 2],
    issues: &mut Vec<ConfigIssue>,
) -> Option<usize> {
    let Some(first) = uri.segments.first() else {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!("`uri` `{}` {missing}", uri.uri),
            example,
        ));
        return None;
    };
    if !first.contains('.') {
        check_project_id(first, example, issues);
        return Some(1);
    }
    if !is_project_domain(first) {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{first}` is not a valid domain of a domain-scoped project: use a lowercase \
                 DNS name such as `example.com` (the project `example.com:my-project` is \
                 written `example.com/my-project`)"
            ),
            domain_example,
        ));
    }
    let Some(project) = uri.segments.get(1) else {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` names the domain `{first}` of a domain-scoped project but no \
                 project id after it: write the project `{first}:my-project` as \
                 `{first}/my-project`",
                uri.uri
            ),
            domain_example,
        ));
        return None;
    };
    check_project_id(project, domain_example, issues);
    Some(2)
}

/// The domain of a domain-scoped project: a DNS name with at least one dot,
/// lowercase labels. Its rules are not documented beyond the dot (gcloud's
/// regex), so this is the ordinary DNS name shape.
fn is_project_domain(s: &str) -> bool {
    s.len() <= 253 && s.contains('.') && s.split('.').all(validate::is_dns_label)
}

/// A Google Cloud project id: "must be 6 to 30 lowercase ASCII letters,
/// digits, or hyphens, must start with a letter, trailing hyphens
/// prohibited".
/// <https://cloud.google.com/resource-manager/reference/rest/v3/projects>,
/// <https://cloud.google.com/sdk/gcloud/reference/projects/create>
fn check_project_id(project: &str, example: &str, issues: &mut Vec<ConfigIssue>) {
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

/// An Artifact Registry repository id: gcloud's `_REPO_REGEX`
/// `^[a-z]([a-z0-9-]*[a-z0-9])?$` ("Names may only contain lowercase letters,
/// numbers, and hyphens, and must begin with a letter and end with a letter
/// or number"), `command_lib/artifacts/util.py` of the Google Cloud SDK,
/// <https://cloud.google.com/artifact-registry/docs/repositories/create-repos>.
/// No length limit is documented: the 63 characters of a DNS label are an
/// assumption. The exceptions are the gcr.io repositories, each only in its
/// location (see [`GCR_REPOSITORIES`]).
fn check_repository(repository: &str, location: &str, issues: &mut Vec<ConfigIssue>) {
    if let Some(&(name, home)) = GCR_REPOSITORIES.iter().find(|(n, _)| *n == repository) {
        if home != location {
            issues.push(ConfigIssue::with_example(
                "uri",
                format!(
                    "`{name}` is a gcr.io repository, which Artifact Registry only hosts in \
                     location `{home}` (`{home}-docker.pkg.dev`), not in `{location}`"
                ),
                format!("{home}-docker.pkg.dev/my-project/{name}"),
            ));
        }
        return;
    }
    let valid = validate::is_dns_label(repository)
        && repository.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{repository}` is not a valid Artifact Registry repository: use up to 63 \
                 lowercase letters, digits and hyphens, starting with a letter and ending with a \
                 letter or digit (or a gcr.io repository: `gcr.io` or `us.gcr.io` in location \
                 `us`, `eu.gcr.io` in `europe`, `asia.gcr.io` in `asia`)"
            ),
            AR_EXAMPLE,
        ));
    }
}

/// Checks the segments after the first `skip` (the project and, for
/// Artifact Registry, the repository): each a lowercase path component of an
/// image name, the whole path at most [`validate::MAX_PATH_LEN`] characters.
fn check_rest(uri: &RegistryUri, skip: usize, example: &str, issues: &mut Vec<ConfigIssue>) {
    validate::check_segments("uri", uri, skip, example, issues, validate::path_component);
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

    /// Every documented form, each returned unchanged.
    const ACCEPTED: &[&str] = &[
        // Container Registry: the four hosts.
        "gcr.io/my-project",
        "us.gcr.io/project-123456",
        "eu.gcr.io/my-project",
        "asia.gcr.io/abcdef",
        // Nested paths after the project.
        "gcr.io/my-project/team",
        "eu.gcr.io/my-project/team/app",
        "gcr.io/my-project/my_team/app.v2",
        // Domain-scoped projects.
        "gcr.io/example.com/my-project",
        "asia.gcr.io/my-company.co.uk/my-project/team",
        // Artifact Registry: regions and multi-regions.
        "us-central1-docker.pkg.dev/my-project/my-repo",
        "europe-west4-docker.pkg.dev/my-project/images",
        "northamerica-northeast1-docker.pkg.dev/my-project/r",
        "us-docker.pkg.dev/my-project/images",
        "europe-docker.pkg.dev/my-project/images",
        "asia-docker.pkg.dev/my-project/another-repo",
        // Nested paths after the repository.
        "us-docker.pkg.dev/my-project/images/team/app",
        "us-west1-docker.pkg.dev/p-roject/docker-repo/nested1/nested2/test-image",
        // Domain-scoped projects.
        "us-west1-docker.pkg.dev/example.com/my-project/my-repo",
        "us-docker.pkg.dev/example.com/my-project/gcr.io/team",
        // The gcr.io repositories, each in its location.
        "us-docker.pkg.dev/my-project/gcr.io",
        "us-docker.pkg.dev/my-project/us.gcr.io",
        "europe-docker.pkg.dev/my-project/eu.gcr.io",
        "asia-docker.pkg.dev/my-project/asia.gcr.io/app",
    ];

    /// Refused URIs and what an issue on `uri` must say for each.
    const REFUSED: &[(&str, &[&str])] = &[
        // Look-alikes.
        (
            "gcr.io.evil.com/p",
            &["not a Google Cloud registry", GCR_EXAMPLE, AR_EXAMPLE],
        ),
        (
            "evilgcr.io/p",
            &["not a Google Cloud registry", GCR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev.evil.com/p/r",
            &["not a Google Cloud registry", AR_EXAMPLE],
        ),
        (
            "us-docker-pkg.dev/p/r",
            &["not a Google Cloud registry", AR_EXAMPLE],
        ),
        ("docker.pkg.dev/p/r", &["not a Google Cloud registry"]),
        (
            "docker.io/me",
            &["not a Google Cloud registry", "not `docker.io`"],
        ),
        // Undocumented `*.gcr.io` subdomains.
        (
            "foo.gcr.io/my-project",
            &["`foo.gcr.io` is not a Container Registry host", GCR_EXAMPLE],
        ),
        (
            "eu.eu.gcr.io/my-project",
            &["not a Container Registry host", GCR_EXAMPLE],
        ),
        (
            "europe.gcr.io/my-project",
            &["not a Container Registry host", GCR_EXAMPLE],
        ),
        // Bad Artifact Registry locations.
        (
            "moon-docker.pkg.dev/my-project/repo",
            &[
                "`moon` in `moon-docker.pkg.dev` is not an Artifact Registry location",
                AR_EXAMPLE,
            ],
        ),
        (
            "us-1-docker.pkg.dev/my-project/repo",
            &["`us-1`", "location", AR_EXAMPLE],
        ),
        (
            "central1-docker.pkg.dev/my-project/repo",
            &["location", AR_EXAMPLE],
        ),
        (
            "us-central-docker.pkg.dev/my-project/repo",
            &["`us-central`", "location", AR_EXAMPLE],
        ),
        (
            "evil.us-docker.pkg.dev/my-project/repo",
            &["`evil.us`", "location"],
        ),
        ("-docker.pkg.dev/my-project/repo", &["location", AR_EXAMPLE]),
        // Missing segments.
        ("gcr.io", &["has no project id", GCR_EXAMPLE]),
        ("us-docker.pkg.dev", &["has no project id", AR_EXAMPLE]),
        (
            "us-docker.pkg.dev/my-project",
            &[
                "has no repository",
                "exactly a project id and a repository",
                AR_EXAMPLE,
            ],
        ),
        (
            "us-docker.pkg.dev/example.com/my-project",
            &["has no repository", AR_EXAMPLE],
        ),
        (
            "gcr.io/example.com",
            &[
                "domain `example.com`",
                "no project id",
                "`example.com/my-project`",
                GCR_DOMAIN_EXAMPLE,
            ],
        ),
        (
            "gcr.io/my-project//team",
            &["empty path segment", GCR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/my-project//repo",
            &["empty path segment", AR_EXAMPLE],
        ),
        // Bad project ids.
        (
            "gcr.io/abc",
            &["`abc` is not a valid Google Cloud project id", GCR_EXAMPLE],
        ),
        ("gcr.io/short", &["`short`", "project id", GCR_EXAMPLE]),
        (
            "gcr.io/1project",
            &["`1project`", "project id", GCR_EXAMPLE],
        ),
        (
            "gcr.io/my-project-",
            &["`my-project-`", "project id", GCR_EXAMPLE],
        ),
        (
            "gcr.io/My-Project",
            &["`My-Project`", "project id", GCR_EXAMPLE],
        ),
        (
            "gcr.io/my_project",
            &["`my_project`", "project id", GCR_EXAMPLE],
        ),
        (
            "gcr.io/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &["project id", "6 to 30", GCR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/abc/repo",
            &["`abc`", "project id", AR_EXAMPLE],
        ),
        (
            "gcr.io/example.com/abc",
            &["`abc`", "project id", GCR_DOMAIN_EXAMPLE],
        ),
        // Bad domains of domain-scoped projects.
        (
            "gcr.io/Example.com/my-project",
            &["`Example.com` is not a valid domain", GCR_DOMAIN_EXAMPLE],
        ),
        (
            "gcr.io/example..com/my-project",
            &["`example..com`", "domain", GCR_DOMAIN_EXAMPLE],
        ),
        (
            "gcr.io/-example.com/my-project",
            &["`-example.com`", "domain", GCR_DOMAIN_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/example_x.com/my-project/repo",
            &["`example_x.com`", "domain", AR_DOMAIN_EXAMPLE],
        ),
        // Bad repository ids.
        (
            "us-central1-docker.pkg.dev/my-project/1repo",
            &[
                "`1repo` is not a valid Artifact Registry repository",
                AR_EXAMPLE,
            ],
        ),
        (
            "us-docker.pkg.dev/my-project/Repo",
            &[
                "`Repo` is not a valid Artifact Registry repository",
                AR_EXAMPLE,
            ],
        ),
        (
            "us-docker.pkg.dev/my-project/My_Repo",
            &["`My_Repo` is not a valid Artifact Registry repository"],
        ),
        (
            "us-docker.pkg.dev/my-project/-repo",
            &["`-repo`", "repository", AR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/my-project/repo-",
            &["`repo-`", "repository", AR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/my-project/my.repo",
            &["`my.repo`", "repository", AR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/my-project/foo.gcr.io",
            &["`foo.gcr.io`", "repository", AR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/my-project/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &["repository", "up to 63"],
        ),
        // gcr.io repositories in the wrong location.
        (
            "europe-docker.pkg.dev/my-project/gcr.io",
            &[
                "`gcr.io` is a gcr.io repository",
                "location `us`",
                "not in `europe`",
                "`us-docker.pkg.dev/my-project/gcr.io`",
            ],
        ),
        (
            "us-central1-docker.pkg.dev/my-project/us.gcr.io",
            &[
                "`us.gcr.io`",
                "location `us`",
                "`us-docker.pkg.dev/my-project/us.gcr.io`",
            ],
        ),
        (
            "us-docker.pkg.dev/my-project/eu.gcr.io",
            &[
                "`eu.gcr.io`",
                "location `europe`",
                "`europe-docker.pkg.dev/my-project/eu.gcr.io`",
            ],
        ),
        (
            "europe-docker.pkg.dev/my-project/asia.gcr.io",
            &[
                "`asia.gcr.io`",
                "location `asia`",
                "`asia-docker.pkg.dev/my-project/asia.gcr.io`",
            ],
        ),
        // Ports.
        (
            "gcr.io:443/my-project",
            &["must not include a port (`:443`)", GCR_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev:5000/my-project/repo",
            &["port (`:5000`)", AR_EXAMPLE],
        ),
        // Upper case and other invalid segments in nested paths.
        (
            "gcr.io/my-project/Team",
            &["path segment `Team`", GCR_NESTED_EXAMPLE],
        ),
        (
            "gcr.io/example.com/my-project/App",
            &["path segment `App`", GCR_NESTED_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/my-project/repo/Team/app",
            &["path segment `Team`", AR_NESTED_EXAMPLE],
        ),
        (
            "us-docker.pkg.dev/my-project/repo/team-",
            &["path segment `team-`", AR_NESTED_EXAMPLE],
        ),
    ];

    #[test]
    fn accepts_every_documented_form() {
        for &uri in ACCEPTED {
            assert_eq!(accepted(validate(uri))["uri"], uri, "{uri}");
        }
        let longest_project = format!("gcr.io/a{}", "b".repeat(29));
        accepted(validate(&longest_project));
        let longest_repository = format!("us-docker.pkg.dev/my-project/a{}", "b".repeat(62));
        accepted(validate(&longest_repository));
    }

    #[test]
    fn refuses_look_alikes_bad_names_ports_and_paths() {
        for &(uri, needles) in REFUSED {
            let found = issues(validate(uri));
            assert_issue(&found, "uri", needles);
            assert!(found.iter().all(|i| i.field == "uri"), "{uri}: {found:#?}");
        }
    }

    #[test]
    fn refuses_a_path_longer_than_docker_allows() {
        let long = format!("gcr.io/my-project/{}", ["abcdefghij"; 25].join("/"));
        assert_issue(&issues(validate(&long)), "uri", &["longer than 255"]);
    }

    #[test]
    fn normalises_an_upper_case_domain() {
        assert_eq!(
            accepted(validate("GCR.io/my-project/"))["uri"],
            "gcr.io/my-project"
        );
        assert_eq!(
            accepted(validate("US-Docker.PKG.dev/my-project/images"))["uri"],
            "us-docker.pkg.dev/my-project/images"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
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
        let i = issues(validate("moon-docker.pkg.dev:1/abc/Repo/App"));
        for needle in ["port", "`moon`", "`abc`", "`Repo`", "`App`"] {
            assert_issue(&i, "uri", &[needle]);
        }
    }

    #[test]
    fn accepts_a_default_repository() {
        let config = accepted(Gcp::validate_config(
            &NoHost,
            r#"{"uri":"gcr.io/my-project","default_repository":"team/app"}"#,
        ));
        assert_eq!(config["default_repository"], "team/app");
        assert_issue(
            &issues(Gcp::validate_config(
                &NoHost,
                r#"{"uri":"gcr.io/my-project","default_repository":"Team"}"#,
            )),
            "default_repository",
            &["`Team`"],
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
        let metadata = Gcp::metadata();
        assert_metadata(&metadata, "gcp");
        let schema: flavor_kit::serde_json::Value =
            flavor_kit::serde_json::from_str(&metadata.config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            accepted(validate(example.as_str().unwrap()));
        }
    }
}
