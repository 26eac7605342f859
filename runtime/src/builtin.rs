//! The built-in flavors, built from `guest-flavors/` by `build.rs` and
//! embedded in the binary. They run in the same sandbox as any other flavor:
//! built-in means shipped with the host, not trusted by it.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The component bytes of every built-in flavor, in package-name order.
pub fn components() -> impl Iterator<Item = &'static [u8]> {
    BUILTIN_COMPONENTS.iter().map(|(_, bytes)| *bytes)
}
