//! Builds the built-in flavors from `guest-flavors/` for wasm32-wasip2 and
//! writes `$OUT_DIR/builtins.rs`, which `src/lib.rs` includes, so the
//! host embeds them. No `.wasm` is in git.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("crates/builtin is inside the workspace")
        .to_path_buf();
    let built = guest_build::build_dir(&root, &root.join("guest-flavors"));

    let mut list = String::from("/// Every built-in flavor: (package, component bytes).\n");
    list.push_str("pub const BUILTIN_COMPONENTS: &[(&str, &[u8])] = &[\n");
    for (package, path) in &built {
        writeln!(
            list,
            "    ({package:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("write to string");
    }
    list.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("builtins.rs");
    std::fs::write(out, list).expect("write builtins.rs");
}
