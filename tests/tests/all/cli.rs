//! The `flavorbox` binary end to end: a real process per command (so every
//! command is a restart), a real store in a temp `--home`, real guests, and
//! for pushes a real Docker daemon and real registries on 127.0.0.1.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use flavorbox_tests::services::{
    dead_registry, make_image, registry_manifest_digest, registry_tags, services,
};
use flavorbox_tests::{block_on, flavorbox_bin, guest_path};
use serde_json::{Value, json};

/// A CLI user with their own state directory.
struct User {
    home: tempfile::TempDir,
    docker_host: Option<String>,
}

impl User {
    fn new() -> Self {
        User {
            home: tempfile::tempdir().expect("temp home"),
            docker_host: None,
        }
    }

    /// A user whose Docker engine is the test services' daemon.
    fn with_docker() -> Self {
        User {
            docker_host: Some(services().docker_host.clone()),
            ..User::new()
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(flavorbox_bin());
        cmd.args(args)
            .env("FLAVORBOX_HOME", self.home.path())
            .env_remove("FLAVORBOX_LOG")
            .stdin(Stdio::null());
        match &self.docker_host {
            Some(host) => cmd.env("DOCKER_HOST", host),
            // No engine: a command that should not need one fails loudly if it tries.
            None => cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        };
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run flavorbox")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`flavorbox {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command that must succeed with `--json`; returns the document.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.ok(&args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Runs a command that must fail with exit code 1; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "`flavorbox {}` should fail; stdout: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "errors go to stderr only");
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    fn create_secret(&self, name: &str, user: &str, password: &str) {
        let mut child = self
            .command(&[
                "secret",
                "create",
                name,
                "--username",
                user,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write password");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn hostile_wasm() -> String {
    guest_path("guest-hostile").display().to_string()
}

#[test]
fn image_parse_prints_normalised_parts_and_rejects_invalid_references() {
    let user = User::new();
    assert_eq!(
        user.json(&["image", "parse", "ubuntu"]),
        json!({"domain": "docker.io", "path": "library/ubuntu", "tag": null, "digest": null,
               "name": "docker.io/library/ubuntu"})
    );
    let digest = format!("sha256:{}", "ab".repeat(32));
    let reference = format!("localhost:5000/team/app:1.0@{digest}");
    assert_eq!(
        user.json(&["image", "parse", &reference]),
        json!({"domain": "localhost:5000", "path": "team/app", "tag": "1.0", "digest": digest,
               "name": "localhost:5000/team/app"})
    );
    assert_eq!(
        user.json(&["image", "parse", "index.docker.io/me/app:v2"])["name"],
        "docker.io/me/app"
    );
    for bad in ["app:", "foo/Bar", "UPPER", "a//b", &"a".repeat(256)] {
        let err = user.fails(&["image", "parse", bad, "--json"]);
        assert!(err.contains("invalid"), "{bad}: {err}");
    }
}

#[test]
fn flavors_register_list_describe_and_delete_across_restarts() {
    let user = User::new();
    let builtins = user.json(&["flavor", "list"]);
    let names: Vec<&str> = builtins
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, flavorbox_tests::BUILTIN_NAMES);

    let wasm = hostile_wasm();
    assert_eq!(user.ok(&["flavor", "register", &wasm]).trim(), "hostile");
    // Registering the same content again is harmless.
    assert_eq!(user.ok(&["flavor", "register", &wasm]).trim(), "hostile");

    // Every command is a new process: the registered flavor survived a restart.
    let described = user.json(&["flavor", "describe", "hostile"]);
    assert_eq!(described["builtin"], false);
    assert_eq!(
        described["metadata"]["capabilities"],
        json!(["repository-exists"])
    );
    let sha = described["sha256"].as_str().expect("sha256").to_string();
    assert_eq!(sha.len(), 64);
    let listed = user.json(&["flavor", "list"]);
    assert_eq!(
        listed.as_array().expect("array").len(),
        flavorbox_tests::BUILTIN_NAMES.len() + 1
    );
    assert!(user.ok(&["flavor", "describe", "hostile"]).contains(&sha));

    // The registered component is kept even if the original file goes away.
    let copy = user.home.path().join("copy.wasm");
    std::fs::copy(&wasm, &copy).expect("copy");
    std::fs::remove_file(&copy).expect("remove");
    assert_eq!(user.json(&["flavor", "describe", "hostile"])["sha256"], sha);

    // In use: refused, and both stay.
    user.ok(&[
        "registry",
        "register",
        "h",
        "--flavor",
        "hostile",
        "--uri",
        "localhost:5000",
    ]);
    let err = user.fails(&["flavor", "delete", "hostile"]);
    assert!(err.contains("`h`"), "{err}");
    assert_eq!(user.json(&["flavor", "describe", "hostile"])["sha256"], sha);

    user.ok(&["registry", "delete", "h"]);
    user.ok(&["flavor", "delete", "hostile"]);
    assert!(
        user.fails(&["flavor", "describe", "hostile"])
            .contains("no flavor named")
    );
    assert!(
        user.fails(&["flavor", "delete", "aws"])
            .contains("built in")
    );
}

#[test]
fn bad_flavor_files_are_refused_with_the_reason_and_nothing_is_stored() {
    let user = User::new();
    let text = user.home.path().join("notes.wasm");
    std::fs::write(&text, "hello").expect("write");
    let err = user.fails(&["flavor", "register", &text.display().to_string()]);
    assert!(err.contains("not a WebAssembly file"), "{err}");

    let err = user.fails(&[
        "flavor",
        "register",
        &guest_path("guest-unknown-import").display().to_string(),
    ]);
    assert!(err.contains("evil:net/exfiltrate@1.0.0"), "{err}");

    let err = user.fails(&[
        "flavor",
        "register",
        &guest_path("guest-wrong-version").display().to_string(),
    ]);
    assert!(err.contains("0.9.0") && err.contains("0.1.x"), "{err}");

    let err = user.fails(&["flavor", "register", "/nonexistent/flavor.wasm"]);
    assert!(err.contains("cannot read"), "{err}");
    assert_eq!(
        user.json(&["flavor", "list"])
            .as_array()
            .expect("array")
            .len(),
        flavorbox_tests::BUILTIN_NAMES.len(),
        "the built-ins, nothing registered"
    );
}

#[test]
fn registry_config_is_validated_by_the_flavor_and_invalid_configs_store_nothing() {
    let user = User::new();
    let err = user.fails(&[
        "registry",
        "register",
        "ecr",
        "--flavor",
        "aws",
        "--uri",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/team",
    ]);
    assert!(err.contains("uri: "), "{err}");
    assert!(
        err.contains("715803424592.dkr.ecr.us-east-1.amazonaws.com"),
        "{err}"
    );
    let err = user.fails(&[
        "registry",
        "register",
        "hub",
        "--flavor",
        "dockerhub",
        "--uri",
        "docker.io",
    ]);
    assert!(err.contains("uri: "), "{err}");
    let err = user.fails(&[
        "registry",
        "register",
        "x",
        "--flavor",
        "nope",
        "--uri",
        "localhost:5000",
    ]);
    assert!(err.contains("no flavor named `nope`"), "{err}");
    let err = user.fails(&[
        "registry",
        "register",
        "x",
        "--flavor",
        "default",
        "--uri",
        "https://r.io",
    ]);
    assert!(err.contains("scheme") || err.contains("https"), "{err}");
    let err = user.fails(&[
        "registry",
        "register",
        "x",
        "--flavor",
        "default",
        "--uri",
        "localhost:5000",
        "--secret",
        "missing",
    ]);
    assert!(err.contains("missing"), "{err}");
    assert_eq!(user.json(&["registry", "list"]), json!([]));

    let hub = user.json(&[
        "registry",
        "register",
        "hub",
        "--flavor",
        "dockerhub",
        "--uri",
        "index.docker.io/myaccount/",
    ]);
    assert_eq!(hub["uri"], "docker.io/myaccount");
    assert_eq!(hub["is_local"], false);

    let ecr = user.json(&[
        "registry",
        "register",
        "ecr",
        "--flavor",
        "aws",
        "--uri",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "--config",
        "default_repository=team/app",
    ]);
    assert_eq!(ecr["config"]["region"], "eu-west-1");
    assert_eq!(ecr["config"]["default_repository"], "team/app");

    // A failed update leaves the component as it was.
    let before = user.json(&["registry", "describe", "ecr"]);
    let err = user.fails(&["registry", "update", "ecr", "--uri", "ecr.example.com/x"]);
    assert!(err.contains("uri: "), "{err}");
    assert_eq!(user.json(&["registry", "describe", "ecr"]), before);
    let updated = user.json(&[
        "registry",
        "update",
        "ecr",
        "--config",
        "default_repository=null",
    ]);
    assert!(
        updated["config"].get("default_repository").is_none(),
        "{updated}"
    );

    let local = user.json(&[
        "registry",
        "register",
        "local",
        "--flavor",
        "default",
        "--uri",
        "localhost:5000",
    ]);
    assert_eq!(local["is_local"], true);
    assert_eq!(
        user.json(&["registry", "list"])
            .as_array()
            .expect("array")
            .len(),
        3
    );
    user.ok(&["registry", "delete", "hub"]);
    assert_eq!(
        user.json(&["registry", "list"])
            .as_array()
            .expect("array")
            .len(),
        2
    );
}

#[test]
fn secrets_are_never_printed() {
    let user = User::new();
    user.create_secret("creds", "alice", "s3cr3t-value");
    let list = user.ok(&["secret", "list"]);
    let json = user.ok(&["secret", "list", "--json"]);
    assert!(list.contains("creds") && list.contains("alice"));
    for out in [&list, &json] {
        assert!(!out.contains("s3cr3t-value"), "{out}");
    }
    user.ok(&[
        "registry",
        "register",
        "r",
        "--flavor",
        "default",
        "--uri",
        "localhost:5000",
        "--secret",
        "creds",
    ]);
    let described = user.ok(&["registry", "describe", "r", "--json"]);
    assert!(!described.contains("s3cr3t-value"));
    assert!(user.fails(&["secret", "delete", "creds"]).contains("`r`"));
    let updated = user.json(&["registry", "update", "r", "--remove-secret"]);
    assert_eq!(updated["secret"], Value::Null);
    user.ok(&["secret", "delete", "creds"]);
    assert_eq!(user.json(&["secret", "list"]), json!([]));
    let db = std::fs::metadata(user.home.path().join("flavorbox.db")).expect("db");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(db.permissions().mode() & 0o777, 0o600);
}

#[test]
fn accepted_push_lands_on_the_registry_with_the_reported_digest() {
    let user = User::with_docker();
    let registry = &services().open_registry;
    let image = format!("{registry}/cli/app:1");
    block_on(make_image(&image)).expect("make image");
    user.ok(&[
        "registry", "register", "local", "--flavor", "default", "--uri", registry,
    ]);

    let dry = user.json(&["push", &image, "--registry", "local", "--dry-run"]);
    assert_eq!(dry["digest"], Value::Null);
    assert!(
        registry_tags(registry, "cli/app", None).is_err(),
        "a dry run pushes nothing"
    );

    let report = user.json(&["push", &image, "--registry", "local"]);
    assert_eq!(report["image"], image);
    assert_eq!(report["warnings"], json!([]));
    let digest = report["digest"].as_str().expect("digest");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(
        registry_tags(registry, "cli/app", None).expect("tags"),
        ["1"]
    );
    assert_eq!(
        registry_manifest_digest(registry, "cli/app", "1", None).expect("manifest"),
        digest
    );

    // Without --json: the digest is shown to the user.
    let text = user.ok(&["push", &image, "--registry", "local"]);
    assert!(text.contains(&format!("digest: {digest}")), "{text}");
}

#[test]
fn image_outside_the_registry_is_refused_before_the_flavor_runs() {
    let user = User::with_docker();
    let registry = &services().open_registry;
    user.ok(&["flavor", "register", &hostile_wasm()]);
    user.ok(&[
        "registry",
        "register",
        "team",
        "--flavor",
        "hostile",
        "--uri",
        &format!("{registry}/team"),
        "--config",
        "deny=the flavor ran",
    ]);
    for outside in [
        format!("{registry}/team-evil/app:1"),
        format!("{registry}/teamx:1"),
        format!("{registry}1/team/app:1"),
        "team/app:1".to_string(),
    ] {
        let err = user.fails(&["push", &outside, "--registry", "team"]);
        assert!(err.contains("does not belong"), "{outside}: {err}");
        assert!(
            !err.contains("the flavor ran"),
            "{outside}: the flavor ran first: {err}"
        );
    }
    let err = user.fails(&[
        "push",
        &format!("{registry}/team/app@sha256:{}", "0".repeat(64)),
        "--registry",
        "team",
    ]);
    assert!(err.contains("digest"), "{err}");
}

#[test]
fn a_flavor_denial_stops_the_push_before_the_registry() {
    let user = User::with_docker();
    let registry = &services().open_registry;
    let image = format!("{registry}/denied/app:1");
    block_on(make_image(&image)).expect("make image");
    user.ok(&["flavor", "register", &hostile_wasm()]);
    user.ok(&[
        "registry",
        "register",
        "strict",
        "--flavor",
        "hostile",
        "--uri",
        registry,
        "--config",
        "deny=no pushes on Fridays",
    ]);
    let err = user.fails(&["push", &image, "--registry", "strict"]);
    assert!(
        err.contains("denied") && err.contains("no pushes on Fridays"),
        "{err}"
    );
    assert!(
        registry_tags(registry, "denied/app", None).is_err(),
        "nothing reached the registry"
    );
}

#[test]
fn auth_registry_accepts_the_right_credentials_and_refuses_wrong_ones() {
    let user = User::with_docker();
    let s = services();
    let registry = &s.auth_registry;
    let image = format!("{registry}/private/app:7");
    block_on(make_image(&image)).expect("make image");

    user.create_secret("wrong", &s.auth_user, "not-the-password");
    user.ok(&[
        "registry", "register", "bad", "--flavor", "default", "--uri", registry, "--secret",
        "wrong",
    ]);
    let err = user.fails(&["push", &image, "--registry", "bad"]);
    assert!(err.to_lowercase().contains("auth"), "{err}");

    user.create_secret("right", &s.auth_user, &s.auth_password);
    user.ok(&[
        "registry", "register", "good", "--flavor", "default", "--uri", registry, "--secret",
        "right",
    ]);
    let report = user.json(&["push", &image, "--registry", "good"]);
    let digest = report["digest"].as_str().expect("digest");
    let auth = Some((s.auth_user.as_str(), s.auth_password.as_str()));
    assert_eq!(
        registry_tags(registry, "private/app", auth).expect("tags"),
        ["7"]
    );
    assert_eq!(
        registry_manifest_digest(registry, "private/app", "7", auth).expect("manifest"),
        digest
    );
}

#[test]
fn a_dead_registry_is_a_clear_error() {
    let user = User::with_docker();
    let registry = dead_registry();
    let image = format!("{registry}/gone/app:1");
    block_on(make_image(&image)).expect("make image");
    user.ok(&[
        "registry", "register", "gone", "--flavor", "default", "--uri", &registry,
    ]);
    let err = user.fails(&["push", &image, "--registry", "gone"]);
    assert!(err.contains(&registry), "{err}");
    assert!(
        err.contains("unreachable") || err.contains("refused"),
        "{err}"
    );
}

#[test]
fn a_missing_engine_is_a_clear_error_but_dry_runs_need_none() {
    let user = User::new();
    user.ok(&[
        "registry",
        "register",
        "local",
        "--flavor",
        "default",
        "--uri",
        "localhost:5000",
    ]);
    let dry = user.json(&[
        "push",
        "localhost:5000/app:1",
        "--registry",
        "local",
        "--dry-run",
    ]);
    assert_eq!(dry["image"], "localhost:5000/app:1");
    let err = user.fails(&["push", "localhost:5000/app:1", "--registry", "local"]);
    assert!(
        err.contains("dockerd") || err.contains("DOCKER_HOST"),
        "{err}"
    );
}

#[test]
fn repository_exists_is_answered_from_the_registry_api_with_the_components_credentials() {
    let user = User::with_docker();
    let s = services();
    let registry = &s.auth_registry;
    let image = format!("{registry}/lookup/app:1");
    block_on(make_image(&image)).expect("make image");
    user.ok(&["flavor", "register", &hostile_wasm()]);
    user.create_secret("right", &s.auth_user, &s.auth_password);
    user.create_secret("wrong", &s.auth_user, "not-the-password");
    user.ok(&[
        "registry", "register", "good", "--flavor", "hostile", "--uri", registry, "--secret",
        "right",
    ]);
    user.ok(&[
        "registry", "register", "bad", "--flavor", "hostile", "--uri", registry, "--secret",
        "wrong",
    ]);

    // The hostile flavor asks the host about the image's repository and
    // reports the answer as a warning.
    let before = user.json(&["push", &image, "--registry", "good", "--dry-run"]);
    assert_eq!(before["warnings"], json!(["exists=false"]));
    let pushed = user.json(&["push", &image, "--registry", "good"]);
    assert!(
        pushed["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    let after = user.json(&["push", &image, "--registry", "good", "--dry-run"]);
    assert_eq!(after["warnings"], json!(["exists=true"]));

    // With the wrong credentials the host cannot answer; the flavor sees why.
    let err = user.fails(&["push", &image, "--registry", "bad", "--dry-run"]);
    assert!(err.contains("lookup failed"), "{err}");
    assert!(err.to_lowercase().contains("auth"), "{err}");
}

#[test]
fn operator_limits_bound_a_hostile_flavor_and_nothing_is_stored() {
    let user = User::new();
    user.ok(&["flavor", "register", &hostile_wasm()]);
    let register = |extra: &[&str], mode: &str| {
        let mut args = extra.to_vec();
        args.extend([
            "registry",
            "register",
            "h",
            "--flavor",
            "hostile",
            "--uri",
            "localhost:5000",
            "--config",
        ]);
        let config = format!("mode={mode}");
        args.push(&config);
        user.fails(&args)
    };
    let err = register(&["--fuel", "1000000"], "loop");
    assert!(err.contains("validate-config of flavor `hostile`"), "{err}");
    assert!(err.contains("out of fuel after 1000000 units"), "{err}");
    let err = register(
        &["--timeout-ms", "200", "--fuel", "100000000000000"],
        "loop",
    );
    assert!(err.contains("timed out after 200ms"), "{err}");
    let err = register(&["--memory-mib", "16"], "alloc");
    assert!(
        err.contains("memory limit of 16777216 bytes exceeded"),
        "{err}"
    );
    let err = register(&[], "trap");
    assert!(err.contains("panics on purpose"), "{err}");
    assert_eq!(user.json(&["registry", "list"]), json!([]));

    // The operator can withhold the repository lookup from every flavor.
    user.ok(&[
        "registry",
        "register",
        "h",
        "--flavor",
        "hostile",
        "--uri",
        "localhost:5000",
    ]);
    let err = user.fails(&[
        "--no-repository-lookup",
        "push",
        "localhost:5000/team/app:1",
        "--registry",
        "h",
        "--dry-run",
    ]);
    assert!(err.contains("not granted"), "{err}");
}
