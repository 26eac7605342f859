//! The author guide's paths in Rust, Python and JavaScript, end to end with
//! the real binary and the pinned toolchains: `flavorbox flavor new`, `flavor
//! build`, `flavor register`, `registry register` and `push --dry-run`, each
//! as docs/writing-a-flavor.md shows it. The Python and JavaScript files the
//! guide shows are the SDK examples', and `flavor new` writes exactly those
//! (with the SDK's helper and the repository's WIT beside them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flavorbox_tests::flavorbox_bin;
use flavorbox_tests::polyglot::{cache_dir, repo};

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/writing-a-flavor.md")).expect("the guide")
}

/// Every `<!-- sdk file: PATH -->` marker of the guide with the block after it.
fn sdk_files(guide: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- sdk file: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "no code block after {path}");
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
fn guide_shows_the_python_and_js_examples_verbatim() {
    let files = sdk_files(&guide());
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "sdk/python/example/src/app.py",
            "sdk/js/example/src/logic.js",
            "sdk/js/example/src/flavor.js"
        ]
    );
    for (path, shown) in &files {
        let on_disk =
            std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            *shown == on_disk,
            "the guide's {path} differs from the file; copy the file into the guide"
        );
    }
}

/// Runs `flavorbox` in `dir` with state in `home`; returns the output.
fn flavorbox(home: &Path, dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(flavorbox_bin());
    command
        .arg("--home")
        .arg(home)
        .args(args)
        .current_dir(dir)
        .env_remove("FLAVORBOX_SERVER")
        .env_remove("FLAVORBOX_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run flavorbox")
}

fn succeeds(home: &Path, dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> String {
    let out = flavorbox(home, dir, args, env);
    assert!(
        out.status.success(),
        "`flavorbox {}` failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The guide's path for `lang`: new, build, register, use; the component's path.
fn author_path(lang: &str) -> PathBuf {
    let guide = guide();
    let work = tempfile::tempdir().expect("temp dir");
    let home = work.path().join("home");
    // Rust builds go to a target dir kept between runs (wit-bindgen once).
    let rust_target = cache_dir().join("scaffold-target");
    let env: &[(&str, &Path)] = &[("CARGO_TARGET_DIR", &rust_target)];

    let new = ["flavor", "new", "acme", "--lang", lang];
    assert!(
        guide.contains(&format!("flavorbox {}", new.join(" "))),
        "the guide lacks `flavorbox {}`",
        new.join(" ")
    );
    let out = succeeds(&home, work.path(), &new, env);
    assert!(out.contains("`acme`"), "{out}");
    let project = work.path().join("acme");

    let out = succeeds(&home, &project, &["flavor", "build"], env);
    let wasm = PathBuf::from(out.trim());
    assert!(wasm.is_file(), "flavor build printed {out:?}");

    let out = succeeds(
        &home,
        &project,
        &["flavor", "register", wasm.to_str().expect("utf-8")],
        env,
    );
    assert_eq!(out, "acme\n");
    let registry = [
        "registry",
        "register",
        "acme-dev",
        "--flavor",
        "acme",
        "--uri",
        "registry.acme.internal/ml",
    ];
    let out = succeeds(&home, &project, &registry, env);
    assert!(
        guide.lines().any(|l| l == out.trim()),
        "the guide does not show {out:?}"
    );

    let push = [
        "push",
        "registry.acme.internal/ml/trainer:1",
        "--registry",
        "acme-dev",
        "--dry-run",
    ];
    let out = flavorbox(&home, &project, &push, env);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(
            guide.lines().any(|l| l == line),
            "{lang}: the guide does not show the line {line:?}"
        );
    }
    assert!(stdout.starts_with("dry run: `registry.acme.internal/ml/trainer:1` passed"));

    // The flavor's own rules run: a wrong team and a `latest` tag are refused.
    let out = flavorbox(
        &home,
        &project,
        &[
            "registry",
            "register",
            "acme-other",
            "--flavor",
            "acme",
            "--uri",
            "registry.acme.internal/ml",
            "--config",
            "team=data",
        ],
        env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("team: `team` `data` does not match the team of `uri`, `ml`"),
        "{lang}: {stderr}"
    );
    let out = flavorbox(
        &home,
        &project,
        &[
            "push",
            "registry.acme.internal/ml/trainer:latest",
            "--registry",
            "acme-dev",
            "--dry-run",
        ],
        env,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ACME does not accept `latest` tags"),
        "{lang}: {stderr}"
    );
    wasm
}

#[test]
fn rust_path_of_the_guide_works_end_to_end() {
    author_path("rust");
}

#[test]
fn python_path_of_the_guide_works_end_to_end() {
    author_path("python");
}

#[test]
fn js_path_of_the_guide_works_end_to_end() {
    author_path("js");
}

#[test]
fn flavor_new_writes_the_sdk_examples_with_the_helper_and_the_wit() {
    let work = tempfile::tempdir().expect("temp dir");
    let home = work.path().join("home");
    let cases: [(&str, &[(&str, &str)]); 3] = [
        (
            "python",
            &[
                ("src/app.py", "sdk/python/example/src/app.py"),
                ("src/test_app.py", "sdk/python/example/src/test_app.py"),
                ("src/flavorbox_kit.py", "sdk/python/flavorbox_kit.py"),
                ("wit/flavor.wit", "wit/flavor.wit"),
            ],
        ),
        (
            "js",
            &[
                ("src/logic.js", "sdk/js/example/src/logic.js"),
                ("src/flavor.js", "sdk/js/example/src/flavor.js"),
                ("test/logic.test.js", "sdk/js/example/test/logic.test.js"),
                ("package.json", "sdk/js/example/package.json"),
                ("src/flavorbox-kit.js", "sdk/js/flavorbox-kit.js"),
                ("wit/flavor.wit", "wit/flavor.wit"),
            ],
        ),
        (
            "rust",
            &[
                ("Cargo.toml", "examples/flavor-example/Cargo.toml"),
                (
                    ".cargo/config.toml",
                    "examples/flavor-example/.cargo/config.toml",
                ),
                ("wit/flavor.wit", "wit/flavor.wit"),
            ],
        ),
    ];
    for (lang, files) in cases {
        let dir = work.path().join(lang);
        succeeds(
            &home,
            work.path(),
            &[
                "flavor",
                "new",
                "acme",
                "--lang",
                lang,
                "--dir",
                dir.to_str().expect("utf-8"),
            ],
            &[],
        );
        for (written, source) in files {
            let written_text = std::fs::read_to_string(dir.join(written))
                .unwrap_or_else(|e| panic!("{lang}: {written}: {e}"));
            let source_text = std::fs::read_to_string(repo().join(source)).expect("source");
            assert!(
                written_text == source_text,
                "{lang}: {written} is not {source}"
            );
        }
        // The project refuses to be written over.
        let out = flavorbox(
            &home,
            work.path(),
            &[
                "flavor",
                "new",
                "acme",
                "--lang",
                lang,
                "--dir",
                dir.to_str().expect("utf-8"),
            ],
            &[],
        );
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    }
    // Another name is put into the example in each of its spellings.
    let dir = work.path().join("other");
    succeeds(
        &home,
        work.path(),
        &[
            "flavor", "new", "my-reg", "--lang", "python", "--dir", "other",
        ],
        &[],
    );
    let app = std::fs::read_to_string(dir.join("src/app.py")).expect("app.py");
    assert!(app.contains("class MyReg(kit.Flavor)"), "{app}");
    assert!(app.contains("registry.my-reg.internal"), "{app}");
    assert!(!app.to_lowercase().contains("acme"), "{app}");
}

#[test]
fn flavor_build_names_the_install_command_when_the_toolchain_is_missing() {
    let work = tempfile::tempdir().expect("temp dir");
    let home = work.path().join("home");
    let missing = work.path().join("no-such-tool");
    for (lang, env, install) in [
        (
            "python",
            "FLAVORBOX_COMPONENTIZE_PY",
            "pip install componentize-py==0.25.1",
        ),
        (
            "js",
            "FLAVORBOX_COMPONENTIZE_JS",
            "npm install --prefix ~/.cache/flavorbox/npm @bytecodealliance/componentize-js@0.23.0",
        ),
    ] {
        let dir = work.path().join(lang);
        succeeds(
            &home,
            work.path(),
            &["flavor", "new", "acme", "--lang", lang, "--dir", lang],
            &[],
        );
        let out = flavorbox(&home, &dir, &["flavor", "build"], &[(env, &missing)]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(install), "{lang}: {stderr}");
    }
    let out = flavorbox(&home, work.path(), &["flavor", "build"], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("flavorbox flavor new NAME --lang"),
        "{out:?}"
    );
}
