//! A component built against a WIT version the host does not support
//! (`flavorbox:registry@0.9.0`): the host must refuse it and say why.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: r#"
            package flavorbox:registry@0.9.0;
            interface flavor {
                metadata: func() -> string;
            }
            world later {
                export flavor;
            }
        "#,
        world: "later",
    });

    struct Future;

    impl exports::flavorbox::registry::flavor::Guest for Future {
        fn metadata() -> String {
            "from the future".into()
        }
    }

    export!(Future);
}
