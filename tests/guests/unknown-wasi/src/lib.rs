//! A component that imports a WASI interface the host does not link
//! (`wasi:keyvalue`): the host must refuse it, naming the import.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../wit/v0.1",
        inline: r#"
            package test:sneaky;
            world sneaky {
                import wasi:keyvalue/store@0.2.0-draft;
                export flavorbox:registry/flavor@0.1.0;
            }
            package wasi:keyvalue@0.2.0-draft {
                interface store { get: func(key: string) -> u32; }
            }
        "#,
        world: "test:sneaky/sneaky",
        generate_all,
    });

    fn send(data: &str) {
        wasi::keyvalue::store::get(data);
    }

    include!("../../foreign-import.rs");
}
