//! The `policy` flavor: any registry URI (the `default` flavor's rules), plus
//! rules on the image itself, checked against what the host read from it
//! (the `image-info` capability of WIT 0.2):
//!
//! - `platforms`: the platforms an image may be built for, `os/arch` or
//!   `os/arch/variant`, e.g. `["linux/amd64", "linux/arm64"]`;
//! - `required_labels`: labels the image must have, `key` (any value) or
//!   `key=value` (exactly that value);
//! - `max_size_mib`: the largest image, in MiB (compressed when the host
//!   knows it, else uncompressed);
//! - `deny_root_user`: refuse an image that runs as root;
//! - `max_age_days`: the oldest image, in days since it was built.
//!
//! A check by name alone (no image to read) approves with a warning naming
//! the rules it could not check: the push checks them, with the info. Where
//! the host cut a field a rule needs to its bounds, or does not know a size
//! or age a rule needs, the push is denied: a policy is not met by an image
//! nobody could see whole.

use flavor_kit::serde_json::{Map, Value, json};
use flavor_kit::validate::{self, ConfigCheck, RegistryUri};
use flavor_kit::{
    Capability, ConfigIssue, Flavor, Host, ImageInfo, ImageReference, LogLevel, Metadata,
    PushDecision, json_kind,
};

/// The `policy` flavor.
pub struct Policy;

const NAME: &str = "policy";
const EXAMPLE: &str = "registry.example.com/team";

const PLATFORMS: &str = "platforms";
const REQUIRED_LABELS: &str = "required_labels";
const MAX_SIZE_MIB: &str = "max_size_mib";
const DENY_ROOT_USER: &str = "deny_root_user";
const MAX_AGE_DAYS: &str = "max_age_days";

/// Every field of the config: ZenML's base fields and the rules.
const FIELDS: &[&str] = &[
    "uri",
    "default_repository",
    PLATFORMS,
    REQUIRED_LABELS,
    MAX_SIZE_MIB,
    DENY_ROOT_USER,
    MAX_AGE_DAYS,
];

const MIB: f64 = 1024.0 * 1024.0;
const DAY: f64 = 86_400.0;

impl Flavor for Policy {
    fn metadata() -> Metadata {
        Metadata {
            name: NAME.into(),
            display_name: "Policy".into(),
            description: "Any Docker/OCI container registry reachable by URI (as the `default` \
                          flavor), with rules on the image itself, read by the host from the \
                          image's config and layers: the platforms it may be built for, labels \
                          it must carry, a maximum size and age, and no image that runs as \
                          root. The rules are checked when an image is pushed; a check by name \
                          alone approves with a warning naming the rules it could not check."
                .into(),
            docs_url: "https://github.com/opencontainers/image-spec/blob/main/config.md".into(),
            logo_url: "https://public-flavor-logos.s3.eu-central-1.amazonaws.com/container_registry/docker.png".into(),
            config_schema: validate::config_schema(
                "Policy container registry",
                "Registry URI: `host[:port]` with an optional path of lowercase path components \
                 (letters and digits, optionally separated by `.`, `_`, `__` or `-`), no scheme, \
                 tag or digest.",
                &["localhost:5000", EXAMPLE, "registry.example.com:5050/group/project"],
                &[
                    (
                        PLATFORMS,
                        json!({
                            "type": "array",
                            "description": "Platforms an image may be built for, as \
                                            `os/arch` (any variant) or `os/arch/variant`. \
                                            Read as containerd reads them: `x86_64` is \
                                            `amd64`, `aarch64` is `arm64`, `armhf` is \
                                            `arm/v7`; an `arm64` image without a variant is \
                                            `arm64/v8`, an `arm` one `arm/v7`.",
                            "items": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$",
                            },
                            "minItems": 1,
                            "examples": [["linux/amd64"], ["linux/amd64", "linux/arm64/v8"]],
                        }),
                    ),
                    (
                        REQUIRED_LABELS,
                        json!({
                            "type": "array",
                            "description": "Labels an image must carry: `key` for any value, \
                                            `key=value` for exactly that value.",
                            "items": { "type": "string", "minLength": 1 },
                            "examples": [["org.opencontainers.image.source", "team=ml"]],
                        }),
                    ),
                    (
                        MAX_SIZE_MIB,
                        json!({
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "description": "Largest image allowed, in MiB: its compressed size \
                                            when the host knows it, else its uncompressed size.",
                            "examples": [512],
                        }),
                    ),
                    (
                        DENY_ROOT_USER,
                        json!({
                            "type": "boolean",
                            "description": "Refuse an image that runs as root: no `User` in its \
                                            config, or user `root` or `0` (with any group).",
                            "examples": [true],
                        }),
                    ),
                    (
                        MAX_AGE_DAYS,
                        json!({
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "description": "Oldest image allowed, in days since it was built \
                                            (its config's `created`).",
                            "examples": [30],
                        }),
                    ),
                ],
            ),
            capabilities: vec![Capability::ImageInfo],
        }
    }

    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        let mut cfg = ConfigCheck::parse(config, FIELDS)?;
        let uri = cfg.uri(EXAMPLE);
        if let Some(uri) = &uri {
            check_uri(uri, &mut cfg.issues);
        }
        cfg.default_repository(uri.as_ref());
        let rules = Rules::read(&cfg.map, &mut cfg.issues);
        if let Some(platforms) = &rules.platforms {
            let normalised: Vec<String> = platforms.iter().map(PlatformRule::to_string).collect();
            cfg.set(PLATFORMS, normalised);
        }
        cfg.finish()
    }

    fn prepare_image_push(host: &dyn Host, config: &str, image: &ImageReference) -> PushDecision {
        Self::prepare_image_push_with_info(host, config, image, None)
    }

    fn prepare_image_push_with_info(
        host: &dyn Host,
        config: &str,
        image: &ImageReference,
        info: Option<&ImageInfo>,
    ) -> PushDecision {
        let rules = match flavor_kit::parse_config(config) {
            Ok(map) => {
                let mut issues = Vec::new();
                let rules = Rules::read(&map, &mut issues);
                if !issues.is_empty() {
                    return invalid_config(&issues);
                }
                rules
            }
            Err(issues) => return invalid_config(&issues),
        };
        let set = rules.set();
        if set.is_empty() {
            return validate::approve_push(host, NAME, image);
        }
        let Some(info) = info else {
            host.log(
                LogLevel::Debug,
                &format!("{NAME}: no image info for `{}`", image.name),
            );
            return PushDecision::Approve(vec![format!(
                "{} the image itself, which a check by name alone does not have: the push \
                 checks {}",
                rule_list(&set, "needs", "need"),
                if set.len() == 1 { "it" } else { "them" },
            )]);
        };
        let denials = rules.check(info);
        host.log(
            LogLevel::Debug,
            &format!(
                "{NAME}: {} of {} rules broken by `{}`",
                denials.len(),
                set.len(),
                image.name
            ),
        );
        if denials.is_empty() {
            PushDecision::Approve(vec![])
        } else {
            PushDecision::Deny(denials.join("; "))
        }
    }
}

/// The `default` flavor's rules: any registry.
fn check_uri(uri: &RegistryUri, issues: &mut Vec<ConfigIssue>) {
    validate::check_any_registry(uri, EXAMPLE, issues);
}

/// A push under a config that does not read (the host hands in the config
/// `validate-config` returned, so this is a config from elsewhere): denied.
fn invalid_config(issues: &[ConfigIssue]) -> PushDecision {
    let issues: Vec<String> = issues
        .iter()
        .map(|i| {
            if i.field.is_empty() {
                i.message.clone()
            } else {
                format!("`{}`: {}", i.field, i.message)
            }
        })
        .collect();
    PushDecision::Deny(format!(
        "the policy config is not valid, so no rule can be checked: {}",
        issues.join("; ")
    ))
}

/// "rule `a` needs" / "rules `a`, `b` need".
fn rule_list(rules: &[&str], one: &str, many: &str) -> String {
    let names: Vec<String> = rules.iter().map(|r| format!("`{r}`")).collect();
    if rules.len() == 1 {
        format!("rule {} {one}", names[0])
    } else {
        format!("rules {} {many}", names.join(", "))
    }
}

/// A configured limit for a message, exactly as it reads (`0.25`, `15.46`,
/// `1e-7` as `0.0000001`): never rounded into another limit.
fn limit(x: f64) -> String {
    format!("{x}")
}

/// An image's value past `limit`, with as few decimals as show it past the
/// limit (`15.5` against 15.46 would read as within; `15.47` does not).
fn over(value: f64, limit: f64) -> String {
    let shown = number(value);
    if shown.parse::<f64>().is_ok_and(|v| v > limit) {
        return shown;
    }
    for decimals in 2..=12 {
        let text = format!("{value:.decimals$}");
        if text.parse::<f64>().is_ok_and(|v| v > limit) {
            return text;
        }
    }
    format!("{value}")
}

/// A number for a message: whole numbers without a fraction, others with
/// one decimal.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let rounded = format!("{x:.1}");
        rounded
            .strip_suffix(".0")
            .map(str::to_string)
            .unwrap_or(rounded)
    }
}

/// An allowed platform. The OCI image config names the platform by
/// `os`, `architecture` and an optional `variant`, with Go's GOOS and
/// GOARCH values
/// (https://github.com/opencontainers/image-spec/blob/main/config.md#properties);
/// aliases are read the way containerd's platform matcher reads them
/// (https://github.com/containerd/platforms/blob/main/database.go).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlatformRule {
    os: String,
    /// Normalised as containerd normalises it.
    architecture: String,
    /// `None`: any variant of `os/architecture`; else the normalised
    /// variant (`""` for the architecture's base, e.g. `arm64/v8`).
    variant: Option<String>,
}

/// The canonical form, which reads back as the same rule: a base variant
/// is written out (`linux/arm64/v8`, `linux/amd64/v1`).
impl std::fmt::Display for PlatformRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match self.variant.as_deref() {
            None => Ok(()),
            Some("") => match self.architecture.as_str() {
                "amd64" => f.write_str("/v1"),
                "arm64" => f.write_str("/v8"),
                _ => Ok(()),
            },
            Some(variant) => write!(f, "/{variant}"),
        }
    }
}

/// An architecture and variant as containerd's `normalizeArch` reads them
/// (https://github.com/containerd/platforms/blob/main/database.go):
/// aliases (`x86_64` is `amd64`, `aarch64` is `arm64`, `i386` is `386`,
/// `armhf` is `arm/v7`, `armel` is `arm/v6`), `amd64/v1` and `arm64/v8`
/// are their architecture's base (variant `""`), a bare `arm` is `arm/v7`,
/// and a variant written as a number (`8`, `v8.0`) is `v8`. The second
/// value says whether the alias itself named a variant.
fn normalize(arch: &str, variant: &str) -> (String, String, bool) {
    let arch = arch.trim().to_ascii_lowercase();
    let variant = variant.trim().to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new(), false),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v, false)
        }
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => variant,
            };
            ("arm64".into(), v, false)
        }
        "armhf" => ("arm".into(), "v7".into(), true),
        "armel" => ("arm".into(), "v6".into(), true),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v, false)
        }
        _ => (arch, variant, false),
    }
}

impl PlatformRule {
    /// Reads `os/arch` or `os/arch/variant`, lowercased, with aliases read.
    fn parse(text: &str) -> Result<PlatformRule, String> {
        let lower = text.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "`{text}` is not os/arch or os/arch/variant, e.g. `linux/amd64` or \
                 `linux/arm64/v8`"
            ));
        }
        if let Some(bad) = parts.iter().find(|p| {
            !p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        }) {
            return Err(format!(
                "`{bad}` in `{text}` is not a platform name: use letters, digits, `.`, `_` and \
                 `-`, e.g. `linux/amd64`"
            ));
        }
        let (architecture, variant) = match parts.get(2) {
            Some(variant) => {
                let (arch, variant, _) = normalize(parts[1], variant);
                (arch, Some(variant))
            }
            None => {
                let (arch, variant, named) = normalize(parts[1], "");
                (arch, named.then_some(variant))
            }
        };
        Ok(PlatformRule {
            os: parts[0].to_string(),
            architecture,
            variant,
        })
    }

    /// Whether an image built for `platform` is allowed by this rule.
    fn allows(&self, platform: &flavor_kit::Platform) -> bool {
        let (arch, variant, _) = normalize(
            &platform.architecture,
            platform.variant.as_deref().unwrap_or_default(),
        );
        platform.os.trim().eq_ignore_ascii_case(&self.os)
            && arch == self.architecture
            && self
                .variant
                .as_ref()
                .is_none_or(|wanted| *wanted == variant)
    }
}

/// A required label: `key`, or `key=value`. Labels are the image config's
/// `Labels` (https://github.com/opencontainers/image-spec/blob/main/config.md#properties;
/// Docker's `LABEL`, https://docs.docker.com/reference/dockerfile/#label).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelRule {
    key: String,
    /// `None`: any value.
    value: Option<String>,
}

impl LabelRule {
    fn parse(text: &str) -> Result<LabelRule, String> {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (text, None),
        };
        if key.is_empty() {
            return Err(format!(
                "`{text}` has no label key: write `key` to require a label with any value, or \
                 `key=value`, e.g. `team=ml`"
            ));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the label key `{key}` must not contain whitespace, e.g. \
                 `org.opencontainers.image.source`"
            ));
        }
        if value == Some("") {
            return Err(format!(
                "`{text}` requires an empty value: write `{key}` to require the label with any \
                 value, or `{key}=value` for one value"
            ));
        }
        Ok(LabelRule {
            key: key.to_string(),
            value: value.map(str::to_string),
        })
    }
}

/// The rules of a config; every one is optional.
#[derive(Debug, Default, Clone, PartialEq)]
struct Rules {
    platforms: Option<Vec<PlatformRule>>,
    required_labels: Vec<LabelRule>,
    max_size_mib: Option<f64>,
    deny_root_user: bool,
    max_age_days: Option<f64>,
}

impl Rules {
    /// Reads the rules of a config object, recording an issue (on the
    /// field, or the item, e.g. `platforms[1]`) for every one that is wrong.
    fn read(map: &Map<String, Value>, issues: &mut Vec<ConfigIssue>) -> Rules {
        let mut rules = Rules::default();
        if let Some(items) = array(map, PLATFORMS, r#"["linux/amd64"]"#, issues) {
            if items.is_empty() {
                issues.push(ConfigIssue::new(
                    PLATFORMS,
                    "`platforms` is empty, so no image could be pushed: list at least one, \
                     e.g. [\"linux/amd64\"], or leave `platforms` out to allow any",
                ));
            }
            let mut platforms: Vec<PlatformRule> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let field = format!("{PLATFORMS}[{i}]");
                match item {
                    Value::String(text) => match PlatformRule::parse(text) {
                        Ok(p) if !platforms.contains(&p) => platforms.push(p),
                        Ok(_) => {}
                        Err(message) => issues.push(ConfigIssue::new(field, message)),
                    },
                    other => issues.push(ConfigIssue::new(
                        field,
                        format!(
                            "a platform must be a string, got {}; e.g. \"linux/amd64\"",
                            json_kind(other)
                        ),
                    )),
                }
            }
            rules.platforms = Some(platforms);
        }
        if let Some(items) = array(
            map,
            REQUIRED_LABELS,
            r#"["org.opencontainers.image.source", "team=ml"]"#,
            issues,
        ) {
            for (i, item) in items.iter().enumerate() {
                let field = format!("{REQUIRED_LABELS}[{i}]");
                let rule = match item {
                    Value::String(text) => LabelRule::parse(text),
                    other => Err(format!(
                        "a required label must be a string, `key` or `key=value`, got {}; e.g. \
                         \"team=ml\"",
                        json_kind(other)
                    )),
                };
                match rule {
                    Ok(rule) => {
                        if let Some(j) =
                            rules.required_labels.iter().position(|r| r.key == rule.key)
                        {
                            issues.push(ConfigIssue::new(
                                field,
                                format!(
                                    "the label `{}` is already required by `{REQUIRED_LABELS}[{j}]`: \
                                     require each label once",
                                    rule.key
                                ),
                            ));
                        } else {
                            rules.required_labels.push(rule);
                        }
                    }
                    Err(message) => issues.push(ConfigIssue::new(field, message)),
                }
            }
        }
        rules.max_size_mib = positive(map, MAX_SIZE_MIB, "MiB", "512", issues);
        rules.max_age_days = positive(map, MAX_AGE_DAYS, "days", "30", issues);
        match map.get(DENY_ROOT_USER) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => rules.deny_root_user = *b,
            Some(other) => issues.push(ConfigIssue::new(
                DENY_ROOT_USER,
                format!(
                    "`{DENY_ROOT_USER}` must be true or false, got {}; e.g. true",
                    json_kind(other)
                ),
            )),
        }
        rules
    }

    /// The names of the rules that are set, in the order they are checked.
    fn set(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.platforms.is_some() {
            set.push(PLATFORMS);
        }
        if !self.required_labels.is_empty() {
            set.push(REQUIRED_LABELS);
        }
        if self.max_size_mib.is_some() {
            set.push(MAX_SIZE_MIB);
        }
        if self.deny_root_user {
            set.push(DENY_ROOT_USER);
        }
        if self.max_age_days.is_some() {
            set.push(MAX_AGE_DAYS);
        }
        set
    }

    /// Every rule `info` breaks, each naming the rule and the image's value.
    fn check(&self, info: &ImageInfo) -> Vec<String> {
        let mut denials = Vec::new();
        let mut deny = |rule: &str, what: String| denials.push(format!("rule `{rule}`: {what}"));

        if let Some(platforms) = &self.platforms {
            if let Some(cut) = cut(info, &["platform"]) {
                deny(PLATFORMS, cut);
            } else if !platforms.iter().any(|p| p.allows(&info.platform)) {
                let allowed: Vec<String> = platforms.iter().map(PlatformRule::to_string).collect();
                let image = if info.platform.os.is_empty() && info.platform.architecture.is_empty()
                {
                    "image names no platform".to_string()
                } else {
                    format!("image is {}", info.platform)
                };
                deny(
                    PLATFORMS,
                    format!("{image}, allowed: {}", allowed.join(", ")),
                );
            }
        }

        if !self.required_labels.is_empty() {
            if let Some(cut) = cut(info, &["labels"]) {
                deny(REQUIRED_LABELS, cut);
            } else {
                let broken: Vec<String> = self
                    .required_labels
                    .iter()
                    .filter_map(|rule| match (info.label(&rule.key), &rule.value) {
                        (None, None) => Some(format!("image has no label `{}`", rule.key)),
                        (None, Some(wanted)) => Some(format!(
                            "image has no label `{}`, required: `{}={wanted}`",
                            rule.key, rule.key
                        )),
                        (Some(got), Some(wanted)) if got != wanted => Some(format!(
                            "image's label `{}` is `{got}`, required: `{wanted}`",
                            rule.key
                        )),
                        _ => None,
                    })
                    .collect();
                if !broken.is_empty() {
                    deny(REQUIRED_LABELS, broken.join(", "));
                }
            }
        }

        if let Some(max) = self.max_size_mib {
            // The compressed size is what a registry stores and a pull
            // transfers; the uncompressed size (the layers' tar streams) is
            // the bound when the host could not measure it.
            match (info.compressed_size, info.uncompressed_size) {
                (None, None) => deny(
                    MAX_SIZE_MIB,
                    format!(
                        "the image's size is unknown (the host knows neither its compressed nor \
                         its uncompressed size), so the limit of {} MiB cannot be checked",
                        limit(max)
                    ),
                ),
                (compressed, uncompressed) => {
                    let (bytes, kind) = match compressed {
                        Some(c) => (c, "compressed"),
                        None => (uncompressed.unwrap_or_default(), "uncompressed"),
                    };
                    if bytes as f64 > max * MIB {
                        deny(
                            MAX_SIZE_MIB,
                            format!(
                                "image is {} MiB {kind} ({bytes} bytes), allowed: at most {} MiB",
                                over(bytes as f64 / MIB, max),
                                limit(max)
                            ),
                        );
                    }
                }
            }
        }

        // The config's `User` (https://github.com/opencontainers/image-spec/blob/main/config.md#properties):
        // `user`, `uid`, `user:group` or `uid:gid`; empty runs as root
        // (Docker's `USER`, https://docs.docker.com/reference/dockerfile/#user).
        if self.deny_root_user {
            if let Some(cut) = cut(info, &["user"]) {
                deny(DENY_ROOT_USER, cut);
            } else if runs_as_root(&info.user) {
                let user = if info.user.trim().is_empty() {
                    "its config sets no `User`".to_string()
                } else {
                    format!("user `{}`", info.user)
                };
                deny(DENY_ROOT_USER, format!("image runs as root ({user})"));
            }
        }

        // `created` (RFC 3339) of the image config; the host measures the
        // age against its own clock.
        if let Some(max) = self.max_age_days {
            if let Some(cut) = cut(info, &["created", "age-seconds"]) {
                deny(MAX_AGE_DAYS, cut);
            } else {
                match info.age_seconds {
                    None => deny(
                        MAX_AGE_DAYS,
                        format!(
                            "the image's age is unknown ({}), so the limit of {} days cannot be \
                             checked",
                            match &info.created {
                                Some(created) => format!("its `created` `{created}` does not read"),
                                None => "its config has no `created` time".to_string(),
                            },
                            limit(max)
                        ),
                    ),
                    Some(age) if age as f64 > max * DAY => {
                        let created = info
                            .created
                            .as_deref()
                            .map(|c| format!(" (created {c})"))
                            .unwrap_or_default();
                        deny(
                            MAX_AGE_DAYS,
                            format!(
                                "image is {} days old{created}, allowed: at most {} days",
                                over(age as f64 / DAY, max),
                                limit(max)
                            ),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        denials
    }
}

/// When the host cut one of `fields` (WIT names; `_` and `-` alike) to its
/// bounds: why the rule cannot be checked.
fn cut(info: &ImageInfo, fields: &[&str]) -> Option<String> {
    let field = info.truncated.iter().find(|t| {
        let t = t.replace('_', "-");
        fields.contains(&t.as_str())
    })?;
    Some(format!(
        "the host cut the image's `{field}` to its bounds, so the rule cannot be checked on the \
         whole image"
    ))
}

/// Whether a config `User` runs as root: empty, or user `root`, or a uid
/// that is 0 as the runtime reads a number (Go's `strconv.Atoi`: `0`,
/// `00`, `+0`, `-0`), with any group.
fn runs_as_root(user: &str) -> bool {
    let name = user.trim().split(':').next().unwrap_or_default();
    let digits = name.strip_prefix(['+', '-']).unwrap_or(name);
    name.is_empty() || name == "root" || (!digits.is_empty() && digits.bytes().all(|c| c == b'0'))
}

/// An optional array field; records an issue when it is not an array.
fn array<'a>(
    map: &'a Map<String, Value>,
    field: &str,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<&'a Vec<Value>> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items),
        Some(other) => {
            issues.push(ConfigIssue::new(
                field,
                format!(
                    "`{field}` must be an array of strings, got {}; e.g. {example}",
                    json_kind(other)
                ),
            ));
            None
        }
    }
}

/// An optional positive number field; records an issue otherwise.
fn positive(
    map: &Map<String, Value>,
    field: &str,
    unit: &str,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<f64> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x > 0.0 && x.is_finite() => Some(x),
            _ => {
                issues.push(ConfigIssue::new(
                    field,
                    format!(
                        "`{field}` must be a positive number of {unit}, got {n}; e.g. {example}"
                    ),
                ));
                None
            }
        },
        Some(other) => {
            issues.push(ConfigIssue::new(
                field,
                format!(
                    "`{field}` must be a positive number of {unit}, got {}; e.g. {example}",
                    json_kind(other)
                ),
            ));
            None
        }
    }
}

flavor_kit::export_flavor!(Policy);

#[cfg(test)]
mod tests {
    use super::*;
    use flavor_kit::testing::{
        FakeHost, accepted, assert_issue, assert_metadata, image, image_info, issues,
    };
    use flavor_kit::{NoHost, serde_json};

    fn validate(config: Value) -> Result<String, Vec<ConfigIssue>> {
        Policy::validate_config(&NoHost, &config.to_string())
    }

    /// `rules` with a `uri`.
    fn config(rules: Value) -> Value {
        let mut config = json!({ "uri": "localhost:5000" });
        config
            .as_object_mut()
            .unwrap()
            .extend(rules.as_object().unwrap().clone());
        config
    }

    /// The decision on pushing an image with `info` under `rules`, through
    /// `validate-config` first (as the host does).
    fn push(rules: Value, info: Option<&ImageInfo>) -> PushDecision {
        let normalised = accepted(validate(config(rules))).to_string();
        Policy::prepare_image_push_with_info(
            &NoHost,
            &normalised,
            &image("localhost:5000", "team/app", "1"),
            info,
        )
    }

    fn approved(decision: PushDecision) -> Vec<String> {
        match decision {
            PushDecision::Approve(warnings) => warnings,
            PushDecision::Deny(reason) => panic!("expected approval, denied: {reason}"),
        }
    }

    /// The reason of a denial; panics if approved.
    fn denied(decision: PushDecision) -> String {
        match decision {
            PushDecision::Deny(reason) => reason,
            PushDecision::Approve(w) => panic!("expected a denial, approved with {w:?}"),
        }
    }

    fn assert_contains(text: &str, needles: &[&str]) {
        for needle in needles {
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
    }

    #[test]
    fn metadata_is_complete() {
        let m = Policy::metadata();
        assert_metadata(&m, "policy");
        assert_eq!(m.capabilities, [Capability::ImageInfo]);
        let schema: Value = serde_json::from_str(&m.config_schema).unwrap();
        for example in schema["properties"]["uri"]["examples"].as_array().unwrap() {
            accepted(validate(json!({ "uri": example })));
        }
        for field in &FIELDS[2..] {
            let property = &schema["properties"][field];
            assert!(property["description"].is_string(), "{field}");
            for example in property["examples"].as_array().expect(field) {
                accepted(validate(config(json!({ *field: example }))));
            }
        }
    }

    #[test]
    fn takes_the_default_flavors_registry_rules() {
        let c = accepted(validate(json!({
            "uri": "Registry.Example.COM:5050/team/",
            "default_repository": "ml/app",
        })));
        assert_eq!(c["uri"], "registry.example.com:5050/team");
        let i = issues(validate(json!({ "uri": "localhost:50a0/Team" })));
        assert_issue(&i, "uri", &["the port `50a0`", "is not a number"]);
        assert_issue(&i, "uri", &["path segment `Team`", EXAMPLE]);
        assert_issue(&issues(validate(json!({}))), "uri", &["required"]);
        let i = issues(validate(config(json!({ "platform": ["linux/amd64"] }))));
        assert_issue(
            &i,
            "platform",
            &["unknown field", "platforms, required_labels"],
        );
    }

    #[test]
    fn no_rules_approve_every_push() {
        let host = FakeHost::new(Ok(true));
        let d = Policy::prepare_image_push_with_info(
            &host,
            r#"{"uri":"localhost:5000"}"#,
            &image("localhost:5000", "app", "1"),
            None,
        );
        assert_eq!(d, PushDecision::Approve(vec![]));
        assert_eq!(
            push(json!({}), Some(&image_info("windows/amd64"))),
            PushDecision::Approve(vec![])
        );
        assert_eq!(
            push(
                json!({ "required_labels": [], "deny_root_user": false }),
                None
            ),
            PushDecision::Approve(vec![])
        );
    }

    #[test]
    fn without_info_approves_with_a_warning_naming_the_rules() {
        let w = approved(push(
            json!({ "platforms": ["linux/amd64"], "max_size_mib": 10 }),
            None,
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_contains(
            &w[0],
            &[
                "rules `platforms`, `max_size_mib` need the image itself",
                "check by name alone",
                "the push checks them",
            ],
        );
        let w = approved(push(json!({ "deny_root_user": true }), None));
        assert_contains(&w[0], &["rule `deny_root_user` needs", "checks it"]);
        // Through the plain `prepare_image_push` (a 0.1 build) as well.
        let d = Policy::prepare_image_push(
            &NoHost,
            &config(json!({ "max_age_days": 3 })).to_string(),
            &image("localhost:5000", "app", "1"),
        );
        assert_contains(&approved(d)[0], &["rule `max_age_days` needs"]);
    }

    #[test]
    fn platforms() {
        let rules = json!({ "platforms": ["linux/amd64"] });
        approved(push(rules.clone(), Some(&image_info("linux/amd64"))));
        let reason = denied(push(rules.clone(), Some(&image_info("linux/arm64"))));
        assert_eq!(
            reason,
            "rule `platforms`: image is linux/arm64, allowed: linux/amd64"
        );
        let reason = denied(push(rules, Some(&image_info("windows/amd64"))));
        assert_contains(&reason, &["image is windows/amd64"]);

        // Any variant, unless one is named; arm64 without a variant is v8.
        let rules = json!({ "platforms": ["linux/arm64", "linux/arm/v7"] });
        approved(push(rules.clone(), Some(&image_info("linux/arm64/v8"))));
        approved(push(rules.clone(), Some(&image_info("linux/arm/v7"))));
        let reason = denied(push(rules, Some(&image_info("linux/arm/v6"))));
        assert_eq!(
            reason,
            "rule `platforms`: image is linux/arm/v6, allowed: linux/arm64, linux/arm/v7"
        );
        let rules = json!({ "platforms": ["linux/arm64/v8"] });
        approved(push(rules.clone(), Some(&image_info("linux/arm64"))));
        denied(push(rules, Some(&image_info("linux/arm64/v9"))));

        // Variants as containerd reads them: `8` and `v8.0` are arm64's
        // base, a bare `arm` is `arm/v7`, `amd64/v1` is `amd64`.
        let rules = json!({ "platforms": ["linux/arm64/v8", "linux/arm/v7", "linux/amd64/v1"] });
        for image in [
            "linux/arm64/8",
            "linux/arm64/v8.0",
            "linux/arm",
            "linux/arm/7",
            "linux/amd64",
        ] {
            approved(push(rules.clone(), Some(&image_info(image))));
        }
        for image in ["linux/arm/v6", "linux/arm64/v9", "linux/amd64/v3"] {
            denied(push(rules.clone(), Some(&image_info(image))));
        }
        // The canonical form reads back as the same rule.
        let c = accepted(validate(config(json!({
            "platforms": ["linux/aarch64/8", "linux/armhf", "linux/x86_64/v1", "linux/arm"],
        }))));
        assert_eq!(
            c["platforms"],
            json!([
                "linux/arm64/v8",
                "linux/arm/v7",
                "linux/amd64/v1",
                "linux/arm"
            ])
        );

        // Aliases and case, in the config and in the image.
        let c = accepted(validate(config(json!({
            "platforms": ["Linux/X86_64", "linux/aarch64", "linux/amd64"],
        }))));
        assert_eq!(c["platforms"], json!(["linux/amd64", "linux/arm64"]));
        approved(push(
            json!({ "platforms": ["linux/amd64"] }),
            Some(&image_info("linux/x86_64")),
        ));

        let mut info = image_info("linux/amd64");
        info.platform = Default::default();
        let reason = denied(push(json!({ "platforms": ["linux/amd64"] }), Some(&info)));
        assert_contains(
            &reason,
            &["image names no platform", "allowed: linux/amd64"],
        );
    }

    #[test]
    fn platforms_config_errors() {
        let i = issues(validate(config(json!({
            "platforms": ["linux/amd64", "linux", "linux/amd64/v3/x", 7, "linux/am d64", "/amd64"],
        }))));
        assert_issue(
            &i,
            "platforms[1]",
            &["`linux` is not os/arch", "e.g. `linux/amd64`"],
        );
        assert_issue(&i, "platforms[2]", &["`linux/amd64/v3/x` is not os/arch"]);
        assert_issue(&i, "platforms[3]", &["must be a string, got a number"]);
        assert_issue(&i, "platforms[4]", &["`am d64`", "not a platform name"]);
        assert_issue(&i, "platforms[5]", &["`/amd64` is not os/arch"]);
        assert_eq!(i.len(), 5, "{i:#?}");
        assert_issue(
            &issues(validate(config(json!({ "platforms": "linux/amd64" })))),
            "platforms",
            &[
                "must be an array of strings, got a string",
                r#"["linux/amd64"]"#,
            ],
        );
        assert_issue(
            &issues(validate(config(json!({ "platforms": [] })))),
            "platforms",
            &["is empty", "leave `platforms` out"],
        );
        // `null` is no rule.
        let c = accepted(validate(config(json!({ "platforms": null }))));
        assert_eq!(c["platforms"], Value::Null);
    }

    #[test]
    fn required_labels() {
        let rules = json!({ "required_labels": ["org.opencontainers.image.source", "team=ml"] });
        let mut info = image_info("linux/amd64");
        info.labels.push(("team".into(), "ml".into()));
        approved(push(rules.clone(), Some(&info)));

        info.labels[1].1 = "ops".into();
        assert_eq!(
            denied(push(rules.clone(), Some(&info))),
            "rule `required_labels`: image's label `team` is `ops`, required: `ml`"
        );
        info.labels.clear();
        assert_eq!(
            denied(push(rules.clone(), Some(&info))),
            "rule `required_labels`: image has no label `org.opencontainers.image.source`, \
             image has no label `team`, required: `team=ml`"
        );
        // A value may itself hold `=`.
        let mut info = image_info("linux/amd64");
        info.labels.push(("query".into(), "a=b".into()));
        approved(push(
            json!({ "required_labels": ["query=a=b"] }),
            Some(&info),
        ));
    }

    #[test]
    fn required_labels_config_errors() {
        let i = issues(validate(config(json!({
            "required_labels": ["team", "=ml", "team=ml", "a b", "env=", 3],
        }))));
        assert_issue(&i, "required_labels[1]", &["`=ml` has no label key"]);
        assert_issue(
            &i,
            "required_labels[2]",
            &["`team` is already required by `required_labels[0]`"],
        );
        assert_issue(
            &i,
            "required_labels[3]",
            &["`a b` must not contain whitespace"],
        );
        assert_issue(
            &i,
            "required_labels[4]",
            &["`env=` requires an empty value", "`env`"],
        );
        assert_issue(
            &i,
            "required_labels[5]",
            &["must be a string", "got a number"],
        );
        assert_eq!(i.len(), 5, "{i:#?}");
        assert_issue(
            &issues(validate(config(
                json!({ "required_labels": {"team": "ml"} }),
            ))),
            "required_labels",
            &["must be an array of strings, got an object"],
        );
    }

    #[test]
    fn max_size_mib() {
        // image_info: 3 MiB compressed, 8 MiB uncompressed.
        let info = image_info("linux/amd64");
        approved(push(json!({ "max_size_mib": 3 }), Some(&info)));
        assert_eq!(
            denied(push(json!({ "max_size_mib": 2.5 }), Some(&info))),
            "rule `max_size_mib`: image is 3 MiB compressed (3145728 bytes), allowed: at most \
             2.5 MiB"
        );
        // Uncompressed when the compressed size is unknown.
        let mut info = image_info("linux/amd64");
        info.compressed_size = None;
        approved(push(json!({ "max_size_mib": 8 }), Some(&info)));
        let reason = denied(push(json!({ "max_size_mib": 5 }), Some(&info)));
        assert_contains(&reason, &["image is 8 MiB uncompressed", "at most 5 MiB"]);
        // Neither known: denied, saying so.
        info.uncompressed_size = None;
        let reason = denied(push(json!({ "max_size_mib": 5000 }), Some(&info)));
        assert_contains(
            &reason,
            &[
                "rule `max_size_mib`: the image's size is unknown",
                "limit of 5000 MiB cannot be checked",
            ],
        );
    }

    #[test]
    fn deny_root_user() {
        let rules = json!({ "deny_root_user": true });
        let mut info = image_info("linux/amd64");
        for user in ["app", "1000", "1000:1000", "app:root", "1000:0", "rootless"] {
            info.user = user.into();
            approved(push(rules.clone(), Some(&info)));
        }
        // A uid the runtime reads as 0 is root however it is written.
        for user in [
            "root",
            "0",
            "0:0",
            "root:root",
            "root:1000",
            " 0 ",
            "00",
            "+0",
            "-0:0",
        ] {
            info.user = user.into();
            let reason = denied(push(rules.clone(), Some(&info)));
            assert_eq!(
                reason,
                format!("rule `deny_root_user`: image runs as root (user `{user}`)")
            );
        }
        info.user = String::new();
        assert_eq!(
            denied(push(rules, Some(&info))),
            "rule `deny_root_user`: image runs as root (its config sets no `User`)"
        );
        // false is no rule.
        approved(push(json!({ "deny_root_user": false }), Some(&info)));
        assert_issue(
            &issues(validate(config(json!({ "deny_root_user": "yes" })))),
            "deny_root_user",
            &["must be true or false, got a string"],
        );
    }

    #[test]
    fn max_age_days() {
        // image_info: a day old.
        let mut info = image_info("linux/amd64");
        approved(push(json!({ "max_age_days": 1 }), Some(&info)));
        info.age_seconds = Some(45 * 86_400 + 43_200);
        assert_eq!(
            denied(push(json!({ "max_age_days": 30 }), Some(&info))),
            "rule `max_age_days`: image is 45.5 days old (created 2025-01-01T00:00:00Z), \
             allowed: at most 30 days"
        );
        info.age_seconds = None;
        let reason = denied(push(json!({ "max_age_days": 30 }), Some(&info)));
        assert_contains(
            &reason,
            &[
                "the image's age is unknown",
                "`created` `2025-01-01T00:00:00Z` does not read",
            ],
        );
        info.created = None;
        let reason = denied(push(json!({ "max_age_days": 30 }), Some(&info)));
        assert_contains(&reason, &["its config has no `created` time"]);
    }

    #[test]
    fn number_config_errors() {
        for field in ["max_size_mib", "max_age_days"] {
            for bad in [json!(0), json!(-1), json!(-0.5)] {
                let i = issues(validate(config(json!({ field: bad }))));
                assert_issue(&i, field, &["must be a positive number", "got"]);
            }
            let i = issues(validate(config(json!({ field: "512" }))));
            assert_issue(&i, field, &["must be a positive number", "got a string"]);
            accepted(validate(config(json!({ field: 0.5 }))));
        }
    }

    #[test]
    fn truncated_fields_a_rule_needs_are_denied() {
        let mut info = image_info("linux/amd64");
        info.labels.push(("team".into(), "ml".into()));
        info.truncated = vec!["labels".into()];
        let reason = denied(push(json!({ "required_labels": ["team"] }), Some(&info)));
        assert_eq!(
            reason,
            "rule `required_labels`: the host cut the image's `labels` to its bounds, so the \
             rule cannot be checked on the whole image"
        );
        // A cut field no rule needs changes nothing.
        info.truncated = vec!["env-names".into(), "layers".into()];
        approved(push(
            json!({ "required_labels": ["team"], "deny_root_user": true, "max_size_mib": 5 }),
            Some(&info),
        ));
        info.truncated = vec!["user".into(), "created".into()];
        let reason = denied(push(
            json!({ "deny_root_user": true, "max_age_days": 30 }),
            Some(&info),
        ));
        assert_contains(
            &reason,
            &[
                "rule `deny_root_user`: the host cut the image's `user`",
                "; rule `max_age_days`: the host cut the image's `created`",
            ],
        );
    }

    #[test]
    fn every_broken_rule_is_named() {
        let mut info = image_info("linux/arm64");
        info.user = "root".into();
        let reason = denied(push(
            json!({
                "platforms": ["linux/amd64"],
                "required_labels": ["team"],
                "max_size_mib": 1,
                "deny_root_user": true,
                "max_age_days": 0.5,
            }),
            Some(&info),
        ));
        let rules: Vec<&str> = reason
            .split("; ")
            .map(|d| d.split(':').next().unwrap())
            .collect();
        assert_eq!(
            rules,
            [
                "rule `platforms`",
                "rule `required_labels`",
                "rule `max_size_mib`",
                "rule `deny_root_user`",
                "rule `max_age_days`",
            ],
            "{reason}"
        );
    }

    #[test]
    fn a_config_that_does_not_read_is_denied() {
        let d = Policy::prepare_image_push_with_info(
            &NoHost,
            r#"{"uri":"localhost:5000","platforms":"linux"}"#,
            &image("localhost:5000", "app", "1"),
            Some(&image_info("linux/amd64")),
        );
        assert_contains(
            &denied(d),
            &[
                "policy config is not valid",
                "`platforms`: `platforms` must be an array",
            ],
        );
        let d = Policy::prepare_image_push(&NoHost, "[]", &image("localhost:5000", "app", "1"));
        assert_contains(&denied(d), &["config must be a JSON object"]);
    }

    #[test]
    fn numbers_in_messages() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(2.04), "2");
        assert_eq!(number(612.345), "612.3");
    }

    #[test]
    fn a_limit_reads_as_configured_and_a_value_past_it_shows_so() {
        for (x, text) in [
            (0.25, "0.25"),
            (15.46, "15.46"),
            (1e-7, "0.0000001"),
            (2048.0, "2048"),
        ] {
            assert_eq!(limit(x), text);
        }
        assert_eq!(over(15.5, 15.46), "15.5");
        assert_eq!(over(15.463, 15.46), "15.5");
        // One decimal would read as the limit itself.
        assert_eq!(over(15.43, 15.4), "15.43");
        assert_eq!(over(0.26, 0.25), "0.3");
        assert_eq!(over(3.0 / 1_048_576.0, 1e-7), "0.000003");
        assert_eq!(over(700.0, 512.0), "700");
        // Through the rule: the message never contradicts itself.
        let mut info = image_info("linux/amd64");
        info.age_seconds = Some(15 * 86_400 + 40_000);
        let reason = denied(push(json!({ "max_age_days": 15.4 }), Some(&info.clone())));
        assert_contains(&reason, &["image is 15.5 days old", "at most 15.4 days"]);
        info.created = Some("2026-01-01T00:00:00Z".into());
        let reason = denied(push(json!({ "max_age_days": 15.46 }), Some(&info)));
        assert_eq!(
            reason,
            "rule `max_age_days`: image is 15.5 days old (created 2026-01-01T00:00:00Z), \
             allowed: at most 15.46 days"
        );
    }
}
