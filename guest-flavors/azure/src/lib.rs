//! The `azure` flavor: Azure Container Registry login servers, with an
//! optional repository path. Accepted hosts: `<name>.azurecr.io`, the domain
//! name label (DNL) form `<name>-<hash>.azurecr.io`, geo-replica regional
//! endpoints `<name>.<region>.geo.azurecr.io`, and the same forms in the
//! Azure Government (`.azurecr.us`) and Azure China (`.azurecr.cn`) clouds.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `azure` flavor.
pub struct Azure;

/// The login-server suffixes of the Azure clouds that are still running.
///
/// - `.azurecr.io`: public Azure, "the fully qualified URL of an Azure
///   container registry is in the format `myregistry.azurecr.io` (all
///   lowercase)",
///   <https://learn.microsoft.com/azure/container-registry/container-registry-concepts>.
/// - `.azurecr.us` (Azure Government) and `.azurecr.cn` (Azure China):
///   `acr_login_server_endpoint` of `AZURE_US_GOV_CLOUD` / `AZURE_CHINA_CLOUD`
///   in the Azure CLI,
///   <https://github.com/Azure/azure-cli/blob/dev/src/azure-cli-core/azure/cli/core/cloud.py>.
const CLOUD_SUFFIXES: &[&str] = &[".azurecr.io", ".azurecr.us", ".azurecr.cn"];

/// Azure Germany's suffix: that cloud is retired, so it is refused (with its
/// own message).
const RETIRED_SUFFIX: &str = ".azurecr.de";

const EXAMPLE: &str = "myregistry.azurecr.io";
const PATH_EXAMPLE: &str = "myregistry.azurecr.io/team";
const DNL_EXAMPLE: &str = "myregistry-e7ggejfuhzhgedc8.azurecr.io";
const GEO_EXAMPLE: &str = "myregistry.eastus.geo.azurecr.io";

/// Every accepted login-server shape, for messages.
const LOGIN_SERVER_FORMS: &str = "`<name>.azurecr.io`, `<name>-<hash>.azurecr.io` (domain name \
     label) or `<name>.<region>.geo.azurecr.io` (geo-replica), or the same in `.azurecr.us` or \
     `.azurecr.cn`";

impl Flavor for Azure {
    fn metadata() -> Metadata {
        Metadata {
            name: "azure".into(),
            display_name: "Azure Container Registry".into(),
            description: "Azure Container Registry: the login server of a registry \
                          (`<name>.azurecr.io`, the domain-name-label form \
                          `<name>-<hash>.azurecr.io` or a geo-replica's \
                          `<name>.<region>.geo.azurecr.io`; also in Azure Government \
                          `.azurecr.us` and Azure China `.azurecr.cn`), optionally followed by \
                          a repository path."
                .into(),
            docs_url: "https://docs.zenml.io/stacks/stack-components/container-registries/azure"
                .into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/azure.png".into(),
            config_schema: validate::config_schema(
                "Azure container registry",
                "`<login server>[/<path>...]`: the registry's login server, one of \
                 `<name>.azurecr.io`, `<name>-<hash>.azurecr.io` (domain name label) or \
                 `<name>.<region>.geo.azurecr.io` (geo-replica regional endpoint), or the same \
                 in `.azurecr.us` (Azure Government) or `.azurecr.cn` (Azure China). The \
                 registry name is 5 to 50 lowercase letters and digits. No port; data \
                 endpoints (`<name>.<region>.data.azurecr.io`) are not login servers. The \
                 optional path is lowercase path components.",
                &[
                    EXAMPLE,
                    PATH_EXAMPLE,
                    DNL_EXAMPLE,
                    GEO_EXAMPLE,
                    "myregistry.azurecr.us",
                    "myregistry.azurecr.cn",
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
        validate::approve_push(host, "azure", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    // "You can't specify a port number in the registry login server URL, such
    // as `myregistry.azurecr.io:443`."
    // https://learn.microsoft.com/azure/container-registry/container-registry-concepts
    if let Some(port) = uri.port() {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` must not include a port (`:{port}`): an Azure Container Registry \
                 login server never takes one",
                uri.uri
            ),
            EXAMPLE,
        ));
    }
    check_host(uri, issues);
    // "Repository names can only include lowercase alphanumeric characters,
    // periods, dashes, underscores, and forward slashes."
    // https://learn.microsoft.com/azure/container-registry/container-registry-concepts
    validate::check_path_components("uri", uri, PATH_EXAMPLE, issues);
}

/// Checks the host (the domain without its port) against the login-server
/// shapes. The whole host is matched: a suffix such as
/// `myregistry.azurecr.io.evil.com` never passes.
fn check_host(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    let host = uri.host();
    // Azure Germany (`.azurecr.de`) is retired: only third-party code still
    // lists it (kaniko advisory GHSA-5q7h-w9jf-cx97,
    // https://github.com/advisories/GHSA-5q7h-w9jf-cx97).
    if host.ends_with(RETIRED_SUFFIX) {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{host}` is in the retired Azure Germany cloud (`{RETIRED_SUFFIX}`): use a login \
                 server in `.azurecr.io`, `.azurecr.us` (Azure Government) or `.azurecr.cn` \
                 (Azure China)"
            ),
            EXAMPLE,
        ));
        return;
    }
    let Some((prefix, suffix)) = CLOUD_SUFFIXES
        .iter()
        .find_map(|s| host.strip_suffix(s).map(|prefix| (prefix, &s[1..])))
    else {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{}` is not an Azure Container Registry URI: its domain must be \
                 `<name>.azurecr.io`, not `{}` (accepted login servers: {LOGIN_SERVER_FORMS})",
                uri.uri, uri.domain
            ),
            EXAMPLE,
        ));
        return;
    };
    let labels: Vec<&str> = prefix.split('.').collect();
    match labels.as_slice() {
        // `<name>.azurecr.io` or DNL `<name>-<hash>.azurecr.io`.
        [label] => check_label(label, issues),
        // "Dedicated data endpoint ... Layer blob downloads": not a login
        // server, so never a registry URI.
        // https://learn.microsoft.com/azure/container-registry/container-registry-endpoint-reference
        [name, .., "data"] => issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{host}` is a data endpoint of Azure Container Registry (it serves layer \
                 downloads), not a login server: use the registry's login server, such as \
                 `{name}.{suffix}`"
            ),
            EXAMPLE,
        )),
        // "Regional endpoint | `myregistry.<region-name>.geo.azurecr.io` |
        // Login server for a specific geo-replica"
        // https://learn.microsoft.com/azure/container-registry/container-registry-endpoint-reference
        // and https://learn.microsoft.com/azure/container-registry/container-registry-geo-replication.
        // With a DNL label (`<name>-<hash>.<region>.geo...`) it is only in
        // Azure CLI code: https://github.com/Azure/azure-cli/pull/33381.
        [label, region, "geo"] => {
            check_label(label, issues);
            check_region(region, host, issues);
        }
        _ => issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{host}` is not an Azure Container Registry login server: before `.{suffix}` \
                 must come `<name>`, `<name>-<hash>` or `<name>.<region>.geo`, not `{prefix}`"
            ),
            EXAMPLE,
        )),
    }
}

/// Checks the registry label of a login server: `<name>` or the domain name
/// label form `<name>-<hash>`.
fn check_label(label: &str, issues: &mut Vec<ConfigIssue>) {
    // DNL: "the DNS name follows the format `registryname-hash.azurecr.io`,
    // where the dash (`-`) serves as the hash delineator. To avoid conflicts,
    // dash (`-`) is not permitted in the registry name."
    // https://learn.microsoft.com/azure/container-registry/container-registry-get-started-portal#configure-domain-name-label-dnl-option
    let (name, hash) = match label.split_once('-') {
        Some((name, hash)) => (name, Some(hash)),
        None => (label, None),
    };
    if !is_registry_name(name) {
        let context = match hash {
            Some(_) => format!(" (the registry name in the domain name label `{label}`)"),
            None => String::new(),
        };
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{name}` is not a valid Azure Container Registry name{context}: use 5 to 50 \
                 letters and digits (lowercase in the URI), without `-`, `_` or `.`"
            ),
            EXAMPLE,
        ));
    }
    if let Some(hash) = hash
        && !is_dnl_hash(hash)
    {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{hash}` in `{label}` is not a valid domain name label hash: after the single \
                 `-` that ends the registry name, use lowercase letters and digits only"
            ),
            DNL_EXAMPLE,
        ));
    }
}

/// A registry name: 5 to 50 letters and digits, lowercase in the login
/// server. "The name must contain only alphanumeric characters, be globally
/// unique, and between 5 and 50 characters in length."
/// <https://learn.microsoft.com/rest/api/containerregistry/registries/check-name-availability>
fn is_registry_name(s: &str) -> bool {
    (5..=50).contains(&s.len()) && is_lower_alnum(s)
}

/// The hash of a domain name label: lowercase letters and digits. Its length
/// is not documented (the docs' examples have 16 characters, e.g.
/// `e7ggejfuhzhgedc8`, and an illustrative `abc123`), so any non-empty length
/// is accepted.
/// <https://learn.microsoft.com/azure/container-registry/container-registry-get-started-portal#configure-domain-name-label-dnl-option>
fn is_dnl_hash(s: &str) -> bool {
    is_lower_alnum(s)
}

/// Checks the region of a geo-replica regional endpoint: an Azure region
/// name such as `eastus` or `westeurope` (lowercase letters and digits).
/// <https://learn.microsoft.com/azure/container-registry/container-registry-endpoint-reference>
fn check_region(region: &str, host: &str, issues: &mut Vec<ConfigIssue>) {
    if !is_lower_alnum(region) {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{region}` in `{host}` is not an Azure region name: a geo-replica's login \
                 server names its region in lowercase letters and digits, such as `eastus` or \
                 `westeurope`"
            ),
            GEO_EXAMPLE,
        ));
    }
}

/// Non-empty, only lowercase ASCII letters and digits.
fn is_lower_alnum(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

flavor_kit::export_flavor!(Azure);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        Azure::validate_config(&NoHost, &format!(r#"{{"uri":"{uri}"}}"#))
    }

    /// Every documented login-server form, each returned unchanged.
    const ACCEPTED: &[&str] = &[
        // `<name>.azurecr.io`, with and without a path.
        "myregistry.azurecr.io",
        "abcde.azurecr.io/team",
        "reg123.azurecr.io/a/b",
        "myregistry.azurecr.io/team/app",
        "myregistry.azurecr.io/my_team/app.v2/a--b",
        "12345.azurecr.io",
        // Sovereign clouds.
        "myregistry.azurecr.us",
        "myregistry.azurecr.cn/team",
        // Domain name label (DNL).
        "contosoacrregistry-e7ggejfuhzhgedc8.azurecr.io",
        "mycontainerregistry-abc123.azurecr.io/team",
        "myregistry-e7ggejfuhzhgedc8.azurecr.us",
        "myregistry-e7ggejfuhzhgedc8.azurecr.cn",
        // Geo-replica regional endpoints, plain and DNL.
        "myregistry.eastus.geo.azurecr.io",
        "myregistry.westeurope.geo.azurecr.io/team/app",
        "myregistry.eastus2.geo.azurecr.us",
        "myregistry.chinanorth3.geo.azurecr.cn",
        "myreg1-abc123.eastus.geo.azurecr.io",
    ];

    /// Refused URIs and what every one's issue on `uri` must say.
    const REFUSED: &[(&str, &[&str])] = &[
        // Look-alikes.
        (
            "myregistry.azurecr.io.evil.com",
            &["not an Azure Container Registry URI", EXAMPLE],
        ),
        (
            "myregistry-azurecr.io",
            &["not an Azure Container Registry URI", EXAMPLE],
        ),
        (
            "azurecr.io",
            &["not an Azure Container Registry URI", "<name>.azurecr.io"],
        ),
        (
            "myregistry.azurecr.com",
            &["not an Azure Container Registry URI", EXAMPLE],
        ),
        (
            "myregistry.example.com/team",
            &["its domain must be `<name>.azurecr.io`, not `myregistry.example.com`"],
        ),
        (
            "evilazurecr.io",
            &["not an Azure Container Registry URI", EXAMPLE],
        ),
        // Bad registry names.
        (
            "abcd.azurecr.io",
            &[
                "`abcd` is not a valid Azure Container Registry name",
                EXAMPLE,
            ],
        ),
        (
            "my.azurecr.io",
            &["`my` is not a valid Azure Container Registry name", EXAMPLE],
        ),
        (
            "my_registry.azurecr.io",
            &["`my_registry`", "5 to 50", EXAMPLE],
        ),
        (
            "-abc12.azurecr.io",
            &["`` is not a valid", "`-abc12`", EXAMPLE],
        ),
        (
            "my-registry.azurecr.io",
            &["`my`", "`my-registry`", EXAMPLE],
        ),
        (
            ".azurecr.io",
            &["not a valid Azure Container Registry name", EXAMPLE],
        ),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.azurecr.io",
            &["not a valid Azure Container Registry name", "5 to 50"],
        ),
        // Bad DNL hashes.
        (
            "myregistry-.azurecr.io",
            &["`` in `myregistry-`", "hash", DNL_EXAMPLE],
        ),
        (
            "my-registry-.azurecr.io",
            &["`registry-` in `my-registry-`", DNL_EXAMPLE],
        ),
        (
            "myregistry-ab_c.azurecr.io",
            &["`ab_c`", "hash", DNL_EXAMPLE],
        ),
        // Bad geo-replica endpoints and other shapes.
        (
            "myregistry.east-us.geo.azurecr.io",
            &[
                "`east-us` in `myregistry.east-us.geo.azurecr.io` is not an Azure region",
                GEO_EXAMPLE,
            ],
        ),
        (
            "myregistry..geo.azurecr.io",
            &["not an Azure region", GEO_EXAMPLE],
        ),
        (
            "abc.eastus.geo.azurecr.io",
            &["`abc` is not a valid", EXAMPLE],
        ),
        (
            "my.registry.azurecr.io",
            &[
                "not an Azure Container Registry login server",
                "`my.registry`",
                EXAMPLE,
            ],
        ),
        (
            "myregistry.geo.azurecr.io",
            &["not an Azure Container Registry login server", EXAMPLE],
        ),
        (
            "myregistry.eastus.geo.extra.azurecr.io",
            &["not an Azure Container Registry login server", EXAMPLE],
        ),
        // Data endpoints are not login servers.
        (
            "myregistry.eastus.data.azurecr.io",
            &[
                "data endpoint",
                "not a login server",
                "`myregistry.azurecr.io`",
                EXAMPLE,
            ],
        ),
        (
            "myregistry.westeurope.data.azurecr.cn/team",
            &["data endpoint", "`myregistry.azurecr.cn`"],
        ),
        // Ports: the docs forbid them.
        (
            "myregistry.azurecr.io:443",
            &["must not include a port (`:443`)", EXAMPLE],
        ),
        (
            "myregistry.eastus.geo.azurecr.io:5000/team",
            &["port (`:5000`)", EXAMPLE],
        ),
        // The retired Azure Germany cloud.
        (
            "myregistry.azurecr.de",
            &["retired Azure Germany", "`.azurecr.de`", EXAMPLE],
        ),
        // Upper case and other invalid path segments.
        (
            "myregistry.azurecr.io/Team",
            &["path segment `Team`", PATH_EXAMPLE],
        ),
        (
            "myregistry.azurecr.io/team/App",
            &["path segment `App`", PATH_EXAMPLE],
        ),
        (
            "myregistry.azurecr.io/team//app",
            &["empty path segment", PATH_EXAMPLE],
        ),
        (
            "myregistry.azurecr.io/-team",
            &["path segment `-team`", PATH_EXAMPLE],
        ),
    ];

    #[test]
    fn accepts_every_documented_login_server() {
        for &uri in ACCEPTED {
            assert_eq!(accepted(validate(uri))["uri"], uri, "{uri}");
        }
        let max = format!("{}.azurecr.io", "a".repeat(50));
        accepted(validate(&max));
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
    fn normalises_an_upper_case_domain() {
        // The domain is case-insensitive: normalised to lowercase.
        assert_eq!(
            accepted(validate("MyRegistry.azurecr.io/"))["uri"],
            "myregistry.azurecr.io"
        );
        assert_eq!(
            accepted(validate("MyRegistry.EastUS.geo.AzureCR.io/team"))["uri"],
            "myregistry.eastus.geo.azurecr.io/team"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let i = issues(Azure::validate_config(
            &NoHost,
            r#"{"uri":"myregistry.example.com/Team","tenant":"t"}"#,
        ));
        assert_issue(&i, "tenant", &["accepts: uri"]);
        assert_issue(&i, "uri", &["not an Azure Container Registry URI", EXAMPLE]);
        assert_issue(&i, "uri", &["`Team`", PATH_EXAMPLE]);
        let i = issues(validate("ab-.azurecr.io:443/Team"));
        assert_issue(&i, "uri", &["port"]);
        assert_issue(&i, "uri", &["`ab` is not a valid"]);
        assert_issue(&i, "uri", &["hash"]);
        assert_issue(&i, "uri", &["`Team`"]);
    }

    #[test]
    fn accepts_a_default_repository() {
        let config = accepted(Azure::validate_config(
            &NoHost,
            r#"{"uri":"myregistry.azurecr.io","default_repository":"team/app"}"#,
        ));
        assert_eq!(config["default_repository"], "team/app");
        assert_issue(
            &issues(Azure::validate_config(
                &NoHost,
                r#"{"uri":"myregistry.azurecr.io","default_repository":"Team"}"#,
            )),
            "default_repository",
            &["`Team`"],
        );
    }

    #[test]
    fn approves_every_push() {
        let d = Azure::prepare_image_push(
            &NoHost,
            r#"{"uri":"myregistry.azurecr.io"}"#,
            &image("myregistry.azurecr.io", "app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        let metadata = Azure::metadata();
        assert_metadata(&metadata, "azure");
        let schema: flavor_kit::serde_json::Value =
            flavor_kit::serde_json::from_str(&metadata.config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            accepted(validate(example.as_str().unwrap()));
        }
    }
}
