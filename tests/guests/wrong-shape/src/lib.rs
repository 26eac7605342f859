//! A component that exports `flavorbox:registry/flavor@0.1.0` with the wrong
//! function types: the host must refuse it and name the mismatch.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: r#"
            package flavorbox:registry@0.1.0;
            interface flavor {
                metadata: func() -> string;
                validate-config: func(config: string) -> bool;
                prepare-image-push: func(config: string, image: string) -> bool;
            }
            world misshapen {
                export flavor;
            }
        "#,
        world: "misshapen",
    });

    struct Misshapen;

    impl exports::flavorbox::registry::flavor::Guest for Misshapen {
        fn metadata() -> String {
            "not a record".into()
        }
        fn validate_config(_config: String) -> bool {
            true
        }
        fn prepare_image_push(_config: String, _image: String) -> bool {
            true
        }
    }

    export!(Misshapen);
}
