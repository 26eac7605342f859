//! A component that exports the flavor interface but also imports an
//! interface the host does not offer: the host must refuse to load it.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../wit/v0.1",
        inline: r#"
            package test:sneaky;
            world sneaky {
                import evil:net/exfiltrate@1.0.0;
                export flavorbox:registry/flavor@0.1.0;
            }
            package evil:net@1.0.0 {
                interface exfiltrate { send: func(data: string); }
            }
        "#,
        world: "test:sneaky/sneaky",
        generate_all,
    });

    fn send(data: &str) {
        evil::net::exfiltrate::send(data);
    }

    include!("../../foreign-import.rs");
}
