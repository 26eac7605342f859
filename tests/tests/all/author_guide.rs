//! The flavor author's guide, `docs/writing-a-flavor.md`, cannot rot: its
//! code blocks are the files of `examples/flavor-example/`, that crate builds
//! for wasm32-wasip2, and the guide's `flavorbox` commands, run with the real
//! binary against a fresh home, do what the guide shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use flavorbox_tests::flavorbox_bin;
use serde_json::{Value, json};

/// The path the guide builds the component to, relative to the crate.
const GUIDE_WASM: &str = "target/wasm32-wasip2/release/flavor_acme.wasm";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn example_dir() -> PathBuf {
    workspace_root().join("examples").join("flavor-example")
}

fn guide() -> String {
    let path = workspace_root().join("docs").join("writing-a-flavor.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `<!-- file: PATH -->` marker of the guide with the fenced block after it.
fn guide_files(guide: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- file: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "no code block after the marker of {path}"
        );
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == "```" {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        files.push((path.to_string(), body));
    }
    files
}

#[test]
fn guide_shows_the_example_crate_verbatim() {
    let files = guide_files(&guide());
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["Cargo.toml", "src/lib.rs"]);
    for (path, shown) in &files {
        let on_disk = std::fs::read_to_string(example_dir().join(path))
            .unwrap_or_else(|e| panic!("examples/flavor-example/{path}: {e}"));
        assert!(
            *shown == on_disk,
            "the guide's {path} differs from examples/flavor-example/{path}; copy the file into \
             the guide"
        );
    }
}

#[test]
fn example_reads_the_repository_wit_at_the_guides_path() {
    // The guide's `path: "wit"` is the examples' too: `wit` there is the
    // repository's newest frozen WIT, `wit/v0.2/` (a symbolic link), the
    // one the guide copies, so all stay the same contract.
    let frozen =
        std::fs::read_to_string(workspace_root().join("wit/v0.2/flavor.wit")).expect("repo wit");
    assert!(frozen.contains("package flavorbox:registry@0.2.0;"));
    assert!(
        guide()
            .lines()
            .any(|l| l == "cp -r /path/to/flavorbox/wit/v0.2 wit")
    );
    for example in ["flavor-example", "policy-example"] {
        let dir = workspace_root().join("examples").join(example);
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
        assert!(lib.contains(r#"path: "wit","#), "{example}");
        let link = std::fs::read_link(dir.join("wit")).expect("wit is a symbolic link");
        assert_eq!(link, Path::new("../../wit/v0.2"), "{example}");
        let linked = std::fs::read_to_string(dir.join("wit/flavor.wit")).expect("example wit");
        assert_eq!(linked, frozen, "{example}");
    }
}

/// A cargo command without the settings of the cargo running this test, so
/// that a `cargo clippy` or custom flags do not leak into the example build.
fn clean_cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = matches!(key, "CARGO_HOME" | "CARGO_NET_OFFLINE");
        if (key.starts_with("CARGO_") && !keep)
            || matches!(
                key,
                "RUSTFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOCFLAGS"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Builds the example with the guide's command, into a target directory
/// under this workspace's, kept across runs; returns the component's path.
fn example_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flavor-example");
        let build = |offline: bool| {
            let mut cmd = clean_cargo();
            cmd.args([
                "build",
                "--target",
                "wasm32-wasip2",
                "--release",
                "--manifest-path",
            ])
            .arg(example_dir().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
            if offline {
                cmd.arg("--offline");
            }
            cmd.output().expect("run cargo")
        };
        // The crates are usually in the local cache already; go online only
        // when they are not.
        let mut out = build(true);
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("offline") {
            out = build(false);
        }
        assert!(
            out.status.success(),
            "building examples/flavor-example failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let wasm = target_dir.join(GUIDE_WASM.trim_start_matches("target/"));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        wasm
    })
}

/// Runs `flavorbox --home HOME` with the arguments of a guide command line
/// (`flavorbox ...`), the guide's component path replaced by the built one.
fn run(home: &Path, command_line: &str) -> Output {
    let mut args = command_line.split_whitespace();
    assert_eq!(args.next(), Some("flavorbox"), "{command_line}");
    let args: Vec<&std::ffi::OsStr> = args
        .map(|arg| {
            if arg == GUIDE_WASM {
                example_wasm().as_os_str()
            } else {
                std::ffi::OsStr::new(arg)
            }
        })
        .collect();
    Command::new(flavorbox_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("FLAVORBOX_HOME")
        .env_remove("FLAVORBOX_LOG")
        .output()
        .unwrap_or_else(|e| panic!("run `{command_line}`: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command of the guide and asserts it succeeds.
fn succeeds(home: &Path, command_line: &str) -> Output {
    let out = run(home, command_line);
    assert!(
        out.status.success(),
        "`{command_line}` failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Runs a command and asserts it fails with a non-zero exit code.
fn fails(home: &Path, command_line: &str) -> Output {
    let out = run(home, command_line);
    assert!(
        !out.status.success(),
        "`{command_line}` should fail:\n{}",
        stdout(&out)
    );
    assert_ne!(out.status.code(), Some(0));
    out
}

/// Asserts the guide shows every line of `text` (a command's output).
fn assert_guide_shows(guide: &str, command_line: &str, text: &str) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            guide.lines().any(|g| g == line),
            "the output of `{command_line}` is not what the guide shows; missing line:\n{line}"
        );
    }
}

fn registry_list(home: &Path) -> Value {
    let out = succeeds(home, "flavorbox registry list --json");
    serde_json::from_slice(&out.stdout).expect("registry list --json prints JSON")
}

const REGISTER: &str = "flavorbox flavor register target/wasm32-wasip2/release/flavor_acme.wasm";
const DESCRIBE: &str = "flavorbox flavor describe acme";
const REGISTRY: &str =
    "flavorbox registry register acme-dev --flavor acme --uri registry.acme.internal/ml";
const WRONG_URI: &str =
    "flavorbox registry register acme-other --flavor acme --uri registry.example.com/ml";
const PUSH: &str =
    "flavorbox push registry.acme.internal/ml/trainer:1 --registry acme-dev --dry-run";
const PUSH_LATEST: &str =
    "flavorbox push registry.acme.internal/ml/trainer:latest --registry acme-dev --dry-run";

#[test]
fn guide_lists_the_commands_this_test_runs() {
    let guide = guide();
    for command in [
        "rustup target add wasm32-wasip2",
        "cargo build --target wasm32-wasip2 --release",
    ] {
        assert!(
            guide.lines().any(|l| l == command),
            "the guide lacks `{command}`"
        );
    }
    for command in [REGISTER, DESCRIBE, REGISTRY, WRONG_URI, PUSH, PUSH_LATEST] {
        let shown = format!("$ {command}");
        assert!(
            guide.lines().any(|l| l == shown),
            "the guide lacks `{shown}`"
        );
    }
}

#[test]
fn guide_commands_register_and_use_the_example_flavor() {
    let guide = guide();
    let home = tempfile::tempdir().expect("temp home");
    let home = home.path();

    let out = succeeds(home, REGISTER);
    assert_eq!(stdout(&out), "acme\n");

    let out = succeeds(home, DESCRIBE);
    let described = stdout(&out);
    for line in [
        "name:          acme",
        "display name:  ACME internal registry",
        "source:        registered",
        "wit version:   0.2.0",
        "capabilities:  none",
    ] {
        assert!(
            described.lines().any(|l| l == line),
            "`{line}` in:\n{described}"
        );
    }
    assert!(
        described.contains("registry.acme.internal/<team>"),
        "{described}"
    );

    // A URI off the ACME registry is refused by the flavor, and nothing is stored.
    let out = fails(home, WRONG_URI);
    assert!(
        stderr(&out).contains("uri: `registry.example.com/ml` is not on the ACME registry"),
        "{}",
        stderr(&out)
    );
    assert_guide_shows(&guide, WRONG_URI, &stderr(&out));
    let out = fails(
        home,
        "flavorbox registry register acme-other --flavor acme --uri registry.acme.internal/ml \
         --config team=data",
    );
    assert!(
        stderr(&out).contains("team: `team` `data` does not match the team of `uri`, `ml`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(registry_list(home), json!([]));

    let out = succeeds(home, REGISTRY);
    assert_guide_shows(&guide, REGISTRY, &stdout(&out));
    let list = registry_list(home);
    assert_eq!(list[0]["name"], "acme-dev");
    assert_eq!(
        list[0]["config"],
        json!({"uri": "registry.acme.internal/ml", "team": "ml"}),
        "the flavor's normalised config is stored"
    );

    let out = succeeds(home, PUSH);
    assert!(stdout(&out).starts_with("dry run: `registry.acme.internal/ml/trainer:1` passed"));
    assert_guide_shows(&guide, PUSH, &stdout(&out));
    assert_guide_shows(&guide, PUSH, &stderr(&out));

    let out = fails(home, PUSH_LATEST);
    assert!(
        stderr(&out).contains("ACME does not accept `latest` tags"),
        "{}",
        stderr(&out)
    );
    assert_guide_shows(&guide, PUSH_LATEST, &stderr(&out));

    // As the guide says, a reference without a tag is pushed as `latest`.
    let out = fails(
        home,
        "flavorbox push registry.acme.internal/ml/trainer --registry acme-dev --dry-run",
    );
    assert!(
        stderr(&out).contains("ACME does not accept `latest` tags"),
        "{}",
        stderr(&out)
    );
}
