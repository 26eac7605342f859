//! Support for the end-to-end suites: the guests built from `tests/guests/`
//! and the real services (Docker daemon, registries) the push tests need.

pub mod services;

use std::path::PathBuf;

/// Path of a test guest component built by `build.rs`, e.g. `guest-hostile`.
pub fn guest_path(package: &str) -> PathBuf {
    PathBuf::from(env!("FLAVORBOX_TEST_GUESTS")).join(format!("{package}.wasm"))
}

/// Bytes of a test guest component built by `build.rs`.
pub fn guest_bytes(package: &str) -> Vec<u8> {
    let path = guest_path(package);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test guest {}: {e}", path.display()))
}

/// Path of the `flavorbox` binary of this build.
///
/// `cargo test --workspace --all-targets` (the README's test command) builds
/// it next to the test executables; when a single test crate is run alone and
/// the binary is missing, it is built here.
pub fn flavorbox_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test> -> <target>/<profile>/flavorbox
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test executable is in <target>/<profile>/deps");
        let bin = profile_dir.join("flavorbox");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "flavorbox", "--bin", "flavorbox"])
                .status()
                .expect("run cargo build for the flavorbox binary");
            assert!(status.success(), "building the flavorbox binary failed");
        }
        bin
    })
    .clone()
}
