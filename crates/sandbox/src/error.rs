//! The sandbox's typed errors: why a component could not be loaded, and why
//! one call failed. Every message names what is wrong and what to do.

use std::time::Duration;

use crate::world;

/// Why a component could not be loaded as a flavor.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "not a WebAssembly file (no `\\0asm` header): build the flavor with `cargo build --target wasm32-wasip2`"
    )]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: build for `wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// Larger than the operator allows.
    #[error(
        "the component is {size} bytes, more than the limit of {max} bytes: build it in release mode, strip it, or ask the operator to raise the limit"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The component does not parse or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The flavor export is missing.
    #[error(
        "the component does not export `{expected}` (it exports: {found}); implement the `container-registry-flavor` world of wit/"
    )]
    MissingExport {
        /// The export the host looks for.
        expected: String,
        /// What the component exports instead.
        found: String,
    },
    /// Built against a WIT version this host does not support.
    #[error(
        "the component implements `{found}`, but this host supports {PACKAGE} versions {supported}; rebuild the flavor against a supported version",
        PACKAGE = world::PACKAGE
    )]
    UnsupportedVersion {
        /// The export or import found.
        found: String,
        /// The supported range.
        supported: String,
    },
    /// An import the host does not offer.
    #[error(
        "the component imports `{name}`, which this host does not offer (it offers {PACKAGE}/host and WASI 0.2, deny-by-default)",
        PACKAGE = world::PACKAGE
    )]
    UnknownImport {
        /// The import name.
        name: String,
    },
    /// The exports or imports do not match the world's types.
    #[error("the component does not match the `container-registry-flavor` world: {0}")]
    WrongWorld(String),
    /// Calling `metadata` failed.
    #[error(transparent)]
    Metadata(#[from] CallError),
    /// The metadata is unusable.
    #[error("bad metadata: {0}")]
    BadMetadata(String),
}

/// What went wrong in one call of a flavor; the host and other calls carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function} of flavor `{flavor}`: {kind}")]
pub struct CallError {
    /// The flavor called.
    pub flavor: String,
    /// The WIT function called (`metadata`, `validate-config`, `prepare-image-push`).
    pub function: &'static str,
    /// What went wrong.
    pub kind: CallErrorKind,
}

/// The kind of a call failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallErrorKind {
    /// The wall-clock deadline passed (in wasm or in a host import).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The fuel ran out.
    #[error("out of fuel after {0} units")]
    OutOfFuel(u64),
    /// The memory cap was hit (the guest's memory, or what the host holds for it).
    #[error("memory limit of {0} bytes exceeded")]
    MemoryLimit(usize),
    /// The wasm stack overflowed.
    #[error("wasm stack overflow (limit {0} bytes)")]
    StackOverflow(usize),
    /// Any other trap (panic, unreachable, out-of-bounds access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest returned or passed the host too much, or something malformed.
    #[error("bad output: {0}")]
    BadOutput(String),
    /// No instance could be created (e.g. every pooling slot is busy).
    #[error("could not instantiate: {0}")]
    Instantiate(String),
}
