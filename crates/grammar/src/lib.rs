//! The trusted grammar: image references, registry URIs and repository paths
//! as the host parses them. Pure: no I/O, no wasm, no store. The host and the
//! Rust guest kit use the same code, so a path means the same on both sides.

pub mod reference;
