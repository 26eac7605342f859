//! Python and JavaScript guest components for the suites, built from source
//! with the pinned componentize-py and componentize-js through `flavorbox
//! flavor build` (the command authors use), and cached under the cargo
//! target directory by a hash of everything that goes into them: the
//! sources, the language's helper, the WIT, the build command's own source
//! and the toolchain's version. Unchanged guests are never rebuilt; a missing
//! toolchain fails the test with the command that installs it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// A language with a flavor SDK in `sdk/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Python,
    Js,
}

impl Lang {
    /// Both languages, for tables run against each.
    pub const ALL: [Lang; 2] = [Lang::Python, Lang::Js];

    /// A short name for messages: `python`, `js`.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// The helper copied next to the flavor's sources.
    fn kit(self) -> (&'static str, PathBuf) {
        match self {
            Lang::Python => (
                "flavorbox_kit.py",
                repo().join("sdk/python/flavorbox_kit.py"),
            ),
            Lang::Js => ("flavorbox-kit.js", repo().join("sdk/js/flavorbox-kit.js")),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Lang::Python => "py",
            Lang::Js => "js",
        }
    }

    /// The toolchain's version line, which keys the cache; panics with the
    /// install command when the toolchain is missing.
    fn toolchain_version(self) -> String {
        static VERSIONS: OnceLock<Mutex<Vec<(Lang, String)>>> = OnceLock::new();
        let versions = VERSIONS.get_or_init(Default::default);
        let mut versions = versions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, v)) = versions.iter().find(|(l, _)| *l == self) {
            return v.clone();
        }
        let (env, default, install) = match self {
            Lang::Python => (
                "FLAVORBOX_COMPONENTIZE_PY",
                "componentize-py-venv/bin/componentize-py",
                "bash scripts/setup.sh (it installs componentize-py==0.25.1 into \
                 ~/.cache/flavorbox/componentize-py-venv)",
            ),
            Lang::Js => (
                "FLAVORBOX_COMPONENTIZE_JS",
                "npm/node_modules/.bin/componentize-js",
                "bash scripts/setup.sh (it installs @bytecodealliance/componentize-js@0.23.0 \
                 into ~/.cache/flavorbox/npm)",
            ),
        };
        let tool = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/flavorbox")
                .join(default)
        });
        let out = std::process::Command::new(&tool)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "the {} toolchain is missing ({}: {e}): run {install}, or set {env}",
                    self.name(),
                    tool.display()
                )
            });
        assert!(
            out.status.success(),
            "{} --version failed: {}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        versions.push((self, version.clone()));
        version
    }
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// `<target>/flavorbox-guests`, next to the test executables' profile dirs.
pub fn cache_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test executable is in <target>/<profile>/deps");
    target.join("flavorbox-guests")
}

/// The component built from the flavor sources in `dir` (its `src/` when it
/// has one): `tests/guests-py/aws`, `sdk/js/example`, ... Built once per
/// change, then read from the cache.
pub fn guest(lang: Lang, dir: &Path) -> PathBuf {
    // One build at a time in this process: each takes a core or two.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());

    let src = if dir.join("src").is_dir() {
        dir.join("src")
    } else {
        dir.to_path_buf()
    };
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("guest sources {}: {e}", src.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == lang.extension()))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    let (kit_name, kit_path) = lang.kit();
    files.push((kit_name.to_string(), kit_path));
    files.sort();

    let mut hasher = DefaultHasher::new();
    lang.hash(&mut hasher);
    lang.toolchain_version().hash(&mut hasher);
    // The build command's source: a change to how guests are built rebuilds them.
    include_str!("../../crates/cli/src/scaffold.rs").hash(&mut hasher);
    let wit = std::fs::read(repo().join("wit/flavor.wit")).expect("wit/flavor.wit");
    wit.hash(&mut hasher);
    for (name, path) in &files {
        name.hash(&mut hasher);
        std::fs::read(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .hash(&mut hasher);
    }
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cache = cache_dir();
    let wasm = cache.join(format!(
        "{}-{label}-{:016x}.wasm",
        lang.name(),
        hasher.finish()
    ));
    if wasm.is_file() {
        return wasm;
    }

    // Stage the project as `flavorbox flavor new` lays it out, and build it.
    let stage = cache.join(format!(
        "stage-{}-{label}-{}",
        lang.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("src")).expect("stage dir");
    std::fs::create_dir_all(stage.join("wit")).expect("stage dir");
    std::fs::write(stage.join("wit/flavor.wit"), wit).expect("stage wit");
    for (name, path) in &files {
        std::fs::copy(path, stage.join("src").join(name)).expect("stage source");
    }
    let partial = stage.join("flavor.wasm");
    let started = std::time::Instant::now();
    let out = std::process::Command::new(crate::flavorbox_bin())
        .args(["flavor", "build", "--dir"])
        .arg(&stage)
        .arg("--out")
        .arg(&partial)
        .output()
        .expect("run flavorbox flavor build");
    assert!(
        out.status.success(),
        "building the {} guest {} failed:\n{}",
        lang.name(),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "built the {} guest {} in {:.1?} ({} bytes)",
        lang.name(),
        dir.display(),
        started.elapsed(),
        std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0)
    );
    // A rename, so another test process never reads a half-written file.
    std::fs::rename(&partial, &wasm).expect("move the component into the cache");
    let _ = std::fs::remove_dir_all(&stage);
    wasm
}

/// A test guest of `tests/guests-py/` or `tests/guests-js/` by name.
pub fn test_guest(lang: Lang, name: &str) -> PathBuf {
    let dir = match lang {
        Lang::Python => "tests/guests-py",
        Lang::Js => "tests/guests-js",
    };
    guest(lang, &repo().join(dir).join(name))
}

/// A sandbox whose compiled code is cached under the target directory, so
/// the large Python and JavaScript components are compiled once per change.
pub fn caching_sandbox_config() -> flavorbox_sandbox::SandboxConfig {
    let dir = cache_dir().join("code");
    std::fs::create_dir_all(&dir).expect("code cache dir");
    flavorbox_sandbox::SandboxConfig {
        code_cache_dir: Some(dir),
        // A test key: the cache authenticates what it loads with it.
        code_cache_key: *b"flavorbox tests polyglot code ke",
        ..Default::default()
    }
}

/// Runs `program args` in `dir` (a language's own tool: python3, node) and
/// asserts it succeeded, showing its output when it did not.
pub fn run_native(dir: &Path, program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` in {} failed:\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
