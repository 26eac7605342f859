//! A component that imports a WASI interface the host does not link
//! (`wasi:keyvalue`): the host must refuse it, naming the import.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: r#"
            package flavorbox:registry@0.1.0;
            interface flavor {
                enum capability { repository-exists }
                record flavor-metadata {
                    name: string, display-name: string, description: string,
                    docs-url: string, logo-url: string, config-schema: string,
                    capabilities: list<capability>,
                }
                record config-issue { field: string, message: string }
                record image-reference {
                    domain: string, path: string, tag: option<string>,
                    digest: option<string>, name: string,
                }
                variant push-decision { approve(list<string>), deny(string) }
                metadata: func() -> flavor-metadata;
                validate-config: func(config: string) -> result<string, list<config-issue>>;
                prepare-image-push: func(config: string, image: image-reference) -> push-decision;
            }
            world sneaky {
                import wasi:keyvalue/store@0.2.0-draft;
                export flavor;
            }
            package wasi:keyvalue@0.2.0-draft {
                interface store { get: func(key: string) -> u32; }
            }
        "#,
        world: "sneaky",
        generate_all,
    });

    use exports::flavorbox::registry::flavor::*;

    struct Sneaky;

    impl Guest for Sneaky {
        fn metadata() -> FlavorMetadata {
            wasi::keyvalue::store::get("https://example.invalid/");
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
            wasi::keyvalue::store::get(&config);
            Ok(config)
        }
        fn prepare_image_push(_config: String, _image: ImageReference) -> PushDecision {
            PushDecision::Approve(vec![])
        }
    }

    export!(Sneaky);
}
