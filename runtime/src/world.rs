//! The generated host bindings, one module per supported WIT version.
//!
//! Only this module and `sandbox` see generated types: each version's types
//! are converted to the host's own (`crate::flavor`) at the boundary, so the
//! rest of the host deals with one version. A new WIT version gets its own
//! module here (generated from its own copy of the WIT), and flavors built
//! against older versions keep loading.

/// `flavorbox:registry@0.1.x`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "container-registry-flavor",
        imports: {
            // May trap: a lookup that overruns the call's deadline ends the call.
            "flavorbox:registry/host.repository-exists": trappable,
            default: trappable,
        },
    });

    /// The WIT package version these bindings were generated from.
    pub const VERSION: &str = "0.1.0";
}

/// The WIT package every flavor is built against.
pub const PACKAGE: &str = "flavorbox:registry";

/// A supported WIT version range: every `major.minor` in this list, any patch.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1"];
