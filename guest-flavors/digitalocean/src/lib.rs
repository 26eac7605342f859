//! The `digitalocean` flavor: DigitalOcean Container Registry (DOCR),
//! `registry.digitalocean.com/<registry>` with an optional repository path.
//!
//! ZenML 0.98.0 ships this flavor (`zenml integration install digitalocean`);
//! its check is a prefix test on `registry.digitalocean.com/` plus a non-empty
//! rest. This one compares the whole host and checks the registry name the
//! way DigitalOcean documents it, so look-alike hosts and names DigitalOcean
//! would never create are refused.

use flavor_kit::validate::{self, RegistryUri};
use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `digitalocean` flavor.
pub struct DigitalOcean;

/// The one DOCR host. DigitalOcean documents no regional or other hosts: the
/// region is a storage setting, not part of the URL.
/// Source: "an image in it will have the URL registry.digitalocean.com/example/image:tag",
/// https://docs.digitalocean.com/reference/dots/reference/container-registries/registries-create/
/// and the Terraform provider's `server_url = registry.digitalocean.com`,
/// https://docs.digitalocean.com/reference/terraform/reference/resources/container_registry/
const HOST: &str = "registry.digitalocean.com";
const EXAMPLE: &str = "registry.digitalocean.com/my-registry";

impl Flavor for DigitalOcean {
    fn metadata() -> Metadata {
        Metadata {
            name: "digitalocean".into(),
            display_name: "DigitalOcean Container Registry".into(),
            description: "DigitalOcean Container Registry: `registry.digitalocean.com/<registry>`, \
                          optionally followed by a repository path."
                .into(),
            docs_url: "https://docs.digitalocean.com/products/container-registry/".into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/digitalocean.png".into(),
            config_schema: validate::config_schema(
                "DigitalOcean container registry",
                "`registry.digitalocean.com/<registry>[/<path>...]`, where the registry name is \
                 up to 63 lowercase letters, digits and hyphens, starting with a letter and \
                 ending with a letter or digit.",
                &[EXAMPLE, "registry.digitalocean.com/my-registry/team"],
                &[],
            ),
            capabilities: vec![],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        validate::validate_uri_config(config, EXAMPLE, check_uri)
    }

    fn prepare_image_push(host: &dyn Host, _config: &str, image: &ImageReference) -> PushDecision {
        validate::approve_push(host, "digitalocean", image)
    }
}

fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    if uri.domain != HOST {
        // ZenML's wording, with the host compared whole (ZenML's own prefix
        // test would take `registry.digitalocean.com.evil.example/x`).
        let hint = if uri.host() == HOST {
            format!(" (without a port: `{HOST}`)")
        } else {
            format!(", not `{}`", uri.domain)
        };
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "Property `uri` for the DigitalOcean container registry must be the DOCR host \
                 `{HOST}` followed by your registry name{hint}"
            ),
            EXAMPLE,
        ));
        return;
    }
    let Some(name) = uri.segments.first() else {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`uri` `{}` has no registry name: DOCR URIs are `{HOST}/<registry>`",
                uri.uri
            ),
            EXAMPLE,
        ));
        return;
    };
    if !is_registry_name(name) {
        issues.push(ConfigIssue::with_example(
            "uri",
            format!(
                "`{name}` is not a valid DigitalOcean registry name: use at most 63 lowercase \
                 letters, digits and hyphens, starting with a letter and ending with a letter \
                 or digit"
            ),
            EXAMPLE,
        ));
    }
    // Below the registry, repositories follow the Docker reference grammar;
    // DigitalOcean documents no rule of its own for them. The registry name
    // counts in the path's length.
    validate::check_segments(
        "uri",
        uri,
        1,
        "registry.digitalocean.com/my-registry/team",
        issues,
        validate::path_component,
    );
}

/// A DOCR registry name. Source: "Container Registry Limits": no more than 63
/// characters, only lowercase letters, numbers and hyphens, begins with a
/// letter, ends with a letter or number,
/// https://docs.digitalocean.com/products/container-registry/details/limits/
fn is_registry_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

flavor_kit::export_flavor!(DigitalOcean);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::NoHost;
    use flavor_kit::testing::{accepted, assert_issue, assert_metadata, image, issues};

    fn validate(uri: &str) -> Result<String, Vec<ConfigIssue>> {
        DigitalOcean::validate_config(&NoHost, &format!(r#"{{"uri":"{uri}"}}"#))
    }

    /// Every accepted form, as DigitalOcean documents it.
    const ACCEPTED: &[&str] = &[
        "registry.digitalocean.com/my-registry",
        "registry.digitalocean.com/abc123",
        "registry.digitalocean.com/a",
        "registry.digitalocean.com/my-registry/team",
        "registry.digitalocean.com/my-registry/team/app",
        "registry.digitalocean.com/my-registry/a__b.c-d",
    ];

    #[test]
    fn accepts_every_documented_form() {
        for uri in ACCEPTED {
            assert_eq!(accepted(validate(uri))["uri"], *uri, "{uri}");
        }
        let longest = format!("registry.digitalocean.com/a{}", "b".repeat(62));
        accepted(validate(&longest));
        // The host lowercases the domain before the flavor sees it.
        assert_eq!(
            accepted(validate("Registry.DigitalOcean.com/my-registry/"))["uri"],
            "registry.digitalocean.com/my-registry"
        );
    }

    #[test]
    fn refuses_look_alikes_and_bad_names_with_the_reason() {
        let long = format!("registry.digitalocean.com/a{}", "b".repeat(63));
        let refused: &[(&str, &str)] = &[
            // Look-alike hosts: the whole host must be the DOCR host.
            (
                "registry.digitalocean.com.evil.example/my-registry",
                "not `registry.digitalocean.com.evil.example`",
            ),
            (
                "evil-registry.digitalocean.com/my-registry",
                "must be the DOCR host",
            ),
            ("digitalocean.com/my-registry", "must be the DOCR host"),
            (
                "registry.digitalocean.com:443/my-registry",
                "without a port",
            ),
            // No registry name.
            ("registry.digitalocean.com", "has no registry name"),
            // Registry names DigitalOcean refuses.
            (
                "registry.digitalocean.com/My-Registry",
                "`My-Registry` is not a valid DigitalOcean registry name",
            ),
            (
                "registry.digitalocean.com/my_registry",
                "`my_registry` is not a valid",
            ),
            (
                "registry.digitalocean.com/1registry",
                "starting with a letter",
            ),
            (
                "registry.digitalocean.com/registry-",
                "ending with a letter or digit",
            ),
            (&long, "at most 63"),
            // Paths below the registry follow the image-name grammar.
            (
                "registry.digitalocean.com/my-registry/Team",
                "path segment `Team`",
            ),
            (
                "registry.digitalocean.com/my-registry//app",
                "empty path segment",
            ),
        ];
        for (uri, reason) in refused {
            assert_issue(&issues(validate(uri)), "uri", &[reason, EXAMPLE]);
        }
    }

    #[test]
    fn takes_zenmls_default_repository() {
        let config =
            r#"{"uri":"registry.digitalocean.com/my-registry","default_repository":"team/app"}"#;
        let c = accepted(DigitalOcean::validate_config(&NoHost, config));
        assert_eq!(c["default_repository"], "team/app");
        let bad =
            r#"{"uri":"registry.digitalocean.com/my-registry","default_repository":"Team/App"}"#;
        assert_issue(
            &issues(DigitalOcean::validate_config(&NoHost, bad)),
            "default_repository",
            &["Team/App"],
        );
    }

    #[test]
    fn approves_every_push() {
        let d = DigitalOcean::prepare_image_push(
            &NoHost,
            &format!(r#"{{"uri":"{EXAMPLE}"}}"#),
            &image("registry.digitalocean.com", "my-registry/app", "1"),
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
    }

    #[test]
    fn metadata_is_complete() {
        assert_metadata(&DigitalOcean::metadata(), "digitalocean");
    }
}
