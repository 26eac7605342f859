//! The `aws` flavor: Amazon ECR, `<account>.dkr.ecr.<region>.amazonaws.com`.
//!
//! As in ZenML, the URI is the registry alone (no `/`), the region is derived
//! from it, and before a push the flavor asks the host whether the target
//! repository exists: ECR does not create repositories on push, so a missing
//! one is worth a warning (the push still goes ahead, as in ZenML).

use flavor_kit::serde_json::Value;
use flavor_kit::validate::{self, ConfigCheck, RegistryUri};
use flavor_kit::{
    Capability, ConfigIssue, Flavor, Host, ImageReference, LogLevel, Metadata, PushDecision,
};

/// The `aws` flavor.
pub struct Aws;

const EXAMPLE: &str = "715803424592.dkr.ecr.us-east-1.amazonaws.com";
const CHINA_EXAMPLE: &str = "715803424592.dkr.ecr.cn-north-1.amazonaws.com.cn";
const REGION_EXAMPLE: &str = "us-east-1";
const REPOSITORY_EXAMPLE: &str = "my-team/my-app";
const FIELDS: &[&str] = &["uri", "default_repository", "region"];

impl Flavor for Aws {
    fn metadata() -> Metadata {
        let extra = [
            (
                "default_repository",
                flavor_kit::serde_json::json!({
                    "type": "string",
                    "description": "Repository to push images to when none is given: \
                                    lowercase path components separated by `/`.",
                    "examples": [REPOSITORY_EXAMPLE],
                }),
            ),
            (
                "region",
                flavor_kit::serde_json::json!({
                    "type": "string",
                    "description": "AWS region of the registry. Derived from `uri` (and \
                                    added to the normalised config); when given, it must \
                                    match the region in `uri`.",
                    "examples": [REGION_EXAMPLE],
                }),
            ),
        ];
        Metadata {
            name: "aws".into(),
            display_name: "Amazon Elastic Container Registry (ECR)".into(),
            description: "Amazon ECR private registries \
                          (`<account>.dkr.ecr.<region>.amazonaws.com`). Before a push the flavor \
                          checks that the target repository exists, since ECR does not create \
                          repositories on push."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/aws"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/aws.png".into(),
            config_schema: validate::config_schema(
                "Amazon ECR container registry",
                "`<12-digit account id>.dkr.ecr.<region>.amazonaws.com` (`.amazonaws.com.cn` in \
                 the China regions), without any `/`.",
                &[EXAMPLE, CHINA_EXAMPLE],
                &extra,
            ),
            capabilities: vec![Capability::RepositoryExists],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        let mut cfg = ConfigCheck::parse(config, FIELDS)?;
        let derived = cfg
            .uri(EXAMPLE)
            .and_then(|uri| check_uri(&uri, &mut cfg.issues));

        if let Some(repository) = cfg.optional_str("default_repository", REPOSITORY_EXAMPLE)
            && !validate::is_repository_path(&repository)
        {
            cfg.issue(
                "default_repository",
                format!(
                    "`default_repository` `{repository}` is not a valid repository name: use \
                     {}, separated by `/`",
                    validate::PATH_COMPONENT_RULE
                ),
                REPOSITORY_EXAMPLE,
            );
        }

        match (cfg.optional_str("region", REGION_EXAMPLE), &derived) {
            (Some(given), Some(derived)) if &given != derived => cfg.issue(
                "region",
                format!(
                    "`region` `{given}` does not match the region of `uri`, `{derived}`: \
                     remove `region` (it is derived from `uri`) or set it to `{derived}`"
                ),
                derived,
            ),
            (Some(given), None) if !is_region(&given) => cfg.issue(
                "region",
                format!("`region` `{given}` is not an AWS region"),
                REGION_EXAMPLE,
            ),
            _ => {}
        }
        if let Some(region) = derived {
            cfg.set("region", region);
        }
        cfg.finish()
    }

    fn prepare_image_push(host: &dyn Host, config: &str, image: &ImageReference) -> PushDecision {
        let map = flavor_kit::parse_config(config).unwrap_or_default();
        let uri = map
            .get("uri")
            .and_then(Value::as_str)
            .unwrap_or(&image.domain)
            .to_string();
        let region = map
            .get("region")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| parse_domain(&RegistryUri::parse(&uri)).ok().map(|(_, r)| r));
        let repository = &image.path;

        match host.repository_exists(repository) {
            Ok(true) => {
                host.log(
                    LogLevel::Info,
                    &format!("repository `{repository}` exists on `{uri}`"),
                );
                PushDecision::Approve(vec![])
            }
            Ok(false) => {
                host.log(
                    LogLevel::Info,
                    &format!("repository `{repository}` does not exist on `{uri}`; pushing anyway"),
                );
                let region_arg = region.map(|r| format!(" --region {r}")).unwrap_or_default();
                PushDecision::Approve(vec![format!(
                    "Amazon ECR repository `{repository}` does not exist on `{uri}`. ECR needs a \
                     repository to be created before images are pushed to it, e.g. with \
                     `aws ecr create-repository --repository-name {repository}{region_arg}`. \
                     The push will probably fail."
                )])
            }
            Err(reason) => {
                host.log(
                    LogLevel::Info,
                    &format!(
                        "could not check whether repository `{repository}` exists on `{uri}`: \
                         {reason}"
                    ),
                );
                PushDecision::Approve(vec![format!(
                    "Could not check whether Amazon ECR repository `{repository}` exists on \
                     `{uri}`: {reason}. If it does not exist, the push will fail."
                )])
            }
        }
    }
}

/// ECR rules for the URI; returns the region when the URI is valid.
fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) -> Option<String> {
    let mut ok = true;
    if !uri.segments.is_empty() {
        // ZenML's own message, kept word for word.
        issues.push(ConfigIssue::new(
            "uri",
            format!(
                "Property `uri` can not contain a `/`. An example of a valid URI is: `{EXAMPLE}`"
            ),
        ));
        ok = false;
    }
    match parse_domain(uri) {
        Ok((_, region)) if ok => Some(region),
        Ok(_) => None,
        Err(problem) => {
            let example = if uri.domain.ends_with(".cn") {
                CHINA_EXAMPLE
            } else {
                EXAMPLE
            };
            issues.push(ConfigIssue::with_example("uri", problem, example));
            None
        }
    }
}

/// Splits an ECR registry domain into its account id and region, or says
/// what is wrong with it.
fn parse_domain(uri: &RegistryUri) -> Result<(String, String), String> {
    let domain = &uri.domain;
    if let Some(port) = uri.port() {
        return Err(format!("`uri` `{domain}` must not have a port (`:{port}`)"));
    }
    let not_ecr = || {
        format!(
            "`{domain}` is not an Amazon ECR registry: it must be \
             `<12-digit account id>.dkr.ecr.<region>.amazonaws.com`"
        )
    };
    let (rest, china) = if let Some(rest) = domain.strip_suffix(".amazonaws.com.cn") {
        (rest, true)
    } else if let Some(rest) = domain.strip_suffix(".amazonaws.com") {
        (rest, false)
    } else {
        return Err(not_ecr());
    };
    let parts: Vec<&str> = rest.split('.').collect();
    let [account, "dkr", "ecr", region] = parts.as_slice() else {
        return Err(not_ecr());
    };
    let mut problems = Vec::new();
    if account.len() != 12 || !account.bytes().all(|c| c.is_ascii_digit()) {
        problems.push(format!("`{account}` is not a 12-digit AWS account id"));
    }
    if !is_region(region) {
        problems.push(format!(
            "`{region}` is not an AWS region (such as `us-east-1` or `eu-central-1`)"
        ));
    } else if region.starts_with("cn-") != china {
        problems.push(if china {
            format!("`.amazonaws.com.cn` is only for the China regions (`cn-...`), not `{region}`")
        } else {
            format!("the China region `{region}` is served from `.amazonaws.com.cn`")
        });
    }
    if problems.is_empty() {
        Ok((account.to_string(), region.to_string()))
    } else {
        Err(format!(
            "`uri` `{domain}` is not a valid Amazon ECR registry: {}",
            problems.join("; ")
        ))
    }
}

/// An AWS region name: `us-east-1`, `ap-southeast-2`, `us-gov-west-1`,
/// `cn-north-1`: a two-letter area, one or more words, a number.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [area, words @ .., number] = parts.as_slice() else {
        return false;
    };
    area.len() == 2
        && area.bytes().all(|c| c.is_ascii_lowercase())
        && !words.is_empty()
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase()))
        && (1..=2).contains(&number.len())
        && number.bytes().all(|c| c.is_ascii_digit())
}

flavor_kit::export_flavor!(Aws);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{FakeHost, accepted, assert_issue, assert_metadata, image, issues};

    fn validate(config: &str) -> Result<String, Vec<ConfigIssue>> {
        Aws::validate_config(&NoHost, config)
    }

    fn validate_uri(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        validate(&format!(r#"{{"uri":"{uri}"}}"#))
    }

    #[test]
    fn accepts_ecr_uris_and_derives_the_region() {
        for (uri, region) in [
            (EXAMPLE, "us-east-1"),
            (
                "123456789012.dkr.ecr.eu-central-1.amazonaws.com",
                "eu-central-1",
            ),
            (
                "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com",
                "ap-southeast-2",
            ),
            (
                "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
            ),
            (CHINA_EXAMPLE, "cn-north-1"),
        ] {
            let c = accepted(validate_uri(uri));
            assert_eq!(c["uri"], uri);
            assert_eq!(c["region"], region);
        }
        let c = accepted(validate_uri(&format!("{EXAMPLE}/")));
        assert_eq!(c["uri"], EXAMPLE);
    }

    #[test]
    fn keeps_default_repository_and_a_matching_region() {
        let c = accepted(validate(&format!(
            r#"{{"uri":"{EXAMPLE}","default_repository":"team/app","region":"us-east-1"}}"#
        )));
        assert_eq!(c["default_repository"], "team/app");
        assert_eq!(c["region"], "us-east-1");
    }

    #[test]
    fn rejects_a_slash_with_zenmls_message() {
        let i = issues(validate_uri(&format!("{EXAMPLE}/team")));
        assert_eq!(
            i[0].message,
            format!(
                "Property `uri` can not contain a `/`. An example of a valid URI is: `{EXAMPLE}`"
            )
        );
        assert_eq!(i[0].field, "uri");
    }

    #[test]
    fn rejects_malformed_registries() {
        for (uri, needle) in [
            ("12345.dkr.ecr.us-east-1.amazonaws.com", "12-digit"),
            (
                "123456789012.dkr.ecr.useast1.amazonaws.com",
                "not an AWS region",
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
                "amazonaws.com.cn",
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn",
                "China regions",
            ),
            (
                "123456789012.ecr.us-east-1.amazonaws.com",
                "not an Amazon ECR registry",
            ),
            ("docker.io", "not an Amazon ECR registry"),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", "port"),
        ] {
            assert_issue(
                &issues(validate_uri(uri)),
                "uri",
                &[needle, "An example of a valid URI"],
            );
        }
        assert_issue(&issues(validate_uri("docker.io")), "uri", &[EXAMPLE]);
    }

    #[test]
    fn rejects_bad_fields_and_collects_all_issues() {
        let i = issues(validate(
            r#"{"uri":"12.dkr.ecr.us-east-1.amazonaws.com/x","default_repository":"Team/App","region":7,"profile":"p"}"#,
        ));
        assert_issue(&i, "profile", &["accepts: uri, default_repository, region"]);
        assert_issue(&i, "uri", &["can not contain a `/`", EXAMPLE]);
        assert_issue(&i, "uri", &["12-digit", EXAMPLE]);
        assert_issue(&i, "default_repository", &["Team/App", REPOSITORY_EXAMPLE]);
        assert_issue(&i, "region", &["must be a string", REGION_EXAMPLE]);
        assert_eq!(i.len(), 5);
    }

    #[test]
    fn rejects_a_region_that_disagrees_with_the_uri() {
        let i = issues(validate(&format!(
            r#"{{"uri":"{EXAMPLE}","region":"eu-west-1"}}"#
        )));
        assert_issue(&i, "region", &["eu-west-1", "`us-east-1`"]);
        assert_eq!(i.len(), 1);
        let i = issues(validate(r#"{"uri":"docker.io","region":"nowhere"}"#));
        assert_issue(&i, "region", &["not an AWS region", REGION_EXAMPLE]);
    }

    fn push(host: &FakeHost) -> PushDecision {
        let config = accepted(validate_uri(EXAMPLE)).to_string();
        Aws::prepare_image_push(host, &config, &image(EXAMPLE, "team/app", "1"))
    }

    #[test]
    fn push_to_an_existing_repository_has_no_warning() {
        let host = FakeHost::new(Ok(true));
        assert_eq!(push(&host), PushDecision::Approve(vec![]));
        assert_eq!(*host.asked.borrow(), ["team/app"]);
        assert!(host.logs.borrow().iter().any(|(l, _)| *l == LogLevel::Info));
    }

    #[test]
    fn push_to_a_missing_repository_warns_with_the_fix() {
        let host = FakeHost::new(Ok(false));
        let PushDecision::Approve(warnings) = push(&host) else {
            panic!("must not deny");
        };
        assert_eq!(warnings.len(), 1);
        for needle in [
            "`team/app` does not exist",
            EXAMPLE,
            "aws ecr create-repository --repository-name team/app --region us-east-1",
            "will probably fail",
        ] {
            assert!(warnings[0].contains(needle), "{needle}: {}", warnings[0]);
        }
        assert!(host.logs.borrow().iter().any(|(l, _)| *l == LogLevel::Info));
    }

    #[test]
    fn push_when_the_check_fails_warns_with_the_reason() {
        let host = FakeHost::new(Err("capability not granted".into()));
        let PushDecision::Approve(warnings) = push(&host) else {
            panic!("must not deny");
        };
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("Could not check"));
        assert!(warnings[0].contains("capability not granted"));
    }

    #[test]
    fn push_derives_the_region_when_the_config_lacks_it() {
        let host = FakeHost::new(Ok(false));
        let config = format!(r#"{{"uri":"{CHINA_EXAMPLE}"}}"#);
        let PushDecision::Approve(w) =
            Aws::prepare_image_push(&host, &config, &image(CHINA_EXAMPLE, "app", "1"))
        else {
            panic!("must not deny");
        };
        assert!(w[0].contains("--region cn-north-1"));
    }

    #[test]
    fn metadata_asks_for_repository_exists() {
        let m = Aws::metadata();
        assert_metadata(&m, "aws");
        assert_eq!(m.capabilities, [Capability::RepositoryExists]);
        let schema: Value = flavor_kit::serde_json::from_str(&m.config_schema).unwrap();
        assert!(schema["properties"]["default_repository"].is_object());
        assert!(schema["properties"]["region"].is_object());
    }
}
