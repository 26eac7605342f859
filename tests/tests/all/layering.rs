//! The layering of docs/architecture.md, held to the manifests: each crate
//! of the host depends only on the crates further in, the edges reach the
//! core only through `flavorbox-app`, and only the benchmark links the guest
//! crates. Cargo turns a use past these edges into a compile error; this
//! test keeps a new `Cargo.toml` line from quietly widening them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each host crate and the host crates it may depend on (normal
/// dependencies; dev-dependencies are the tests' business).
const ALLOWED: &[(&str, &[&str])] = &[
    ("flavorbox-grammar", &[]),
    ("flavorbox-sandbox", &["flavorbox-grammar"]),
    ("flavorbox-builtin", &[]),
    ("flavorbox-store", &[]),
    ("flavorbox-net", &["flavorbox-grammar"]),
    (
        "flavorbox-app",
        &[
            "flavorbox-grammar",
            "flavorbox-sandbox",
            "flavorbox-builtin",
            "flavorbox-store",
            "flavorbox-net",
        ],
    ),
    ("flavorbox-server", &["flavorbox-grammar", "flavorbox-app"]),
    (
        "flavorbox-bench",
        &[
            "flavorbox-grammar",
            "flavorbox-sandbox",
            "flavorbox-builtin",
        ],
    ),
    (
        "flavorbox",
        &[
            "flavorbox-grammar",
            "flavorbox-app",
            "flavorbox-server",
            "flavorbox-bench",
        ],
    ),
];

#[test]
fn each_crate_depends_only_inward_and_only_the_benchmark_links_guests() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let guest_crates: BTreeSet<&str> = packages
        .iter()
        .filter(|p| {
            p["manifest_path"]
                .as_str()
                .is_some_and(|m| m.contains("/guest-flavors/"))
        })
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(guest_crates.contains("flavor-default"), "{guest_crates:?}");
    let ours: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut seen = BTreeSet::new();
    for package in packages {
        let name = package["name"].as_str().expect("name");
        let normal: BTreeSet<&str> = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .collect();
        if let Some(allowed) = ours.get(name) {
            seen.insert(name);
            let inner: BTreeSet<&str> = normal
                .iter()
                .copied()
                .filter(|d| d.starts_with("flavorbox"))
                .collect();
            let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
            assert!(
                inner.is_subset(&allowed),
                "{name} depends on {:?}, past its layer (docs/architecture.md)",
                inner.difference(&allowed).collect::<Vec<_>>()
            );
        }
        let guests: Vec<&&str> = normal.intersection(&guest_crates).collect();
        let may_link_guests = name == "flavorbox-bench"
            || guest_crates.contains(name)
            || name.starts_with("guest-")
            || name == "flavorbox-tests";
        assert!(
            guests.is_empty() || may_link_guests,
            "{name} links the guest crates {guests:?}: only flavorbox-bench (and the tests) may"
        );
    }
    assert_eq!(
        seen.len(),
        ALLOWED.len(),
        "every host crate is in the workspace"
    );
}
