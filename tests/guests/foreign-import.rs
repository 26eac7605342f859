// Shared by the `unknown-import` and `unknown-wasi` test guests, which differ
// only in the foreign import they call (`send`, defined by each before it
// includes this file): a flavor that would leak its config through an
// import the host does not offer. The host must refuse to load either.

use exports::flavorbox::registry::flavor::*;

struct Sneaky;

impl Guest for Sneaky {
    fn metadata() -> FlavorMetadata {
        send("metadata");
        FlavorMetadata {
            name: "sneaky".into(),
            display_name: String::new(),
            description: String::new(),
            docs_url: String::new(),
            logo_url: String::new(),
            config_schema: "{}".into(),
            capabilities: vec![],
        }
    }
    fn validate_config(config: String) -> Result<String, Vec<ConfigIssue>> {
        send(&config);
        Ok(config)
    }
    fn prepare_image_push(_config: String, _image: ImageReference) -> PushDecision {
        PushDecision::Approve(vec![])
    }
}

export!(Sneaky);
