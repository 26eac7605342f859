//! The author guide's paths in Rust, Python and JavaScript, end to end with
//! the real binary and the pinned toolchains: `flavorbox flavor new`, `flavor
//! build`, `flavor register`, `registry register` and `push --dry-run`, each
//! as docs/writing-a-flavor.md shows it. The Python and JavaScript files the
//! guide shows are the SDK examples', and `flavor new` writes exactly those
//! (with the SDK's helper and the repository's newest frozen WIT beside them).
//!
//! The guide's image policy (its section 11, `acme-policy`) is three example
//! projects, examples/policy-example, sdk/python/policy-example and
//! sdk/js/policy-example: the guide shows their files verbatim, their native
//! tests pass, and each, built, refuses and approves real pushes through
//! `flavorbox push`, the test services' Docker engine and registry, with the
//! output the guide shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flavorbox_tests::images::{ImageSpec, load_image};
use flavorbox_tests::polyglot::{self, Lang, cache_dir, repo, run_native};
use flavorbox_tests::services::{registry_tags, services};
use flavorbox_tests::{block_on, flavorbox_bin};

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/writing-a-flavor.md")).expect("the guide")
}

/// Every `<!-- sdk file: PATH -->` marker of the guide with the block after it.
fn sdk_files(guide: &str) -> Vec<(String, String)> {
    marked_files(guide, "sdk file")
}

/// Every `<!-- KIND: PATH -->` marker of the guide with the block after it.
fn marked_files(guide: &str, kind: &str) -> Vec<(String, String)> {
    let prefix = format!("<!-- {kind}: ");
    let mut files = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix(prefix.as_str())
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
                ("wit/flavor.wit", "wit/v0.2/flavor.wit"),
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
                ("wit/flavor.wit", "wit/v0.2/flavor.wit"),
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
                ("wit/flavor.wit", "wit/v0.2/flavor.wit"),
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

// --- the image policy of the guide's section 11 ------------------------------

/// The policy example projects, by the language name `flavor new` takes.
const POLICY_LANGS: [&str; 3] = ["rust", "python", "js"];
/// The label the policy requires.
const SOURCE_LABEL: &str = "org.opencontainers.image.source";

#[test]
fn guide_shows_the_policy_examples_verbatim() {
    let files = marked_files(&guide(), "policy file");
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "examples/policy-example/Cargo.toml",
            "examples/policy-example/src/lib.rs",
            "sdk/python/policy-example/src/app.py",
            "sdk/js/policy-example/src/logic.js",
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
    // What the guide says without showing it: the JavaScript entry point is
    // `acme`'s, and the Rust crate is set up as `acme`'s.
    let read = |p: &str| std::fs::read_to_string(repo().join(p)).expect(p);
    assert_eq!(
        read("sdk/js/policy-example/src/flavor.js"),
        read("sdk/js/example/src/flavor.js")
    );
    assert_eq!(
        read("examples/policy-example/.cargo/config.toml"),
        read("examples/flavor-example/.cargo/config.toml")
    );
}

#[test]
fn policy_examples_pass_their_native_tests() {
    let work = tempfile::tempdir().expect("temp dir");
    // Laid out as `flavor new` lays out a project: the helper copied beside the code.
    let python = work.path().join("python");
    copy_dir(&repo().join("sdk/python/policy-example"), &python);
    std::fs::copy(
        repo().join("sdk/python/flavorbox_kit.py"),
        python.join("src/flavorbox_kit.py"),
    )
    .expect("copy the kit");
    run_native(
        &python,
        "python3",
        &["-B", "-m", "unittest", "discover", "-v", "-s", "src"],
    );
    let js = work.path().join("js");
    copy_dir(&repo().join("sdk/js/policy-example"), &js);
    std::fs::copy(
        repo().join("sdk/js/flavorbox-kit.js"),
        js.join("src/flavorbox-kit.js"),
    )
    .expect("copy the kit");
    run_native(&js, "node", &["--test", "test/logic.test.js"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The policy example in `lang`, built: Python and JavaScript with the
/// pinned toolchains (cached by content), Rust by `flavorbox flavor build`
/// into the target dir the scaffold tests share.
fn policy_wasm(lang: &str) -> PathBuf {
    match lang {
        "python" => polyglot::guest(Lang::Python, &repo().join("sdk/python/policy-example")),
        "js" => polyglot::guest(Lang::Js, &repo().join("sdk/js/policy-example")),
        _ => {
            let work = tempfile::tempdir().expect("temp dir");
            let home = work.path().join("home");
            let out = cache_dir().join("policy-example-rust.wasm");
            let target = cache_dir().join("scaffold-target");
            let dir = repo().join("examples/policy-example");
            let printed = succeeds(
                &home,
                &dir,
                &["flavor", "build", "--out", out.to_str().expect("utf-8")],
                &[("CARGO_TARGET_DIR", &target)],
            );
            assert_eq!(PathBuf::from(printed.trim()), out);
            out
        }
    }
}

/// The output lines of a command the guide shows (the flavor's and the
/// host's words, not the engine's progress), with the test registry written
/// as the guide's.
fn shown_lines(out: &Output, uri: &str) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| {
            [
                "flavor ",
                "warning:",
                "error:",
                "note:",
                "dry run:",
                "pushed ",
                "registered ",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| l.replace(uri, "registry.acme.internal/ml"))
        .collect()
}

/// Asserts the guide shows `command` and every line it printed.
fn assert_guide_shows(guide: &str, lang: &str, command: &str, lines: &[String]) {
    assert!(
        guide.lines().any(|l| l == format!("$ {command}")),
        "the guide lacks `$ {command}`"
    );
    for line in lines {
        assert!(
            guide.lines().any(|l| l == line),
            "{lang}: the guide does not show the line {line:?} of `{command}`"
        );
    }
}

/// Section 11 of the guide in `lang`: register the policy example and a
/// registry component, then push an image that breaks the policy, one that
/// meets it, one that is too big, and dry-run one the engine does not have.
fn policy_pushes_end_to_end(lang: &str) {
    let guide = guide();
    let wasm = policy_wasm(lang);
    let s = services();
    let work = tempfile::tempdir().expect("temp dir");
    let home = work.path().join("home");
    let docker_host = PathBuf::from(&s.docker_host);
    let env: &[(&str, &Path)] = &[("DOCKER_HOST", &docker_host)];
    // A repository namespace per language: the tests run side by side on
    // one engine and registry.
    let namespace = format!("policy-{lang}");
    let uri = format!("{}/{namespace}", s.open_registry);

    let out = succeeds(
        &home,
        work.path(),
        &["flavor", "register", wasm.to_str().expect("utf-8")],
        env,
    );
    assert_eq!(out, "acme-policy\n");
    let described = succeeds(
        &home,
        work.path(),
        &["flavor", "describe", "acme-policy"],
        env,
    );
    for line in ["wit version:   0.2.0", "capabilities:  image-info"] {
        assert!(described.lines().any(|l| l == line), "{lang}: {described}");
        assert!(guide.lines().any(|l| l == line), "the guide lacks {line:?}");
    }

    let register = |uri: &str| {
        vec![
            "registry".to_string(),
            "register".into(),
            "acme-prod".into(),
            "--flavor".into(),
            "acme-policy".into(),
            "--uri".into(),
            uri.into(),
            "--config".into(),
            "max_size_mib=1".into(),
        ]
    };
    let args = register(&uri);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = flavorbox(&home, work.path(), &args, env);
    assert!(out.status.success(), "{lang}: {out:?}");
    let shown = register("registry.acme.internal/ml");
    assert_guide_shows(
        &guide,
        lang,
        &format!("flavorbox {}", shown.join(" ")),
        &shown_lines(&out, &uri),
    );

    let labelled = ImageSpec::default().label(SOURCE_LABEL, "https://git.acme.internal/ml/trainer");
    let images = [
        // No label, and built for another platform: refused, naming both.
        (
            "trainer:2",
            ImageSpec {
                architecture: "arm64".into(),
                ..ImageSpec::default()
            },
        ),
        // What the policy asks for: pushed.
        ("trainer:3", labelled.clone()),
        // Past the registry's 1 MiB.
        (
            "trainer:4",
            ImageSpec {
                layer_bytes: 2 << 20,
                ..labelled
            },
        ),
    ];
    for (tag, spec) in &images {
        let image = format!("{uri}/{tag}");
        block_on(load_image(&image, spec)).unwrap_or_else(|e| panic!("{image}: {e:#}"));
    }
    let push = |tag: &str, dry_run: bool| {
        let mut args = vec![
            "push".to_string(),
            format!("{uri}/{tag}"),
            "--registry".into(),
            "acme-prod".into(),
        ];
        if dry_run {
            args.push("--dry-run".into());
        }
        let out = flavorbox(
            &home,
            work.path(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            env,
        );
        let command = format!(
            "flavorbox {}",
            args.join(" ").replace(&uri, "registry.acme.internal/ml")
        );
        assert_guide_shows(&guide, lang, &command, &shown_lines(&out, &uri));
        out
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let out = push("trainer:2", false);
    assert!(!out.status.success(), "{lang}: {out:?}");
    let err = stderr(&out);
    for part in [
        "error: flavor `acme-policy` denied the push of ",
        "breaks ACME's image policy: it has no `org.opencontainers.image.source` label",
        "it is built for linux/arm64, not linux/amd64",
    ] {
        assert!(err.contains(part), "{lang}: {part:?} not in {err}");
    }
    assert!(
        registry_tags(&s.open_registry, &format!("{namespace}/trainer"), None).is_err(),
        "{lang}: a refused image reached the registry"
    );

    let out = push("trainer:3", false);
    assert!(out.status.success(), "{lang}: {}", stderr(&out));
    assert!(
        stderr(&out).contains("acme-policy: `") && stderr(&out).contains("meets the image policy"),
        "{lang}: {}",
        stderr(&out)
    );
    assert_eq!(
        registry_tags(&s.open_registry, &format!("{namespace}/trainer"), None)
            .unwrap_or_else(|e| panic!("{lang}: {e:#}")),
        ["3"]
    );

    let out = push("trainer:4", false);
    assert!(!out.status.success(), "{lang}: {out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("it is 2.0 MiB, more than the 1 MiB this registry accepts"),
        "{lang}: {err}"
    );
    assert!(
        !err.contains("label"),
        "{lang}: only the size is wrong: {err}"
    );

    // The engine does not have this one: the dry run checks the name and
    // the flavor defers to the push, saying so.
    let out = push("not-built:1", true);
    assert!(out.status.success(), "{lang}: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("was checked by name only"), "{lang}: {err}");
    assert_eq!(
        registry_tags(&s.open_registry, &format!("{namespace}/trainer"), None)
            .unwrap_or_else(|e| panic!("{lang}: {e:#}")),
        ["3"],
        "{lang}: only the approved image was pushed"
    );
}

#[test]
fn rust_policy_example_refuses_and_approves_real_pushes() {
    policy_pushes_end_to_end(POLICY_LANGS[0]);
}

#[test]
fn python_policy_example_refuses_and_approves_real_pushes() {
    policy_pushes_end_to_end(POLICY_LANGS[1]);
}

#[test]
fn js_policy_example_refuses_and_approves_real_pushes() {
    policy_pushes_end_to_end(POLICY_LANGS[2]);
}
