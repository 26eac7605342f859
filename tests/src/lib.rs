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
