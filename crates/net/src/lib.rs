//! Everything that reaches the network: the egress policy and the registry
//! API client every outbound request goes through, OCI flavors (pull,
//! publish, sign), pushes (straight to a registry, or through a Docker
//! engine), and the credentials they carry. Knows nothing of flavors or the
//! store, and takes parsed references, never strings.

pub mod background;
pub mod credentials;
pub mod image_info;
pub mod oci;
pub mod push;
pub mod registry_api;
