//! The built-in flavors, built from `guest-flavors/` by `build.rs` and
//! embedded in the binary. They run in the same sandbox as any other flavor:
//! built-in means shipped with the host, not trusted by it.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The component bytes of every built-in flavor, in package-name order.
pub fn components() -> impl Iterator<Item = &'static [u8]> {
    BUILTIN_COMPONENTS.iter().map(|(_, bytes)| *bytes)
}

/// The name of every built-in flavor, in order: each lives in the package
/// `flavor-<name>` under `guest-flavors/`, so this list is the directory's,
/// written nowhere by hand (a test holds each name to its metadata).
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN_COMPONENTS
        .iter()
        .map(|(package, _)| package.strip_prefix("flavor-").unwrap_or(package))
}

/// The component bytes of the built-in flavor named `name` (each lives in
/// the package `flavor-<name>`; a test holds the names to their metadata).
pub fn component(name: &str) -> Option<&'static [u8]> {
    BUILTIN_COMPONENTS
        .iter()
        .find(|(package, _)| package.strip_prefix("flavor-") == Some(name))
        .map(|(_, bytes)| *bytes)
}

/// The SHA-256 (lowercase hex) of every built-in flavor's component: the
/// compiled code a sweep keeps although no stored flavor names it.
pub fn digests() -> std::collections::HashSet<String> {
    use sha2::Digest as _;
    components()
        .map(|bytes| hex::encode(sha2::Sha256::digest(bytes)))
        .collect()
}
