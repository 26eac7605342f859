//! Builds the test guests for wasm32-wasip2 and tells the tests where they
//! are through `FLAVORBOX_TEST_GUESTS`. No `.wasm` is in git.
//!
//! Two cargo invocations, because cargo unifies features within one:
//! - `tests/guests/` (hostile and ill-fitting components), the Rust ones
//!   against the kit's default WIT 0.2; the hostile guest's component is
//!   named `guest-hostile-v0-2.wasm` here;
//! - `tests/guests-v0-1/`, wrappers that turn on `flavor-kit/v0_1` (the
//!   frozen WIT 0.1), in a target directory of their own: the hostile guest
//!   as `guest-hostile.wasm` (what the sandbox suites load) and the `default`
//!   built-in as `guest-default-v0-1.wasm`.

use std::path::PathBuf;

use guest_build::Guest;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf();

    let guests_dir = manifest_dir.join("guests");
    let found = guest_build::discover(&guests_dir, &[]);
    let guests: Vec<Guest<'_>> = found
        .iter()
        .map(|(package, dir)| Guest {
            file: (package == "guest-hostile").then_some("guest-hostile-v0-2"),
            ..Guest::new(package, dir.clone())
        })
        .collect();
    guest_build::build(&root, &guests, &guest_build::watch_list(&root, &guests_dir));

    let v0_1_dir = manifest_dir.join("guests-v0-1");
    let found = guest_build::discover(&v0_1_dir, &[]);
    let guests: Vec<Guest<'_>> = found
        .iter()
        .map(|(package, dir)| Guest {
            file: (package == "guest-hostile-v0-1").then_some("guest-hostile"),
            ..Guest::new(package, dir.clone())
        })
        .collect();
    // The wrapped crates too: their changes must rebuild the 0.1 fixtures.
    let mut watch = guest_build::watch_list(&root, &v0_1_dir);
    watch.push(guests_dir.join("hostile"));
    for wrapped in ["default", "github", "aws"] {
        watch.push(root.join("guest-flavors").join(wrapped));
    }
    guest_build::build_in(&root, &guests, &watch, "guest-wasm-v0-1");

    let out = std::env::var("OUT_DIR").expect("set by cargo");
    println!("cargo:rustc-env=FLAVORBOX_TEST_GUESTS={out}");
}
