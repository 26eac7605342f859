//! A component that exports something, but not the flavor interface: the
//! host must say which export is missing.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: r#"
            package acme:greeter@1.0.0;
            interface greet {
                hello: func(name: string) -> string;
            }
            world greeter {
                export greet;
            }
        "#,
        world: "greeter",
    });

    struct Greeter;

    impl exports::acme::greeter::greet::Guest for Greeter {
        fn hello(name: String) -> String {
            format!("hello {name}")
        }
    }

    export!(Greeter);
}
