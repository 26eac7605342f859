//! Flavors as OCI artifacts: publish a flavor's component to a container
//! registry, pull one back by tag or digest, and sign or verify the
//! manifest digest the way cosign does.
//!
//! Operators already run, mirror and trust container registries, so a
//! community flavor travels the way Kubewarden policies and `wkg` packages
//! do: one manifest (`application/vnd.oci.image.manifest.v1+json`) whose
//! config is `application/vnd.wasm.config.v0+json` and whose single layer is
//! the component (`application/wasm`), the layout of the CNCF Wasm OCI
//! artifact guidance that `wkg oci push` writes.
//!
//! Like `registry_api`, this module knows nothing of flavors, the sandbox or
//! the store: it moves verified bytes. The parts: `source` (the `oci://`
//! reference), `layout` (the manifest and config documents, pure), `client`
//! (the registry exchange: pulls through the host's egress-checked
//! `registry_api` session, publishes over the maintained `oci-client` crate,
//! every digest and size checked here), `signature` (cosign's simple-signing
//! payload, ECDSA P-256 keys in PEM).

mod client;
mod error;
pub mod layout;
pub mod signature;
mod source;

pub use client::{OciClient, OciOptions, Pulled};
pub use error::OciError;
pub use signature::{PublicKey, SignatureError, SigningKey};
pub use source::OciSource;
