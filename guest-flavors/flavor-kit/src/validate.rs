//! Shared validation for registry configs: splitting a registry URI into its
//! domain and path segments, the Docker reference grammar's path components,
//! issue builders that always show a valid example, and [`ConfigCheck`], the
//! collect-every-issue pipeline every built-in flavor runs.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::{ConfigIssue, Host, ImageReference, LogLevel, PushDecision};

/// The repository path grammar is the host's own (`flavorbox-grammar`): one
/// copy in Rust, so a guest and the host never disagree on a path.
pub use flavorbox_grammar::path::{
    MAX_PATH_LENGTH as MAX_PATH_LEN, PATH_COMPONENT_RULE, is_path_component, is_repository_path,
};
/// The longest DNS label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;
/// The longest DNS name (RFC 1035, without the trailing dot).
pub const MAX_HOST_LEN: usize = 253;

impl ConfigIssue {
    /// An issue with `field` whose message states `problem` and then shows a
    /// valid `example`.
    pub fn with_example(
        field: impl Into<String>,
        problem: impl AsRef<str>,
        example: impl AsRef<str>,
    ) -> Self {
        let field = field.into();
        let message = with_example(&field, problem.as_ref(), example.as_ref());
        ConfigIssue::new(field, message)
    }
}

/// `problem`, followed by a valid example of `field`, in ZenML's wording
/// ("... An example of a valid URI is: `...`").
pub fn with_example(field: &str, problem: &str, example: &str) -> String {
    let problem = problem.trim_end_matches('.');
    let what = match field {
        "uri" => "URI",
        "" => "config",
        other => other,
    };
    format!("{problem}. An example of a valid {what} is: `{example}`")
}

/// Normalises a registry URI the way the host does before calling a flavor:
/// surrounding whitespace and trailing `/` removed, the domain lowercased and
/// `index.docker.io` written as `docker.io`. Idempotent, so applying it to a
/// config the host already normalised changes nothing.
pub fn normalize_uri(uri: &str) -> String {
    let uri = uri.trim().trim_end_matches('/');
    let (domain, rest) = match uri.find('/') {
        Some(i) => (&uri[..i], &uri[i..]),
        None => (uri, ""),
    };
    // A URI with a scheme is left alone (apart from the trim): the flavor
    // reports it instead of guessing what was meant.
    if uri.contains("://") {
        return uri.to_string();
    }
    let mut domain = domain.to_ascii_lowercase();
    if domain == "index.docker.io" {
        domain = "docker.io".to_string();
    }
    format!("{domain}{rest}")
}

/// A registry URI split into its domain (host with optional port) and the
/// path segments after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryUri {
    /// The URI as given (normalised).
    pub uri: String,
    /// Host with optional port, e.g. `localhost:5000`.
    pub domain: String,
    /// Path segments after the domain, e.g. `["team", "app"]`.
    pub segments: Vec<String>,
}

impl RegistryUri {
    /// Splits a (normalised) URI at `/`.
    pub fn parse(uri: &str) -> Self {
        let mut parts = uri.split('/');
        let domain = parts.next().unwrap_or_default().to_string();
        RegistryUri {
            uri: uri.to_string(),
            domain,
            segments: parts.map(str::to_string).collect(),
        }
    }

    /// The domain without its port.
    pub fn host(&self) -> &str {
        self.split_port().0
    }

    /// The port, when the domain has one.
    pub fn port(&self) -> Option<&str> {
        self.split_port().1
    }

    fn split_port(&self) -> (&str, Option<&str>) {
        // `[::1]:5000`: the port follows the closing bracket.
        let search_from = self.domain.rfind(']').unwrap_or(0);
        match self.domain[search_from..].rfind(':') {
            Some(i) => (
                &self.domain[..search_from + i],
                Some(&self.domain[search_from + i + 1..]),
            ),
            None => (&self.domain, None),
        }
    }

    /// The path after the domain, segments joined by `/` (empty when none).
    pub fn path(&self) -> String {
        self.segments.join("/")
    }
}

/// Whether `s` is a DNS label: 1 to 63 lowercase letters, digits and `-`,
/// neither starting nor ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Records an issue on `field` unless `uri` has a number of path segments in
/// `expected`; `shape` names them for the message (e.g. "one account segment
/// after `docker.io`"). Returns whether the count is right.
pub fn expect_segments(
    field: &str,
    uri: &RegistryUri,
    expected: RangeInclusive<usize>,
    shape: &str,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
) -> bool {
    let n = uri.segments.len();
    if expected.contains(&n) {
        return true;
    }
    let found = match n {
        0 => "has no path".to_string(),
        1 => format!("has 1 path segment (`{}`)", uri.path()),
        n => format!("has {n} path segments (`{}`)", uri.path()),
    };
    issues.push(ConfigIssue::with_example(
        field,
        format!("`{field}` `{}` must have {shape}, but {found}", uri.uri),
        example,
    ));
    false
}

/// Records an issue on `field` for every segment of `uri` that is not a path
/// component of the reference grammar. Returns whether all were valid.
pub fn check_path_components(
    field: &str,
    uri: &RegistryUri,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
) -> bool {
    check_segments(field, uri, 0, example, issues, path_component)
}

/// [`is_path_component`] as a rule for [`check_segments`].
pub fn path_component(segment: &str) -> Result<(), String> {
    if is_path_component(segment) {
        Ok(())
    } else {
        Err(format!(
            "is not valid in an image name: use {PATH_COMPONENT_RULE}"
        ))
    }
}

/// Records an issue on `field` for every segment of `uri` after the first
/// `skip` that `rule` refuses (its `Err` completes "path segment `<segment>`
/// of `<field>` `<uri>` ..."; an empty segment is always refused), and, when
/// they all pass, one if the whole path is longer than [`MAX_PATH_LEN`].
/// Returns whether all passed.
pub fn check_segments(
    field: &str,
    uri: &RegistryUri,
    skip: usize,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
    rule: impl Fn(&str) -> Result<(), String>,
) -> bool {
    let mut ok = true;
    for segment in uri.segments.iter().skip(skip) {
        let problem = if segment.is_empty() {
            format!("`{field}` `{}` has an empty path segment (`//`)", uri.uri)
        } else {
            match rule(segment) {
                Ok(()) => continue,
                Err(problem) => {
                    format!(
                        "path segment `{segment}` of `{field}` `{}` {problem}",
                        uri.uri
                    )
                }
            }
        };
        ok = false;
        issues.push(ConfigIssue::with_example(field, problem, example));
    }
    if ok && uri.path().len() > MAX_PATH_LEN {
        ok = false;
        issues.push(ConfigIssue::with_example(
            field,
            format!("the path of `{field}` is longer than {MAX_PATH_LEN} characters"),
            example,
        ));
    }
    ok
}

/// Records an issue unless the domain of `uri` is exactly `expected`.
pub fn expect_domain(
    field: &str,
    uri: &RegistryUri,
    expected: &str,
    registry: &str,
    example: &str,
    issues: &mut Vec<ConfigIssue>,
) -> bool {
    if uri.domain == expected {
        return true;
    }
    issues.push(ConfigIssue::with_example(
        field,
        format!(
            "`{field}` `{}` is not a {registry} URI: its domain must be `{expected}`, not `{}`",
            uri.uri, uri.domain
        ),
        example,
    ));
    false
}

/// The rules of a URI for any registry (the `default` flavor's, shared with
/// `policy`): the host has already checked the domain (a domain name or
/// bracketed IPv6 address, lowercased; [`normalize_uri`]). Here a port, when
/// given, must be a TCP port (1 to 65535; the Docker reference grammar only
/// asks for digits,
/// https://github.com/distribution/reference/blob/main/reference.go, but no
/// other number can be reached), and every path segment must be a lowercase
/// path component of the same grammar (the issue shows `example`). Any
/// number of path segments is accepted: self-hosted registries (GitLab
/// self-managed, GitHub Enterprise Server's `containers.<hostname>`, Harbor
/// projects, ...) nest freely.
pub fn check_any_registry(uri: &RegistryUri, example: &str, issues: &mut Vec<ConfigIssue>) {
    if let Some(port) = uri.port() {
        let problem = if port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()) {
            Some("is not a number")
        } else if !port.parse::<u16>().is_ok_and(|p| p != 0) {
            Some("is not a TCP port (1 to 65535)")
        } else {
            None
        };
        if let Some(problem) = problem {
            issues.push(ConfigIssue::with_example(
                "uri",
                format!("the port `{port}` of `uri` `{}` {problem}", uri.uri),
                "localhost:5000",
            ));
        }
    }
    check_path_components("uri", uri, example, issues);
}

/// A config being validated: the parsed JSON object and every issue found so
/// far. Built by [`ConfigCheck::parse`], finished by [`ConfigCheck::finish`].
#[derive(Debug, Clone)]
pub struct ConfigCheck {
    /// The config object; normalised values are written back into it.
    pub map: Map<String, Value>,
    /// Every issue found so far.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigCheck {
    /// Parses config text as a JSON object and records an issue for every
    /// field not in `allowed`.
    pub fn parse(config: &str, allowed: &[&str]) -> Result<Self, Vec<ConfigIssue>> {
        let map = crate::parse_config(config)?;
        let mut issues = Vec::new();
        crate::reject_unknown_fields(&map, allowed, &mut issues);
        Ok(ConfigCheck { map, issues })
    }

    /// Reads the required `uri`, normalises it (see [`normalize_uri`]) and
    /// writes it back, and checks what every registry URI must satisfy (no
    /// scheme, no whitespace, a domain). Returns the split URI for the
    /// flavor's own rules, or `None` (with an issue) when those fail.
    pub fn uri(&mut self, example: &str) -> Option<RegistryUri> {
        let raw = crate::required_str(&self.map, "uri", example, &mut self.issues)?;
        let uri = normalize_uri(raw);
        if let Some((scheme, _)) = uri.split_once("://") {
            self.issue(
                "uri",
                format!("`uri` `{uri}` must not include a scheme (`{scheme}://`)"),
                example,
            );
            return None;
        }
        if uri.chars().any(char::is_whitespace) {
            self.issue(
                "uri",
                format!("`uri` `{uri}` must not contain whitespace"),
                example,
            );
            return None;
        }
        let parsed = RegistryUri::parse(&uri);
        if parsed.domain.is_empty() {
            self.issue(
                "uri",
                format!("`uri` `{uri}` has no registry domain"),
                example,
            );
            return None;
        }
        // DNS limits (RFC 1035 section 2.3.4): labels of at most 63
        // characters, names of at most 253. An IPv6 literal has no labels.
        let host = parsed.host();
        if !host.starts_with('[') {
            if host.len() > MAX_HOST_LEN {
                self.issue(
                    "uri",
                    format!(
                        "the registry host of `uri` is {} characters long; a DNS name has at \
                         most {MAX_HOST_LEN}",
                        host.len()
                    ),
                    example,
                );
                return None;
            }
            if let Some(label) = host.split('.').find(|l| l.len() > MAX_LABEL_LEN) {
                self.issue(
                    "uri",
                    format!(
                        "the label `{label}` of the registry host is {} characters long; a DNS \
                         label has at most {MAX_LABEL_LEN}",
                        label.len()
                    ),
                    example,
                );
                return None;
            }
        }
        self.map.insert("uri".into(), Value::String(uri));
        Some(parsed)
    }

    /// Reads an optional string field (`null` counts as absent).
    pub fn optional_str(&mut self, field: &str, example: &str) -> Option<String> {
        crate::optional_str(&self.map, field, example, &mut self.issues).map(str::to_string)
    }

    /// Checks the optional `default_repository` (ZenML's base config field:
    /// the repository images go to when none is given, appended to `uri` as
    /// `<uri>/<default_repository>`): lowercase path components separated by
    /// `/`, and with the uri's path no longer than an image path may be.
    pub fn default_repository(&mut self, uri: Option<&RegistryUri>) -> Option<String> {
        let repository = self.optional_str("default_repository", REPOSITORY_EXAMPLE)?;
        if !is_repository_path(&repository) {
            self.issue(
                "default_repository",
                format!(
                    "`default_repository` `{repository}` is not a valid repository name: use \
                     {PATH_COMPONENT_RULE}, separated by `/`"
                ),
                REPOSITORY_EXAMPLE,
            );
            return None;
        }
        let prefix = uri.map(RegistryUri::path).unwrap_or_default();
        let total = if prefix.is_empty() {
            repository.len()
        } else {
            prefix.len() + 1 + repository.len()
        };
        if total > MAX_PATH_LEN {
            self.issue(
                "default_repository",
                format!(
                    "`default_repository` appended to the path of `uri` (`{prefix}/...`) makes an \
                     image path of {total} characters; Docker allows at most {MAX_PATH_LEN}"
                ),
                REPOSITORY_EXAMPLE,
            );
            return None;
        }
        Some(repository)
    }

    /// Records an issue on `field` stating `problem` and showing `example`.
    pub fn issue(&mut self, field: &str, problem: impl AsRef<str>, example: &str) {
        self.issues
            .push(ConfigIssue::with_example(field, problem, example));
    }

    /// Sets a field of the normalised config.
    pub fn set(&mut self, field: &str, value: impl Into<Value>) {
        self.map.insert(field.into(), value.into());
    }

    /// The normalised config as JSON text, or every issue found.
    pub fn finish(self) -> Result<String, Vec<ConfigIssue>> {
        if self.issues.is_empty() {
            Ok(crate::to_config_text(&self.map))
        } else {
            Err(self.issues)
        }
    }
}

/// The fields of ZenML's base container-registry config, which every flavor
/// accepts.
pub const BASE_FIELDS: &[&str] = &["uri", "default_repository"];

/// An example `default_repository`.
pub const REPOSITORY_EXAMPLE: &str = "my-team/my-app";

/// Validates a config with ZenML's base fields (`uri`, `default_repository`):
/// parses it, rejects unknown fields, normalises the URI and runs `check`
/// (the flavor's own rules) on it. The whole `validate-config` of most
/// flavors.
pub fn validate_uri_config(
    config: &str,
    example: &str,
    check: impl FnOnce(&RegistryUri, &mut Vec<ConfigIssue>),
) -> Result<String, Vec<ConfigIssue>> {
    let mut cfg = ConfigCheck::parse(config, BASE_FIELDS)?;
    let uri = cfg.uri(example);
    if let Some(uri) = &uri {
        check(uri, &mut cfg.issues);
    }
    cfg.default_repository(uri.as_ref());
    cfg.finish()
}

/// Reads the `uri` of a normalised config, if it has one.
pub fn config_uri(config: &str) -> Option<String> {
    let map = crate::parse_config(config).ok()?;
    map.get("uri").and_then(Value::as_str).map(str::to_string)
}

/// The `prepare-image-push` of a flavor with nothing to check: logs a debug
/// line and approves without warnings.
pub fn approve_push(host: &dyn Host, flavor: &str, image: &ImageReference) -> PushDecision {
    host.log(
        LogLevel::Debug,
        &format!("{flavor}: nothing to check before pushing `{}`", image.name),
    );
    PushDecision::Approve(vec![])
}

/// The JSON Schema (draft 2020-12) of a flavor config: an object with a
/// required string `uri` (described, with examples), the optional
/// `default_repository` and `extra` optional properties, no others.
pub fn config_schema(
    title: &str,
    uri_description: &str,
    uri_examples: &[&str],
    extra: &[(&str, Value)],
) -> String {
    let mut properties = Map::new();
    properties.insert(
        "uri".into(),
        serde_json::json!({
            "type": "string",
            "description": uri_description,
            "examples": uri_examples,
        }),
    );
    properties.insert(
        "default_repository".into(),
        serde_json::json!({
            "type": "string",
            "description": "Repository to push images to when none is given (ZenML's \
                            `default_repository`): lowercase path components separated by `/`, \
                            appended to `uri`.",
            "examples": [REPOSITORY_EXAMPLE],
        }),
    );
    for (name, schema) in extra {
        properties.insert((*name).into(), schema.clone());
    }
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "additionalProperties": false,
        "required": ["uri"],
        "properties": properties,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        for ok in [
            "a",
            "my-account",
            "a__b",
            "a---b",
            "a.b",
            "a_b",
            "0x",
            "team9",
        ] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in [
            "", "A", "-a", "a-", "a..b", "a___b", "a._b", "a/b", "é", "a b", "_a",
        ] {
            assert!(!is_path_component(bad), "{bad}");
        }
        assert!(is_repository_path("team/app"));
        assert!(!is_repository_path("team//app"));
        assert!(!is_repository_path(&"a".repeat(256)));
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_uri("index.docker.io/me/"), "docker.io/me");
        assert_eq!(
            normalize_uri("Registry.Example.COM/Team//"),
            "registry.example.com/Team"
        );
        assert_eq!(normalize_uri("localhost:5000"), "localhost:5000");
        assert_eq!(normalize_uri("https://x.io/"), "https://x.io");
    }

    #[test]
    fn split_uri() {
        let u = RegistryUri::parse("localhost:5000/a/b");
        assert_eq!(u.host(), "localhost");
        assert_eq!(u.port(), Some("5000"));
        assert_eq!(u.segments, ["a", "b"]);
        let u = RegistryUri::parse("[::1]:5000");
        assert_eq!(u.host(), "[::1]");
        assert_eq!(u.port(), Some("5000"));
        let u = RegistryUri::parse("[::1]");
        assert_eq!(u.port(), None);
        assert!(RegistryUri::parse("ghcr.io").segments.is_empty());
    }

    #[test]
    fn segments_issue_shows_example() {
        let mut issues = vec![];
        let u = RegistryUri::parse("docker.io");
        assert!(!expect_segments(
            "uri",
            &u,
            1..=1,
            "one account segment",
            "docker.io/me",
            &mut issues
        ));
        assert_eq!(issues[0].field, "uri");
        assert!(issues[0].message.contains("`docker.io/me`"));
    }

    #[test]
    fn check_collects_all_issues() {
        let err = validate_uri_config(r#"{"uri":"https://x.io","extra":1}"#, "x.io", |_, _| {})
            .unwrap_err();
        let fields: Vec<_> = err.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["extra", "uri"]);
        assert!(err[0].message.contains("accepts: uri, default_repository"));
        assert!(err[1].message.contains("`x.io`"));
        let err = validate_uri_config(r#"{}"#, "x.io", |_, _| {}).unwrap_err();
        assert_eq!(err[0].field, "uri");
        let err = validate_uri_config(r#"[]"#, "x.io", |_, _| {}).unwrap_err();
        assert_eq!(err[0].field, "");
    }

    #[test]
    fn every_config_takes_a_default_repository() {
        let ok = validate_uri_config(
            r#"{"uri":"x.io","default_repository":"team/app"}"#,
            "x.io",
            |_, _| {},
        )
        .unwrap();
        assert!(ok.contains(r#""default_repository":"team/app""#), "{ok}");
        for bad in [r#""Team/App""#, r#""team//app""#, r#""/app""#, "7"] {
            let config = format!(r#"{{"uri":"x.io","default_repository":{bad}}}"#);
            let err = validate_uri_config(&config, "x.io", |_, _| {}).unwrap_err();
            assert_eq!(err.len(), 1, "{bad}");
            assert_eq!(err[0].field, "default_repository");
            assert!(
                err[0].message.contains(REPOSITORY_EXAMPLE),
                "{}",
                err[0].message
            );
        }
        let null = validate_uri_config(
            r#"{"uri":"x.io","default_repository":null}"#,
            "x.io",
            |_, _| {},
        );
        assert!(null.is_ok());
    }

    #[test]
    fn hosts_keep_to_dns_limits() {
        let label = format!(r#"{{"uri":"{}.example.com"}}"#, "a".repeat(64));
        let err = validate_uri_config(&label, "x.io", |_, _| {}).unwrap_err();
        assert!(err[0].message.contains("at most 63"), "{}", err[0].message);
        let name = format!(r#"{{"uri":"{}com"}}"#, "abcdefghi.".repeat(26));
        let err = validate_uri_config(&name, "x.io", |_, _| {}).unwrap_err();
        assert!(err[0].message.contains("at most 253"), "{}", err[0].message);
        let ok = format!(r#"{{"uri":"{}.example.com:5000"}}"#, "a".repeat(63));
        assert!(validate_uri_config(&ok, "x.io", |_, _| {}).is_ok());
        assert!(validate_uri_config(r#"{"uri":"[::1]:5000"}"#, "x.io", |_, _| {}).is_ok());
    }

    #[test]
    fn schema_is_strict() {
        let s: Value = serde_json::from_str(&config_schema("T", "d", &["x.io"], &[])).unwrap();
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["required"][0], "uri");
        assert_eq!(s["properties"]["uri"]["examples"][0], "x.io");
        assert_eq!(s["properties"]["default_repository"]["type"], "string");
    }
}
