//! The WIT contract as the host runs it: one module per released version of
//! `flavorbox:registry`, and one dispatch type over them.
//!
//! Each version module (`v0_1`, ...) runs `bindgen!` over its own frozen
//! copy of the WIT (`wit/v0.1/`, pinned by digest in the
//! module), links that version's host imports (delegating to the
//! version-neutral logic in `crate::host`) and converts that version's types
//! into the host's own (`crate::flavor`). The working WIT at the repository
//! root (`wit/`, which guests, SDKs and the scaffold build against) is never
//! read here: editing it cannot change what flavors of a released version
//! are checked against.
//!
//! `FlavorPre` and `Flavor` are the only way into the bindings. The
//! loader builds a `FlavorPre` for the version it found in the component
//! (`loader::check_names`), and every call goes through `Flavor`'s
//! version-neutral methods, which take and return the host's types. Nothing
//! outside this module names a version.
//!
//! Adding a version (say 0.3, as 0.2 was added):
//! 1. copy the working WIT, at its new package version, to
//!    `wit/v0.3/`; from then on that copy never changes;
//! 2. add `v0_3.rs` beside `v0_2.rs` (copy it): `bindgen!` over `wit/v0.3`,
//!    its `VERSION`, `MINOR`, `WIT` and pinned `FROZEN` digests with their
//!    tests, its host-imports impl and its conversions to and from
//!    `crate::flavor` (a new argument such as an `image-info` record comes
//!    from the host's types; older versions simply do not pass it on);
//! 3. here: a `V0_3` variant in `FlavorPre` and `Flavor` with its match
//!    arms, a line in `add_to_linker`, `v0_3::MINOR` in
//!    [`SUPPORTED_VERSIONS`], [`NEWEST_VERSION`] moved to it, and its
//!    `(VERSION, WIT)` in the tests' `FROZEN_WITS`.
//!
//! Older modules stay exactly as they are, so their flavors keep loading.

mod v0_1;
mod v0_2;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use crate::error::LoadError;
use crate::flavor::{ConfigIssue, DeclaredMetadata, PushDecision};
use crate::state::CallState;
use crate::text::{clean, first_line, truncate};
use flavorbox_grammar::{ImageFacts, Reference};

/// The WIT package every flavor is built against.
pub const PACKAGE: &str = "flavorbox:registry";

/// A supported WIT version range: every `major.minor` in this list, any patch.
pub const SUPPORTED_VERSIONS: &[&str] = &[v0_1::MINOR, v0_2::MINOR];

/// The newest supported version: what a component that exports no flavor is
/// told to implement.
pub const NEWEST_VERSION: &str = v0_2::VERSION;

/// The supported `major.minor` a full `major.minor.patch` version is in.
fn supported_minor(version: &str) -> Option<&'static str> {
    SUPPORTED_VERSIONS.iter().copied().find(|minor| {
        version.strip_prefix(minor).is_some_and(|rest| {
            rest.len() > 1 && rest.starts_with('.') && rest[1..].bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// Whether a full `major.minor.patch` version is in the supported range.
pub fn supported(version: &str) -> bool {
    supported_minor(version).is_some()
}

/// The supported range for messages, e.g. `0.1.x`.
pub fn supported_range() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("{v}.x"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Links every supported version's host imports (`flavorbox:registry/host`),
/// each through the projection to the call's host state.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)?;
    v0_2::add_to_linker(linker)?;
    Ok(())
}

/// A flavor linked and pre-instantiated against the world of the WIT version
/// it was built for.
pub(crate) enum FlavorPre {
    /// `flavorbox:registry@0.1.x`.
    V0_1(v0_1::ContainerRegistryFlavorPre<CallState>),
    /// `flavorbox:registry@0.2.x`.
    V0_2(v0_2::ContainerRegistryFlavorPre<CallState>),
}

impl FlavorPre {
    /// The pre-instance of a component that implements `version` (as the
    /// loader found it), checked to have the world's exports.
    pub(crate) fn new(
        version: &str,
        instance_pre: InstancePre<CallState>,
    ) -> Result<FlavorPre, LoadError> {
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld(first_line(&format!("{e:#}")));
        match supported_minor(version) {
            Some(v0_1::MINOR) => Ok(FlavorPre::V0_1(
                v0_1::ContainerRegistryFlavorPre::new(instance_pre).map_err(wrong_world)?,
            )),
            Some(v0_2::MINOR) => Ok(FlavorPre::V0_2(
                v0_2::ContainerRegistryFlavorPre::new(instance_pre).map_err(wrong_world)?,
            )),
            _ => Err(LoadError::UnsupportedVersion {
                found: clean(&truncate(&format!("{PACKAGE}/flavor@{version}"), 200)),
                supported: supported_range(),
            }),
        }
    }

    /// A fresh instance in `store`; exports are type-checked here.
    pub(crate) fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Flavor> {
        Ok(match self {
            FlavorPre::V0_1(pre) => Flavor::V0_1(pre.instantiate(store)?),
            FlavorPre::V0_2(pre) => Flavor::V0_2(pre.instantiate(store)?),
        })
    }
}

/// One instance of a flavor, called through version-neutral methods that
/// take and return the host's types.
pub(crate) enum Flavor {
    /// `flavorbox:registry@0.1.x`.
    V0_1(v0_1::ContainerRegistryFlavor),
    /// `flavorbox:registry@0.2.x`.
    V0_2(v0_2::ContainerRegistryFlavor),
}

impl Flavor {
    /// Calls `metadata`.
    pub(crate) fn metadata(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<DeclaredMetadata> {
        match self {
            Flavor::V0_1(f) => v0_1::metadata(f, store),
            Flavor::V0_2(f) => v0_2::metadata(f, store),
        }
    }

    /// Calls `validate-config`: the normalised config as JSON text, or the
    /// issues, as the guest returned them.
    pub(crate) fn validate_config(
        &self,
        store: &mut Store<CallState>,
        config_json: &str,
    ) -> wasmtime::Result<Result<String, Vec<ConfigIssue>>> {
        match self {
            Flavor::V0_1(f) => v0_1::validate_config(f, store, config_json),
            Flavor::V0_2(f) => v0_2::validate_config(f, store, config_json),
        }
    }

    /// Calls `prepare-image-push` with a host-parsed reference and, from
    /// 0.2 on, what the host read from the image (0.1 has no such
    /// parameter: its flavors are called exactly as before).
    pub(crate) fn prepare_image_push(
        &self,
        store: &mut Store<CallState>,
        config_json: &str,
        image: &Reference,
        info: Option<&ImageFacts>,
    ) -> wasmtime::Result<PushDecision> {
        match self {
            Flavor::V0_1(f) => v0_1::prepare_image_push(f, store, config_json, image),
            Flavor::V0_2(f) => v0_2::prepare_image_push(f, store, config_json, image, info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{NEWEST_VERSION, PACKAGE, SUPPORTED_VERSIONS, supported};

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
            ("0.2.0", true),
            ("0.2.3", true),
            ("0.3.0", false),
            ("0.20.0", false),
            ("1.1.0", false),
        ] {
            assert_eq!(supported(version), ok, "{version}");
        }
    }

    #[test]
    fn the_newest_version_is_supported() {
        assert!(supported(NEWEST_VERSION), "{NEWEST_VERSION}");
        assert_eq!(
            SUPPORTED_VERSIONS.last().copied(),
            NEWEST_VERSION.rsplit_once('.').map(|(m, _)| m)
        );
    }

    /// Every released version's frozen WIT text, by version.
    const FROZEN_WITS: &[(&str, &str)] = &[
        (super::v0_1::VERSION, super::v0_1::WIT),
        (super::v0_2::VERSION, super::v0_2::WIT),
    ];

    /// The package version a WIT file declares (`package flavorbox:registry@0.1.0;`).
    fn package_version(wit: &str) -> Option<&str> {
        wit.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("package "))
            .and_then(|l| l.trim_end_matches(';').strip_prefix(PACKAGE))
            .and_then(|l| l.strip_prefix('@'))
    }

    /// What a WIT file says, without its comments and blank lines: the
    /// contract, which a fix to a doc comment does not change.
    fn contract(wit: &str) -> Vec<&str> {
        wit.lines()
            .map(|l| l.split("//").next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn every_frozen_wit_declares_its_own_version() {
        for (version, wit) in FROZEN_WITS {
            assert_eq!(package_version(wit), Some(*version));
            assert!(supported(version), "{version}");
        }
    }

    #[test]
    fn the_working_wit_at_a_released_version_says_what_its_frozen_copy_says() {
        // The working WIT (the repository's `wit/`) is what guests, SDKs and
        // the scaffold build against; the host never reads it. While it
        // names a released version it must say what that version's frozen
        // copy says (doc comments aside): a changed contract needs a new
        // package version, or the flavors built from it stop loading.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit/flavor.wit");
        let Ok(working) = std::fs::read_to_string(path) else {
            // Not inside the workspace (a packaged crate): nothing to compare.
            return;
        };
        let version = package_version(&working).expect("the working WIT names its package version");
        for (frozen_version, frozen) in FROZEN_WITS {
            if version == *frozen_version {
                assert!(
                    contract(&working) == contract(frozen),
                    "wit/flavor.wit names `{PACKAGE}@{version}` but its contract differs from that \
                     version's frozen copy (crates/sandbox/wit/v{}/): a released version never \
                     changes; give the edited WIT a new package version",
                    version.rsplit_once('.').map_or(version, |(minor, _)| minor)
                );
            }
        }
    }
}
