//! The generated host bindings, one module per frozen WIT version, with the
//! conversions from each version's types into the host's own
//! (`crate::flavor`).
//!
//! Only this module names generated types; the sandbox calls through it and
//! converts at the boundary, so the rest of the host deals with one version.
//! A new WIT version gets its own module here (generated from its own frozen
//! copy of the WIT, with its own conversions), and flavors built against
//! older versions keep loading.

pub mod v0_1;

/// The WIT package every flavor is built against.
pub const PACKAGE: &str = "flavorbox:registry";

/// A supported WIT version range: every `major.minor` in this list, any patch.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1"];

/// Whether a full `major.minor.patch` version is in the supported range.
pub fn supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.iter().any(|minor| {
        version.strip_prefix(minor).is_some_and(|rest| {
            rest.len() > 1 && rest.starts_with('.') && rest[1..].bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// The supported range for messages, e.g. `0.1.x`.
pub fn supported_range() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("{v}.x"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::supported;

    #[test]
    fn versions_in_the_supported_range_are_accepted() {
        for (version, ok) in [
            ("0.1.0", true),
            ("0.1.7", true),
            ("0.1.12", true),
            ("0.1", false),
            ("0.1.", false),
            ("0.1.x", false),
            ("0.10.0", false),
            ("0.2.0", false),
            ("1.1.0", false),
        ] {
            assert_eq!(supported(version), ok, "{version}");
        }
    }
}
