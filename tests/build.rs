//! Builds the test guests in `tests/guests/` (hostile and ill-fitting
//! components) for wasm32-wasip2 and tells the tests where they are through
//! `FLAVORBOX_TEST_GUESTS`. No `.wasm` is in git.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf();
    guest_build::build_dir(&root, &manifest_dir.join("guests"));
    let out = std::env::var("OUT_DIR").expect("set by cargo");
    println!("cargo:rustc-env=FLAVORBOX_TEST_GUESTS={out}");
}
