//! The `default` flavor: any registry URI, e.g. `localhost:5000`.

use flavor_kit::{ConfigIssue, Flavor, Host, ImageReference, Metadata, PushDecision};

/// The `default` flavor.
pub struct Default;

impl Flavor for Default {
    fn metadata() -> Metadata {
        Metadata {
            name: "default".into(),
            display_name: "Default".into(),
            description: "Any container registry reachable by URI".into(),
            docs_url: "https://docs.zenml.io/stack-components/container-registries/default".into(),
            logo_url: String::new(),
            config_schema: r#"{"type":"object","required":["uri"],"properties":{"uri":{"type":"string"}}}"#.into(),
            capabilities: vec![],
        }
    }
    fn validate_config(_host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        let map = flavor_kit::parse_config(config)?;
        let mut issues = Vec::new();
        flavor_kit::required_str(&map, "uri", "localhost:5000", &mut issues);
        flavor_kit::reject_unknown_fields(&map, &["uri"], &mut issues);
        if issues.is_empty() { Ok(flavor_kit::to_config_text(&map)) } else { Err(issues) }
    }
    fn prepare_image_push(_host: &dyn Host, _config: &str, _image: &ImageReference) -> PushDecision {
        PushDecision::Approve(vec![])
    }
}

flavor_kit::export_flavor!(Default);
