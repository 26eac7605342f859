//! `flavorbox:registry@0.2.x`: the bindings generated from the frozen copy
//! of the 0.2 WIT (`wit/v0.2/`, pinned below by digest), the
//! host imports of this version, and the conversions between this version's
//! types and the host's (`crate::flavor`).
//!
//! Conversions are plain: they copy what the guest said. Checking it (names,
//! sizes, control characters) is the sandbox's job, on the host's types.

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use crate::flavor::{Capability, ConfigIssue, DeclaredMetadata, LogLevel, PushDecision};
use crate::host::HostState;
use crate::state::CallState;
use flavorbox_grammar::{ImageFacts, Reference};

wasmtime::component::bindgen!({
    // The frozen copy, never the working `wit/` at the repository root.
    path: "../../wit/v0.2",
    world: "container-registry-flavor",
    imports: {
        // May trap: a lookup that overruns the call's deadline ends the call.
        "flavorbox:registry/host.repository-exists": trappable,
        default: trappable,
    },
});

/// The WIT package version these bindings were generated from.
pub const VERSION: &str = "0.2.0";

/// The `major.minor` this module serves: flavors of any `0.2.x`.
pub const MINOR: &str = "0.2";

/// Every file of the frozen WIT (`wit/v0.2/`) with its
/// sha256. A released version never changes: a different WIT is a new
/// version, in a new folder and a new module. Checked by this module's tests.
#[cfg(test)]
pub const FROZEN: &[(&str, &str)] = &[(
    "flavor.wit",
    "c8d216c29a2670163079b0876e0a7e67e4fb4dfc612a8fe2ad1640180051ab9d",
)];

/// The text of the frozen WIT the bindings above are generated from.
#[cfg(test)]
pub const WIT: &str = include_str!("../../../../wit/v0.2/flavor.wit");

// The generated flavor export's types, and the log level of the `log` import.
use exports::flavorbox::registry::flavor as wit;
use flavorbox::registry::host::LogLevel as WitLogLevel;

/// Links this version's host imports through the projection to the call's
/// host state.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    ContainerRegistryFlavor::add_to_linker::<CallState, HasSelf<HostState>>(linker, |state| {
        &mut state.host
    })
}

impl flavorbox::registry::host::Host for HostState {
    fn log(&mut self, level: WitLogLevel, message: String) -> wasmtime::Result<()> {
        HostState::log(self, level.into(), &message);
        Ok(())
    }

    fn repository_exists(&mut self, repository: String) -> wasmtime::Result<Result<bool, String>> {
        HostState::repository_exists(self, &repository)
    }
}

/// Calls `metadata`.
pub fn metadata(
    flavor: &ContainerRegistryFlavor,
    store: &mut Store<CallState>,
) -> wasmtime::Result<DeclaredMetadata> {
    let metadata = flavor.flavorbox_registry_flavor().call_metadata(store)?;
    Ok(metadata.into())
}

/// Calls `validate-config`.
pub fn validate_config(
    flavor: &ContainerRegistryFlavor,
    store: &mut Store<CallState>,
    config_json: &str,
) -> wasmtime::Result<Result<String, Vec<ConfigIssue>>> {
    let verdict = flavor
        .flavorbox_registry_flavor()
        .call_validate_config(store, config_json)?;
    Ok(verdict.map_err(|issues| issues.into_iter().map(ConfigIssue::from).collect()))
}

/// Calls `prepare-image-push`.
pub fn prepare_image_push(
    flavor: &ContainerRegistryFlavor,
    store: &mut Store<CallState>,
    config_json: &str,
    image: &Reference,
    info: Option<&ImageFacts>,
) -> wasmtime::Result<PushDecision> {
    let image = wit::ImageReference::from(image);
    let info = info.map(wit::ImageInfo::from);
    let decision = flavor.flavorbox_registry_flavor().call_prepare_image_push(
        store,
        config_json,
        &image,
        info.as_ref(),
    )?;
    Ok(decision.into())
}

impl From<WitLogLevel> for LogLevel {
    fn from(level: WitLogLevel) -> Self {
        match level {
            WitLogLevel::Trace => LogLevel::Trace,
            WitLogLevel::Debug => LogLevel::Debug,
            WitLogLevel::Info => LogLevel::Info,
            WitLogLevel::Warn => LogLevel::Warn,
            WitLogLevel::Error => LogLevel::Error,
        }
    }
}

impl From<wit::Capability> for Capability {
    fn from(c: wit::Capability) -> Self {
        match c {
            wit::Capability::RepositoryExists => Capability::RepositoryExists,
            wit::Capability::ImageInfo => Capability::ImageInfo,
        }
    }
}

impl From<wit::FlavorMetadata> for DeclaredMetadata {
    fn from(m: wit::FlavorMetadata) -> Self {
        DeclaredMetadata {
            name: m.name,
            display_name: m.display_name,
            description: m.description,
            docs_url: m.docs_url,
            logo_url: m.logo_url,
            config_schema: m.config_schema,
            capabilities: m.capabilities.into_iter().map(Capability::from).collect(),
        }
    }
}

impl From<wit::ConfigIssue> for ConfigIssue {
    fn from(i: wit::ConfigIssue) -> Self {
        ConfigIssue {
            field: i.field,
            message: i.message,
        }
    }
}

impl From<wit::PushDecision> for PushDecision {
    fn from(d: wit::PushDecision) -> Self {
        match d {
            wit::PushDecision::Approve(warnings) => PushDecision::Approve { warnings },
            wit::PushDecision::Deny(reason) => PushDecision::Deny { reason },
        }
    }
}

impl From<&Reference> for wit::ImageReference {
    fn from(image: &Reference) -> Self {
        wit::ImageReference {
            domain: image.domain().to_string(),
            path: image.path().to_string(),
            tag: image.tag().map(str::to_string),
            digest: image.digest().map(str::to_string),
            name: image.name(),
        }
    }
}

impl From<&ImageFacts> for wit::ImageInfo {
    fn from(facts: &ImageFacts) -> Self {
        wit::ImageInfo {
            platform: wit::Platform {
                os: facts.platform.os.clone(),
                architecture: facts.platform.architecture.clone(),
                variant: facts.platform.variant.clone(),
            },
            config_digest: facts.config_digest.clone(),
            created: facts.created.clone(),
            age_seconds: facts.age_seconds,
            user: facts.user.clone(),
            labels: facts
                .labels
                .iter()
                .map(|(key, value)| wit::Label {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            exposed_ports: facts.exposed_ports.clone(),
            entrypoint: facts.entrypoint.clone(),
            cmd: facts.cmd.clone(),
            env_names: facts.env_names.clone(),
            layer_count: facts.layer_count,
            layers: facts
                .layers
                .iter()
                .map(|l| wit::Layer {
                    digest: l.digest.clone(),
                    compressed_size: l.compressed_size,
                    uncompressed_size: l.uncompressed_size,
                })
                .collect(),
            compressed_size: facts.compressed_size,
            uncompressed_size: facts.uncompressed_size,
            truncated: facts.truncated.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use sha2::{Digest, Sha256};

    use super::{FROZEN, MINOR, VERSION, WIT};

    /// The folder of this version's frozen WIT, relative to the crate.
    const DIR: &str = "../../wit/v0.2";

    /// Every file under `dir`, by path relative to `base`, with its sha256.
    fn digests(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                digests(base, &path, out);
            } else {
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let name = path.strip_prefix(base).expect("under the folder");
                out.insert(
                    name.to_string_lossy().replace('\\', "/"),
                    hex::encode(Sha256::digest(&bytes)),
                );
            }
        }
    }

    #[test]
    fn the_frozen_wit_of_0_2_never_changes() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
        let mut found = BTreeMap::new();
        digests(&base, &base, &mut found);
        let pinned: BTreeMap<String, String> = FROZEN
            .iter()
            .map(|(name, sha)| (name.to_string(), sha.to_string()))
            .collect();
        for (name, sha) in &found {
            match pinned.get(name) {
                Some(pin) => assert_eq!(
                    sha, pin,
                    "wit/v0.2/{name} changed (sha256 {sha}, pinned {pin}): a frozen WIT \
                     version never changes, or flavors built against {VERSION} stop loading or change \
                     meaning; put the new WIT in a new version (a new wit/v0.N/ folder and world/v0_N.rs)"
                ),
                None => panic!(
                    "wit/v0.2/{name} was added: a frozen WIT version never changes; \
                     put the new WIT in a new version (a new wit/v0.N/ folder and world/v0_N.rs)"
                ),
            }
        }
        for name in pinned.keys() {
            assert!(
                found.contains_key(name),
                "wit/v0.2/{name} was removed: a frozen WIT version never changes"
            );
        }
    }

    #[test]
    fn the_bindings_are_generated_from_the_frozen_copy() {
        // `bindgen!` above reads this folder, and only this folder...
        let source = include_str!("v0_2.rs");
        let call = source
            .split("bindgen!({")
            .nth(1)
            .and_then(|rest| rest.split("});").next())
            .expect("this module runs bindgen!");
        assert!(call.contains(&format!("path: \"{DIR}\",")), "{call}");
        // ...whose one file is the text compiled in here, pinned by digest.
        assert_eq!(FROZEN.len(), 1);
        let (name, pin) = FROZEN[0];
        assert_eq!(name, "flavor.wit");
        assert_eq!(
            hex::encode(Sha256::digest(WIT.as_bytes())),
            pin,
            "the WIT compiled in is not the pinned frozen copy: a frozen WIT version never changes"
        );
        assert!(
            WIT.contains(&format!("package flavorbox:registry@{VERSION};")),
            "the frozen WIT is not package version {VERSION}"
        );
        assert!(VERSION.starts_with(&format!("{MINOR}.")));
    }
}
