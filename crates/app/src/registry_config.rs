//! A registry component's config: ZenML's base rules, applied by the host.
//!
//! Every flavor's config has a `uri`. The host enforces the base rules itself
//! (required, trailing `/` stripped, a well-formed registry URI) before a
//! flavor sees the config, and checks afterwards that the flavor's normalised
//! config still names the same registry: a flavor can add rules, never widen
//! or move the target.

use serde_json::{Map, Value};

use flavorbox_grammar::RegistryUri;
use flavorbox_sandbox::flavor::ConfigIssue;

/// Fields the host computes; a user may not set them.
pub const COMPUTED_FIELDS: &[&str] = &["is_local"];

/// Applies the base rules; returns the parsed URI and the config with the
/// normalised `uri`, or every issue found.
pub fn apply_base_rules(
    mut config: Map<String, Value>,
) -> Result<(RegistryUri, Map<String, Value>), Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    for field in COMPUTED_FIELDS {
        if config.contains_key(*field) {
            issues.push(ConfigIssue {
                field: (*field).to_string(),
                message: format!("`{field}` is computed by the host from `uri`; do not set it"),
            });
        }
    }
    let uri = match config.get("uri") {
        None | Some(Value::Null) => {
            issues.push(ConfigIssue {
                field: "uri".into(),
                message: "`uri` is required, e.g. `localhost:5000` or `registry.example.com/team`"
                    .into(),
            });
            None
        }
        Some(Value::String(raw)) => match RegistryUri::parse(raw) {
            Ok(uri) => Some(uri),
            Err(e) => {
                issues.push(ConfigIssue {
                    field: "uri".into(),
                    message: e.to_string(),
                });
                None
            }
        },
        Some(_) => {
            issues.push(ConfigIssue {
                field: "uri".into(),
                message: "`uri` must be a string, e.g. `localhost:5000`".into(),
            });
            None
        }
    };
    match uri {
        Some(uri) if issues.is_empty() => {
            config.insert("uri".into(), Value::String(uri.to_string()));
            Ok((uri, config))
        }
        _ => Err(issues),
    }
}

/// Checks a flavor's normalised config: it must keep the registry URI the
/// host passed in (after the host's own normalisation). Returns it with the
/// host's normalised `uri`.
pub fn check_normalised(
    original: &RegistryUri,
    mut normalised: Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let Some(Value::String(raw)) = normalised.get("uri") else {
        return Err("the normalised config has no `uri` string".into());
    };
    let uri = RegistryUri::parse(raw)
        .map_err(|e| format!("the normalised config has an invalid `uri`: {e}"))?;
    if &uri != original {
        return Err(format!(
            "the flavor changed the registry uri from `{original}` to `{uri}`; a flavor may not move the target"
        ));
    }
    for field in COMPUTED_FIELDS {
        normalised.remove(*field);
    }
    normalised.insert("uri".into(), Value::String(uri.to_string()));
    Ok(normalised)
}

/// Parses the value of a `--config KEY=VALUE` option: JSON (numbers,
/// booleans, null, arrays, objects, quoted strings) when it parses, else the
/// text itself as a string.
pub fn parse_value(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v) => v,
        Err(_) => Value::String(raw.to_string()),
    }
}

/// Splits `KEY=VALUE` options into a config map; an option without `=` or
/// with an empty key is an error naming it.
pub fn parse_options(options: &[String]) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for option in options {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!("`{option}` is not KEY=VALUE"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{option}` has an empty key"));
        }
        map.insert(key.to_string(), parse_value(value));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn uri_is_required_and_normalised() {
        let issues = apply_base_rules(obj(json!({}))).expect_err("missing uri");
        assert_eq!(issues[0].field, "uri");
        assert!(issues[0].message.contains("required"));

        let (uri, config) =
            apply_base_rules(obj(json!({"uri": "localhost:5000/"}))).expect("valid");
        assert_eq!(uri.to_string(), "localhost:5000");
        assert_eq!(config["uri"], "localhost:5000");
        assert!(uri.is_local());

        let (uri, _) = apply_base_rules(obj(json!({"uri": "index.docker.io/me//"}))).expect("ok");
        assert_eq!(uri.to_string(), "docker.io/me");
    }

    #[test]
    fn bad_uri_and_computed_fields_are_issues() {
        for bad in [
            json!({"uri": 5}),
            json!({"uri": "https://x.io"}),
            json!({"uri": ""}),
        ] {
            let issues = apply_base_rules(obj(bad.clone())).expect_err("invalid");
            assert_eq!(issues[0].field, "uri", "{bad}");
        }
        let issues = apply_base_rules(obj(json!({"uri": "localhost:5000", "is_local": true})))
            .expect_err("");
        assert_eq!(issues[0].field, "is_local");
    }

    #[test]
    fn a_flavor_cannot_move_the_registry() {
        let original = RegistryUri::parse("registry.io/team").expect("valid");
        assert!(check_normalised(&original, obj(json!({"uri": "registry.io/team/"}))).is_ok());
        assert!(check_normalised(&original, obj(json!({"uri": "registry.io"}))).is_err());
        assert!(check_normalised(&original, obj(json!({"uri": "evil.io/team"}))).is_err());
        assert!(check_normalised(&original, obj(json!({}))).is_err());
        let docker = RegistryUri::parse("docker.io/me").expect("valid");
        let kept =
            check_normalised(&docker, obj(json!({"uri": "index.docker.io/me"}))).expect("same");
        assert_eq!(kept["uri"], "docker.io/me");
    }

    #[test]
    fn options_parse_as_json_or_text() {
        let map = parse_options(&[
            "a=1".into(),
            "b=true".into(),
            "c=hello".into(),
            "d=\"5\"".into(),
            "e=x=y".into(),
        ])
        .expect("valid");
        assert_eq!(map["a"], 1);
        assert_eq!(map["b"], true);
        assert_eq!(map["c"], "hello");
        assert_eq!(map["d"], "5");
        assert_eq!(map["e"], "x=y");
        assert!(parse_options(&["novalue".into()]).is_err());
        assert!(parse_options(&["=v".into()]).is_err());
    }
}
