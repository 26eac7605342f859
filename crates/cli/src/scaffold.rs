//! `flavorbox flavor new` and `flavorbox flavor build`: an author goes from
//! nothing to a `.wasm` ready for `flavor register` in Rust, Python or
//! JavaScript without reading the WIT first.
//!
//! `new` writes a complete project from the examples the test suite builds
//! (examples/flavor-example, sdk/python/example, sdk/js/example) with the
//! flavor's name put in, the newest frozen WIT (`wit/v0.2`, never the
//! working copy) copied in and the language's helper
//! (sdk/python/flavorbox_kit.py, sdk/js/flavorbox-kit.js) beside the code.
//! The examples' `prepare-image-push` shows, in a comment, where the image's
//! info (WIT 0.2's `image-info`) arrives and a rule on it.
//! `build` is a thin wrapper over cargo, componentize-py or componentize-js
//! that says what to install when a tool is missing, and prints the path of
//! the `.wasm`. Nothing here touches the application layer: it edits files
//! and runs toolchains.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// The pinned componentize-py (PyPI); scripts/setup.sh installs the same.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The pinned @bytecodealliance/componentize-js (npm); scripts/setup.sh installs the same.
const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// The world every flavor implements.
const WORLD: &str = "container-registry-flavor";

/// The WIT a new project is built against: the newest frozen version, the
/// one the examples' `wit` links to.
const WIT: &str = include_str!("../../../wit/v0.2/flavor.wit");
/// Its package version, for the README.
const WIT_VERSION: &str = "0.2.0";
const RUST_CARGO_TOML: &str = include_str!("../../../examples/flavor-example/Cargo.toml");
const RUST_LIB: &str = include_str!("../../../examples/flavor-example/src/lib.rs");
const RUST_CARGO_CONFIG: &str = include_str!("../../../examples/flavor-example/.cargo/config.toml");
const PY_KIT: &str = include_str!("../../../sdk/python/flavorbox_kit.py");
const PY_APP: &str = include_str!("../../../sdk/python/example/src/app.py");
const PY_TEST: &str = include_str!("../../../sdk/python/example/src/test_app.py");
const JS_KIT: &str = include_str!("../../../sdk/js/flavorbox-kit.js");
const JS_LOGIC: &str = include_str!("../../../sdk/js/example/src/logic.js");
const JS_ENTRY: &str = include_str!("../../../sdk/js/example/src/flavor.js");
const JS_TEST: &str = include_str!("../../../sdk/js/example/test/logic.test.js");
const JS_PACKAGE: &str = include_str!("../../../sdk/js/example/package.json");

/// A language a flavor can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The flavor's name: lowercase letters, digits, `-` and `_`, starting with a letter.
    pub(crate) name: String,
    /// The language of the flavor.
    #[arg(long, value_enum)]
    pub(crate) lang: Lang,
    /// Directory to create (default: `./<name>`); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// The flavor project (made by `flavorbox flavor new`).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Where to write the component (default: the toolchain's usual place).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

/// `flavor new`: writes the project and says how to build it.
pub(crate) fn new(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: choose another directory with --dir",
            dir.display()
        );
    }
    for (path, text) in project_files(&args.name, args.lang) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "created the {} flavor `{}` in {}",
        lang_name(args.lang),
        args.name,
        dir.display()
    );
    println!(
        "build it with: flavorbox flavor build --dir {}",
        dir.display()
    );
    Ok(())
}

/// Every file of a new project: relative path and contents.
pub(crate) fn project_files(name: &str, lang: Lang) -> Vec<(&'static str, String)> {
    let fill = |text: &str| rename(text, name);
    let mut files = vec![("wit/flavor.wit", WIT.to_string())];
    match lang {
        Lang::Rust => {
            let lib = format!("{}{RUST_TESTS}", fill(RUST_LIB));
            files.extend([
                ("Cargo.toml", fill(RUST_CARGO_TOML)),
                (".cargo/config.toml", RUST_CARGO_CONFIG.to_string()),
                ("src/lib.rs", lib),
                ("README.md", readme(name, lang)),
                (".gitignore", "/target\n*.wasm\n".to_string()),
            ]);
        }
        Lang::Python => files.extend([
            ("src/app.py", fill(PY_APP)),
            ("src/test_app.py", fill(PY_TEST)),
            ("src/flavorbox_kit.py", PY_KIT.to_string()),
            ("README.md", readme(name, lang)),
            (".gitignore", "/build\n__pycache__/\n".to_string()),
        ]),
        Lang::Js => files.extend([
            ("src/logic.js", fill(JS_LOGIC)),
            ("src/flavor.js", JS_ENTRY.to_string()),
            ("src/flavorbox-kit.js", JS_KIT.to_string()),
            ("test/logic.test.js", fill(JS_TEST)),
            ("package.json", fill(JS_PACKAGE)),
            ("README.md", readme(name, lang)),
            (".gitignore", "/build\nnode_modules/\n".to_string()),
        ]),
    }
    files
}

/// Native tests appended to the Rust example: the pure helpers, which run
/// without the host (`cargo test`).
const RUST_TESTS: &str = r##"
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names() {
        assert!(is_team("ml"));
        assert!(!is_team("ML"));
        assert!(!is_team("9ml"));
    }

    #[test]
    fn reads_an_object_of_strings() {
        let fields = parse_object(r#"{"uri": "a", "team": "b"}"#).expect("valid");
        assert_eq!(fields.len(), 2);
        assert!(parse_object(r#"{"uri": 1}"#).is_err());
        assert_eq!(quote("a\"b"), r#""a\"b""#);
    }
}
"##;

/// The example's `acme` written as the new flavor's name, in each of its
/// spellings (`ACME`, `Acme`, `acme`).
fn rename(text: &str, name: &str) -> String {
    let camel: String = name
        .split(['-', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    text.replace("ACME", &name.to_ascii_uppercase())
        .replace("Acme", &camel)
        .replace("acme", name)
}

/// A flavor name (the host's rule) that can also name the crate, module or
/// package the scaffold writes, which cannot start with a digit.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = flavorbox_app::is_valid_flavor_name(name)
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        bail!(
            "`{name}` is not a flavor name: use 1 to 63 lowercase letters, digits, `-` and `_`, \
             starting with a letter, e.g. `acme`"
        )
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
    }
}

fn readme(name: &str, lang: Lang) -> String {
    let (build, test, output) = match lang {
        Lang::Rust => (
            "cargo build --target wasm32-wasip2 --release",
            "cargo test",
            format!(
                "target/wasm32-wasip2/release/flavor_{}.wasm",
                name.replace('-', "_")
            ),
        ),
        Lang::Python => (
            "componentize-py -d wit -w container-registry-flavor componentize -p src app -o build/flavor.wasm",
            "python3 -m unittest discover -s src",
            "build/flavor.wasm".to_string(),
        ),
        Lang::Js => (
            "componentize-js src/flavor.js --wit wit --world-name container-registry-flavor -o build/flavor.wasm",
            "node --test",
            "build/flavor.wasm".to_string(),
        ),
    };
    format!(
        "# The `{name}` flavor ({lang})\n\n\
         A Flavorbox container-registry flavor: a WebAssembly component of the\n\
         `container-registry-flavor` world of `flavorbox:registry@{WIT_VERSION}` in\n\
         `wit/flavor.wit`. Start from the rules in the source and make them\n\
         yours; the guide is Flavorbox's docs/writing-a-flavor.md.\n\n\
         To decide on the image itself (its labels, platform, size), ask for the\n\
         `image-info` capability in the metadata: `prepare-image-push` then gets\n\
         what the host read from the image as `info` (see the commented rule\n\
         there, and the guide's image policy examples).\n\n\
         Build (runs the command below):\n\n    flavorbox flavor build\n\n\
         or by hand:\n\n    {build}\n\n\
         The component is `{output}`. Register and use it:\n\n    \
         flavorbox flavor register {output}\n    \
         flavorbox registry register {name}-dev --flavor {name} --uri registry.{name}.internal/ml\n    \
         flavorbox push registry.{name}.internal/ml/app:1 --registry {name}-dev --dry-run\n\n\
         Test the logic natively:\n\n    {test}\n",
        lang = lang_name(lang)
    )
}

/// `flavor build`: runs the project's toolchain and prints the `.wasm` path.
pub(crate) fn build(args: BuildArgs) -> anyhow::Result<()> {
    let path = build_project(&args.dir, args.out.as_deref())?;
    println!("{}", path.display());
    Ok(())
}

/// Which language a project directory is in, by the files `flavor new` writes.
fn detect(dir: &Path) -> anyhow::Result<Lang> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Lang::Rust)
    } else if dir.join("src/app.py").is_file() {
        Ok(Lang::Python)
    } else if dir.join("src/flavor.js").is_file() {
        Ok(Lang::Js)
    } else {
        bail!(
            "{} is not a flavor project: expected `Cargo.toml` (Rust), `src/app.py` (Python) or \
             `src/flavor.js` (JavaScript); create one with `flavorbox flavor new NAME --lang \
             rust|python|js`",
            dir.display()
        )
    }
}

/// Builds the project in `dir`; returns the component's path.
pub(crate) fn build_project(dir: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let lang = detect(dir)?;
    if lang != Lang::Rust && !dir.join("wit/flavor.wit").is_file() {
        bail!(
            "{} has no `wit/flavor.wit`: copy the `wit/` directory of Flavorbox into it",
            dir.display()
        );
    }
    if lang == Lang::Rust {
        return build_rust(dir, out);
    }
    let out =
        std::path::absolute(out.map_or_else(|| dir.join("build/flavor.wasm"), Path::to_path_buf))?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut command = if lang == Lang::Python {
        let tool = tool_path("FLAVORBOX_COMPONENTIZE_PY", COMPONENTIZE_PY)?;
        let mut c = Command::new(tool);
        c.args([
            "-d",
            "wit",
            "-w",
            WORLD,
            "componentize",
            "-p",
            "src",
            "app",
            "-o",
        ])
        .arg(&out);
        // Only `src` goes into the component, not the virtualenv the tool was
        // installed in.
        c.env_remove("VIRTUAL_ENV");
        c
    } else {
        let tool = tool_path("FLAVORBOX_COMPONENTIZE_JS", COMPONENTIZE_JS)?;
        let mut c = Command::new(tool);
        c.args(["src/flavor.js", "--wit", "wit", "--world-name", WORLD, "-o"])
            .arg(&out);
        c
    };
    let output = command
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            lang_name(lang),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(out)
}

/// A toolchain: where setup installs it, what to run to install it.
struct Tool {
    name: &'static str,
    /// Below `$HOME/.cache/flavorbox`.
    path: &'static str,
    /// The install command, `{}` standing for the pinned version.
    install: &'static str,
    version: &'static str,
}

impl Tool {
    fn install(&self) -> String {
        self.install.replace("{}", self.version)
    }
}

const COMPONENTIZE_PY: Tool = Tool {
    name: "componentize-py",
    path: "componentize-py-venv/bin/componentize-py",
    install: "python3 -m venv ~/.cache/flavorbox/componentize-py-venv && \
              ~/.cache/flavorbox/componentize-py-venv/bin/pip install componentize-py=={}",
    version: COMPONENTIZE_PY_VERSION,
};

const COMPONENTIZE_JS: Tool = Tool {
    name: "componentize-js",
    path: "npm/node_modules/.bin/componentize-js",
    install: "npm install --prefix ~/.cache/flavorbox/npm \
              @bytecodealliance/componentize-js@{}",
    version: COMPONENTIZE_JS_VERSION,
};

/// The tool from `env`, else where scripts/setup.sh installs it, else on `PATH`.
fn tool_path(env: &str, tool: Tool) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "{env} names {}, which does not exist: install {} with `{}` (or run Flavorbox's \
             scripts/setup.sh)",
            path.display(),
            tool.name,
            tool.install()
        );
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(path) = home.map(|h| h.join(".cache/flavorbox").join(tool.path))
        && path.is_file()
    {
        return Ok(path);
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(tool.name))
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    bail!(
        "{} is not installed: install it with `{}` (or run Flavorbox's scripts/setup.sh), or \
         set {env} to its path",
        tool.name,
        tool.install()
    )
}

/// `cargo build` for wasm32-wasip2 in release; copies the component to `out`.
fn build_rust(dir: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let krate = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .context("Cargo.toml has no package name")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .status();
    match status {
        Err(e) => bail!(
            "cannot run cargo ({e}): install Rust with rustup, then `rustup target add \
             wasm32-wasip2`"
        ),
        Ok(s) if !s.success() => bail!(
            "cargo build failed ({s}); if the target is missing, run `rustup target add \
             wasm32-wasip2`"
        ),
        Ok(_) => {}
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", krate.replace('-', "_")));
    if !wasm.is_file() {
        bail!("cargo built, but {} is not there", wasm.display());
    }
    match out {
        Some(out) => {
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&wasm, out)
                .with_context(|| format!("cannot copy the component to {}", out.display()))?;
            Ok(out.to_path_buf())
        }
        None => Ok(wasm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_put_in_every_spelling() {
        assert_eq!(
            rename("ACME Acme acme registry.acme.internal", "my-flavor"),
            "MY-FLAVOR MyFlavor my-flavor registry.my-flavor.internal"
        );
    }

    #[test]
    fn bad_names_are_refused_with_an_example() {
        for bad in ["", "Acme", "9a", "a b", "a.b"] {
            let e = check_name(bad).expect_err(bad).to_string();
            assert!(e.contains("e.g. `acme`"), "{e}");
        }
        check_name("acme-2_x").expect("valid");
    }

    #[test]
    fn every_language_gets_the_wit_and_a_test() {
        assert!(WIT.contains(&format!("package flavorbox:registry@{WIT_VERSION};")));
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let files = project_files("acme", lang);
            let paths: Vec<_> = files.iter().map(|(p, _)| *p).collect();
            assert!(paths.contains(&"wit/flavor.wit"), "{paths:?}");
            assert!(paths.contains(&"README.md"), "{paths:?}");
            // The source shows where the image's info arrives.
            assert!(
                files.iter().any(|(_, text)| text.contains("IMAGE_INFO")
                    || text.contains("Capability::ImageInfo")),
                "{lang:?}"
            );
            assert!(
                files.iter().any(|(_, text)| text.contains("#[test]")
                    || text.contains("unittest")
                    || text.contains("node:test")),
                "{lang:?}"
            );
        }
    }
}
