//! The `acme` flavor: ACME's internal registry, one repository namespace per
//! team, `registry.acme.internal/<team>`. Pushes of a `latest` tag are denied.

// Generates the Rust types and traits of the `container-registry-flavor`
// world from the WIT files in `wit/`.
wit_bindgen::generate!({
    path: "wit",
    world: "container-registry-flavor",
});

use exports::flavorbox::registry::flavor::{
    ConfigIssue, FlavorMetadata, Guest, ImageInfo, ImageReference, PushDecision,
};
use flavorbox::registry::host::{LogLevel, log};

const DOMAIN: &str = "registry.acme.internal";
const EXAMPLE: &str = "registry.acme.internal/ml";

/// JSON Schema (draft 2020-12) of the config, shown by `flavorbox flavor describe`.
const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ACME internal registry",
  "type": "object",
  "additionalProperties": false,
  "required": ["uri"],
  "properties": {
    "uri": {
      "type": "string",
      "description": "`registry.acme.internal/<team>`",
      "examples": ["registry.acme.internal/ml"]
    },
    "team": {
      "type": "string",
      "description": "The team that owns the images. Derived from `uri`; when given, it must match.",
      "examples": ["ml"]
    }
  }
}"#;

struct Acme;

impl Guest for Acme {
    fn metadata() -> FlavorMetadata {
        FlavorMetadata {
            name: "acme".into(),
            display_name: "ACME internal registry".into(),
            description: "ACME's internal registry: every team pushes under its own namespace, \
                          `registry.acme.internal/<team>`, and `latest` tags are not accepted."
                .into(),
            docs_url: "https://wiki.acme.internal/registry".into(),
            logo_url: String::new(),
            config_schema: SCHEMA.into(),
            // This flavor needs nothing from the host beyond `log`.
            capabilities: Vec::new(),
        }
    }

    fn validate_config(config: String) -> Result<String, Vec<ConfigIssue>> {
        let fields = parse_object(&config).map_err(|problem| {
            vec![issue(
                "",
                format!("the config must be a JSON object of strings ({problem})"),
                r#"{"uri":"registry.acme.internal/ml"}"#,
            )]
        })?;
        let mut issues = Vec::new();
        let (mut uri, mut team_field) = (None, None);
        for (key, value) in &fields {
            match key.as_str() {
                "uri" => uri = Some(value.as_str()),
                "team" => team_field = Some(value.as_str()),
                other => issues.push(issue(
                    other,
                    format!("unknown field `{other}`; this flavor accepts `uri` and `team`"),
                    EXAMPLE,
                )),
            }
        }
        // The host has already checked that `uri` is there and well formed.
        let uri = uri.unwrap_or_default();
        let team = match uri
            .strip_prefix(DOMAIN)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(team) if is_team(team) => Some(team),
            Some(team) => {
                issues.push(issue(
                    "uri",
                    format!(
                        "`{team}` is not a team: use 2 to 32 lowercase letters, digits and `-`, \
                         starting with a letter"
                    ),
                    EXAMPLE,
                ));
                None
            }
            None => {
                issues.push(issue(
                    "uri",
                    format!("`{uri}` is not on the ACME registry: use `{DOMAIN}/<team>`"),
                    EXAMPLE,
                ));
                None
            }
        };
        if let (Some(given), Some(team)) = (team_field, team)
            && given != team
        {
            issues.push(issue(
                "team",
                format!("`team` `{given}` does not match the team of `uri`, `{team}`"),
                team,
            ));
        }
        match team {
            Some(team) if issues.is_empty() => {
                log(
                    LogLevel::Debug,
                    &format!("acme: config for team `{team}` is valid"),
                );
                // The normalised config: the same `uri`, with `team` filled in.
                Ok(format!(
                    r#"{{"uri":{},"team":{}}}"#,
                    quote(uri),
                    quote(team)
                ))
            }
            _ => Err(issues),
        }
    }

    fn prepare_image_push(
        _config: String,
        image: ImageReference,
        _info: Option<ImageInfo>,
    ) -> PushDecision {
        log(
            LogLevel::Info,
            &format!("acme: checking the push of `{}`", image.name),
        );
        // The host fills in `latest` when a reference has no tag.
        if image.tag.as_deref() == Some("latest") {
            return PushDecision::Deny(format!(
                "ACME does not accept `latest` tags: tag the image with a version, \
                 e.g. `{}:1.0.0`",
                image.name
            ));
        }
        // `_info` is what the host read from the image (platform, labels,
        // sizes, ...), given only to a flavor that asks for it in its metadata
        // (`Capability::ImageInfo`); here it is always `None`. A rule on it:
        //     if let Some(info) = &_info
        //         && info.platform.architecture != "amd64"
        //     {
        //         return PushDecision::Deny("ACME runs amd64 images only".into());
        //     }
        PushDecision::Approve(Vec::new())
    }
}

// Exports `Acme` as the component's `flavorbox:registry/flavor` interface.
export!(Acme);

/// A config issue whose message ends with a valid example.
fn issue(field: &str, problem: String, example: &str) -> ConfigIssue {
    ConfigIssue {
        field: field.into(),
        message: format!("{problem}. An example of a valid value is: `{example}`"),
    }
}

/// A team name: 2 to 32 lowercase letters, digits and `-`, starting with a letter.
fn is_team(s: &str) -> bool {
    (2..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Reads a JSON object whose values are all strings. Every field of this
/// flavor is a string; a flavor with richer configs would use `serde_json`.
fn parse_object(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut chars = text.trim().chars().peekable();
    let mut fields = Vec::new();
    if chars.next() != Some('{') {
        return Err("expected `{`".into());
    }
    skip_space(&mut chars);
    if chars.peek() == Some(&'}') {
        chars.next();
    } else {
        loop {
            let key = parse_string(&mut chars)?;
            skip_space(&mut chars);
            if chars.next() != Some(':') {
                return Err(format!("expected `:` after `{key}`"));
            }
            skip_space(&mut chars);
            let value = parse_string(&mut chars).map_err(|_| format!("`{key}` is not a string"))?;
            fields.push((key, value));
            skip_space(&mut chars);
            match chars.next() {
                Some(',') => skip_space(&mut chars),
                Some('}') => break,
                _ => return Err("expected `,` or `}`".into()),
            }
        }
    }
    match chars.next() {
        None => Ok(fields),
        Some(_) => Err("text after the object".into()),
    }
}

fn skip_space(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
}

fn parse_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    if chars.next() != Some('"') {
        return Err("expected a string".into());
    }
    let mut out = String::new();
    loop {
        match chars.next().ok_or("unterminated string")? {
            '"' => return Ok(out),
            '\\' => match chars.next().ok_or("unterminated string")? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).map_err(|_| "bad `\\u` escape")?;
                    out.push(char::from_u32(code).ok_or("unsupported `\\u` escape")?);
                }
                c @ ('"' | '\\' | '/') => out.push(c),
                c => return Err(format!("bad escape `\\{c}`")),
            },
            c => out.push(c),
        }
    }
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
