//! Every built-in flavor through the real sandbox: the components embedded by
//! `crates/builtin/build.rs`, loaded with `Sandbox::load` and called like any other
//! flavor. Table tests of `validate-config` (normalised configs, exact field
//! paths, messages that show a valid example), `prepare-image-push` (the
//! `aws` flavor's `repository-exists` check against a recording lookup) and
//! the metadata each flavor declares.
//!
//! The application layer applies the host's base rules before a flavor runs;
//! these tests call the sandbox directly with already-normalised URIs, except
//! where a test says it goes through `config::apply_base_rules`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flavorbox_grammar::Reference;
use flavorbox_sandbox::flavor::{Capability, ConfigIssue, PushDecision};
use flavorbox_sandbox::{
    CallContext, LoadedFlavor, LookupError, RepositoryLookup, Sandbox, SandboxConfig,
};
use serde_json::{Map, Value, json};

const ECR: &str = "715803424592.dkr.ecr.us-east-1.amazonaws.com";
const ECR_CHINA: &str = "715803424592.dkr.ecr.cn-north-1.amazonaws.com.cn";

/// One sandbox with every built-in flavor loaded, shared by the tests of this file.
struct Builtins {
    sandbox: Sandbox,
    flavors: BTreeMap<String, Arc<LoadedFlavor>>,
}

fn builtins() -> &'static Builtins {
    static BUILTINS: OnceLock<Builtins> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
        let flavors = flavorbox_builtin::components()
            .map(|bytes| {
                let flavor = sandbox.load(bytes).expect("built-in flavor loads");
                (flavor.name().to_string(), flavor)
            })
            .collect();
        Builtins { sandbox, flavors }
    })
}

fn flavor(name: &str) -> &'static Arc<LoadedFlavor> {
    builtins()
        .flavors
        .get(name)
        .unwrap_or_else(|| panic!("no built-in flavor `{name}`"))
}

fn ctx() -> CallContext {
    CallContext {
        tenant: "builtin-tests".into(),
        ..CallContext::default()
    }
}

/// Calls `validate-config` of `name` with `config`; panics if the call itself fails.
fn validate(name: &str, config: &Value) -> Result<Map<String, Value>, Vec<ConfigIssue>> {
    let b = builtins();
    b.sandbox
        .validate_config(flavor(name), &ctx(), &config.to_string())
        .unwrap_or_else(|e| panic!("validate-config of `{name}` failed: {e}"))
        .value
}

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().expect("a JSON object").clone()
}

/// Asserts every config is accepted and normalised to the expected object.
fn assert_valid(name: &str, cases: &[(Value, Value)]) {
    for (config, expected) in cases {
        match validate(name, config) {
            Ok(normalised) => assert_eq!(
                normalised,
                obj(expected.clone()),
                "{name}: normalised form of {config}"
            ),
            Err(issues) => panic!("{name}: {config} was rejected: {issues:#?}"),
        }
    }
}

/// An invalid config, the field path of every issue in order, and text every
/// message must contain (always including a valid example).
struct Invalid {
    config: Value,
    fields: &'static [&'static str],
    needles: &'static [&'static str],
}

fn invalid(
    config: Value,
    fields: &'static [&'static str],
    needles: &'static [&'static str],
) -> Invalid {
    Invalid {
        config,
        fields,
        needles,
    }
}

/// Asserts every config is rejected with issues on exactly the given fields,
/// each message showing a valid example and containing the needles.
fn assert_invalid(name: &str, cases: &[Invalid]) {
    for case in cases {
        let issues = match validate(name, &case.config) {
            Ok(normalised) => panic!("{name}: {} was accepted as {normalised:?}", case.config),
            Err(issues) => issues,
        };
        let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields, case.fields,
            "{name}: fields of {}: {issues:#?}",
            case.config
        );
        for issue in &issues {
            // A valid value, or for an unknown field the fields that are valid.
            let names_example = ["An example of a valid", "e.g. ", "this flavor accepts: "]
                .iter()
                .any(|shows| issue.message.contains(shows));
            assert!(names_example, "{name}: no valid example in {issue:?}");
        }
        for needle in case.needles {
            assert!(
                issues.iter().any(|i| i.message.contains(needle)),
                "{name}: {} expected `{needle}` in {issues:#?}",
                case.config
            );
        }
    }
}

fn uri(u: &str) -> Value {
    json!({ "uri": u })
}

#[test]
fn every_builtin_flavor_is_embedded_and_loads() {
    let names: Vec<&str> = builtins().flavors.keys().map(String::as_str).collect();
    assert_eq!(names, flavorbox_tests::BUILTIN_NAMES);
}

#[test]
fn default_accepts_any_registry_and_rejects_bad_ports_and_paths() {
    assert_valid(
        "default",
        &[
            (uri("localhost:5000"), uri("localhost:5000")),
            (uri("127.0.0.1:5000/ml"), uri("127.0.0.1:5000/ml")),
            (
                uri("registry.example.com/team/sub-team"),
                uri("registry.example.com/team/sub-team"),
            ),
        ],
    );
    assert_invalid(
        "default",
        &[
            invalid(
                uri("localhost:50a0"),
                &["uri"],
                &["the port `50a0`", "`localhost:5000`"],
            ),
            invalid(
                uri("registry.example.com/Team"),
                &["uri"],
                &["path segment `Team`", "`registry.example.com/team`"],
            ),
            invalid(
                json!({"uri": "localhost:5000", "colour": "red"}),
                &["colour"],
                &["unknown field `colour`; this flavor accepts: uri"],
            ),
            invalid(
                json!({}),
                &["uri"],
                &["`uri` is required, e.g. \"registry.example.com/team\""],
            ),
            invalid(
                uri("https://registry.example.com"),
                &["uri"],
                &["must not include a scheme (`https://`)"],
            ),
        ],
    );
}

#[test]
fn dockerhub_accepts_one_account_and_normalises_index_docker_io() {
    assert_valid(
        "dockerhub",
        &[
            (uri("docker.io/my-account"), uri("docker.io/my-account")),
            (uri("docker.io/zenml"), uri("docker.io/zenml")),
            (uri("index.docker.io/zenml"), uri("docker.io/zenml")),
            (uri("docker.io/a_b-c"), uri("docker.io/a_b-c")),
        ],
    );
    assert_invalid(
        "dockerhub",
        &[
            invalid(
                uri("docker.io"),
                &["uri"],
                &["exactly one Docker Hub account", "`docker.io/my-account`"],
            ),
            invalid(
                uri("docker.io/team/app"),
                &["uri"],
                &["has 2 path segments (`team/app`)", "`docker.io/my-account`"],
            ),
            invalid(
                uri("ghcr.io/me"),
                &["uri"],
                &["its domain must be `docker.io`, not `ghcr.io`"],
            ),
            invalid(
                uri("docker.io/x"),
                &["uri"],
                &["`x` is not a valid Docker Hub account"],
            ),
            invalid(
                uri("docker.io/a--b"),
                &["uri"],
                &["`a--b` is not a valid Docker Hub account"],
            ),
        ],
    );
}

#[test]
fn github_accepts_a_lowercase_login_on_ghcr_io() {
    assert_valid(
        "github",
        &[
            (uri("ghcr.io/zenml"), uri("ghcr.io/zenml")),
            (
                uri("ghcr.io/my-organization"),
                uri("ghcr.io/my-organization"),
            ),
        ],
    );
    assert_invalid(
        "github",
        &[
            invalid(
                uri("ghcr.io/ZenML"),
                &["uri"],
                &[
                    "must be lowercase in an image path (`ghcr.io/zenml`)",
                    "`ghcr.io/my-organization`",
                ],
            ),
            invalid(
                uri("ghcr.io"),
                &["uri"],
                &["exactly one GitHub user or organization after `ghcr.io`"],
            ),
            invalid(
                uri("docker.io/me"),
                &["uri"],
                &["its domain must be `ghcr.io`, not `docker.io`"],
            ),
            invalid(
                uri("ghcr.io/-bad"),
                &["uri"],
                &["`-bad` is not a valid GitHub user or organization"],
            ),
        ],
    );
}

#[test]
fn gitlab_accepts_groups_and_projects_on_registry_gitlab_com() {
    assert_valid(
        "gitlab",
        &[
            (
                uri("registry.gitlab.com/my-group"),
                uri("registry.gitlab.com/my-group"),
            ),
            (
                uri("registry.gitlab.com/my-group/sub/project"),
                uri("registry.gitlab.com/my-group/sub/project"),
            ),
        ],
    );
    assert_invalid(
        "gitlab",
        &[
            invalid(
                uri("gitlab.com/my-group"),
                &["uri"],
                &[
                    "its domain must be `registry.gitlab.com`",
                    "`registry.gitlab.com/my-group/my-project`",
                ],
            ),
            invalid(
                uri("registry.gitlab.com"),
                &["uri"],
                &["at least a group after `registry.gitlab.com`"],
            ),
            invalid(
                uri("registry.gitlab.com/My-Group"),
                &["uri"],
                &["path segment `My-Group`"],
            ),
        ],
    );
}

#[test]
fn gcp_accepts_artifact_registry_and_container_registry() {
    assert_valid(
        "gcp",
        &[
            (uri("gcr.io/my-project"), uri("gcr.io/my-project")),
            (uri("eu.gcr.io/my-project"), uri("eu.gcr.io/my-project")),
            (
                uri("europe-west4-docker.pkg.dev/my-project/my-repository"),
                uri("europe-west4-docker.pkg.dev/my-project/my-repository"),
            ),
            (
                uri("us-docker.pkg.dev/my-project/images"),
                uri("us-docker.pkg.dev/my-project/images"),
            ),
        ],
    );
    assert_invalid(
        "gcp",
        &[
            invalid(
                uri("gcr.io/abc"),
                &["uri"],
                &[
                    "`abc` is not a valid Google Cloud project id",
                    "`gcr.io/my-project`",
                ],
            ),
            invalid(
                uri("mars-docker.pkg.dev/my-project/images"),
                &["uri"],
                &["`mars` in `mars-docker.pkg.dev` is not an Artifact Registry location"],
            ),
            invalid(
                uri("europe-west4-docker.pkg.dev/my-project"),
                &["uri"],
                &[
                    "exactly a project id and a repository",
                    "`europe-west4-docker.pkg.dev/my-project/my-repository`",
                ],
            ),
            invalid(
                uri("docker.io/me"),
                &["uri"],
                &["is not a Google Cloud registry", "`gcr.io/my-project`"],
            ),
            invalid(
                uri("us-docker.pkg.dev/my-project/My_Repo"),
                &["uri"],
                &["`My_Repo` is not a valid Artifact Registry repository"],
            ),
        ],
    );
}

#[test]
fn azure_accepts_a_login_server_with_an_optional_path() {
    assert_valid(
        "azure",
        &[
            (uri("myregistry.azurecr.io"), uri("myregistry.azurecr.io")),
            (
                uri("myregistry.azurecr.io/team"),
                uri("myregistry.azurecr.io/team"),
            ),
        ],
    );
    assert_invalid(
        "azure",
        &[
            invalid(
                uri("my.azurecr.io"),
                &["uri"],
                &[
                    "`my` is not a valid Azure Container Registry name",
                    "`myregistry.azurecr.io`",
                ],
            ),
            invalid(
                uri("myregistry.example.com"),
                &["uri"],
                &["its domain must be `<name>.azurecr.io`, not `myregistry.example.com`"],
            ),
            invalid(
                uri("myregistry.azurecr.io/Team"),
                &["uri"],
                &["path segment `Team`", "`myregistry.azurecr.io/team`"],
            ),
        ],
    );
}

#[test]
fn aws_accepts_ecr_registries_and_adds_the_region() {
    assert_valid(
        "aws",
        &[
            (uri(ECR), json!({"uri": ECR, "region": "us-east-1"})),
            (
                uri(ECR_CHINA),
                json!({"uri": ECR_CHINA, "region": "cn-north-1"}),
            ),
            (
                uri("123456789012.dkr.ecr.eu-central-1.amazonaws.com"),
                json!({
                    "uri": "123456789012.dkr.ecr.eu-central-1.amazonaws.com",
                    "region": "eu-central-1",
                }),
            ),
            (
                json!({"uri": ECR, "region": "us-east-1", "default_repository": "team/app"}),
                json!({"uri": ECR, "region": "us-east-1", "default_repository": "team/app"}),
            ),
        ],
    );
}

#[test]
fn aws_rejects_a_path_in_the_uri_with_zenmls_exact_message() {
    let issues = validate("aws", &uri(&format!("{ECR}/team"))).expect_err("a `/` is refused");
    assert_eq!(
        issues,
        [ConfigIssue {
            field: "uri".into(),
            message: "Property `uri` can not contain a `/`. An example of a valid URI is: \
                      `715803424592.dkr.ecr.us-east-1.amazonaws.com`"
                .into(),
        }]
    );
}

#[test]
fn aws_rejects_malformed_registries_and_fields_with_their_paths() {
    assert_invalid(
        "aws",
        &[
            invalid(
                uri("12345.dkr.ecr.us-east-1.amazonaws.com"),
                &["uri"],
                &["`12345` is not a 12-digit AWS account id", ECR],
            ),
            invalid(
                uri("123456789012.dkr.ecr.cn-north-1.amazonaws.com"),
                &["uri"],
                &["the China region `cn-north-1` is served from `.amazonaws.com.cn`"],
            ),
            invalid(
                uri("docker.io"),
                &["uri"],
                &["`docker.io` is not an Amazon ECR registry", ECR],
            ),
            invalid(
                json!({"uri": ECR, "region": "eu-west-1"}),
                &["region"],
                &["`region` `eu-west-1` does not match the region of `uri`, `us-east-1`"],
            ),
            invalid(
                json!({"uri": ECR, "default_repository": "Team/App"}),
                &["default_repository"],
                &[
                    "`default_repository` `Team/App` is not a valid repository name",
                    "`my-team/my-app`",
                ],
            ),
            invalid(
                json!({
                    "uri": "12.dkr.ecr.us-east-1.amazonaws.com/x",
                    "default_repository": "Team/App",
                    "region": 7,
                    "profile": "p",
                }),
                &["profile", "uri", "uri", "default_repository", "region"],
                &[
                    "can not contain a `/`",
                    "12-digit",
                    "`region` must be a string, got a number",
                ],
            ),
        ],
    );
}

#[test]
fn base_rules_normalise_the_uri_before_the_flavor_validates_it() {
    let raw = obj(json!({"uri": "index.docker.io/zenml//"}));
    let (registry, config) =
        flavorbox_app::registry_config::apply_base_rules(raw).expect("base rules pass");
    assert_eq!(config["uri"], "docker.io/zenml");
    let normalised = validate("dockerhub", &Value::Object(config)).expect("dockerhub accepts");
    let kept = flavorbox_app::registry_config::check_normalised(&registry, normalised)
        .expect("same registry");
    assert_eq!(kept, obj(uri("docker.io/zenml")));

    // A URI with a trailing `/` reaches `aws` without it, so no `/` remains.
    let (registry, config) =
        flavorbox_app::registry_config::apply_base_rules(obj(uri(&format!("{ECR}/"))))
            .expect("base rules pass");
    let normalised = validate("aws", &Value::Object(config)).expect("aws accepts");
    let kept = flavorbox_app::registry_config::check_normalised(&registry, normalised)
        .expect("same registry");
    assert_eq!(kept, obj(json!({"uri": ECR, "region": "us-east-1"})));
}

/// A `repository-exists` answer fixed in advance; records what it was asked.
struct RecordingLookup {
    answer: Result<bool, LookupError>,
    asked: Mutex<Vec<String>>,
}

impl RecordingLookup {
    fn new(answer: Result<bool, LookupError>) -> Arc<Self> {
        Arc::new(RecordingLookup {
            answer,
            asked: Mutex::new(Vec::new()),
        })
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}

impl RepositoryLookup for RecordingLookup {
    fn repository_exists(&self, repository: &str, _timeout: Duration) -> Result<bool, LookupError> {
        self.asked
            .lock()
            .expect("lock")
            .push(repository.to_string());
        self.answer.clone()
    }
}

/// Validates `config` with `name`, then calls `prepare-image-push` for `image`
/// with `lookup` granted.
fn push(name: &str, config: Value, image: &str, lookup: &Arc<RecordingLookup>) -> PushDecision {
    let b = builtins();
    let normalised = validate(name, &config).expect("config accepted");
    let image = Reference::parse(image)
        .expect("valid reference")
        .with_default_tag();
    let ctx = CallContext {
        repository_lookup: Some(lookup.clone() as Arc<dyn RepositoryLookup>),
        ..ctx()
    };
    b.sandbox
        .prepare_image_push(
            flavor(name),
            &ctx,
            &Value::Object(normalised).to_string(),
            &image,
            None,
        )
        .unwrap_or_else(|e| panic!("prepare-image-push of `{name}` failed: {e}"))
        .value
}

fn aws_push(lookup: &Arc<RecordingLookup>) -> Vec<String> {
    match push("aws", uri(ECR), &format!("{ECR}/team/app:1"), lookup) {
        PushDecision::Approve { warnings } => warnings,
        PushDecision::Deny { reason } => panic!("aws must not deny a push: {reason}"),
    }
}

#[test]
fn aws_approves_a_push_to_an_existing_repository_without_warnings() {
    let lookup = RecordingLookup::new(Ok(true));
    assert_eq!(aws_push(&lookup), Vec::<String>::new());
    assert_eq!(lookup.asked(), ["team/app"]);
}

#[test]
fn aws_warns_that_a_missing_repository_must_be_created_first() {
    let lookup = RecordingLookup::new(Ok(false));
    let warnings = aws_push(&lookup);
    assert_eq!(lookup.asked(), ["team/app"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for needle in [
        "Amazon ECR repository `team/app` does not exist",
        "needs a repository to be created before images are pushed to it",
        "aws ecr create-repository --repository-name team/app --region us-east-1",
    ] {
        assert!(
            warnings[0].contains(needle),
            "`{needle}` in {}",
            warnings[0]
        );
    }
}

#[test]
fn aws_warns_with_the_reason_when_the_lookup_fails() {
    let reason = "registry unreachable: connection refused";
    let lookup = RecordingLookup::new(Err(LookupError::Failed(reason.into())));
    let warnings = aws_push(&lookup);
    assert_eq!(lookup.asked(), ["team/app"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("Could not check whether Amazon ECR repository `team/app`"));
    assert!(warnings[0].contains(reason), "{}", warnings[0]);
}

#[test]
fn flavors_other_than_aws_approve_without_warnings_or_lookups() {
    for (name, registry, image) in [
        (
            "default",
            "localhost:5000/team",
            "localhost:5000/team/app:1",
        ),
        ("dockerhub", "docker.io/zenml", "zenml/app:1"),
        ("github", "ghcr.io/zenml", "ghcr.io/zenml/app:1"),
        (
            "gitlab",
            "registry.gitlab.com/group/project",
            "registry.gitlab.com/group/project/app",
        ),
        ("gcp", "gcr.io/my-project", "gcr.io/my-project/app:1"),
        (
            "azure",
            "myregistry.azurecr.io",
            "myregistry.azurecr.io/team/app:1",
        ),
        (
            "digitalocean",
            "registry.digitalocean.com/my-registry",
            "registry.digitalocean.com/my-registry/app:1",
        ),
    ] {
        let lookup = RecordingLookup::new(Ok(false));
        assert_eq!(
            push(name, uri(registry), image, &lookup),
            PushDecision::Approve { warnings: vec![] },
            "{name}"
        );
        assert_eq!(
            lookup.asked(),
            Vec::<String>::new(),
            "{name} asked the host"
        );
    }
}

#[test]
fn every_flavor_declares_https_docs_and_a_schema_requiring_uri() {
    for (name, flavor) in &builtins().flavors {
        let m = flavor.metadata();
        assert_eq!(&m.name, name);
        assert!(!m.display_name.is_empty(), "{name}");
        assert!(m.docs_url.starts_with("https://"), "{name}: {}", m.docs_url);
        let schema = &m.config_schema;
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert_eq!(schema["type"], "object", "{name}");
        let required = schema["required"].as_array().expect("`required` is a list");
        assert!(required.contains(&json!("uri")), "{name}: {schema}");
        assert_eq!(schema["properties"]["uri"]["type"], "string", "{name}");
    }
}

#[test]
fn only_aws_asks_for_repository_exists_and_only_policy_for_image_info() {
    for (name, flavor) in &builtins().flavors {
        let expected: &[Capability] = match name.as_str() {
            "aws" => &[Capability::RepositoryExists],
            "policy" => &[Capability::ImageInfo],
            _ => &[],
        };
        assert_eq!(flavor.metadata().capabilities, expected, "{name}");
    }
}
