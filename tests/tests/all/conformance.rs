//! One table of cases for the `default`, `github` and `aws` flavors, run
//! through the real sandbox against the Rust built-ins and their Python
//! (tests/guests-py) and JavaScript (tests/guests-js) re-implementations,
//! built from source with the pinned componentize-py and componentize-js.
//! Every language must make the same decision with the same normalised
//! config, the same issues (field paths and messages) and the same warnings,
//! and that answer must be the table's. The same Rust flavors built for WIT
//! 0.1 (tests/guests-v0-1, frozen sources against wit/v0.1) answer it alike
//! on today's host: the 0.1 suite holds unchanged.

use std::sync::Arc;
use std::time::Duration;

use flavorbox_grammar::Reference;
use flavorbox_sandbox::flavor::PushDecision;
use flavorbox_sandbox::{
    CallContext, LoadedFlavor, LookupError, RepositoryLookup, Sandbox, Validation,
};
use flavorbox_tests::polyglot::{self, Lang};
use serde_json::{Value, json};

/// What the fake `repository-exists` answers in a push case.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// No lookup is granted to the call.
    NotGranted,
    Exists,
    Missing,
    /// The host could not reach the registry.
    Fails,
}

/// One row of the table.
enum Case {
    /// The config is accepted and normalised to this JSON.
    Accept(&'static str, Value),
    /// The config is refused with issues on exactly these fields, in order.
    Refuse(&'static str, &'static [&'static str]),
    /// A push of `image` with `config`: approved with one warning per entry,
    /// containing each of the entry's texts.
    Approve {
        config: &'static str,
        image: &'static str,
        lookup: Lookup,
        warnings: &'static [&'static [&'static str]],
    },
}

use Case::{Accept, Approve, Refuse};

fn default_table() -> Vec<Case> {
    vec![
        Accept(
            r#"{"uri":"localhost:5000"}"#,
            json!({"uri":"localhost:5000"}),
        ),
        Accept(
            r#"{"uri":"Registry.Example.COM/team/"}"#,
            json!({"uri":"registry.example.com/team"}),
        ),
        Accept(r#"{"uri":"[::1]:5000"}"#, json!({"uri":"[::1]:5000"})),
        Accept(
            r#"{"uri":"registry.example.com:5050/group/sub-group/project"}"#,
            json!({"uri":"registry.example.com:5050/group/sub-group/project"}),
        ),
        Accept(
            r#"{"uri":"localhost:5000","default_repository":"team/app"}"#,
            json!({"uri":"localhost:5000","default_repository":"team/app"}),
        ),
        Accept(
            r#"{"uri":"localhost:5000","default_repository":null}"#,
            json!({"uri":"localhost:5000","default_repository":null}),
        ),
        Refuse(
            r#"{"uri":"localhost:50a0/Team","user":"x"}"#,
            &["user", "uri", "uri"],
        ),
        Refuse(r#"{"uri":"localhost:65536"}"#, &["uri"]),
        Refuse(r#"{"uri":"localhost:"}"#, &["uri"]),
        Refuse(r#"{"uri":"https://registry.example.com"}"#, &["uri"]),
        Refuse(r#"{"uri":"registry.example.com/my team"}"#, &["uri"]),
        Refuse(r#"{"uri":"registry.example.com/team//app"}"#, &["uri"]),
        Refuse(
            r#"{"uri":"registry.example.com/te..am/-x"}"#,
            &["uri", "uri"],
        ),
        Refuse("{}", &["uri"]),
        Refuse("[]", &[""]),
        Refuse(r#"{"uri":5}"#, &["uri"]),
        Refuse(r#"{"uri":"   "}"#, &["uri"]),
        Refuse(
            r#"{"uri":"localhost:5000","default_repository":"Team/App"}"#,
            &["default_repository"],
        ),
        Refuse(
            r#"{"uri":"localhost:5000","default_repository":7}"#,
            &["default_repository"],
        ),
        Refuse(
            r#"{"uri":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com"}"#,
            &["uri"],
        ),
        Approve {
            config: r#"{"uri":"localhost:5000"}"#,
            image: "localhost:5000/app:1",
            lookup: Lookup::NotGranted,
            warnings: &[],
        },
    ]
}

fn github_table() -> Vec<Case> {
    vec![
        Accept(r#"{"uri":"ghcr.io/zenml"}"#, json!({"uri":"ghcr.io/zenml"})),
        Accept(
            r#"{"uri":"GHCR.io/zenml/"}"#,
            json!({"uri":"ghcr.io/zenml"}),
        ),
        Accept(
            r#"{"uri":"containers.octocorp.ghe.com/my-organization"}"#,
            json!({"uri":"containers.octocorp.ghe.com/my-organization"}),
        ),
        Accept(
            r#"{"uri":"docker.pkg.github.com/zenml-io/zenml","default_repository":"app"}"#,
            json!({"uri":"docker.pkg.github.com/zenml-io/zenml","default_repository":"app"}),
        ),
        Refuse(r#"{"uri":"ghcr.io.evil.com/zenml"}"#, &["uri"]),
        Refuse(r#"{"uri":"github.com/zenml"}"#, &["uri"]),
        Refuse(r#"{"uri":"octocorp.ghe.com/zenml"}"#, &["uri"]),
        Refuse(r#"{"uri":"containers.ghe.com/zenml"}"#, &["uri"]),
        Refuse(r#"{"uri":"ghcr.io"}"#, &["uri"]),
        Refuse(r#"{"uri":"ghcr.io/zenml/team"}"#, &["uri"]),
        Refuse(r#"{"uri":"ghcr.io/Zenml"}"#, &["uri"]),
        Refuse(r#"{"uri":"ghcr.io/-bad"}"#, &["uri"]),
        Refuse(r#"{"uri":"ghcr.io/a--b"}"#, &["uri"]),
        Refuse(r#"{"uri":"ghcr.io:443/zenml"}"#, &["uri"]),
        Refuse(r#"{"uri":"ghcr.evil.io/a/b"}"#, &["uri", "uri"]),
        Refuse(r#"{"uri":"docker.pkg.github.com/owner"}"#, &["uri"]),
        Refuse(r#"{"uri":"docker.pkg.github.com/owner/Repo"}"#, &["uri"]),
        Refuse(
            r#"{"uri":"ghcr.io/zenml","default_repository":"a//b","token":"x"}"#,
            &["token", "default_repository"],
        ),
        Approve {
            config: r#"{"uri":"ghcr.io/zenml"}"#,
            image: "ghcr.io/zenml/app:1",
            lookup: Lookup::NotGranted,
            warnings: &[],
        },
    ]
}

const ECR: &str = r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com","region":"us-east-1"}"#;
const ECR_IMAGE: &str = "715803424592.dkr.ecr.us-east-1.amazonaws.com/team/app:1";

fn aws_table() -> Vec<Case> {
    vec![
        Accept(
            r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com"}"#,
            json!({"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com","region":"us-east-1"}),
        ),
        Accept(
            r#"{"uri":"123456789012.dkr-ecr-fips.us-gov-west-1.on.aws","region":"us-gov-west-1"}"#,
            json!({"uri":"123456789012.dkr-ecr-fips.us-gov-west-1.on.aws","region":"us-gov-west-1"}),
        ),
        Accept(
            r#"{"uri":"123456789012.DKR.ECR.cn-north-1.amazonaws.com.cn"}"#,
            json!({"uri":"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn","region":"cn-north-1"}),
        ),
        Accept(
            r#"{"uri":"123456789012.dkr.ecr.cn-north-1.on.amazonwebservices.com.cn","default_repository":"ml/app"}"#,
            json!({"uri":"123456789012.dkr.ecr.cn-north-1.on.amazonwebservices.com.cn","region":"cn-north-1","default_repository":"ml/app"}),
        ),
        Refuse(
            r#"{"uri":"123456789012.dkr.ecr.cn-north-1.amazonaws.com"}"#,
            &["uri"],
        ),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com/team"}"#,
            &["uri"],
        ),
        Refuse(r#"{"uri":"public.ecr.aws/alias"}"#, &["uri"]),
        Refuse(r#"{"uri":"public.ecr.aws"}"#, &["uri"]),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com.evil.com"}"#,
            &["uri"],
        ),
        Refuse(
            r#"{"uri":"12345.dkr.ecr.us-east-1.amazonaws.com"}"#,
            &["uri"],
        ),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr-fips.eu-west-1.amazonaws.com"}"#,
            &["uri"],
        ),
        Refuse(
            r#"{"uri":"715803424592.dkr-ecr.us-east-1.amazonaws.com"}"#,
            &["uri"],
        ),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr.moon-1.amazonaws.com"}"#,
            &["uri"],
        ),
        Refuse(
            r#"{"uri":"715803424592.ecr.us-east-1.amazonaws.com"}"#,
            &["uri"],
        ),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com:443"}"#,
            &["uri"],
        ),
        Refuse(r#"{"uri":"registry.example.com"}"#, &["uri"]),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com","region":"eu-west-1"}"#,
            &["region"],
        ),
        Refuse(
            r#"{"uri":"nope.example.com","region":"moon-1"}"#,
            &["uri", "region"],
        ),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com","default_repository":"a"}"#,
            &["default_repository"],
        ),
        Refuse(
            r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com","zone":"x","region":5}"#,
            &["zone", "region"],
        ),
        Approve {
            config: ECR,
            image: ECR_IMAGE,
            lookup: Lookup::Exists,
            warnings: &[],
        },
        Approve {
            config: ECR,
            image: ECR_IMAGE,
            lookup: Lookup::Missing,
            warnings: &[&[
                "does not exist",
                "`aws ecr create-repository --repository-name team/app --region us-east-1`",
            ]],
        },
        Approve {
            config: r#"{"uri":"715803424592.dkr.ecr.us-east-1.amazonaws.com"}"#,
            image: ECR_IMAGE,
            lookup: Lookup::Missing,
            warnings: &[&["--region us-east-1`"]],
        },
        Approve {
            config: ECR,
            image: ECR_IMAGE,
            lookup: Lookup::Fails,
            warnings: &[&[
                "Could not check whether Amazon ECR repository `team/app` exists",
                "could not be reached",
            ]],
        },
        Approve {
            config: ECR,
            image: ECR_IMAGE,
            lookup: Lookup::NotGranted,
            warnings: &[&["Could not check whether", "not granted"]],
        },
    ]
}

/// The fake registry behind `repository-exists`.
struct FakeLookup(Lookup);

impl RepositoryLookup for FakeLookup {
    fn repository_exists(&self, repository: &str, _timeout: Duration) -> Result<bool, LookupError> {
        assert_eq!(repository, "team/app");
        match self.0 {
            Lookup::Exists => Ok(true),
            Lookup::Missing => Ok(false),
            Lookup::Fails | Lookup::NotGranted => Err(LookupError::Failed(
                "the registry could not be reached".into(),
            )),
        }
    }
}

fn ctx(lookup: Option<Lookup>) -> CallContext {
    CallContext {
        tenant: "conformance".into(),
        limits: None,
        repository_lookup: match lookup {
            None | Some(Lookup::NotGranted) => None,
            Some(l) => Some(Arc::new(FakeLookup(l))),
        },
    }
}

/// What a call answered, in a form to compare across languages.
#[derive(Debug, PartialEq)]
enum Answer {
    Accepted(Value),
    Refused(Vec<(String, String)>),
    Pushed(PushDecision),
}

fn validation(v: Validation) -> Answer {
    match v {
        Ok(map) => Answer::Accepted(Value::Object(map)),
        Err(issues) => Answer::Refused(issues.into_iter().map(|i| (i.field, i.message)).collect()),
    }
}

fn answer(sandbox: &Sandbox, flavor: &LoadedFlavor, case: &Case) -> Answer {
    let label = format!("{} ({})", flavor.name(), flavor.metadata().description);
    match case {
        Accept(config, _) | Refuse(config, _) => validation(
            sandbox
                .validate_config(flavor, &ctx(None), config)
                .unwrap_or_else(|e| panic!("{label}: validate-config of {config} failed: {e}"))
                .value,
        ),
        Approve {
            config,
            image,
            lookup,
            ..
        } => {
            let image = Reference::parse(image).expect("valid image");
            Answer::Pushed(
                sandbox
                    .prepare_image_push(flavor, &ctx(Some(*lookup)), config, &image, None)
                    .unwrap_or_else(|e| panic!("{label}: prepare-image-push failed: {e}"))
                    .value,
            )
        }
    }
}

/// The table's own expectation holds for an answer.
fn check_expected(case: &Case, got: &Answer, who: &str) {
    match (case, got) {
        (Accept(config, want), Answer::Accepted(map)) => {
            assert_eq!(map, want, "{who}: normalised {config}");
        }
        (Refuse(config, fields), Answer::Refused(issues)) => {
            let got: Vec<&str> = issues.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(
                &got, fields,
                "{who}: fields of the issues of {config}: {issues:#?}"
            );
            assert!(
                issues.iter().all(|(_, m)| !m.is_empty()),
                "{who}: {issues:?}"
            );
        }
        (
            Approve {
                config, warnings, ..
            },
            Answer::Pushed(PushDecision::Approve { warnings: got }),
        ) => {
            assert_eq!(
                got.len(),
                warnings.len(),
                "{who}: warnings of the push with {config}: {got:#?}"
            );
            for (w, needles) in got.iter().zip(warnings.iter()) {
                for needle in *needles {
                    assert!(w.contains(needle), "{who}: warning {w:?} lacks {needle:?}");
                }
            }
        }
        (_, got) => panic!("{who}: the answer {got:?} is not the table's"),
    }
}

/// Runs `table` against the Rust built-in `name`, the same flavor built for
/// WIT 0.1 (a fixture from tests/guests-v0-1, called through the host's 0.1
/// bindings), and its Python and JS re-implementations: each answer is the
/// table's, and all four are equal.
fn conform(name: &str, table: Vec<Case>) {
    let sandbox = Sandbox::new(polyglot::caching_sandbox_config()).expect("sandbox");
    let rust = flavorbox_builtin::components()
        .map(|bytes| sandbox.load(bytes).expect("built-in loads"))
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no built-in flavor `{name}`"));
    let others: Vec<(Lang, Arc<LoadedFlavor>)> = Lang::ALL
        .into_iter()
        .map(|lang| {
            let path = polyglot::test_guest(lang, name);
            let flavor = sandbox
                .load_file(&path)
                .unwrap_or_else(|e| panic!("{} `{name}` loads: {e}", lang.name()));
            assert_eq!(flavor.name(), name, "{}", lang.name());
            assert_eq!(
                flavor.metadata().capabilities,
                rust.metadata().capabilities,
                "{} `{name}` asks for the same capabilities",
                lang.name()
            );
            (lang, flavor)
        })
        .collect();
    let v0_1 = sandbox
        .load(&flavorbox_tests::guest_bytes(
            &flavorbox_tests::builtin_v0_1(name),
        ))
        .unwrap_or_else(|e| panic!("the 0.1 fixture of `{name}` loads: {e}"));
    assert_eq!(v0_1.metadata().wit_version, "0.1.0", "{name}");
    assert_eq!(rust.metadata().wit_version, "0.2.0", "{name}");
    assert_eq!(v0_1.name(), name);
    assert_eq!(v0_1.metadata().capabilities, rust.metadata().capabilities);
    for case in &table {
        let expected = answer(&sandbox, &rust, case);
        check_expected(case, &expected, &format!("rust {name}"));
        let old = answer(&sandbox, &v0_1, case);
        check_expected(case, &old, &format!("rust {name} built for 0.1"));
        assert_eq!(old, expected, "`{name}` built for 0.1 answers unlike 0.2");
        for (lang, flavor) in &others {
            let got = answer(&sandbox, flavor, case);
            check_expected(case, &got, &format!("{} {name}", lang.name()));
            assert_eq!(
                got,
                expected,
                "{} `{name}` answers unlike the Rust built-in",
                lang.name()
            );
        }
    }
}

#[test]
fn default_decides_alike_in_rust_0_1_and_0_2_python_and_js() {
    conform("default", default_table());
}

#[test]
fn github_decides_alike_in_rust_0_1_and_0_2_python_and_js() {
    conform("github", github_table());
}

#[test]
fn aws_decides_alike_in_rust_0_1_and_0_2_python_and_js_with_the_repository_lookup() {
    conform("aws", aws_table());
}
