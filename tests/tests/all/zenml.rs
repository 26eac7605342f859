//! ZenML as a client: ZenML 0.98.0 (from PyPI, in the venv scripts/setup.sh
//! makes) with its own local SQLite store registers the `flavorbox`
//! container-registry flavor from `integrations/zenml`, and its registry
//! object pushes through the real `flavorbox` binary, locally and through a
//! real `flavorbox serve`, to the htpasswd registry on loopback. ZenML never
//! sees the registry's credentials: Flavorbox holds them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flavorbox_tests::images::{ImageSpec, load_image, rfc3339_days_ago};
use flavorbox_tests::server::{Server, ServerOptions};
use flavorbox_tests::services::{
    Services, make_image, registry_manifest, registry_manifest_digest, registry_tags, services,
};
use flavorbox_tests::{block_on, flavorbox_bin, guest_path, run_cli};
use serde_json::{Value, json};

/// The venv with zenml[local]==0.98.0 (scripts/setup.sh).
fn zenml_python() -> PathBuf {
    let venv = std::env::var_os("FLAVORBOX_ZENML_VENV").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/flavorbox/zenml-venv")
        },
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs zenml[local]==0.98.0 there)",
        python.display()
    );
    python
}

/// The label the `guarded` components require.
const SOURCE: &str = "org.opencontainers.image.source";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// ZenML's Python in the project directory `workspace`, with its config in
/// `dir/zenml-config`, `flavorbox` and the test engine found the way a user's
/// shell finds them, and `flavorbox_zenml` imported from the checkout.
fn zenml_command(dir: &Path, workspace: &Path, s: &Services) -> Command {
    let bin_dir = flavorbox_bin().parent().expect("bin dir").to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let mut command = Command::new(zenml_python());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ZENML_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(workspace)
        .env("PYTHONPATH", repo_root().join("integrations/zenml"))
        // Imported from the checkout: no __pycache__ left in it.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PATH", path)
        .env("DOCKER_HOST", &s.docker_host)
        .env("FLAVORBOX_HOME", dir.join("unused-home"))
        .env_remove("FLAVORBOX_SERVER")
        .env_remove("FLAVORBOX_TOKEN")
        .env("ZENML_CONFIG_PATH", dir.join("zenml-config"))
        .env("ZENML_ANALYTICS_OPT_IN", "false")
        .env("ZENML_LOGGING_VERBOSITY", "WARN")
        .env("ZENML_ENABLE_RICH_TRACEBACK", "false")
        .env("ZENML_DISABLE_INTERACTIVE_INPUT", "true")
        .env("ZENML_AUTO_OPEN_DASHBOARD", "false")
        .stdin(Stdio::null());
    command
}

/// Panics if a file under `roots` holds `secret`.
fn assert_nowhere_in(roots: &[PathBuf], secret: &str, what: &str) {
    for root in roots {
        for file in walk(root) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "{} holds {what}",
                file.display()
            );
        }
    }
}

/// Flavorbox on both sides of ZenML: a local home (`dir/flavorbox`) and a
/// `flavorbox serve` tenant (`ml-team`), each holding the registry's
/// credentials as secret `reg` and a component `team` of the `default`
/// flavor at `uri`. Returns the home, the server and the tenant's token.
fn flavorbox_locally_and_served(s: &Services, dir: &Path, uri: &str) -> (PathBuf, Server, String) {
    let home = dir.join("flavorbox");
    flavorbox(
        &home,
        &[
            "secret",
            "create",
            "reg",
            "--username",
            &s.auth_user,
            "--password-stdin",
        ],
        Some(&s.auth_password),
    );
    flavorbox(
        &home,
        &[
            "registry", "register", "team", "--flavor", "default", "--uri", uri, "--secret", "reg",
        ],
        None,
    );
    let server_dir = dir.join("server");
    std::fs::create_dir_all(&server_dir).expect("server dir");
    let server = Server::start(
        &server_dir,
        &ServerOptions {
            allow: vec![s.auth_registry.clone()],
            env: vec![("DOCKER_HOST".into(), s.docker_host.clone())],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("ml-team").expect("tenant");
    for (path, body) in [
        (
            "/v1/secrets/reg",
            json!({"username": s.auth_user, "password": s.auth_password}),
        ),
        (
            "/v1/registries/team",
            json!({"flavor": "default", "uri": uri, "secret": "reg"}),
        ),
    ] {
        let answer = server.json("PUT", path, Some(&token), &body).expect(path);
        assert!(answer.status < 300, "PUT {path}: {}", answer.text);
    }
    (home, server, token)
}

/// Runs the local flavorbox CLI on `home`; panics with stderr on failure.
fn flavorbox(home: &Path, args: &[&str], stdin: Option<&str>) {
    let (ok, _, err) = run_cli(home, args, stdin, &[]);
    assert!(ok, "`flavorbox {}`: {err}", args.join(" "));
}

/// Every file under `root`.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The error a step raised, or a panic showing what it returned.
fn raised<'a>(out: &'a Value, step: &str) -> (&'a str, &'a str) {
    match (out[step]["error"].as_str(), out[step]["message"].as_str()) {
        (Some(kind), Some(message)) => (kind, message),
        _ => panic!("`{step}` should have raised: {}", out[step]),
    }
}

/// What a step returned, or a panic showing what it raised.
fn returned<'a>(out: &'a Value, step: &str) -> &'a Value {
    let step_out = &out[step];
    assert!(
        step_out.get("ok").is_some(),
        "`{step}` raised {}: {}\n{}",
        step_out["error"],
        step_out["message"],
        step_out["trace"].as_str().unwrap_or_default()
    );
    &step_out["ok"]
}

#[test]
fn zenml_pushes_through_flavorbox_locally_and_through_a_server() {
    let s = services();
    let registry = s.auth_registry.as_str();
    let auth = Some((s.auth_user.as_str(), s.auth_password.as_str()));
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = format!("{registry}/zenml");

    // Flavorbox holds the registry credentials, locally and on a server for
    // a tenant, and components: `team` of the default flavor, `strict`
    // whose flavor denies every push, and `policy` ones.
    let (home, server, token) = flavorbox_locally_and_served(s, dir.path(), &uri);
    let hostile = guest_path("guest-hostile");
    flavorbox(
        &home,
        &["flavor", "register", hostile.to_str().expect("utf-8 path")],
        None,
    );
    flavorbox(
        &home,
        &[
            "registry",
            "register",
            "strict",
            "--flavor",
            "hostile",
            "--uri",
            &uri,
            "--secret",
            "reg",
            "--config",
            "deny=no pushes on Fridays",
        ],
        None,
    );

    // Components of the built-in `policy` flavor with these rules.
    let register_policy = |name: &str, rules: &[&str]| {
        let mut args = vec![
            "registry", "register", name, "--flavor", "policy", "--uri", &uri, "--secret", "reg",
        ];
        for rule in rules {
            args.extend(["--config", rule]);
        }
        flavorbox(&home, &args, None);
    };
    // A third: linux/amd64 images that say where their source is.
    let required = format!(r#"required_labels=["{SOURCE}"]"#);
    register_policy("guarded", &[r#"platforms=["linux/amd64"]"#, &required]);
    // A fourth whose size, user and age rules each an image breaks alone.
    register_policy(
        "ruled",
        &["max_size_mib=1", "deny_root_user=true", "max_age_days=30"],
    );

    // And on the server, a `policy` component of the same rules.
    let guarded = json!({
        "flavor": "policy", "uri": uri, "secret": "reg",
        "config": {"platforms": ["linux/amd64"], "required_labels": [SOURCE]},
    });
    let answer = server
        .json("PUT", "/v1/registries/guarded", Some(&token), &guarded)
        .expect("PUT guarded");
    assert!(answer.status < 300, "PUT guarded: {}", answer.text);

    let image = format!("{uri}/app:1");
    let outside = format!("{registry}/zenml-evil/app:1");
    let denied = format!("{uri}/denied:1");
    let remote = format!("{uri}/remote:1");
    let engine_image = format!("{uri}/engine:1");
    for name in [&image, &outside, &denied, &remote, &engine_image] {
        block_on(make_image(name)).expect("make image");
    }
    // Built for arm64 with no source label, and what the policy asks for.
    let bad = ImageSpec {
        architecture: "arm64".into(),
        ..ImageSpec::default()
    };
    let good = ImageSpec::default().label(SOURCE, "https://git.example.com/ml/trainer");
    let policy_images = |place: &str| {
        let images = json!({
            "component": "guarded",
            "bad": format!("{uri}/{place}-policy/bad:1"),
            "good": format!("{uri}/{place}-policy/good:1"),
        });
        for (which, spec) in [("bad", &bad), ("good", &good)] {
            let name = images[which].as_str().expect("image name");
            block_on(load_image(name, spec)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        images
    };
    let (local_policy, server_policy) = (policy_images("local"), policy_images("server"));
    let keeper = ImageSpec {
        user: Some("app".into()),
        ..ImageSpec::default()
    };
    let rule_images = [
        (
            "max_size_mib",
            ImageSpec {
                layer_bytes: 2 << 20,
                ..keeper.clone()
            },
        ),
        ("deny_root_user", ImageSpec::default()),
        (
            "max_age_days",
            ImageSpec {
                created: rfc3339_days_ago(45),
                ..keeper.clone()
            },
        ),
        ("kept", keeper),
    ];
    let mut rules = json!({"component": "ruled", "denied": {}});
    for (rule, spec) in &rule_images {
        let name = format!("{uri}/rules/{}:1", rule.replace('_', "-"));
        block_on(load_image(&name, spec)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        if *rule == "kept" {
            rules["good"] = json!(name);
        } else {
            rules["denied"][*rule] = json!(name);
        }
    }

    let plan = json!({
        "local": {
            "uri": uri, "component": "team", "home": home, "image": image, "outside": outside,
            "denied": {"component": "strict", "image": denied}, "policy": local_policy,
            "rules": rules,
        },
        "server": {
            "uri": uri, "component": "team", "url": server.url, "token": token, "image": remote,
            "policy": server_policy,
        },
        "builder": {
            "image": format!("{uri}/built:1"),
            "outside": format!("{registry}/zenml-evil/built:1"),
            "engine_image": engine_image,
        },
    });
    let workspace = dir.path().join("project");
    std::fs::create_dir_all(&workspace).expect("project dir");
    let output = zenml_command(dir.path(), &workspace, s)
        .arg(repo_root().join("integrations/zenml/tests/drive_zenml.py"))
        .arg(plan.to_string())
        .output()
        .expect("run the ZenML driver");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ZenML driver failed:\n{stdout}\n{stderr}"
    );
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}):\n{stdout}\n{stderr}"));

    assert_eq!(out["flavor"]["name"], "flavorbox");
    assert_eq!(out["local_type"], "FlavorboxContainerRegistry");
    // ZenML's pydantic validation runs the flavor's config class.
    let (_, message) = raised(&out, "missing_component");
    assert!(message.contains("component"), "{message}");
    let (_, message) = raised(&out, "bad_component");
    assert!(
        message.contains("not a Flavorbox registry component name"),
        "{message}"
    );

    // The push lands; ZenML gets `<repo>@<digest>` with the registry's digest.
    let digest = registry_manifest_digest(registry, "zenml/app", "1", auth).expect("manifest");
    assert_eq!(
        returned(&out, "local_push"),
        &json!(format!("{uri}/app@{digest}"))
    );

    // A look-alike repository (ZenML's own prefix check would take it) is
    // refused before anything is pushed.
    for step in ["outside_push", "outside_prepare"] {
        let (kind, message) = raised(&out, step);
        assert_eq!(kind, "ValueError", "{step}: {message}");
        assert!(
            message.contains("does not belong to container registry"),
            "{message}"
        );
    }
    assert!(
        registry_tags(registry, "zenml-evil/app", auth).is_err(),
        "nothing was pushed"
    );

    // The flavor's denial becomes ZenML's error with the flavor's reason.
    for step in ["denied_prepare", "denied_push"] {
        let (kind, message) = raised(&out, step);
        assert_eq!(kind, "FlavorboxError", "{step}: {message}");
        assert!(
            message.contains("no pushes on Fridays"),
            "{step}: {message}"
        );
    }
    assert!(
        registry_tags(registry, "zenml/denied", auth).is_err(),
        "nothing was pushed"
    );

    // The `flavorbox` image builder: built with the local engine (no login),
    // pushed through Flavorbox, the step image named by the registry's digest.
    assert_eq!(out["builder_flavor"], "flavorbox");
    assert_eq!(out["builder_type"], "FlavorboxImageBuilder");
    let digest = registry_manifest_digest(registry, "zenml/built", "1", auth).expect("manifest");
    assert_eq!(
        returned(&out, "builder_push"),
        &json!(format!("{uri}/built@{digest}"))
    );
    // A look-alike is refused before anything is built or pushed, by the
    // builder and by ZenML's own engine; and the engine never pushes by
    // itself, with its own login, an image inside the registry either.
    for step in ["builder_outside", "engine_outside"] {
        let (kind, message) = raised(&out, step);
        assert_eq!(kind, "ValueError", "{step}: {message}");
        assert!(
            message.contains("does not belong to container registry"),
            "{step}: {message}"
        );
    }
    let (kind, message) = raised(&out, "engine_inside");
    assert_eq!(kind, "FlavorboxError", "{message}");
    assert!(
        message.contains("around Flavorbox") && message.contains("image builder"),
        "{message}"
    );
    for repository in ["zenml-evil/built", "zenml/engine"] {
        assert!(
            registry_tags(registry, repository, auth).is_err(),
            "nothing reached the registry at {repository}"
        );
    }
    // ZenML holds no registry credential: only Flavorbox knows the password.
    assert_nowhere_in(
        &[dir.path().join("zenml-config"), workspace.clone()],
        &s.auth_password,
        "the registry password",
    );

    // Through the server: the token came from a ZenML secret (the component
    // stores only the reference) and the server pushed with its own secret.
    assert_eq!(out["stored_token"], "{{flavorbox.token}}");
    let digest = registry_manifest_digest(registry, "zenml/remote", "1", auth).expect("manifest");
    assert_eq!(
        returned(&out, "server_push"),
        &json!(format!("{uri}/remote@{digest}"))
    );

    // The built-in `policy` flavor decides on the image itself, locally (the
    // engine's inspect) and on the server (the uploaded image, for the dry
    // run of `prepare_image_push` too): ZenML gets the rules' reasons before
    // anything is pushed, and the image that meets them lands.
    for (place, images) in [("local", &local_policy), ("server", &server_policy)] {
        for step in ["prepare", "push"] {
            let step = format!("{place}_policy_bad_{step}");
            let (kind, message) = raised(&out, &step);
            assert_eq!(kind, "FlavorboxError", "{step}: {message}");
            for part in [
                "rule `platforms`: image is linux/arm64, allowed: linux/amd64",
                &format!("rule `required_labels`: image has no label `{SOURCE}`"),
            ] {
                assert!(message.contains(part), "{step}: {part:?} not in {message}");
            }
        }
        assert!(
            registry_tags(registry, &format!("zenml/{place}-policy/bad"), auth).is_err(),
            "{place}: a refused image reached the registry"
        );
        assert_eq!(
            returned(&out, &format!("{place}_policy_good_prepare")),
            &Value::Null
        );
        let repository = format!("zenml/{place}-policy/good");
        let digest = registry_manifest_digest(registry, &repository, "1", auth).expect("manifest");
        let good_repo = images["good"]
            .as_str()
            .expect("name")
            .trim_end_matches(":1");
        assert_eq!(
            returned(&out, &format!("{place}_policy_good_push")),
            &json!(format!("{good_repo}@{digest}"))
        );
    }

    // Each of the size, user and age rules refuses, through ZenML, the
    // image that breaks it, naming itself and the image's value; the image
    // that keeps them all is approved.
    for (rule, value) in [
        ("max_size_mib", "MiB uncompressed"),
        ("deny_root_user", "image runs as root"),
        ("max_age_days", "days old"),
    ] {
        let step = format!("rule_{rule}");
        let (kind, message) = raised(&out, &step);
        assert_eq!(kind, "FlavorboxError", "{step}: {message}");
        assert!(
            message.contains(&format!("rule `{rule}`")) && message.contains(value),
            "{step}: {message}"
        );
        let others = ["max_size_mib", "deny_root_user", "max_age_days"];
        for other in others.iter().filter(|o| **o != rule) {
            assert!(
                !message.contains(&format!("rule `{other}`")),
                "{step} breaks only its own rule: {message}"
            );
        }
    }
    assert_eq!(returned(&out, "rules_kept"), &Value::Null);
}

#[test]
fn the_integration_builds_as_a_wheel_of_the_projects_version_and_leaves_the_checkout_clean() {
    let source = repo_root().join("integrations/zenml");
    // (The other ZenML test imports the package from the checkout, without
    // writing bytecode; a __pycache__ of a run by hand is not the build's.)
    let listing = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = walk(dir)
            .into_iter()
            .filter(|f| !f.components().any(|c| c.as_os_str() == "__pycache__"))
            .collect();
        files.sort();
        files
    };
    let before = listing(&source);
    let out = tempfile::tempdir().unwrap();
    // Offline: the build backend is in the venv (scripts/setup.sh).
    let built = Command::new(zenml_python())
        .args([
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
        ])
        .arg(out.path())
        .arg(&source)
        .env("PIP_NO_INDEX", "1")
        .stdin(Stdio::null())
        .output()
        .expect("pip wheel");
    assert!(
        built.status.success(),
        "pip wheel failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(
        listing(&source),
        before,
        "building left files in the checkout"
    );
    let wheel = out.path().join(format!(
        "flavorbox_zenml-{}-py3-none-any.whl",
        env!("CARGO_PKG_VERSION")
    ));
    assert!(
        wheel.exists(),
        "the wheel carries the project's version: {:?}",
        std::fs::read_dir(out.path()).unwrap().collect::<Vec<_>>()
    );
    // Both flavors are in it.
    let listed = Command::new(zenml_python())
        .args(["-m", "zipfile", "-l"])
        .arg(&wheel)
        .output()
        .expect("list the wheel");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for module in [
        "flavorbox_zenml/registry.py",
        "flavorbox_zenml/image_builder.py",
    ] {
        assert!(listed.contains(module), "{module} missing: {listed}");
    }
}

/// The integration's own tests (pytest, `integrations/zenml/tests`): its
/// rules without services, and a real pipeline on ZenML's local Docker
/// orchestrator whose step image the `flavorbox` image builder built and
/// pushed through Flavorbox, with the CLI's local state and through a
/// `flavorbox serve`, against the htpasswd registry whose password only
/// Flavorbox holds. What the runs used is checked here against the registry.
#[test]
fn zenml_pipelines_run_step_images_pushed_through_flavorbox() {
    let s = services();
    let registry = s.auth_registry.as_str();
    let auth = Some((s.auth_user.as_str(), s.auth_password.as_str()));
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = format!("{registry}/pipelines");
    let (home, server, token) = flavorbox_locally_and_served(s, dir.path(), &uri);

    let results = dir.path().join("results.json");
    let parent_image = format!(
        "flavorbox-test/step-parent:{}",
        dir.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_lowercase()
            .trim_start_matches('.')
    );
    let plan = json!({
        "uri": uri,
        "parent_image": parent_image,
        "results": results,
        "local": {"component": "team", "home": home},
        "server": {"component": "team", "url": server.url, "token": token},
    });
    let workspace = dir.path().join("project");
    std::fs::create_dir_all(&workspace).expect("project dir");
    let output = zenml_command(dir.path(), &workspace, s)
        .args([
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            "--durations=5",
        ])
        .arg(repo_root().join("integrations/zenml/tests"))
        .env("FLAVORBOX_ZENML_PLAN", plan.to_string())
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the integration's tests failed:\n{stdout}\n{stderr}"
    );
    // (Their report, with the slowest steps, under --nocapture.)
    eprintln!("{stdout}");
    let seen: Value = serde_json::from_slice(&std::fs::read(&results).expect("results"))
        .expect("results are JSON");

    // Locally: the step ran `repo@sha256:...`, the registry's digest of the
    // tag Flavorbox pushed.
    let local = seen["local"].as_str().expect("local image");
    let (_, digest) = local.split_once('@').expect("repo@digest");
    let tags = registry_tags(registry, "pipelines/pipeline-local", auth).expect("tags");
    assert!(
        tags.iter().any(|tag| {
            registry_manifest_digest(registry, "pipelines/pipeline-local", tag, auth).ok()
                == Some(digest.to_string())
        }),
        "{local} is not a manifest of the registry's tags {tags:?}"
    );
    // Through the server: the step ran the local image whose config the
    // manifest the server pushed refers to.
    let id = seen["server"].as_str().expect("server image");
    let tags = registry_tags(registry, "pipelines/pipeline-server", auth).expect("tags");
    assert!(
        tags.iter().any(|tag| {
            registry_manifest(registry, "pipelines/pipeline-server", tag, auth)
                .is_ok_and(|m| m["config"]["digest"] == id)
        }),
        "{id} is not the config of a manifest the server pushed ({tags:?})"
    );
    // The push ZenML's engine would have made by itself reached nothing.
    assert!(
        registry_tags(registry, "pipelines/pipeline-no-build", auth).is_err(),
        "the engine's own push reached the registry"
    );
    // ZenML holds no registry credential, and the tenant token only in its
    // secret (the component refers to it).
    assert_nowhere_in(
        &[dir.path().join("zenml-config"), workspace],
        &s.auth_password,
        "the registry password",
    );
    // The engine's copies (vfs: a whole root filesystem per layer and per
    // container): ZenML leaves the steps' stopped containers.
    let docker = |args: &[&str]| -> Vec<String> {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &s.docker_host)
            .output()
            .expect("docker");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let mut remove = vec!["rm", "--force"];
    let containers = docker(&["ps", "-aq", "--filter", &format!("ancestor={parent_image}")]);
    remove.extend(containers.iter().map(String::as_str));
    if !containers.is_empty() {
        docker(&remove);
    }
    let mut images = docker(&["images", "-q", "--filter", &format!("reference={uri}/*")]);
    images.push(parent_image.clone());
    let mut remove = vec!["rmi", "--force"];
    remove.extend(images.iter().map(String::as_str));
    docker(&remove);
}
