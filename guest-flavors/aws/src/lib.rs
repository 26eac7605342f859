//! The `aws` flavor: Amazon ECR private registries,
//! `<account>.dkr.ecr.<region>.amazonaws.com` and the other ECR host forms
//! (FIPS, dual-stack, GovCloud, China, ISO, European Sovereign Cloud).
//!
//! As in ZenML, the URI is the registry alone (no `/`), the region is derived
//! from it, and before a push the flavor asks the host whether the target
//! repository exists: ECR does not create repositories on push, so a missing
//! one is worth a warning (the push still goes ahead, as in ZenML).
//!
//! The host is matched as a whole (`<account>.<service>.<region>.<domain>`),
//! never by prefix or substring, so look-alikes such as
//! `<account>.dkr.ecr.us-east-1.amazonaws.com.evil.com` are refused. The
//! domain comes lowercased: the host normalises the URI first
//! ([`validate::normalize_uri`]).

use flavor_kit::serde_json::Value;
use flavor_kit::validate::{self, ConfigCheck, RegistryUri};
use flavor_kit::{
    Capability, ConfigIssue, Flavor, Host, ImageReference, LogLevel, Metadata, PushDecision,
};

/// The `aws` flavor.
pub struct Aws;

const EXAMPLE: &str = "715803424592.dkr.ecr.us-east-1.amazonaws.com";
/// The account of [`EXAMPLE`], used to build examples in messages.
const EXAMPLE_ACCOUNT: &str = "715803424592";
const REGION_EXAMPLE: &str = "us-east-1";
const FIELDS: &[&str] = &["uri", "default_repository", "region"];

/// The accepted host forms, one per line, for the metadata and the schema.
const FORMS: &str = "`<account>.dkr.ecr.<region>.amazonaws.com` (commercial regions and \
                     GovCloud), `<account>.dkr.ecr-fips.<region>.amazonaws.com` (FIPS, in \
                     us-east-1, us-east-2, us-west-1, us-west-2, us-gov-east-1, us-gov-west-1), \
                     `<account>.dkr-ecr[-fips].<region>.on.aws` (dual-stack), \
                     `<account>.dkr.ecr.<cn-region>.amazonaws.com.cn` (China), \
                     `<account>.dkr.ecr.<cn-region>.on.amazonwebservices.com.cn` or \
                     `<account>.dkr-ecr.<cn-region>.on.amazonwebservices.com.cn` (China \
                     dual-stack), `<account>.dkr.ecr.<eusc-region>.amazonaws.eu` (European \
                     Sovereign Cloud) and `<account>.dkr.ecr.<iso-region>.c2s.ic.gov`, \
                     `.sc2s.sgov.gov`, `.cloud.adc-e.uk` or `.csp.hci.ic.gov` (ISO regions)";

/// An AWS partition: how its region names look.
///
/// Region names per partition: botocore `partitions.json`, `regionRegex`
/// (https://github.com/boto/botocore/blob/develop/botocore/data/partitions.json),
/// where `\w+` is read as one word of lowercase letters: a region is
/// `<prefix>-<word>-<number>`.
struct Partition {
    /// The partition id in `partitions.json`.
    id: &'static str,
    /// How messages name its regions ("the China region `cn-north-1`").
    name: &'static str,
    /// What comes before `-<word>-<number>` in its region names.
    prefixes: &'static [&'static str],
    /// Its region names, for messages.
    pattern: &'static str,
    /// A region of the partition, for examples.
    example_region: &'static str,
}

const PARTITIONS: &[Partition] = &[
    // `aws`: ^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$
    // https://github.com/boto/botocore/blob/develop/botocore/data/partitions.json
    Partition {
        id: "aws",
        name: "commercial AWS",
        prefixes: &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"],
        pattern: "`us-east-1`, `eu-central-1`, ...",
        example_region: "us-east-1",
    },
    // `aws-us-gov`: ^us\-gov\-\w+\-\d+$ (same source)
    Partition {
        id: "aws-us-gov",
        name: "AWS GovCloud (US)",
        prefixes: &["us-gov"],
        pattern: "`us-gov-...`",
        example_region: "us-gov-west-1",
    },
    // `aws-cn`: ^cn\-\w+\-\d+$ (same source)
    Partition {
        id: "aws-cn",
        name: "China",
        prefixes: &["cn"],
        pattern: "`cn-...`",
        example_region: "cn-north-1",
    },
    // `aws-iso`: ^us\-iso\-\w+\-\d+$ (same source)
    Partition {
        id: "aws-iso",
        name: "AWS ISO",
        prefixes: &["us-iso"],
        pattern: "`us-iso-...`",
        example_region: "us-iso-east-1",
    },
    // `aws-iso-b`: ^us\-isob\-\w+\-\d+$ (same source)
    Partition {
        id: "aws-iso-b",
        name: "AWS ISOB",
        prefixes: &["us-isob"],
        pattern: "`us-isob-...`",
        example_region: "us-isob-east-1",
    },
    // `aws-iso-e`: ^eu\-isoe\-\w+\-\d+$ (same source)
    Partition {
        id: "aws-iso-e",
        name: "AWS ISOE",
        prefixes: &["eu-isoe"],
        pattern: "`eu-isoe-...`",
        example_region: "eu-isoe-west-1",
    },
    // `aws-iso-f`: ^us\-isof\-\w+\-\d+$ (same source)
    Partition {
        id: "aws-iso-f",
        name: "AWS ISOF",
        prefixes: &["us-isof"],
        pattern: "`us-isof-...`",
        example_region: "us-isof-south-1",
    },
    // `aws-eusc`: ^eusc\-(de)\-\w+\-\d+$ (same source)
    Partition {
        id: "aws-eusc",
        name: "AWS European Sovereign Cloud",
        prefixes: &["eusc-de"],
        pattern: "`eusc-de-...`",
        example_region: "eusc-de-east-1",
    },
];

/// The service label of an ECR registry host, without `-fips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    /// `dkr.ecr` (`dkr.ecr-fips`): two labels.
    Dotted,
    /// `dkr-ecr` (`dkr-ecr-fips`): one label, the dual-stack form.
    Dashed,
}

impl Service {
    fn label(self, fips: bool) -> &'static str {
        match (self, fips) {
            (Service::Dotted, false) => "dkr.ecr",
            (Service::Dotted, true) => "dkr.ecr-fips",
            (Service::Dashed, false) => "dkr-ecr",
            (Service::Dashed, true) => "dkr-ecr-fips",
        }
    }
}

/// A domain ECR private registries are served from:
/// `<account>.<service>.<region>.<suffix>`.
struct Domain {
    suffix: &'static str,
    /// Ids of the partitions whose registries are on this domain.
    partitions: &'static [&'static str],
    /// Whether this is a dual-stack (IPv4 and IPv6) domain.
    dual_stack: bool,
    /// The service labels used on this domain, the preferred one first.
    services: &'static [Service],
}

const DOMAINS: &[Domain] = &[
    // `https://aws_account_id.dkr.ecr.region.amazonaws.com`:
    // https://docs.aws.amazon.com/AmazonECR/latest/userguide/Registries.html
    // GovCloud (`aws-us-gov`) shares the `amazonaws.com` dnsSuffix:
    // https://github.com/boto/botocore/blob/develop/botocore/data/partitions.json
    Domain {
        suffix: "amazonaws.com",
        partitions: &["aws", "aws-us-gov"],
        dual_stack: false,
        services: &[Service::Dotted],
    },
    // `https://aws_account_id.dkr.ecr.cn-north-1.amazonaws.com.cn`:
    // https://docs.amazonaws.cn/en_us/AmazonECR/latest/userguide/Registries.html
    Domain {
        suffix: "amazonaws.com.cn",
        partitions: &["aws-cn"],
        dual_stack: false,
        services: &[Service::Dotted],
    },
    // `<registry-id>.dkr-ecr.<aws-region>.on.aws` (IPv6 / dual-stack):
    // https://docs.aws.amazon.com/AmazonECR/latest/userguide/ecr-requests.html
    // `dkr-ecr-fips.us-east-2.on.aws`: https://docs.aws.amazon.com/general/latest/gr/ecr.html
    // GovCloud dual-stack (`…dkr-ecr[-fips].us-gov-east-1.on.aws`), code only:
    // https://github.com/awslabs/amazon-ecr-credential-helper/blob/main/ecr-login/api/client_test.go
    Domain {
        suffix: "on.aws",
        partitions: &["aws", "aws-us-gov"],
        dual_stack: true,
        services: &[Service::Dashed],
    },
    // China dual-stack, code only (no AWS doc page):
    // `…dkr-ecr.*.on.amazonwebservices.com.cn` in the EKS node image's ECR
    // credential-provider config and the ECS agent,
    // https://github.com/awslabs/amazon-eks-ami/blob/main/nodeadm/internal/kubelet/image-credential-provider.template.json
    // https://github.com/aws/amazon-ecs-agent/blob/master/ecs-agent/utils/uri/uri.go
    // and `210987654321.dkr.ecr.cn-north-1.on.amazonwebservices.com.cn` in the
    // credential helper (commit 2aceb7da, #972):
    // https://github.com/awslabs/amazon-ecr-credential-helper/blob/main/ecr-login/api/client_test.go
    Domain {
        suffix: "on.amazonwebservices.com.cn",
        partitions: &["aws-cn"],
        dual_stack: true,
        services: &[Service::Dashed, Service::Dotted],
    },
    // European Sovereign Cloud, code only: `…dkr.ecr.eusc-de-east-1.amazonaws.eu`
    // (credential helper commit 48dd9315), dnsSuffix `amazonaws.eu` in botocore:
    // https://github.com/awslabs/amazon-ecr-credential-helper/blob/main/ecr-login/api/client.go
    // https://github.com/boto/botocore/blob/develop/botocore/data/partitions.json
    Domain {
        suffix: "amazonaws.eu",
        partitions: &["aws-eusc"],
        dual_stack: false,
        services: &[Service::Dotted],
    },
    // ISO partitions, code only: the credential helper's ECR host regex and
    // tests, and botocore's dnsSuffix of each partition:
    // https://github.com/awslabs/amazon-ecr-credential-helper/blob/main/ecr-login/api/client.go
    // https://github.com/boto/botocore/blob/develop/botocore/data/partitions.json
    Domain {
        suffix: "c2s.ic.gov",
        partitions: &["aws-iso"],
        dual_stack: false,
        services: &[Service::Dotted],
    },
    // (same sources)
    Domain {
        suffix: "sc2s.sgov.gov",
        partitions: &["aws-iso-b"],
        dual_stack: false,
        services: &[Service::Dotted],
    },
    // (same sources)
    Domain {
        suffix: "cloud.adc-e.uk",
        partitions: &["aws-iso-e"],
        dual_stack: false,
        services: &[Service::Dotted],
    },
    // (same sources)
    Domain {
        suffix: "csp.hci.ic.gov",
        partitions: &["aws-iso-f"],
        dual_stack: false,
        services: &[Service::Dotted],
    },
];

/// The regions with FIPS ECR endpoints (`dkr.ecr-fips`, `dkr-ecr-fips`):
/// AWS General Reference, "Amazon ECR endpoints and quotas"
/// (https://docs.aws.amazon.com/general/latest/gr/ecr.html), and the FIPS
/// docker hosts in botocore's `endpoints.json`
/// (https://github.com/boto/botocore/blob/develop/botocore/data/endpoints.json).
const FIPS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// Amazon ECR Public's registry hosts: `public.ecr.aws` and its dual-stack
/// `ecr-public.aws.com`,
/// https://docs.aws.amazon.com/AmazonECR/latest/public/public-ecr-requests.html
const ECR_PUBLIC_HOSTS: &[&str] = &["public.ecr.aws", "ecr-public.aws.com"];

impl Flavor for Aws {
    fn metadata() -> Metadata {
        let extra = [(
            "region",
            flavor_kit::serde_json::json!({
                "type": "string",
                "description": "AWS region of the registry. Derived from `uri` (and \
                                added to the normalised config); when given, it must \
                                match the region in `uri`.",
                "examples": [REGION_EXAMPLE],
            }),
        )];
        Metadata {
            name: "aws".into(),
            display_name: "Amazon Elastic Container Registry (ECR)".into(),
            description: format!(
                "Amazon ECR private registries: {FORMS}. ECR Public (`public.ecr.aws/<alias>`) \
                 is not a private registry: use the `default` flavor for it. Before a push the \
                 flavor checks that the target repository exists, since ECR does not create \
                 repositories on push."
            ),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/aws"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/aws.png".into(),
            config_schema: validate::config_schema(
                "Amazon ECR container registry",
                &format!(
                    "The ECR private registry, without any `/`: {FORMS}. `<account>` is the \
                     12-digit AWS account id. No port, no path, no scheme."
                ),
                &[
                    EXAMPLE,
                    "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                    "123456789012.dkr-ecr.eu-central-1.on.aws",
                    "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                    "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
                    "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
                ],
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
        // ECR repository names are 2 to 256 characters (`RepositoryName`,
        // https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html).
        if let Some(repository) = cfg.default_repository(None)
            && repository.len() < 2
        {
            cfg.issue(
                "default_repository",
                format!(
                    "`default_repository` `{repository}` is too short: Amazon ECR repository \
                     names have at least 2 characters"
                ),
                validate::REPOSITORY_EXAMPLE,
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
            (Some(given), None) if partition_of(&given).is_none() => cfg.issue(
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
            .or_else(|| parse_domain(&RegistryUri::parse(&uri)).ok());
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

/// Why ECR Public is refused, appended to the refusal.
fn ecr_public_note(host: &str) -> String {
    format!(
        "`{host}` is Amazon ECR Public, which is not a private registry: the `aws` flavor \
         takes ECR private registries only (`<account>.dkr.ecr.<region>.amazonaws.com`); use \
         the `default` flavor for ECR Public (e.g. `public.ecr.aws/<alias>`)"
    )
}

/// ECR rules for the URI; returns the region when the URI is valid.
fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) -> Option<String> {
    // ECR Public: https://docs.aws.amazon.com/AmazonECR/latest/public/public-ecr-requests.html
    let public = ECR_PUBLIC_HOSTS.contains(&uri.host());
    if !uri.segments.is_empty() {
        // ZenML's own message, kept word for word:
        // https://github.com/zenml-io/zenml/blob/main/src/zenml/integrations/aws/flavors/aws_container_registry_flavor.py
        let mut message = format!(
            "Property `uri` can not contain a `/`. An example of a valid URI is: `{EXAMPLE}`"
        );
        if public {
            message.push_str(". ");
            message.push_str(&ecr_public_note(uri.host()));
        }
        issues.push(ConfigIssue::new("uri", message));
        if public {
            return None;
        }
    } else if public {
        issues.push(ConfigIssue::with_example(
            "uri",
            ecr_public_note(uri.host()),
            EXAMPLE,
        ));
        return None;
    }
    match parse_domain(uri) {
        Ok(region) if uri.segments.is_empty() => Some(region),
        Ok(_) => None,
        Err(refusal) => {
            issues.push(ConfigIssue::with_example(
                "uri",
                refusal.problem,
                refusal.example,
            ));
            None
        }
    }
}

/// What is wrong with a registry domain, and a valid example close to it.
#[derive(Debug)]
struct Refusal {
    problem: String,
    example: String,
}

/// The region of an ECR registry domain, or what is wrong with it.
fn parse_domain(uri: &RegistryUri) -> Result<String, Refusal> {
    if let Some(port) = uri.port() {
        // Registry URLs carry no port: `https://aws_account_id.dkr.ecr.region.amazonaws.com`,
        // https://docs.aws.amazon.com/AmazonECR/latest/userguide/Registries.html
        let host = uri.host();
        let example = match parse_host(host) {
            Ok(_) => host.to_string(),
            Err(refusal) => refusal.example,
        };
        return Err(Refusal {
            problem: format!("`uri` `{}` must not have a port (`:{port}`)", uri.domain),
            example,
        });
    }
    parse_host(uri.host())
}

/// The region of an ECR registry host (no port), or what is wrong with it.
fn parse_host(host: &str) -> Result<String, Refusal> {
    // Whole-host match: the host must end in `.<domain>`, compared label by
    // label; the credential helper's tests refuse the same look-alikes:
    // https://github.com/awslabs/amazon-ecr-credential-helper/blob/main/ecr-login/api/client_test.go
    let Some((domain, rest)) = DOMAINS.iter().find_map(|d| {
        host.strip_suffix(d.suffix)
            .and_then(|rest| rest.strip_suffix('.'))
            .map(|rest| (d, rest))
    }) else {
        return Err(not_ecr(host));
    };

    let parts: Vec<&str> = rest.split('.').collect();
    let (account, service, fips, region) = match parts.as_slice() {
        [account, "dkr", "ecr", region] => (*account, Service::Dotted, false, *region),
        [account, "dkr", "ecr-fips", region] => (*account, Service::Dotted, true, *region),
        [account, "dkr-ecr", region] => (*account, Service::Dashed, false, *region),
        [account, "dkr-ecr-fips", region] => (*account, Service::Dashed, true, *region),
        _ => {
            let service = domain.services[0].label(false);
            return Err(Refusal {
                problem: format!(
                    "`{host}` is not an Amazon ECR registry: before `.{}` it must be \
                     `<12-digit account id>.{service}.<region>`, not `{rest}`",
                    domain.suffix
                ),
                example: domain_example(domain),
            });
        }
    };

    let mut problems = Vec::new();
    // `registryId` pattern `[0-9]{12}`:
    // https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html
    if account.is_empty() {
        problems.push("the 12-digit AWS account id is missing".to_string());
    } else if !is_account(account) {
        problems.push(format!("`{account}` is not a 12-digit AWS account id"));
    }
    if !domain.services.contains(&service) {
        problems.push(wrong_service(domain, service, fips));
    }
    let partition = partition_of(region);
    match partition {
        None => problems.push(format!(
            "`{region}` is not an AWS region (such as `us-east-1`, `us-gov-west-1`, \
             `cn-north-1` or `eusc-de-east-1`)"
        )),
        Some(p) if !domain.partitions.contains(&p.id) => {
            problems.push(wrong_partition(domain, p, region));
        }
        Some(_) => {}
    }
    if fips && partition.is_some() && !FIPS_REGIONS.contains(&region) {
        problems.push(format!(
            "Amazon ECR offers no FIPS endpoint in `{region}` (only in {}): use `{}` instead \
             of `{}`",
            FIPS_REGIONS.join(", "),
            service.label(false),
            service.label(true)
        ));
    }

    if problems.is_empty() {
        return Ok(region.to_string());
    }
    let example = match partition {
        // A dual-stack domain or service label asks for a dual-stack example.
        Some(p) => suggestion(
            account,
            p,
            region,
            domain.dual_stack || service == Service::Dashed,
            fips,
        ),
        None => domain_example(domain),
    };
    Err(Refusal {
        problem: format!(
            "`uri` `{host}` is not a valid Amazon ECR registry: {}",
            problems.join("; ")
        ),
        example,
    })
}

/// The refusal of a host on none of the ECR domains; names the domain a
/// look-alike imitates (`….amazonaws.com.evil.com`).
fn not_ecr(host: &str) -> Refusal {
    let imitated = DOMAINS
        .iter()
        .filter_map(|d| {
            let needle = format!(".{}.", d.suffix);
            host.find(&needle)
                .map(|i| (d, &host[i + needle.len() - 1..]))
        })
        .max_by_key(|(d, _)| d.suffix.len());
    match imitated {
        Some((domain, tail)) => Refusal {
            problem: format!(
                "`{host}` is not an Amazon ECR registry: the host must end in `.{}`, but \
                 `{tail}` follows it",
                domain.suffix
            ),
            example: domain_example(domain),
        },
        None => Refusal {
            problem: format!("`{host}` is not an Amazon ECR registry: it must be one of {FORMS}"),
            example: EXAMPLE.to_string(),
        },
    }
}

/// A service label that is not used on `domain`.
fn wrong_service(domain: &Domain, service: Service, fips: bool) -> String {
    let given = service.label(fips);
    let expected = domain.services[0].label(fips);
    if domain.dual_stack {
        format!(
            "`.{}` is a dual-stack domain, where the service label is `{expected}`, not \
             `{given}`",
            domain.suffix
        )
    } else {
        format!(
            "`{given}` is the dual-stack service label, used with `.on.aws` (and \
             `.on.amazonwebservices.com.cn` in China); with `.{}` it is `{expected}`",
            domain.suffix
        )
    }
}

/// A region that belongs to a partition not served from `domain`; names the
/// domain that serves it.
fn wrong_partition(domain: &Domain, partition: &Partition, region: &str) -> String {
    let names: Vec<&str> = domain
        .partitions
        .iter()
        .filter_map(|id| PARTITIONS.iter().find(|p| p.id == *id))
        .map(|p| p.name)
        .collect();
    let patterns: Vec<&str> = domain
        .partitions
        .iter()
        .filter_map(|id| PARTITIONS.iter().find(|p| p.id == *id))
        .map(|p| p.pattern)
        .collect();
    let only_for = format!(
        "`.{}` is only for the {} regions ({})",
        domain.suffix,
        names.join(" and "),
        patterns.join("; ")
    );
    match domain_of(partition, domain.dual_stack) {
        Some(right) if right.dual_stack == domain.dual_stack => format!(
            "{only_for}; the {} region `{region}` is served from `.{}`",
            partition.name, right.suffix
        ),
        Some(right) => format!(
            "{only_for}; the {} region `{region}` has no dual-stack ECR domain: use `{}` \
             with `.{}`",
            partition.name,
            right.services[0].label(false),
            right.suffix
        ),
        None => only_for,
    }
}

/// The domain serving `partition`: the dual-stack one when asked for and
/// there is one, else the IPv4 one.
fn domain_of(partition: &Partition, dual_stack: bool) -> Option<&'static Domain> {
    let serves = |d: &&Domain| d.partitions.contains(&partition.id);
    DOMAINS
        .iter()
        .filter(serves)
        .find(|d| d.dual_stack == dual_stack)
        .or_else(|| DOMAINS.iter().find(|d| serves(d) && !d.dual_stack))
}

/// A valid host close to what was given: the given account (when valid) and
/// region, on the domain that serves the region, FIPS only where offered.
fn suggestion(
    account: &str,
    partition: &Partition,
    region: &str,
    dual_stack: bool,
    fips: bool,
) -> String {
    let account = if is_account(account) {
        account
    } else {
        EXAMPLE_ACCOUNT
    };
    let fips = fips && FIPS_REGIONS.contains(&region);
    match domain_of(partition, dual_stack) {
        Some(domain) => format!(
            "{account}.{}.{region}.{}",
            domain.services[0].label(fips),
            domain.suffix
        ),
        None => EXAMPLE.to_string(),
    }
}

/// An example registry on `domain`.
fn domain_example(domain: &Domain) -> String {
    let region = PARTITIONS
        .iter()
        .find(|p| p.id == domain.partitions[0])
        .map_or(REGION_EXAMPLE, |p| p.example_region);
    format!(
        "{EXAMPLE_ACCOUNT}.{}.{region}.{}",
        domain.services[0].label(false),
        domain.suffix
    )
}

/// A 12-digit AWS account id (ECR `registryId`, `[0-9]{12}`).
fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|c| c.is_ascii_digit())
}

/// The partition of an AWS region name, `<prefix>-<word>-<number>` (see
/// [`Partition`]), or `None` when `s` is not a region name.
fn partition_of(s: &str) -> Option<&'static Partition> {
    let mut parts = s.rsplitn(3, '-');
    let (number, word, prefix) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = !number.is_empty()
        && number.bytes().all(|c| c.is_ascii_digit())
        && !word.is_empty()
        && word.bytes().all(|c| c.is_ascii_lowercase());
    if !ok {
        return None;
    }
    PARTITIONS.iter().find(|p| p.prefixes.contains(&prefix))
}

flavor_kit::export_flavor!(Aws);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{FakeHost, accepted, assert_issue, assert_metadata, image, issues};
    use flavor_kit::validate::REPOSITORY_EXAMPLE;

    const CHINA_EXAMPLE: &str = "715803424592.dkr.ecr.cn-north-1.amazonaws.com.cn";

    fn validate(config: &str) -> Result<String, Vec<ConfigIssue>> {
        Aws::validate_config(&NoHost, config)
    }

    fn validate_uri(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        validate(&format!(r#"{{"uri":"{uri}"}}"#))
    }

    /// Every accepted form, with the region derived from it.
    const ACCEPTED: &[(&str, &str)] = &[
        // Commercial regions, `.amazonaws.com`.
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
            "123456789012.dkr.ecr.il-central-1.amazonaws.com",
            "il-central-1",
        ),
        (
            "123456789012.dkr.ecr.mx-central-1.amazonaws.com",
            "mx-central-1",
        ),
        (
            "123456789012.dkr.ecr.af-south-1.amazonaws.com",
            "af-south-1",
        ),
        // FIPS.
        (
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
            "us-east-1",
        ),
        (
            "123456789012.dkr.ecr-fips.us-west-2.amazonaws.com",
            "us-west-2",
        ),
        // GovCloud, plain and FIPS.
        (
            "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
        ),
        (
            "123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
            "us-gov-east-1",
        ),
        // Dual-stack, plain and FIPS, commercial and GovCloud.
        ("123456789012.dkr-ecr.us-west-2.on.aws", "us-west-2"),
        ("123456789012.dkr-ecr.eu-central-1.on.aws", "eu-central-1"),
        ("123456789012.dkr-ecr-fips.us-east-2.on.aws", "us-east-2"),
        ("123456789012.dkr-ecr.us-gov-east-1.on.aws", "us-gov-east-1"),
        (
            "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws",
            "us-gov-west-1",
        ),
        // China, IPv4 and dual-stack (both service spellings).
        (CHINA_EXAMPLE, "cn-north-1"),
        (
            "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
            "cn-northwest-1",
        ),
        (
            "210987654321.dkr.ecr.cn-north-1.on.amazonwebservices.com.cn",
            "cn-north-1",
        ),
        (
            "210987654321.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
            "cn-northwest-1",
        ),
        // European Sovereign Cloud.
        (
            "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
            "eusc-de-east-1",
        ),
        // ISO partitions.
        (
            "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
            "us-iso-east-1",
        ),
        (
            "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
            "us-isob-east-1",
        ),
        (
            "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
            "eu-isoe-west-1",
        ),
        (
            "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
            "us-isof-south-1",
        ),
    ];

    #[test]
    fn accepts_every_ecr_form_and_derives_the_region() {
        for (uri, region) in ACCEPTED {
            let c = accepted(validate_uri(uri));
            assert_eq!(c["uri"], *uri);
            assert_eq!(c["region"], *region, "{uri}");
            let c = accepted(validate(&format!(
                r#"{{"uri":"{uri}","region":"{region}"}}"#
            )));
            assert_eq!(c["region"], *region, "{uri}");
        }
        let c = accepted(validate_uri(&format!("{EXAMPLE}/")));
        assert_eq!(c["uri"], EXAMPLE);
    }

    #[test]
    fn the_table_covers_every_domain_service_and_partition() {
        for domain in DOMAINS {
            for service in domain.services {
                let form = format!(".{}.", service.label(false));
                assert!(
                    ACCEPTED.iter().any(|(uri, _)| uri.contains(&form)
                        && uri.ends_with(&format!(".{}", domain.suffix))),
                    "no accepted example of `{form}` on `{}`",
                    domain.suffix
                );
            }
        }
        for partition in PARTITIONS {
            assert!(
                ACCEPTED
                    .iter()
                    .any(|(_, region)| partition_of(region).map(|p| p.id) == Some(partition.id)),
                "no accepted example in `{}`",
                partition.id
            );
            assert_eq!(
                partition_of(partition.example_region).map(|p| p.id),
                Some(partition.id)
            );
            assert!(domain_of(partition, false).is_some(), "{}", partition.id);
        }
        for region in FIPS_REGIONS {
            assert!(partition_of(region).is_some(), "{region}");
        }
        // The examples in the metadata are accepted too.
        let schema: Value =
            flavor_kit::serde_json::from_str(&Aws::metadata().config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            accepted(validate_uri(example.as_str().unwrap()));
        }
        for domain in DOMAINS {
            accepted(validate_uri(&domain_example(domain)));
        }
    }

    #[test]
    fn normalises_an_upper_case_domain() {
        for (given, uri, region) in [
            (
                "123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "us-east-1",
            ),
            (
                "123456789012.Dkr-Ecr-Fips.US-East-2.On.Aws/",
                "123456789012.dkr-ecr-fips.us-east-2.on.aws",
                "us-east-2",
            ),
            (
                " 123456789012.dkr.ecr.cn-north-1.AmazonAWS.com.CN ",
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                "cn-north-1",
            ),
        ] {
            let c = accepted(validate_uri(given));
            assert_eq!(c["uri"], uri);
            assert_eq!(c["region"], region);
        }
    }

    /// Refused URIs, each with a piece of the reason its issue must give.
    const REFUSED: &[(&str, &str)] = &[
        // Look-alikes: an ECR domain followed by someone else's.
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com",
            "must end in `.amazonaws.com`, but `.evil.com` follows it",
        ),
        (
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com.fake.example.com",
            "must end in `.amazonaws.com`",
        ),
        (
            "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn.evil.cn",
            "must end in `.amazonaws.com.cn`, but `.evil.cn` follows it",
        ),
        (
            "210987654321.dkr.ecr.cn-north-1.on.aws.com.cn",
            "must end in `.on.aws`, but `.com.cn` follows it",
        ),
        ("public.ecr.aws.evil.com", "is not an Amazon ECR registry"),
        ("evilamazonaws.com", "is not an Amazon ECR registry"),
        ("amazonaws.com", "is not an Amazon ECR registry"),
        ("docker.io", "is not an Amazon ECR registry"),
        // Account id.
        ("12345.dkr.ecr.us-east-1.amazonaws.com", "12-digit"),
        ("1234567890123.dkr.ecr.us-east-1.amazonaws.com", "12-digit"),
        ("abcdefghijkl.dkr.ecr.us-east-1.amazonaws.com", "12-digit"),
        (".dkr.ecr.us-east-1.amazonaws.com", "12-digit"),
        // Region.
        (
            "123456789012.dkr.ecr.useast1.amazonaws.com",
            "`useast1` is not an AWS region",
        ),
        (
            "123456789012.dkr.ecr.xx-east-1.amazonaws.com",
            "`xx-east-1` is not an AWS region",
        ),
        (
            "123456789012.dkr.ecr.us-east-1a.amazonaws.com",
            "not an AWS region",
        ),
        (
            "123456789012.dkr.ecr.not-real.amazonaws.com",
            "not an AWS region",
        ),
        (
            "123456789012.dkr.ecr.us-east.amazonaws.com",
            "not an AWS region",
        ),
        // Partition mismatch: the message names the domain that serves the region.
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
            "the China region `cn-north-1` is served from `.amazonaws.com.cn`",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn",
            "`.amazonaws.com.cn` is only for the China regions",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.c2s.ic.gov",
            "the commercial AWS region `us-east-1` is served from `.amazonaws.com`",
        ),
        (
            "123456789012.dkr.ecr.us-iso-east-1.amazonaws.com",
            "`us-iso-east-1` is served from `.c2s.ic.gov`",
        ),
        (
            "123456789012.dkr.ecr.us-isob-east-1.c2s.ic.gov",
            "`us-isob-east-1` is served from `.sc2s.sgov.gov`",
        ),
        (
            "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com",
            "`eusc-de-east-1` is served from `.amazonaws.eu`",
        ),
        (
            "123456789012.dkr.ecr.eu-central-1.amazonaws.eu",
            "`.amazonaws.eu` is only for the AWS European Sovereign Cloud regions",
        ),
        (
            "123456789012.dkr-ecr.cn-north-1.on.aws",
            "`cn-north-1` is served from `.on.amazonwebservices.com.cn`",
        ),
        (
            "123456789012.dkr-ecr.us-east-1.on.amazonwebservices.com.cn",
            "`us-east-1` is served from `.on.aws`",
        ),
        (
            "123456789012.dkr-ecr.us-iso-east-1.on.aws",
            "has no dual-stack ECR domain: use `dkr.ecr` with `.c2s.ic.gov`",
        ),
        // FIPS outside the regions that have it.
        (
            "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com",
            "no FIPS endpoint in `eu-west-1`",
        ),
        (
            "123456789012.dkr-ecr-fips.eu-central-1.on.aws",
            "no FIPS endpoint in `eu-central-1`",
        ),
        (
            "123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn",
            "no FIPS endpoint in `cn-north-1`",
        ),
        (
            "123456789012.dkr.ecr-fips.us-iso-east-1.c2s.ic.gov",
            "no FIPS endpoint in `us-iso-east-1`",
        ),
        // Service label and domain that do not go together.
        (
            "123456789012.dkr-ecr.us-east-1.amazonaws.com",
            "`dkr-ecr` is the dual-stack service label, used with `.on.aws`",
        ),
        (
            "123456789012.dkr-ecr-fips.us-east-1.amazonaws.com",
            "with `.amazonaws.com` it is `dkr.ecr-fips`",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.on.aws",
            "where the service label is `dkr-ecr`, not `dkr.ecr`",
        ),
        // Missing or wrong service labels.
        (
            "123456789012.ecr.us-east-1.amazonaws.com",
            "it must be `<12-digit account id>.dkr.ecr.<region>`, not",
        ),
        (
            "123456789012.dkr.us-east-1.amazonaws.com",
            "`<12-digit account id>.dkr.ecr.<region>`",
        ),
        (
            "123456789012.dkr.ecr.ecr.us-east-1.amazonaws.com",
            "`<12-digit account id>.dkr.ecr.<region>`",
        ),
        (
            "123456789012.ecr-dkr.us-west-2.on.aws",
            "`<12-digit account id>.dkr-ecr.<region>`",
        ),
        (
            "123456789012.dkr.starport.us-west-2.amazonaws.com",
            "`<12-digit account id>.dkr.ecr.<region>`",
        ),
        // Port, path.
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", "port"),
        ("123456789012.dkr-ecr.us-west-2.on.aws:5000", "port"),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team",
            "can not contain a `/`",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/Team/App",
            "can not contain a `/`",
        ),
        // ECR Public.
        (
            "public.ecr.aws/my-alias",
            "Amazon ECR Public, which is not a private registry",
        ),
        ("public.ecr.aws/my-alias/app", "use the `default` flavor"),
        ("public.ecr.aws", "use the `default` flavor for ECR Public"),
        ("ecr-public.aws.com/my-alias", "Amazon ECR Public"),
    ];

    #[test]
    fn refuses_look_alikes_and_malformed_registries_with_the_reason() {
        for (uri, needle) in REFUSED {
            let i = issues(validate_uri(uri));
            assert_issue(&i, "uri", &[needle, "An example of a valid URI"]);
            assert_eq!(i.len(), 1, "{uri}: one issue expected, got {i:#?}");
            // The example shown is itself accepted.
            let example = i[0]
                .message
                .split("An example of a valid URI is: `")
                .nth(1)
                .and_then(|s| s.split('`').next())
                .unwrap();
            accepted(validate_uri(example));
        }
    }

    #[test]
    fn the_example_is_the_fixed_registry_when_it_can_be() {
        for (uri, example) in [
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            ),
            (
                "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            ),
            (
                "123456789012.dkr-ecr.cn-north-1.on.aws",
                "123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn",
            ),
            (
                "123456789012.dkr-ecr-fips.us-gov-west-1.amazonaws.com",
                "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws",
            ),
            (
                "123456789012.dkr.ecr.us-east-1.on.aws",
                "123456789012.dkr-ecr.us-east-1.on.aws",
            ),
            (
                "123456789012.dkr-ecr.us-iso-east-1.on.aws",
                "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "12345.dkr.ecr.eu-west-1.amazonaws.com",
                "715803424592.dkr.ecr.eu-west-1.amazonaws.com",
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com:443",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            ),
            (
                "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn.evil.cn",
                CHINA_EXAMPLE,
            ),
        ] {
            assert_issue(
                &issues(validate_uri(uri)),
                "uri",
                &[&format!("An example of a valid URI is: `{example}`")],
            );
        }
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
        assert_eq!(i.len(), 1);
        // ECR Public: ZenML's message, then why.
        let i = issues(validate_uri("public.ecr.aws/my-alias"));
        assert!(i[0].message.starts_with(&format!(
            "Property `uri` can not contain a `/`. An example of a valid URI is: `{EXAMPLE}`. \
             `public.ecr.aws` is Amazon ECR Public"
        )));
    }

    #[test]
    fn refuses_a_one_character_default_repository() {
        let i = issues(validate(&format!(
            r#"{{"uri":"{EXAMPLE}","default_repository":"a"}}"#
        )));
        assert_issue(&i, "default_repository", &["too short", "at least 2"]);
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
        let fields: Vec<_> = i.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            ["profile", "uri", "uri", "default_repository", "region"]
        );
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
        // A region of any partition is a region, even when the uri is wrong.
        let i = issues(validate(r#"{"uri":"docker.io","region":"eusc-de-east-1"}"#));
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].field, "uri");
    }

    #[test]
    fn regions_of_every_partition() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("ap-southeast-7", "aws"),
            ("ca-west-1", "aws"),
            ("me-central-1", "aws"),
            ("sa-east-1", "aws"),
            ("us-gov-west-1", "aws-us-gov"),
            ("cn-northwest-1", "aws-cn"),
            ("us-iso-west-1", "aws-iso"),
            ("us-isob-west-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-east-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(
                partition_of(region).map(|p| p.id),
                Some(partition),
                "{region}"
            );
        }
        for bad in [
            "",
            "us",
            "us-east",
            "us-east-",
            "-east-1",
            "us--1",
            "useast1",
            "us-east-1a",
            "US-EAST-1",
            "xx-east-1",
            "eusc-fr-east-1",
            "us-gov-west-north-1",
            "us-east1-1",
        ] {
            assert!(partition_of(bad).is_none(), "{bad}");
        }
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
        for (uri, region) in ACCEPTED {
            let host = FakeHost::new(Ok(false));
            let config = format!(r#"{{"uri":"{uri}"}}"#);
            let PushDecision::Approve(w) =
                Aws::prepare_image_push(&host, &config, &image(uri, "app", "1"))
            else {
                panic!("must not deny");
            };
            assert!(
                w[0].contains(&format!("--region {region}")),
                "{uri}: {}",
                w[0]
            );
        }
    }

    #[test]
    fn metadata_asks_for_repository_exists() {
        let m = Aws::metadata();
        assert_metadata(&m, "aws");
        assert_eq!(m.capabilities, [Capability::RepositoryExists]);
        let schema: Value = flavor_kit::serde_json::from_str(&m.config_schema).unwrap();
        assert!(schema["properties"]["default_repository"].is_object());
        assert!(schema["properties"]["region"].is_object());
        let description = schema["properties"]["uri"]["description"].as_str().unwrap();
        for domain in DOMAINS {
            assert!(description.contains(domain.suffix), "{}", domain.suffix);
        }
        assert!(m.description.contains("`default` flavor"));
    }
}
