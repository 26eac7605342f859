//! WIT 0.2's image info end to end: the built-in `policy` flavor approves
//! and denies real images made here (platform, labels, size, user, age)
//! for the right reason, through the CLI (the host reads the image from the
//! Docker engine) and through the server (from the uploaded tarball), and a
//! denied image never reaches the registry.

use std::time::Duration;

use flavorbox_tests::block_on;
use flavorbox_tests::images::{ImageSpec, load_image, rfc3339_days_ago, save_tarball};
use flavorbox_tests::server::{Server, ServerOptions};
use flavorbox_tests::services::{
    engine_cli as cli, output_text as text, registry_manifest_digest, registry_tags, services,
};
use serde_json::{Value, json};

/// The label every approved image carries.
const SOURCE: &str = "org.opencontainers.image.source";

/// The rules every test here sets, as `--config` options.
fn rules() -> Vec<String> {
    vec![
        r#"platforms=["linux/amd64"]"#.into(),
        format!(r#"required_labels=["{SOURCE}"]"#),
        "max_size_mib=1".into(),
        "deny_root_user=true".into(),
        "max_age_days=30".into(),
    ]
}

/// The same rules as a config object (the server's API).
fn rules_json(uri: &str) -> Value {
    json!({
        "uri": uri,
        "platforms": ["linux/amd64"],
        "required_labels": [SOURCE],
        "max_size_mib": 1,
        "deny_root_user": true,
        "max_age_days": 30,
    })
}

/// An image every rule approves.
fn good() -> ImageSpec {
    ImageSpec {
        user: Some("app".into()),
        ..ImageSpec::default()
    }
    .label(SOURCE, "https://example.com/ml/app")
}

/// Images each one rule denies: (tag, spec, what the denial must name).
fn bad() -> Vec<(&'static str, ImageSpec, Vec<&'static str>)> {
    vec![
        (
            "arm",
            ImageSpec {
                architecture: "arm64".into(),
                variant: Some("v8".into()),
                ..good()
            },
            vec!["platforms", "linux/arm64"],
        ),
        (
            "unlabelled",
            ImageSpec {
                labels: vec![("team".into(), "ml".into())],
                ..good()
            },
            vec!["required_labels", SOURCE],
        ),
        (
            "big",
            ImageSpec {
                layer_bytes: 2 * 1024 * 1024,
                ..good()
            },
            vec!["max_size_mib"],
        ),
        (
            "root",
            ImageSpec {
                user: None,
                ..good()
            },
            vec!["deny_root_user", "root"],
        ),
        (
            "old",
            ImageSpec {
                created: rfc3339_days_ago(45),
                ..good()
            },
            vec!["max_age_days", "45"],
        ),
    ]
}

/// A unique repository per run: the registries outlive a test.
fn repository(name: &str) -> String {
    flavorbox_tests::services::unique_repository("policy", name)
}

/// The registry has no tag of `repo` (a repository never pushed to is
/// unknown to it: 404).
fn assert_nothing_landed(registry: &str, repo: &str) {
    if let Ok(tags) = registry_tags(registry, repo, None) {
        assert!(tags.is_empty(), "{repo} has tags {tags:?}");
    }
}

#[test]
fn the_policy_flavor_decides_on_the_image_the_engine_holds() {
    let s = services();
    let home = tempfile::tempdir().unwrap();
    let repo = repository("cli");
    let uri = format!("{}/{repo}", s.open_registry);
    let mut register = vec![
        "registry", "register", "prod", "--flavor", "policy", "--uri",
    ];
    register.push(&uri);
    let rules = rules();
    for rule in &rules {
        register.extend(["--config", rule]);
    }
    let out = cli(home.path(), &register);
    assert!(out.status.success(), "{}", text(&out));

    // Denied, each for its own rule, with the image's value; nothing lands.
    for (tag, spec, names) in bad() {
        let image = format!("{uri}/app:{tag}");
        block_on(load_image(&image, &spec)).unwrap();
        for dry in [true, false] {
            let mut args = vec!["push", image.as_str(), "--registry", "prod"];
            if dry {
                args.push("--dry-run");
            }
            let out = cli(home.path(), &args);
            assert!(!out.status.success(), "{tag} was approved: {}", text(&out));
            let said = text(&out);
            for name in &names {
                assert!(
                    said.contains(name),
                    "{tag}: the denial names `{name}`: {said}"
                );
            }
            for (other, _, other_names) in bad() {
                if other != tag {
                    assert!(
                        !said.contains(other_names[0]),
                        "{tag} is denied for {other}'s rule too: {said}"
                    );
                }
            }
        }
    }
    assert_nothing_landed(&s.open_registry, &format!("{repo}/app"));

    // Approved, with what the registry stores.
    let image = format!("{uri}/app:good");
    block_on(load_image(&image, &good())).unwrap();
    let dry = cli(
        home.path(),
        &["push", &image, "--registry", "prod", "--dry-run", "--json"],
    );
    assert!(dry.status.success(), "{}", text(&dry));
    let dry: Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(dry["image_info"], "given", "{dry}");
    let out = cli(
        home.path(),
        &["push", &image, "--registry", "prod", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["digest"],
        registry_manifest_digest(&s.open_registry, &format!("{repo}/app"), "good", None).unwrap()
    );
    assert_eq!(
        registry_tags(&s.open_registry, &format!("{repo}/app"), None).unwrap(),
        ["good"]
    );

    // An image the engine does not have: a dry run cannot show it to the
    // flavor, which defers its image rules to the push, and the CLI says so.
    let absent = format!("{uri}/app:not-in-the-engine");
    let out = cli(
        home.path(),
        &["push", &absent, "--registry", "prod", "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("there was none to read"),
        "{}",
        text(&out)
    );
}

/// The JSON a hostile guest denied with, found in `said`.
fn guest_json(said: &str) -> Value {
    let (start, end) = (said.find('{'), said.rfind('}'));
    let (Some(start), Some(end)) = (start, end) else {
        panic!("no JSON in {said}")
    };
    serde_json::from_str(&said[start..=end])
        .unwrap_or_else(|e| panic!("the denial is the guest's JSON ({e}): {said}"))
}

#[test]
fn on_the_cli_a_0_2_flavor_sees_the_engine_s_record_of_the_image_and_no_env_values() {
    let s = services();
    let home = tempfile::tempdir().unwrap();
    let uri = format!("{}/{}", s.open_registry, repository("engine-echo"));
    let wasm = flavorbox_tests::guest_path(flavorbox_tests::HOSTILE_V0_2);
    let out = cli(home.path(), &["flavor", "register", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(
        home.path(),
        &[
            "registry",
            "register",
            "echo",
            "--flavor",
            "hostile",
            "--uri",
            &uri,
            "--config",
            "mode=echo-info",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    let secret = "s3cr3t-engine-value";
    let spec = ImageSpec {
        architecture: "arm".into(),
        variant: Some("v7".into()),
        user: Some("1000:1000".into()),
        env: vec![format!("API_TOKEN={secret}"), "PATH=/bin".into()],
        created: rfc3339_days_ago(3),
        layer_bytes: 300_000,
        ..ImageSpec::default()
    }
    .label("team", "ml");
    let image = format!("{uri}/app:1");
    block_on(load_image(&image, &spec)).unwrap();
    let out = cli(
        home.path(),
        &["push", &image, "--registry", "echo", "--dry-run"],
    );
    assert!(!out.status.success(), "the guest denies with what it saw");
    let said = text(&out);
    assert!(
        !said.contains(secret),
        "an env value reached the flavor: {said}"
    );
    let seen = guest_json(&said);
    assert_eq!(seen["wit"], "0.2.0", "{seen}");
    let info = &seen["info"];
    assert_eq!(
        (
            &info["platform"]["os"],
            &info["platform"]["architecture"],
            &info["platform"]["variant"]
        ),
        (&json!("linux"), &json!("arm"), &json!("v7")),
        "{info}"
    );
    assert_eq!(info["user"], "1000:1000");
    assert_eq!(info["labels"], json!([{"key": "team", "value": "ml"}]));
    assert_eq!(info["env_names"], json!(["API_TOKEN", "PATH"]));
    let age = info["age_seconds"].as_u64().unwrap();
    assert!(
        (3 * 86_400 - 120..3 * 86_400 + 120).contains(&age),
        "{info}"
    );
    // The engine's id is the config digest (a classic engine store), and the
    // one layer's size, from the engine's history, is the image's size: the
    // layer's tar, a little more than its content.
    let id = block_on(async {
        let docker = flavorbox_tests::services::docker().await?;
        anyhow::Ok(docker.inspect_image(&image).await?)
    })
    .unwrap()
    .id
    .unwrap();
    assert_eq!(info["config_digest"], id);
    assert_eq!(info["layer_count"], 1);
    let total = info["uncompressed_size"].as_u64().unwrap();
    assert!((300_000..400_000).contains(&total), "{info}");
    assert_eq!(info["layers"][0]["uncompressed_size"], total, "{info}");
    assert_eq!(info["layers"][0]["compressed_size"], Value::Null);
    assert_eq!(
        info["compressed_size"],
        Value::Null,
        "unknown before a push"
    );
}

/// Uploads `tarball` as a push (or a dry run) of `image`; the job at its end.
fn upload(server: &Server, token: &str, image: &str, tarball: &[u8], dry_run: bool) -> Value {
    let accepted = server
        .request(
            "POST",
            &format!(
                "/v1/registries/prod/push?image={}{}",
                image.replace(':', "%3A").replace('/', "%2F"),
                if dry_run { "&dry_run=true" } else { "" }
            ),
            Some(token),
            Some(("application/x-tar", tarball)),
        )
        .unwrap();
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.body["id"].as_str().unwrap().to_string();
    flavorbox_tests::hostile::wait_job(server, token, &id, Duration::from_secs(300))
}

#[test]
fn the_policy_flavor_decides_on_the_uploaded_image_on_a_server() {
    let s = services();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![s.open_registry.clone()],
            // No engine: the server reads the image from the upload.
            env: vec![(
                "DOCKER_HOST".into(),
                format!("unix://{}/no-engine.sock", dir.path().display()),
            )],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("acme").unwrap();
    let repo = repository("server");
    let uri = format!("{}/{repo}", s.open_registry);
    let put = server
        .json(
            "PUT",
            "/v1/registries/prod",
            Some(&token),
            &json!({"flavor": "policy", "uri": uri, "config": rules_json(&uri)}),
        )
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text);

    // A check names the image only: the flavor says which rules wait for it.
    let check = server
        .json(
            "POST",
            "/v1/registries/prod/check",
            Some(&token),
            &json!({"image": format!("{uri}/app:1")}),
        )
        .unwrap();
    assert_eq!(check.status, 200, "{}", check.text);
    assert_eq!(check.body["image_info"], "absent", "{}", check.text);
    assert_eq!(check.body["allowed"], true, "{}", check.text);
    assert!(
        check.text.contains("platforms") && check.text.contains("max_size_mib"),
        "the warning names the rules the push checks: {}",
        check.text
    );

    for (tag, spec, names) in bad() {
        let image = format!("{uri}/app:{tag}");
        let tarball = save_tarball(&image, &spec).unwrap();
        for dry_run in [true, false] {
            let job = upload(&server, &token, &image, &tarball, dry_run);
            assert_eq!(job["status"], "failed", "{tag} dry_run={dry_run}: {job}");
            let message = job["error"]["message"].as_str().unwrap_or_default();
            for name in &names {
                assert!(message.contains(name), "{tag}: names `{name}`: {message}");
            }
        }
    }
    assert_nothing_landed(&s.open_registry, &format!("{repo}/app"));

    let image = format!("{uri}/app:good");
    let tarball = save_tarball(&image, &good()).unwrap();
    let dry = upload(&server, &token, &image, &tarball, true);
    assert_eq!(dry["status"], "succeeded", "{dry}");
    assert!(dry["digest"].is_null(), "a dry run pushes nothing: {dry}");
    assert_nothing_landed(&s.open_registry, &format!("{repo}/app"));
    let job = upload(&server, &token, &image, &tarball, false);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        job["digest"],
        registry_manifest_digest(&s.open_registry, &format!("{repo}/app"), "good", None).unwrap()
    );
}

/// The hostile guest's answer to a push of `spec`, through component
/// `component` (the guest denies with what it was handed, as JSON).
fn hostile_answer(
    server: &Server,
    token: &str,
    component: &str,
    image: &str,
    spec: &ImageSpec,
) -> Value {
    let tarball = save_tarball(image, spec).unwrap();
    let accepted = server
        .request(
            "POST",
            &format!(
                "/v1/registries/{component}/push?image={}&dry_run=true",
                image.replace(':', "%3A").replace('/', "%2F"),
            ),
            Some(token),
            Some(("application/x-tar", &tarball)),
        )
        .unwrap();
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.body["id"].as_str().unwrap().to_string();
    let job = flavorbox_tests::hostile::wait_job(server, token, &id, Duration::from_secs(300));
    assert_eq!(
        job["status"], "failed",
        "the guest denies with what it saw: {job}"
    );
    let message = job["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let json_start = message
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {message}"));
    let json_end = message
        .rfind('}')
        .unwrap_or_else(|| panic!("no JSON in {message}"));
    serde_json::from_str(&message[json_start..=json_end])
        .unwrap_or_else(|e| panic!("the denial is the guest's JSON ({e}): {message}"))
}

#[test]
fn a_hostile_flavor_sees_only_the_bounded_info_never_env_values_and_a_0_1_flavor_nothing() {
    let s = services();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![s.open_registry.clone()],
            env: vec![(
                "DOCKER_HOST".into(),
                format!("unix://{}/no-engine.sock", dir.path().display()),
            )],
            ..Default::default()
        },
    )
    .expect("server");
    // One tenant runs the hostile guest built for 0.2, another the same
    // guest built for 0.1 (a flavor's name is its own, per tenant).
    let token = server.tenant("acme").unwrap();
    let old_token = server.tenant("legacy").unwrap();
    let uri = format!("{}/{}", s.open_registry, repository("hostile"));
    // Tenants never share a registry path.
    let old_uri = format!("{uri}-legacy");
    for (tenant, guest, wit) in [
        (&token, flavorbox_tests::HOSTILE_V0_2, "0.2.0"),
        (&old_token, flavorbox_tests::HOSTILE, "0.1.0"),
    ] {
        let put = server
            .request(
                "PUT",
                "/v1/flavors/hostile",
                Some(tenant),
                Some(("application/wasm", &flavorbox_tests::guest_bytes(guest))),
            )
            .unwrap();
        assert!(put.status == 201 || put.status == 200, "{}", put.text);
        let listed = server.get("/v1/flavors/hostile", Some(tenant)).unwrap();
        assert_eq!(
            listed.body["metadata"]["wit_version"], wit,
            "{}",
            listed.text
        );
    }
    for (tenant, component, mode, uri) in [
        (&token, "stats", "info-stats", &uri),
        (&token, "echo", "echo-info", &uri),
        (&old_token, "old", "echo-info", &old_uri),
    ] {
        let put = server
            .json(
                "PUT",
                &format!("/v1/registries/{component}"),
                Some(tenant),
                &json!({"flavor": "hostile", "uri": uri, "config": {"mode": mode}}),
            )
            .unwrap();
        assert_eq!(put.status, 201, "{}", put.text);
    }

    // An image whose config is as large as the server takes: far more
    // labels, env entries and bytes than the record's bounds.
    let secret = "s3cr3t-value-flavors-must-not-see";
    let huge = ImageSpec {
        labels: (0..400)
            .map(|i| (format!("k{i:03}.{}", "x".repeat(400)), "v".repeat(4000)))
            .collect(),
        env: (0..600).map(|i| format!("VAR_{i}={secret}")).collect(),
        user: Some("u".repeat(5000)),
        ..ImageSpec::default()
    };
    let stats = hostile_answer(&server, &token, "stats", &format!("{uri}/app:huge"), &huge);
    let info = &stats["info"];
    assert_eq!(stats["wit"], "0.2.0", "{stats}");
    assert_eq!(info["labels"], 64, "{stats}");
    assert!(
        info["longest_label_key"].as_u64().unwrap() <= 128,
        "{stats}"
    );
    assert!(
        info["longest_label_value"].as_u64().unwrap() <= 1024,
        "{stats}"
    );
    assert_eq!(info["env_names"], 128, "{stats}");
    assert_eq!(info["env_names_with_equals"], 0, "{stats}");
    assert_eq!(info["user_len"], 256, "{stats}");
    assert_eq!(info["layer_count"], 1, "{stats}");
    assert!(
        info["uncompressed_size"].as_u64().unwrap() >= 4096,
        "measured: {stats}"
    );
    for field in ["labels", "env-names", "user"] {
        assert!(
            info["truncated"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == field),
            "`{field}` is named as cut: {stats}"
        );
    }

    // Env values never reach a flavor; names do.
    let small = ImageSpec {
        env: vec![
            format!("API_TOKEN={secret}"),
            format!("DB_URL=postgres://u:{secret}@db"),
        ],
        ..ImageSpec::default()
    };
    let echo = hostile_answer(&server, &token, "echo", &format!("{uri}/app:env"), &small);
    let text = echo.to_string();
    assert!(
        !text.contains(secret),
        "an env value reached the flavor: {text}"
    );
    assert_eq!(
        echo["info"]["env_names"],
        json!(["API_TOKEN", "DB_URL"]),
        "{text}"
    );

    // A 0.1 flavor is called as before: no info, whatever the upload.
    let old = hostile_answer(
        &server,
        &old_token,
        "old",
        &format!("{old_uri}/app:old"),
        &small,
    );
    assert_eq!(old, json!({"wit": "0.1.0", "info": null}));
}
