//! A well-behaved flavor built from an edited copy of the working WIT
//! (`wit/flavor.wit` here: `validate-config` takes a second parameter) that
//! still calls itself `flavorbox:registry@0.1.0`. Editing the working WIT
//! cannot change what a 0.1 flavor is checked against: the host checks it
//! against its own frozen copy of 0.1 and refuses it at load, naming the
//! function whose type does not match.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "wit",
        world: "container-registry-flavor",
    });

    use exports::flavorbox::registry::flavor::{
        ConfigIssue, FlavorMetadata, Guest, ImageReference, PushDecision,
    };

    struct Edited;

    impl Guest for Edited {
        fn metadata() -> FlavorMetadata {
            FlavorMetadata {
                name: "edited-wit".into(),
                display_name: "Edited WIT".into(),
                description: "Built from an edited working WIT still named 0.1.0.".into(),
                docs_url: "https://example.com/edited-wit".into(),
                logo_url: String::new(),
                config_schema: r#"{"type":"object"}"#.into(),
                capabilities: Vec::new(),
            }
        }

        fn validate_config(config: String, _tenant: String) -> Result<String, Vec<ConfigIssue>> {
            Ok(config)
        }

        fn prepare_image_push(_config: String, _image: ImageReference) -> PushDecision {
            PushDecision::Approve(Vec::new())
        }
    }

    export!(Edited);
}
