//! Builds guest components from source inside a build script.
//!
//! Guests are never checked into git: the host embeds the built-in flavors
//! and the test suite loads its hostile guests, both built here by a nested
//! `cargo build --target wasm32-wasip2 --profile guest`. The nested build uses
//! its own target directory next to the outer one, so it neither deadlocks on
//! the outer build's lock nor rebuilds guests that have not changed.
//!
//! Each call is one cargo invocation, and cargo unifies features within an
//! invocation: guests that need a feature the others must not get (the
//! suite's WIT 0.1 fixtures turn on `flavor-kit/v0_1`) are built by a call of
//! their own, with [`build_in`] in a target directory of their own, so that
//! neither set's artifacts ever stand in for the other's.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target guests are built for: it produces components directly.
pub const TARGET: &str = "wasm32-wasip2";
/// The cargo profile guests are built with (defined in the workspace `Cargo.toml`).
pub const PROFILE: &str = "guest";

/// The nested target directory [`build`] uses, next to the outer build's
/// profile directory.
pub const TARGET_DIR: &str = "guest-wasm";

/// A guest package to build, and the file name its component gets in `OUT_DIR`.
pub struct Guest<'a> {
    /// Cargo package name, e.g. `flavor-aws`.
    pub package: &'a str,
    /// Directory of the package, watched for changes.
    pub dir: PathBuf,
    /// Name of its component in `OUT_DIR`, without `.wasm`; the package name
    /// when `None`.
    pub file: Option<&'a str>,
}

impl<'a> Guest<'a> {
    /// The guest `package` in `dir`, copied to `$OUT_DIR/<package>.wasm`.
    pub fn new(package: &'a str, dir: PathBuf) -> Self {
        Guest {
            package,
            dir,
            file: None,
        }
    }
}

/// Builds `guests` and copies each component to `$OUT_DIR/<file>.wasm` (see
/// [`Guest::file`]).
///
/// `watch` lists extra paths (the WIT package, shared guest crates) whose
/// changes must rebuild the guests. Panics with a readable message on failure,
/// which is what a build script should do.
pub fn build(workspace_root: &Path, guests: &[Guest<'_>], watch: &[PathBuf]) -> Vec<PathBuf> {
    build_in(workspace_root, guests, watch, TARGET_DIR)
}

/// As [`build`], in the nested target directory `target_dir` (a name, next
/// to [`TARGET_DIR`]): for guests built with features the others must not
/// share, whose artifacts must not overwrite theirs.
pub fn build_in(
    workspace_root: &Path,
    guests: &[Guest<'_>],
    watch: &[PathBuf],
    target_dir: &str,
) -> Vec<PathBuf> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let lock = workspace_root.join("Cargo.lock");
    let manifest = workspace_root.join("Cargo.toml");
    for path in watch
        .iter()
        .chain(guests.iter().map(|g| &g.dir))
        .chain([&lock, &manifest])
    {
        println!(
            "cargo:rerun-if-changed={}",
            watched(workspace_root, path).display()
        );
    }

    // <target>/<profile>/build/<pkg>-<hash>/out -> <target>/<profile>/guest-wasm
    let target_dir = out_dir
        .ancestors()
        .nth(3)
        .map(|p| p.join(target_dir))
        .unwrap_or_else(|| out_dir.join(target_dir));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root)
        .arg("build")
        .arg("--target")
        .arg(TARGET)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in guests {
        cmd.arg("-p").arg(guest.package);
    }
    // The outer cargo's settings are for the host build: drop them, so that a
    // `cargo clippy` or a cross build does not leak into the guest build.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = matches!(key, "CARGO_HOME" | "CARGO_MAKEFLAGS" | "CARGO_NET_OFFLINE");
        if (key.starts_with("CARGO_") && !keep)
            || matches!(
                key,
                "RUSTFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOCFLAGS"
            )
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build guests: {e}"));
    if !status.success() {
        panic!(
            "building guest components failed ({status}). Is the target installed? \
             Run `rustup target add {TARGET}`."
        );
    }

    let mut built = Vec::new();
    for guest in guests {
        let file = format!("{}.wasm", guest.package.replace('-', "_"));
        let from = target_dir.join(TARGET).join(PROFILE).join(&file);
        let to = out_dir.join(format!("{}.wasm", guest.file.unwrap_or(guest.package)));
        copy_if_changed(&from, &to);
        built.push(to);
    }
    built
}

/// `path` as cargo should watch it: relative to the package being built when
/// it lies in the workspace. Cargo resolves a relative path against the
/// package's current root, so a target directory shared by two checkouts
/// (`CARGO_TARGET_DIR` outside the clone) never reruns, or skips rerunning,
/// this build script because of files in the other checkout.
fn watched(workspace_root: &Path, path: &Path) -> PathBuf {
    let Some(package_dir) = env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return path.to_path_buf();
    };
    match (
        path.strip_prefix(workspace_root),
        package_dir.strip_prefix(workspace_root),
    ) {
        (Ok(inside), Ok(package)) => {
            let mut relative: PathBuf = package.components().map(|_| "..").collect();
            relative.push(inside);
            relative
        }
        _ => path.to_path_buf(),
    }
}

/// Lists the guest packages in `dir`: every subdirectory with a `Cargo.toml`
/// whose package is a `cdylib`, skipping `skip`.
pub fn discover(dir: &Path, skip: &[&str]) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if !text.contains("cdylib") {
            continue;
        }
        let Some(name) = text.lines().find_map(|l| {
            let l = l.trim();
            l.strip_prefix("name")
                .and_then(|r| r.trim_start().strip_prefix('='))
                .map(|r| r.trim().trim_matches('"').to_string())
        }) else {
            continue;
        };
        if !skip.contains(&name.as_str()) {
            found.push((name, entry.path()));
        }
    }
    found.sort();
    found
}

fn copy_if_changed(from: &Path, to: &Path) {
    let bytes = std::fs::read(from)
        .unwrap_or_else(|e| panic!("guest component {} missing: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(to, &bytes).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    }
}

/// What the guests in `dir` must be rebuilt on a change to: the WIT package (its
/// frozen versions included), the shared guest helper, the grammar it uses,
/// and `dir` itself (a guest crate added to it must be discovered).
pub fn watch_list(workspace_root: &Path, dir: &Path) -> Vec<PathBuf> {
    vec![
        workspace_root.join("wit"),
        workspace_root.join("guest-flavors").join("flavor-kit"),
        workspace_root.join("crates").join("grammar"),
        dir.to_path_buf(),
    ]
}

/// Builds every guest crate in `dir` (see [`discover`]), watching
/// [`watch_list`]; returns `(package, component path)` pairs in
/// package-name order.
pub fn build_dir(workspace_root: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let found = discover(dir, &[]);
    let guests: Vec<Guest<'_>> = found
        .iter()
        .map(|(package, dir)| Guest::new(package, dir.clone()))
        .collect();
    let built = build(workspace_root, &guests, &watch_list(workspace_root, dir));
    found
        .into_iter()
        .map(|(package, _)| package)
        .zip(built)
        .collect()
}
