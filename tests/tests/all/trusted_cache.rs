//! Precompiled code is native code: the host runs it only if it can prove it
//! wrote it, for this component. A `.cwasm` planted in the cache under a
//! name anyone can compute (a built-in's sha256) must never run.

use flavorbox_sandbox::{Sandbox, SandboxConfig};
use flavorbox_tests::guest_bytes;

fn config(dir: &std::path::Path, key: [u8; 32]) -> SandboxConfig {
    SandboxConfig {
        code_cache_dir: Some(dir.to_path_buf()),
        code_cache_key: key,
        ..SandboxConfig::default()
    }
}

fn cached_file(dir: &std::path::Path, sha256: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(sha256))
        })
        .unwrap_or_else(|| panic!("no cached code for {sha256}"))
}

#[test]
fn planted_precompiled_code_is_never_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let builtin = flavorbox_builtin::components()
        .next()
        .expect("a built-in flavor")
        .to_vec();
    let hostile = guest_bytes("guest-hostile");

    let sandbox = Sandbox::new(config(dir.path(), [1; 32])).expect("sandbox");
    let good = sandbox.load(&builtin).expect("built-in loads");
    let bad = sandbox.load(&hostile).expect("hostile loads");
    let good_file = cached_file(dir.path(), good.sha256());
    let bad_file = cached_file(dir.path(), bad.sha256());
    drop(sandbox);

    // An attacker with write access to the cache swaps in the hostile
    // flavor's code (a perfectly valid artifact) under the built-in's name.
    std::fs::copy(&bad_file, &good_file).expect("plant");
    let sandbox = Sandbox::new(config(dir.path(), [1; 32])).expect("sandbox");
    let loaded = sandbox.load(&builtin).expect("loads by recompiling");
    assert_eq!(loaded.name(), good.name(), "the planted code ran");

    // Code written under another key is not trusted either, nor is garbage.
    let other_key = Sandbox::new(config(dir.path(), [2; 32])).expect("sandbox");
    assert_eq!(other_key.load(&builtin).expect("loads").name(), good.name());
    std::fs::write(cached_file(dir.path(), good.sha256()), b"not code").expect("corrupt");
    let sandbox = Sandbox::new(config(dir.path(), [2; 32])).expect("sandbox");
    assert_eq!(sandbox.load(&builtin).expect("loads").name(), good.name());
}

#[test]
fn a_rejected_component_leaves_nothing_in_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::new(config(dir.path(), [3; 32])).expect("sandbox");
    for guest in [
        "guest-no-export",
        "guest-wrong-shape",
        "guest-unknown-import",
    ] {
        assert!(sandbox.load(&guest_bytes(guest)).is_err(), "{guest} loads");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .collect();
    assert!(
        left.is_empty(),
        "cache keeps code of rejected components: {left:?}"
    );
}

#[test]
fn oversized_components_are_refused_before_compiling() {
    let sandbox = Sandbox::new(SandboxConfig {
        max_component_bytes: 64 << 10,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let err = sandbox
        .load(&guest_bytes("guest-hostile"))
        .expect_err("too large");
    assert!(err.to_string().contains("more than the limit"), "{err}");
}
