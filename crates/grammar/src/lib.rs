//! The trusted grammar: image references, registry URIs and repository
//! paths, parsed by the host.
//!
//! A flavor runs untrusted, so the host never takes its word on what is being
//! pushed or where: it parses the image reference itself, with the grammar and
//! normalisation of `github.com/distribution/reference` (`ParseNormalizedNamed`,
//! the function Docker uses), and checks that the image lies inside the
//! registry component's `uri` segment by segment, not by string prefix as
//! ZenML's `image_name.startswith(uri)` does. Everything here is a pure
//! function over strings, so it can be table-tested exhaustively.
//!
//! This is the one place each of these rules is written: the repository path
//! grammar ([`RepositoryPath`], also used inside [`Reference`] and
//! [`RegistryUri`]), the domain split and Docker Hub's normalisation, and
//! containment ([`RegistryUri::contains`] for an image,
//! [`RegistryUri::contains_repository`] for a bare path a flavor asks about).
//! The push and the registry API take these parsed values, never strings.
//!
//! - [`reference`]: image references and the domain rules.
//! - [`registry`]: registry URIs and containment.
//! - [`path`]: the repository path grammar, shared with the guest kit.
//! - [`image`]: what the host reads from an image for a flavor (`image-info`).

pub mod image;
pub mod path;
pub mod reference;
pub mod registry;
#[cfg(test)]
mod tests;

pub use image::{ImageConfig, ImageFacts, LayerFacts, Platform};
pub use path::{MAX_PATH_LENGTH, RepositoryPath, RepositoryPathError};
pub use reference::{
    DEFAULT_DOMAIN, DEFAULT_TAG, LEGACY_DEFAULT_DOMAIN, MAX_TAG_LENGTH, Reference, ReferenceError,
};
pub use registry::{RegistryUri, RegistryUriError};
