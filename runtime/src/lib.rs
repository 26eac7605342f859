//! Flavorbox: container-registry flavors as WebAssembly components in a
//! wasmtime sandbox, with a trusted host that parses image references, checks
//! containment, holds the credentials and performs the push.
//!
//! Dependencies point inward: `reference` and `config` are pure; `sandbox`
//! (with `world`, `flavor`, `builtin`) knows nothing of the store, the push or
//! the edges; `store` knows nothing of wasm; `push` and `registry_api` know
//! nothing of flavors and take parsed references, never strings. `app` composes them, and `cli` is an edge over `app`; `bench` measures
//! the sandbox against native baselines.

pub mod app;
pub mod background;
pub mod bench;
pub mod builtin;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod flavor;
pub mod oci;
pub mod push;
pub mod reference;
pub mod registry_api;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod world;
