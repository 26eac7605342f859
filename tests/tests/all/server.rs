//! The real server binary on loopback, driven over HTTP: the whole flow to a
//! real registry with htpasswd, tenants probing each other, quotas, egress
//! refusal, a hostile tenant beside a good one, restart and SIGTERM drain.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flavorbox_tests::server::{Server, ServerOptions};
use flavorbox_tests::{guest_bytes, run_cli as cli, services};
use futures_util::StreamExt;
use serde_json::{Value, json};

fn wasm(server: &Server, token: &str, name: &str, bytes: &[u8]) -> flavorbox_tests::server::Answer {
    server
        .request(
            "PUT",
            &format!("/v1/flavors/{name}"),
            Some(token),
            Some(("application/wasm", bytes)),
        )
        .expect("PUT flavor")
}

/// `docker save` of `image` from the test engine into a file.
fn save(image: &str, to: &std::path::Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        services::make_image(image).await.expect("make image");
        let docker = services::docker().await.expect("engine");
        let mut out = Vec::new();
        let mut stream = docker.export_image(image);
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("export"));
        }
        std::fs::write(to, out).expect("write tarball");
        // The engine must not need the tenant's own tag to push.
        let _ = docker
            .remove_image(
                image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    });
}

/// Runs skopeo (loopback registries over plain HTTP); its stdout.
fn skopeo(args: &[&str]) -> String {
    let mut command = std::process::Command::new("skopeo");
    command.args(["--insecure-policy"]).args(args);
    let out = command.output().expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Uploads the archive at `tarball` as a push of `image` through component
/// `component`; the job id.
fn push_upload(
    server: &Server,
    token: &str,
    component: &str,
    image: &str,
    tarball: &std::path::Path,
) -> String {
    let bytes = std::fs::read(tarball).unwrap();
    let accepted = server
        .request(
            "POST",
            &format!(
                "/v1/registries/{component}/push?image={}",
                image.replace(':', "%3A").replace('/', "%2F")
            ),
            Some(token),
            Some(("application/x-tar", &bytes)),
        )
        .unwrap();
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    accepted.body["id"].as_str().unwrap().to_string()
}

/// The image pulled back from the registry has the saved image's config
/// and layer contents (diff ids), so an engine can run what was pushed.
fn assert_pulls_as_saved(image: &str, tarball: &std::path::Path, (user, password): (&str, &str)) {
    let saved = skopeo(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", tarball.display()),
    ]);
    let pushed = skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        "--creds",
        &format!("{user}:{password}"),
        &format!("docker://{image}"),
    ]);
    let diff_ids = |config: &str| {
        let v: Value = serde_json::from_str(config).expect("config JSON");
        v["rootfs"]["diff_ids"].clone()
    };
    assert_eq!(diff_ids(&saved), diff_ids(&pushed), "{pushed}");
    assert!(diff_ids(&pushed).as_array().is_some_and(|a| !a.is_empty()));
}

fn wait_job(server: &Server, token: &str, id: &str) -> Value {
    flavorbox_tests::hostile::wait_job(server, token, id, Duration::from_secs(300))
}

#[test]
fn the_whole_flow_pushes_an_uploaded_image_with_the_tenants_secret() {
    let s = services::services();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![s.auth_registry.clone()],
            // No engine: the server pushes uploads over the registry's API.
            env: vec![(
                "DOCKER_HOST".into(),
                format!("unix://{}/no-engine.sock", dir.path().display()),
            )],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("acme").expect("tenant");

    let answer = wasm(&server, &token, "hostile", &guest_bytes("guest-hostile"));
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.body["name"], "hostile");

    let secret = server
        .json(
            "PUT",
            "/v1/secrets/reg",
            Some(&token),
            &json!({"username": s.auth_user, "password": s.auth_password}),
        )
        .unwrap();
    assert_eq!(secret.status, 201, "{}", secret.text);
    assert!(
        !secret.text.contains(&s.auth_password),
        "the password never comes back"
    );
    let listed = server.get("/v1/secrets", Some(&token)).unwrap();
    assert!(!listed.text.contains(&s.auth_password));
    let db = std::fs::read(server.home.join("flavorbox.db")).unwrap();
    assert!(
        !db.windows(s.auth_password.len())
            .any(|w| w == s.auth_password.as_bytes()),
        "the password is encrypted at rest"
    );

    let registry = server
        .json(
            "PUT",
            "/v1/registries/prod",
            Some(&token),
            &json!({"flavor": "hostile", "uri": format!("{}/acme", s.auth_registry), "config": {"mode": "ok"}, "secret": "reg"}),
        )
        .unwrap();
    assert_eq!(registry.status, 201, "{}", registry.text);
    assert_eq!(registry.body["uri"], format!("{}/acme", s.auth_registry));

    let image = format!("{}/acme/app:v1", s.auth_registry);
    let check = server
        .json(
            "POST",
            "/v1/registries/prod/check",
            Some(&token),
            &json!({"image": image}),
        )
        .unwrap();
    assert_eq!(check.status, 200, "{}", check.text);
    assert_eq!(check.body["allowed"], true, "{}", check.text);
    assert_eq!(check.body["image"]["path"], "acme/app");
    let outside = server
        .json(
            "POST",
            "/v1/registries/prod/check",
            Some(&token),
            &json!({"image": format!("{}/other/app:1", s.auth_registry)}),
        )
        .unwrap();
    assert_eq!(outside.status, 422, "{}", outside.text);
    assert_eq!(outside.body["error"]["code"], "invalid_target");

    let tarball = dir.path().join("app.tar");
    save(&image, &tarball);
    let id = push_upload(&server, &token, "prod", &image, &tarball);
    let job = wait_job(&server, &token, &id);
    assert_eq!(job["status"], "succeeded", "{job}");
    let digest = services::registry_manifest_digest(
        &s.auth_registry,
        "acme/app",
        "v1",
        Some((&s.auth_user, &s.auth_password)),
    )
    .expect("registry digest");
    assert_eq!(
        job["digest"],
        digest.as_str(),
        "the job reports the registry's digest"
    );
    assert_pulls_as_saved(&image, &tarball, (&s.auth_user, &s.auth_password));

    // The same image as an OCI archive (what skopeo writes, and `docker
    // save` on a containerd-store engine): its manifest goes up byte for
    // byte, so the registry's digest is the archive's own.
    let oci = dir.path().join("app-oci.tar");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", tarball.display()),
        &format!("oci-archive:{}:v2", oci.display()),
    ]);
    let image2 = format!("{}/acme/app:v2", s.auth_registry);
    let id2 = push_upload(&server, &token, "prod", &image2, &oci);
    let job2 = wait_job(&server, &token, &id2);
    assert_eq!(job2["status"], "succeeded", "{job2}");
    let digest2 = services::registry_manifest_digest(
        &s.auth_registry,
        "acme/app",
        "v2",
        Some((&s.auth_user, &s.auth_password)),
    )
    .expect("registry digest");
    assert_eq!(job2["digest"], digest2.as_str());
    let inspected = skopeo(&[
        "inspect",
        "--format",
        "{{.Digest}}",
        &format!("oci-archive:{}:v2", oci.display()),
    ]);
    assert_eq!(
        digest2,
        inspected.trim(),
        "the OCI archive's manifest is pushed as it is"
    );

    // A job of another tenant is a missing job.
    let other = server.tenant("other").unwrap();
    let probe = server.get(&format!("/v1/jobs/{id}"), Some(&other)).unwrap();
    assert_eq!(probe.status, 404);
}

#[test]
fn a_tenant_cannot_see_or_touch_another_tenants_resources() {
    let dir = tempfile::tempdir().unwrap();
    let registry = "127.0.0.1:5999";
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![registry.into()],
            ..Default::default()
        },
    )
    .expect("server");
    let a = server.tenant("alice").unwrap();
    let b = server.tenant("bob").unwrap();

    // What bob sees for each name before alice creates it...
    let probes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/v1/flavors/hostile".into(), None),
        ("DELETE", "/v1/flavors/hostile".into(), None),
        ("DELETE", "/v1/secrets/creds".into(), None),
        ("GET", "/v1/registries/shared".into(), None),
        ("DELETE", "/v1/registries/shared".into(), None),
        (
            "PATCH",
            "/v1/registries/shared".into(),
            Some(json!({"config": {"mode": "ok"}})),
        ),
        (
            "POST",
            "/v1/registries/shared/check".into(),
            Some(json!({"image": format!("{registry}/app:1")})),
        ),
    ];
    let ask = |token: &str| -> Vec<(u16, String)> {
        probes
            .iter()
            .map(|(method, path, body)| {
                let answer = match body {
                    Some(body) => server.json(method, path, Some(token), body).unwrap(),
                    None => server.request(method, path, Some(token), None).unwrap(),
                };
                (answer.status, answer.text)
            })
            .collect()
    };
    let before = ask(&b);

    assert_eq!(
        wasm(&server, &a, "hostile", &guest_bytes("guest-hostile")).status,
        201
    );
    assert_eq!(
        server
            .json(
                "PUT",
                "/v1/secrets/creds",
                Some(&a),
                &json!({"username": "u", "password": "p"})
            )
            .unwrap()
            .status,
        201
    );
    let created = server
        .json(
            "PUT",
            "/v1/registries/shared",
            Some(&a),
            &json!({"flavor": "hostile", "uri": registry, "secret": "creds"}),
        )
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text);

    // ...is exactly what bob sees after: 404 with the same body.
    let after = ask(&b);
    assert_eq!(
        before, after,
        "another tenant's resource answers like a missing one"
    );
    assert!(after.iter().all(|(status, _)| *status == 404), "{after:?}");
    // Bob's lists stay empty, and a component of bob's cannot use alice's secret.
    assert_eq!(server.get("/v1/secrets", Some(&b)).unwrap().body, json!([]));
    assert_eq!(
        server.get("/v1/registries", Some(&b)).unwrap().body,
        json!([])
    );
    let flavors = server.get("/v1/flavors", Some(&b)).unwrap();
    assert!(
        flavors
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["builtin"] == true)
    );
    let borrow = server
        .json(
            "PUT",
            "/v1/registries/mine",
            Some(&b),
            &json!({"flavor": "default", "uri": registry, "secret": "creds"}),
        )
        .unwrap();
    assert_eq!(borrow.status, 422, "{}", borrow.text);
    assert_eq!(borrow.body["error"]["code"], "unknown_secret");
    // Alice's things are intact.
    assert_eq!(
        server
            .get("/v1/registries/shared", Some(&a))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        server.get("/v1/flavors/hostile", Some(&a)).unwrap().status,
        200
    );

    // Tokens: none, malformed, unknown, the admin's on a tenant endpoint,
    // a tenant's on an admin endpoint: all 401.
    for token in [
        None,
        Some("nonsense"),
        Some("fbx_0000"),
        Some(server.admin.as_str()),
    ] {
        let answer = server.get("/v1/flavors", token).unwrap();
        assert_eq!(answer.status, 401, "{token:?}");
        assert_eq!(answer.body["error"]["code"], "unauthorized");
    }
    let as_admin = server
        .json("POST", "/v1/tenants", Some(&a), &json!({"name": "mallory"}))
        .unwrap();
    assert_eq!(as_admin.status, 401);
    let delete = server
        .request("DELETE", "/v1/tenants/bob", Some(&a), None)
        .unwrap();
    assert_eq!(delete.status, 401);

    // Deleting a tenant removes everything it owned, and its token.
    let deleted = server
        .request("DELETE", "/v1/tenants/alice", Some(&server.admin), None)
        .unwrap();
    assert_eq!(deleted.status, 204);
    assert_eq!(server.get("/v1/flavors", Some(&a)).unwrap().status, 401);
    let again = server.tenant("alice").unwrap();
    assert_eq!(
        server.get("/v1/registries", Some(&again)).unwrap().body,
        json!([])
    );
    assert_eq!(
        server.get("/v1/secrets", Some(&again)).unwrap().body,
        json!([])
    );
}

#[test]
fn quotas_refuse_with_429_and_413_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            config: Some("[quotas]\nmax_flavors = 1\nmax_registries = 1\nmax_wasm_mib = 1\nmax_upload_mib = 1\n[tenants.none]\nmax_flavors = 0\n".into()),
            allow: vec!["127.0.0.1:5998".into()],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("small").unwrap();
    assert_eq!(
        wasm(&server, &token, "hostile", &guest_bytes("guest-hostile")).status,
        201
    );
    let state = |server: &Server| {
        (
            server.get("/v1/flavors", Some(&token)).unwrap().text,
            server.get("/v1/registries", Some(&token)).unwrap().text,
        )
    };

    // A tenant whose quota allows no flavor: 429, nothing stored.
    let none = server.tenant("none").unwrap();
    let before_none = server.get("/v1/flavors", Some(&none)).unwrap().text;
    let refused = wasm(&server, &none, "hostile", &guest_bytes("guest-hostile"));
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "quota_exceeded");
    assert!(refused.retry_after.is_some(), "429 carries Retry-After");
    assert_eq!(
        server.get("/v1/flavors", Some(&none)).unwrap().text,
        before_none
    );

    let first = server
        .json(
            "PUT",
            "/v1/registries/one",
            Some(&token),
            &json!({"flavor": "default", "uri": "127.0.0.1:5998"}),
        )
        .unwrap();
    assert_eq!(first.status, 201, "{}", first.text);
    let before = state(&server);
    let over = server
        .json(
            "PUT",
            "/v1/registries/two",
            Some(&token),
            &json!({"flavor": "default", "uri": "127.0.0.1:5998"}),
        )
        .unwrap();
    assert_eq!(over.status, 429, "{}", over.text);
    assert_eq!(over.body["error"]["code"], "quota_exceeded");
    assert!(over.retry_after.is_some(), "429 carries Retry-After");
    assert_eq!(state(&server), before, "nothing changed");

    // Over the size caps: 413, nothing stored.
    let big = vec![0u8; (1 << 20) + 10];
    let too_big = wasm(&server, &token, "big", &big);
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    let upload = server
        .request(
            "POST",
            "/v1/registries/one/push?image=127.0.0.1%3A5998%2Fapp%3A1",
            Some(&token),
            Some(("application/x-tar", &big)),
        )
        .unwrap();
    assert_eq!(upload.status, 413, "{}", upload.text);
    assert_eq!(state(&server), before);
    let uploads: Vec<_> = std::fs::read_dir(server.home.join("uploads"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(
        uploads.is_empty(),
        "a refused upload leaves no file: {uploads:?}"
    );
}

#[test]
fn a_loopback_registry_is_refused_without_an_allowlist_entry_and_nothing_reaches_it() {
    let canary = TcpListener::bind("127.0.0.1:0").unwrap();
    canary.set_nonblocking(true).unwrap();
    let port = canary.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &ServerOptions::default()).expect("server");
    let token = server.tenant("probe").unwrap();
    for uri in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("127.1.2.3:{port}/team"),
        "10.0.0.1:5000".into(),
        "169.254.169.254".into(),
    ] {
        let answer = server
            .json(
                "PUT",
                "/v1/registries/r",
                Some(&token),
                &json!({"flavor": "default", "uri": uri}),
            )
            .unwrap();
        assert_eq!(answer.status, 422, "{uri}: {}", answer.text);
        assert_eq!(answer.body["error"]["code"], "egress_refused", "{uri}");
    }
    assert_eq!(
        server.get("/v1/registries", Some(&token)).unwrap().body,
        json!([])
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(canary.accept().is_err(), "the canary received a connection");
}

#[test]
fn a_registry_path_bound_to_one_tenant_is_neither_reachable_nor_overlappable_by_another() {
    // Registration checks the uri only: nothing connects to the canary.
    let canary = TcpListener::bind("127.0.0.1:0").unwrap();
    canary.set_nonblocking(true).unwrap();
    let registry = format!("127.0.0.1:{}", canary.local_addr().unwrap().port());
    let team_a = format!("{registry}/team-a");
    let bound = format!("[tenants.acme]\nallow_registry = [\"{team_a}\"]\n");
    let put = |server: &Server, token: &str, name: &str, uri: &str| {
        server
            .json(
                "PUT",
                &format!("/v1/registries/{name}"),
                Some(token),
                &json!({"flavor": "default", "uri": uri}),
            )
            .unwrap()
    };
    let refused_for_egress = |answer: &flavorbox_tests::server::Answer, uri: &str| {
        assert_eq!(answer.status, 422, "{uri}: {}", answer.text);
        assert_eq!(answer.body["error"]["code"], "egress_refused", "{uri}");
    };

    // Only acme's table allowlists the registry, and only under team-a.
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        config: Some(bound.clone()),
        ..Default::default()
    };
    let mut server = Server::start(dir.path(), &options).expect("server");
    let a = server.tenant("acme").unwrap();
    let b = server.tenant("globex").unwrap();
    let mine = put(&server, &a, "app", &team_a);
    assert_eq!(mine.status, 201, "{}", mine.text);
    for outside in [
        format!("{registry}/team-a-evil"),
        format!("{registry}/team-b"),
        registry.clone(),
    ] {
        refused_for_egress(&put(&server, &a, "outside", &outside), &outside);
    }
    for uri in [team_a.clone(), format!("{team_a}/sub"), registry.clone()] {
        refused_for_egress(&put(&server, &b, "theirs", &uri), &uri);
    }
    let (_, log) = server.stop().expect("stop");
    assert!(!log.contains("has no path"), "no path-less entry: {log}");

    // A server-wide entry without a path: every tenant reaches the
    // registry (with a warning at start), but no one overlaps acme's path.
    let options = ServerOptions {
        config: Some(format!("allow_registry = [\"{registry}\"]\n{bound}")),
        ..Default::default()
    };
    let mut server = Server::start_with(
        dir.path(),
        server.home.clone(),
        server.admin.clone(),
        &options,
    )
    .expect("restart");
    for uri in [team_a.clone(), format!("{team_a}/sub"), registry.clone()] {
        let answer = put(&server, &b, "theirs", &uri);
        assert_eq!(answer.status, 409, "{uri}: {}", answer.text);
        assert_eq!(answer.body["error"]["code"], "conflict", "{uri}");
        let message = answer.body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("`{uri}` overlaps a path another tenant uses"))
                && message.contains("ask the operator")
                && !message.contains("acme"),
            "names the conflict, not the other tenant: {message}"
        );
    }
    let team_b = format!("{registry}/team-b");
    let theirs = put(&server, &b, "theirs", &team_b);
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    let evil = format!("{registry}/team-a-evil");
    assert_eq!(put(&server, &b, "evil", &evil).status, 201, "segment-aware");
    // Moving a component onto the other tenant's path is refused like registering it.
    let moved = server
        .json(
            "PATCH",
            "/v1/registries/theirs",
            Some(&b),
            &json!({"uri": format!("{team_a}/x")}),
        )
        .unwrap();
    assert_eq!(moved.status, 409, "{}", moved.text);
    let listed = server.get("/v1/registries/theirs", Some(&b)).unwrap();
    assert_eq!(listed.body["uri"], team_b.as_str(), "{}", listed.text);
    // Nor may acme now widen its own component over globex's paths.
    let widened = server
        .json(
            "PATCH",
            "/v1/registries/app",
            Some(&a),
            &json!({"uri": registry}),
        )
        .unwrap();
    assert_eq!(widened.status, 409, "{}", widened.text);
    let (_, log) = server.stop().expect("stop");
    assert!(
        log.contains("has no path") && log.contains("[tenants."),
        "the path-less entry is warned about, with how to bind it: {log}"
    );

    // The operator may allow tenants to share paths.
    let options = ServerOptions {
        config: Some(format!(
            "allow_registry = [\"{registry}\"]\nallow_shared_registry_paths = true\n{bound}"
        )),
        ..Default::default()
    };
    let server = Server::start_with(
        dir.path(),
        server.home.clone(),
        server.admin.clone(),
        &options,
    )
    .expect("restart");
    for (name, uri) in [("shared", team_a.clone()), ("whole", registry.clone())] {
        let answer = put(&server, &b, name, &uri);
        assert_eq!(answer.status, 201, "{uri}: {}", answer.text);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(canary.accept().is_err(), "the canary received a connection");
}

#[test]
fn a_hostile_tenant_does_not_starve_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let registry = "127.0.0.1:5997";
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![registry.into()],
            config: Some("[quotas]\ntimeout_ms = 2000\nmemory_mib = 64\nmax_concurrent_calls = 1\nmax_queued_calls = 2\ncpu_ms_per_minute = 3000\n".into()),
            ..Default::default()
        },
    )
    .expect("server");
    let good = server.tenant("good").unwrap();
    let evil = server.tenant("evil").unwrap();
    assert_eq!(
        wasm(&server, &evil, "hostile", &guest_bytes("guest-hostile")).status,
        201
    );
    let ok = server
        .json(
            "PUT",
            "/v1/registries/r",
            Some(&good),
            &json!({"flavor": "default", "uri": registry}),
        )
        .unwrap();
    assert_eq!(ok.status, 201, "{}", ok.text);

    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let attackers: Vec<_> = (0..6)
        .map(|i| {
            let url = server.url.clone();
            let evil = evil.clone();
            let stop = stop.clone();
            let statuses = statuses.clone();
            std::thread::spawn(move || {
                let mode = if i % 2 == 0 { "loop" } else { "alloc" };
                while !stop.load(Ordering::Relaxed) {
                    let answer = ureq::put(&format!("{url}/v1/registries/x{i}"))
                        .set("Authorization", &format!("Bearer {evil}"))
                        .timeout(Duration::from_secs(60))
                        .send_string(&json!({"flavor": "hostile", "uri": "127.0.0.1:5997", "config": {"mode": mode}}).to_string());
                    let status = match answer {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(s, _)) => s,
                        Err(_) => 0,
                    };
                    statuses.lock().unwrap().push(status);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::new();
    let served = AtomicUsize::new(0);
    for _ in 0..60 {
        let start = Instant::now();
        let answer = server
            .json(
                "POST",
                "/v1/registries/r/check",
                Some(&good),
                &json!({"image": format!("{registry}/app:1")}),
            )
            .unwrap();
        latencies.push(start.elapsed());
        assert_eq!(
            answer.status, 200,
            "the good tenant is served: {}",
            answer.text
        );
        served.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let worst = latencies[latencies.len() - 1];
    eprintln!("good tenant under attack: p50 {p50:?}, worst {worst:?}");
    let statuses = statuses.lock().unwrap();
    assert!(
        statuses.iter().all(|s| matches!(s, 422 | 429 | 503)),
        "the attacker only ever gets its own failures or refusals: {statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the attacker hits its quota: {statuses:?}"
    );
    // Loose: a call of the good tenant never waits behind the attacker's
    // 2 s calls (the attacker holds at most its own slot).
    assert!(
        worst < Duration::from_secs(2),
        "worst good latency {worst:?}"
    );
    let metrics = server.get("/metrics", None).unwrap().text;
    assert!(
        metrics.contains("flavorbox_quota_rejections_total{reason=\"cpu_budget\"}")
            || metrics.contains("tenant_concurrency"),
        "{metrics}"
    );
}

#[test]
fn state_survives_a_restart_and_sigterm_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let registry = "127.0.0.1:5996";
    let options = ServerOptions {
        allow: vec![registry.into()],
        config: Some("[quotas]\ntimeout_ms = 1500\n".into()),
        ..Default::default()
    };
    let mut server = Server::start(dir.path(), &options).expect("server");
    let token = server.tenant("keep").unwrap();
    assert_eq!(
        wasm(&server, &token, "hostile", &guest_bytes("guest-hostile")).status,
        201
    );
    assert_eq!(
        server
            .json(
                "PUT",
                "/v1/secrets/s",
                Some(&token),
                &json!({"username": "u", "password": "p"})
            )
            .unwrap()
            .status,
        201
    );
    assert_eq!(
        server
            .json("PUT", "/v1/registries/r", Some(&token), &json!({"flavor": "hostile", "uri": registry, "secret": "s", "config": {"deny": "no"}}))
            .unwrap()
            .status,
        201
    );
    let snapshot = |server: &Server| {
        ["/v1/flavors", "/v1/secrets", "/v1/registries"]
            .map(|p| server.get(p, Some(&token)).unwrap().text)
    };
    let before = snapshot(&server);

    // A slow request (the flavor loops until its 1.5 s deadline) is in
    // flight when SIGTERM arrives: it still gets its answer.
    let url = server.url.clone();
    let slow_token = token.clone();
    let slow = std::thread::spawn(move || {
        let answer = ureq::put(&format!("{url}/v1/registries/slow"))
            .set("Authorization", &format!("Bearer {slow_token}"))
            .send_string(
                &json!({"flavor": "hostile", "uri": "127.0.0.1:5996", "config": {"mode": "loop"}})
                    .to_string(),
            );
        match answer {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("the in-flight request was cut: {e}"),
        }
    });
    std::thread::sleep(Duration::from_millis(400));
    let (status, log) = server.stop().expect("stop");
    assert!(
        status.success(),
        "clean exit after SIGTERM: {status:?}\n{log}"
    );
    assert_eq!(slow.join().unwrap(), 422, "the in-flight call was answered");
    assert!(log.contains("shutting down"), "{log}");

    let server = Server::start_with(
        dir.path(),
        server.home.clone(),
        server.admin.clone(),
        &options,
    )
    .expect("restart");
    assert_eq!(
        snapshot(&server),
        before,
        "everything is as it was, token included"
    );
    let check = server
        .json(
            "POST",
            "/v1/registries/r/check",
            Some(&token),
            &json!({"image": format!("{registry}/app:1")}),
        )
        .unwrap();
    assert_eq!(check.status, 200, "{}", check.text);
    assert_eq!(check.body["allowed"], false);
    assert_eq!(check.body["reason"], "no");
}

#[test]
fn malformed_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &ServerOptions::default()).expect("server");
    let token = server.tenant("t").unwrap();
    for (method, path, body) in [
        ("PUT", "/v1/secrets/s", "{not json"),
        ("PUT", "/v1/secrets/s", "{\"username\": 1}"),
        ("POST", "/v1/registries/r/check", "[]"),
        (
            "PUT",
            "/v1/secrets/bad%20name",
            "{\"username\":\"u\",\"password\":\"p\"}",
        ),
    ] {
        let answer = server
            .request(
                method,
                path,
                Some(&token),
                Some(("application/json", body.as_bytes())),
            )
            .unwrap();
        assert!(
            matches!(answer.status, 400 | 404),
            "{method} {path} {body}: {}",
            answer.text
        );
        assert!(
            answer.body["error"]["message"].is_string(),
            "{}",
            answer.text
        );
    }
    let unknown = server.get("/v2/nothing", Some(&token)).unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["code"], "not_found");
    let garbage = wasm(&server, &token, "x", b"\0asm garbage");
    assert_eq!(garbage.status, 422, "{}", garbage.text);
    let mismatch = wasm(
        &server,
        &token,
        "not-hostile",
        &guest_bytes("guest-hostile"),
    );
    assert_eq!(mismatch.status, 400, "{}", mismatch.text);
    assert_eq!(
        server
            .get("/v1/flavors/hostile", Some(&token))
            .unwrap()
            .status,
        404,
        "nothing stored"
    );
}

#[test]
fn the_cli_logged_in_to_a_server_runs_the_same_commands_and_pushes() {
    let s = services::services();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![s.open_registry.clone()],
            env: vec![("DOCKER_HOST".into(), s.docker_host.clone())],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("cli").unwrap();
    let home = dir.path().join("client");
    let docker = [("DOCKER_HOST", s.docker_host.as_str())];

    let (ok, _, err) = cli(
        &home,
        &["login", &server.url, "--token", "fbx_wrong"],
        None,
        &[],
    );
    assert!(!ok, "a wrong token is refused at login");
    assert!(err.contains("bearer token"), "{err}");
    let (ok, _, err) = cli(
        &home,
        &["login", &server.url, "--token-stdin"],
        Some(&token),
        &[],
    );
    assert!(ok, "{err}");

    let hostile = flavorbox_tests::guest_path("guest-hostile");
    let (ok, out, err) = cli(
        &home,
        &["flavor", "register", hostile.to_str().unwrap()],
        None,
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "hostile");
    let (ok, _, err) = cli(
        &home,
        &[
            "secret",
            "create",
            "s",
            "--username",
            "u",
            "--password-stdin",
        ],
        Some("p"),
        &[],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = cli(
        &home,
        &[
            "registry",
            "register",
            "r",
            "--flavor",
            "default",
            "--uri",
            &s.open_registry,
        ],
        None,
        &[],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&home, &["registry", "list", "--json"], None, &[]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["name"], "r");
    // The server holds it: the tenant sees it over HTTP too.
    assert_eq!(
        server.get("/v1/registries/r", Some(&token)).unwrap().status,
        200
    );
    let (ok, _, err) = cli(
        &home,
        &["registry", "update", "r", "--uri", "10.0.0.1:5000"],
        None,
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("egress"),
        "the server's refusal reaches the CLI: {err}"
    );

    let image = format!("{}/cli/app:1", s.open_registry);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(services::make_image(&image)).expect("image");
    let (ok, out, err) = cli(
        &home,
        &["push", &image, "--registry", "r", "--dry-run"],
        None,
        &docker,
    );
    assert!(ok, "{err}");
    assert!(out.contains("dry run"), "{out}");
    let (ok, out, err) = cli(
        &home,
        &["push", &image, "--registry", "r", "--json"],
        None,
        &docker,
    );
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let digest =
        services::registry_manifest_digest(&s.open_registry, "cli/app", "1", None).unwrap();
    assert_eq!(report["digest"], digest.as_str());

    let (ok, _, err) = cli(&home, &["logout"], None, &[]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&home, &["registry", "list", "--json"], None, &[]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!([]),
        "back to the local state"
    );
}

/// A tenant with a registry component `r` on a loopback registry no one
/// listens on (nothing here reaches it: the uploads never complete).
fn tenant_with_registry(server: &Server) -> String {
    let token = server.tenant("slow").unwrap();
    let registry = server
        .json(
            "PUT",
            "/v1/registries/r",
            Some(&token),
            &json!({"flavor": "default", "uri": "127.0.0.1:5996"}),
        )
        .unwrap();
    assert_eq!(registry.status, 201, "{}", registry.text);
    token
}

/// Opens a connection and sends `head` (and nothing more).
fn half_request(server: &Server, head: &str) -> std::net::TcpStream {
    use std::io::Write as _;
    let address = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.write_all(head.as_bytes()).expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// The head of a push whose body says it is 10 MB long.
fn stalled_push_head(token: &str) -> String {
    format!(
        "POST /v1/registries/r/push?image=127.0.0.1%3A5996%2Fapp%3A1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/x-tar\r\ncontent-length: 10000000\r\n\r\n{}",
        "x".repeat(4096)
    )
}

/// Reads until the server closes; what it sent and how long it took.
fn read_until_closed(stream: &mut std::net::TcpStream) -> (String, Duration) {
    use std::io::Read as _;
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

fn upload_files(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.home.join("uploads"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for_upload(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while upload_files(server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the disk"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn half_sent_headers_and_a_stalled_upload_are_cut_off_and_the_server_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec!["127.0.0.1:5996".into()],
            config: Some("header_timeout_secs = 1\nbody_timeout_secs = 1\n".into()),
            ..Default::default()
        },
    )
    .expect("server");
    let token = tenant_with_registry(&server);

    // Half the headers, no token needed: closed after the header timeout,
    // without an answer.
    let mut half = half_request(&server, "GET /v1/flavors HTTP/1.1\r\nhost: x\r\n");
    let (answer, took) = read_until_closed(&mut half);
    assert!(answer.is_empty(), "no answer to half a request: {answer}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "closed after the 1 s header timeout: {took:?}"
    );

    // Half an upload: a 408 once the body stalls, and its file is gone.
    let mut upload = half_request(&server, &stalled_push_head(&token));
    let (answer, took) = read_until_closed(&mut upload);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        upload_files(&server).is_empty(),
        "the stalled upload's file is removed: {:?}",
        upload_files(&server)
    );
    assert_eq!(
        server.get("/v1/registries/r", Some(&token)).unwrap().status,
        200,
        "the server carries on"
    );
}

#[test]
fn sigterm_exits_within_the_drain_timeout_despite_stalled_clients_and_removes_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec!["127.0.0.1:5996".into()],
            config: Some("drain_timeout_secs = 2\n".into()),
            ..Default::default()
        },
    )
    .expect("server");
    let token = tenant_with_registry(&server);
    // Neither would end on its own before the default 10 s header and 30 s
    // body timeouts.
    let mut half_headers = half_request(&server, "GET /healthz HTTP/1.1\r\nhost: x\r\n");
    let mut half_upload = half_request(&server, &stalled_push_head(&token));
    wait_for_upload(&server);

    let start = Instant::now();
    let (status, log) = server.stop().expect("stop");
    let took = start.elapsed();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}\n{log}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "stopped at the 2 s drain deadline, not before and not much after: {took:?}\n{log}"
    );
    assert!(
        log.contains("closing connections still open at the end of the drain"),
        "{log}"
    );
    assert!(
        upload_files(&server).is_empty(),
        "the half upload's file is removed: {:?}",
        upload_files(&server)
    );
    for stream in [&mut half_headers, &mut half_upload] {
        let (_, waited) = read_until_closed(stream);
        assert!(waited < Duration::from_secs(1), "the connection is closed");
    }
}

#[test]
fn a_start_removes_what_killed_pushes_left_and_touches_no_engine() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // What a kill -9 mid-push leaves: the upload. Beside it, the engine
    // records an older server kept, and an engine that never answers: this
    // server pushes without one, so it never asks it anything.
    let uploads = home.join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("upload-AbC123"), b"half a tarball").unwrap();
    let mark = home
        .join("engine-jobs")
        .join("0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(mark.parent().unwrap()).unwrap();
    std::fs::write(&mark, b"").unwrap();
    let socket = dir.path().join("silent-engine.sock");
    let silent = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    silent.set_nonblocking(true).unwrap();
    let mut server = Server::start_with(
        dir.path(),
        home.clone(),
        format!("admin-{}", "x".repeat(40)),
        &ServerOptions {
            env: vec![("DOCKER_HOST".into(), format!("unix://{}", socket.display()))],
            ..Default::default()
        },
    )
    .expect("server");
    assert!(
        upload_files(&server).is_empty(),
        "{:?}",
        upload_files(&server)
    );
    assert!(!mark.exists(), "the older server's records go");
    let (status, log) = server.stop().expect("stop");
    assert!(status.success(), "{log}");
    assert!(
        log.contains("removed the uploads of interrupted pushes")
            && log.contains("this one uses no engine"),
        "{log}"
    );
    assert!(
        silent.accept().is_err(),
        "the server never connected to the engine"
    );
}

/// Reads one answer: its head and as much body as its `content-length`
/// says (or until the server closes); what it sent and how long it took.
fn read_answer(stream: &mut std::net::TcpStream) -> (String, Duration) {
    use std::io::Read as _;
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return (text, start.elapsed());
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (text, start.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The head of a push of `image` (URL-encoded) with a 10 MB body that
/// never comes.
fn push_head_without_body(token: &str, image: &str) -> String {
    format!(
        "POST /v1/registries/r/push?image={image} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/x-tar\r\ncontent-length: 10000000\r\n\r\n"
    )
}

#[test]
fn a_push_outside_the_registry_is_refused_before_any_byte_of_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec!["127.0.0.1:5996".into()],
            ..Default::default()
        },
    )
    .expect("server");
    let token = tenant_with_registry(&server);
    // `r` is `127.0.0.1:5996`; the image is on another registry. The body
    // never comes: the answer must not wait for it (the body timeout is
    // 30 s).
    for image in [
        "127.0.0.1%3A5997%2Fapp%3A1",
        "docker.io%2Flibrary%2Fapp%3A1",
    ] {
        let mut push = half_request(&server, &push_head_without_body(&token, image));
        let (answer, took) = read_answer(&mut push);
        assert!(answer.starts_with("HTTP/1.1 422"), "{image}: {answer}");
        assert!(answer.contains("\"invalid_target\""), "{answer}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    assert!(
        upload_files(&server).is_empty(),
        "nothing was received: {:?}",
        upload_files(&server)
    );
}

#[test]
fn a_tenants_uploads_in_flight_and_on_disk_are_bounded_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec!["127.0.0.1:5996".into(), "127.0.0.1:5995".into()],
            config: Some(
                "[quotas]\nmax_uploads_in_flight = 1\n[tenants.roomy]\nmax_uploads_in_flight = 4\nmax_upload_disk_mib = 16\n"
                    .into(),
            ),
            ..Default::default()
        },
    )
    .expect("server");
    let token = tenant_with_registry(&server);

    // One upload in flight (stalled, 10 MB declared): the second gets 429
    // at once, without its body being read.
    let first = half_request(&server, &stalled_push_head(&token));
    wait_for_upload(&server);
    let mut second = half_request(&server, &stalled_push_head(&token));
    let (answer, took) = read_answer(&mut second);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"quota_exceeded\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    assert!(answer.contains("at most 1 uploads"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(upload_files(&server).len(), 1, "the second wrote nothing");

    // The first ends (the client goes away): its place is given back.
    let gone = |server: &Server| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !upload_files(server).is_empty() {
            assert!(Instant::now() < deadline, "the broken upload stays");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    drop(first);
    gone(&server);
    let again = half_request(&server, &stalled_push_head(&token));
    wait_for_upload(&server);
    drop(again);
    gone(&server);

    // Room for four uploads but 16 MiB: a second 10 MB upload does not
    // fit beside the first, whose declared length already counts.
    let roomy = server.tenant("roomy").unwrap();
    let registry = server
        .json(
            "PUT",
            "/v1/registries/r",
            Some(&roomy),
            &json!({"flavor": "default", "uri": "127.0.0.1:5995"}),
        )
        .unwrap();
    assert_eq!(registry.status, 201, "{}", registry.text);
    let roomy_head = stalled_push_head(&roomy).replace("5996", "5995");
    let first = half_request(&server, &roomy_head);
    wait_for_upload(&server);
    let mut second = half_request(&server, &roomy_head);
    let (answer, took) = read_answer(&mut second);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("16 MiB on disk"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(first);
}

#[test]
fn metrics_require_the_operators_token_when_one_is_set_and_an_open_one_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_token = format!("metrics-{}", "m".repeat(40));
    let mut server = Server::start(
        dir.path(),
        &ServerOptions {
            env: vec![("FLAVORBOX_METRICS_TOKEN".into(), metrics_token.clone())],
            ..Default::default()
        },
    )
    .expect("server");
    let tenant = server.tenant("curious").unwrap();
    for (who, token) in [
        ("nobody", None),
        ("a tenant", Some(tenant.as_str())),
        ("the admin", Some(server.admin.as_str())),
        (
            "a wrong token",
            Some("metrics-wrong-wrong-wrong-wrong-wrong"),
        ),
    ] {
        let answer = server.get("/metrics", token).unwrap();
        assert_eq!(answer.status, 401, "{who}: {}", answer.text);
        assert_eq!(answer.body["error"]["code"], "unauthorized", "{who}");
        assert!(
            !answer.text.contains("flavorbox_"),
            "{who}: {}",
            answer.text
        );
    }
    let answer = server.get("/metrics", Some(&metrics_token)).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.text.contains("flavorbox_http_requests"),
        "{}",
        answer.text
    );
    let (_, log) = server.stop().unwrap();
    assert!(!log.contains("/metrics has no token"), "{log}");
    assert!(!log.contains(&metrics_token), "the token is never logged");

    let open_dir = tempfile::tempdir().unwrap();
    let mut open = Server::start(open_dir.path(), &ServerOptions::default()).expect("server");
    assert_eq!(open.get("/metrics", None).unwrap().status, 200, "open");
    let (_, log) = open.stop().unwrap();
    assert!(
        log.contains("/metrics has no token") && log.contains("every tenant"),
        "{log}"
    );
}

#[test]
fn failed_authentications_from_one_address_get_429_while_valid_tokens_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            config: Some("auth_failure_burst = 5\nauth_failures_per_sec = 1\n".into()),
            ..Default::default()
        },
    )
    .expect("server");
    let good = server.tenant("good").unwrap();
    assert_eq!(
        server.get("/v1/registries", Some(&good)).unwrap().status,
        200
    );
    // Many valid requests first: they are never charged.
    for _ in 0..30 {
        assert_eq!(
            server.get("/v1/registries", Some(&good)).unwrap().status,
            200
        );
    }

    // Guesses of every shape from loopback: the burst, then 429.
    let guess = format!("fbx_{}", "0".repeat(64));
    let shapes = [Some(guess.as_str()), None, Some("not-a-token")];
    let mut refused = None;
    for attempt in 0..60 {
        let answer = server
            .get("/v1/registries", shapes[attempt % shapes.len()])
            .unwrap();
        match answer.status {
            401 => assert_eq!(answer.body["error"]["code"], "unauthorized"),
            429 => {
                refused = Some((attempt, answer));
                break;
            }
            other => panic!("attempt {attempt}: {other} {}", answer.text),
        }
    }
    let (attempt, answer) = refused.expect("429 within 60 failed authentications");
    assert!(
        attempt >= 5,
        "the burst of 5 is answered 401 first: {attempt}"
    );
    assert_eq!(
        answer.body["error"]["code"], "rate_limited",
        "{}",
        answer.text
    );
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Retry-After")),
        "{}",
        answer.text
    );
    assert!(answer.retry_after.is_some(), "with Retry-After");

    // While the address is limited (a guess just before and just after
    // gets 429; a refill in between makes the round try again), a known
    // tenant token and the admin token are served, and so are the health
    // endpoints.
    let mut proven = false;
    for round in 0..10 {
        if server.get("/v1/registries", Some(&guess)).unwrap().status != 429 {
            continue;
        }
        let served = server.get("/v1/registries", Some(&good)).unwrap();
        assert_eq!(served.status, 200, "{}", served.text);
        let admin = server
            .json(
                "POST",
                "/v1/tenants",
                Some(&server.admin),
                &json!({"name": format!("later{round}")}),
            )
            .unwrap();
        assert_eq!(admin.status, 201, "{}", admin.text);
        assert_eq!(server.get("/healthz", None).unwrap().status, 200);
        assert_eq!(server.get("/readyz", None).unwrap().status, 200);
        if server.get("/v1/registries", None).unwrap().status == 429 {
            proven = true;
            break;
        }
    }
    assert!(proven, "valid requests were served between two 429s");

    let metrics = server.get("/metrics", None).unwrap();
    assert!(
        metrics.text.contains("code=\"rate_limited\""),
        "{}",
        metrics.text
    );

    // A bucket, not a ban: once it refills, a guess is answered 401 again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = server.get("/v1/registries", Some(&guess)).unwrap();
        if answer.status == 401 {
            break;
        }
        assert_eq!(answer.status, 429, "{}", answer.text);
        assert!(Instant::now() < deadline, "the bucket never refilled");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_push_past_the_job_deadline_is_stopped_and_marked_failed_with_a_message_saying_so() {
    let s = services::services();
    // A registry that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = silent.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in silent.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![registry.clone()],
            config: Some("job_timeout_secs = 1\n".into()),
            env: vec![("DOCKER_HOST".into(), s.docker_host.clone())],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("patient").unwrap();
    let component = server
        .json(
            "PUT",
            "/v1/registries/r",
            Some(&token),
            &json!({"flavor": "default", "uri": registry}),
        )
        .unwrap();
    assert_eq!(component.status, 201, "{}", component.text);
    let image = format!("{registry}/deadline/app:1");
    let tarball = dir.path().join("app.tar");
    save(&image, &tarball);
    let bytes = std::fs::read(&tarball).unwrap();
    let accepted_job = server
        .request(
            "POST",
            &format!(
                "/v1/registries/r/push?image={}",
                image.replace(':', "%3A").replace('/', "%2F")
            ),
            Some(&token),
            Some(("application/x-tar", &bytes)),
        )
        .unwrap();
    assert_eq!(accepted_job.status, 202, "{}", accepted_job.text);
    let id = accepted_job.body["id"].as_str().unwrap().to_string();

    let job = wait_job(&server, &token, &id);
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "job_timeout", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("job deadline of 1 s") && message.contains("job_timeout_secs"),
        "{message}"
    );
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the push reached the silent registry and hung there"
    );
    // Its upload is gone, and the server carries on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !upload_files(&server).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", upload_files(&server));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.get("/v1/registries", Some(&token)).unwrap().status,
        200
    );
    let (_, log) = server.stop().unwrap();
    assert!(log.contains("past the job deadline"), "{log}");
}

/// The compiled-code files of the server's cache, sorted.
fn code_files(server: &Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.home.join("cache").join("code"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".cwasm"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A counter or gauge of the server's open `/metrics`, by its exposed
/// name and labels (`flavorbox_compiles_admitted_total`).
fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics", None).expect("metrics").text;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn compiles(server: &Server) -> f64 {
    metric(server, "flavorbox_compiles_admitted_total")
}

#[test]
fn a_name_held_by_other_content_is_refused_uncompiled_and_no_refusal_keeps_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &ServerOptions::default()).expect("server");
    let token = server.tenant("acme").unwrap();
    let hostile = guest_bytes("guest-hostile");
    let first = wasm(&server, &token, "hostile", &hostile);
    assert_eq!(first.status, 201, "{}", first.text);
    let files = code_files(&server);
    let compiled = compiles(&server);
    assert!(compiled >= 1.0, "the first upload was compiled");

    // New content under the taken name: 409 with no compile and no code.
    let other = flavorbox_bench::distinct_variant(&hostile, 0xc0de);
    for _ in 0..3 {
        let taken = wasm(&server, &token, "hostile", &other);
        assert_eq!(taken.status, 409, "{}", taken.text);
        assert_eq!(taken.body["error"]["code"], "conflict", "{}", taken.text);
    }
    assert_eq!(
        compiles(&server),
        compiled,
        "a refused name compiled nothing"
    );
    assert_eq!(code_files(&server), files, "and left no code");

    // The same content again is answered without a compile.
    let again = wasm(&server, &token, "hostile", &hostile);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(compiles(&server), compiled);

    // Without a name the component must run to say what it is called: it
    // is compiled (admitted, counted), refused, and keeps no code.
    let unnamed = server
        .request(
            "POST",
            "/v1/flavors",
            Some(&token),
            Some(("application/wasm", &other)),
        )
        .unwrap();
    assert_eq!(unnamed.status, 409, "{}", unnamed.text);
    assert_eq!(compiles(&server), compiled + 1.0);
    assert_eq!(
        code_files(&server),
        files,
        "a refused compile keeps no code"
    );
}

#[test]
fn a_second_tenant_uploading_the_same_bytes_compiles_its_own_code_and_never_hits_the_firsts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &ServerOptions::default()).expect("server");
    let a = server.tenant("alpha").unwrap();
    let b = server.tenant("beta").unwrap();
    let bytes = flavorbox_bench::distinct_variant(&guest_bytes("guest-hostile"), 0xab);
    let before = compiles(&server);
    let first = wasm(&server, &a, "hostile", &bytes);
    assert_eq!(first.status, 201, "{}", first.text);
    let sha = first.body["sha256"].as_str().expect("sha256").to_string();
    let own = |server: &Server| -> Vec<String> {
        code_files(server)
            .into_iter()
            .filter(|n| n.starts_with(&sha))
            .collect()
    };
    assert_eq!(compiles(&server), before + 1.0);
    let alpha_files = own(&server);
    assert_eq!(alpha_files.len(), 1, "{alpha_files:?}");

    // beta's upload of the very same bytes is a compile of its own, into
    // a file of its own: nothing about it depends on alpha's upload.
    let second = wasm(&server, &b, "hostile", &bytes);
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(compiles(&server), before + 2.0, "beta compiled");
    let both = own(&server);
    assert_eq!(both.len(), 2, "beta's code is its own file: {both:?}");
    assert!(both.contains(&alpha_files[0]));

    // beta's delete takes its own code only; alpha's flavor still loads.
    let deleted = server
        .request("DELETE", "/v1/flavors/hostile", Some(&b), None)
        .unwrap();
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(own(&server), alpha_files);
    let listed = server.get("/v1/flavors/hostile", Some(&a)).unwrap();
    assert_eq!(listed.status, 200, "{}", listed.text);
}

#[test]
fn a_tenant_past_its_compile_budget_gets_429_and_others_still_compile() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            config: Some("[tenants.greedy]\ncpu_ms_per_minute = 1\n".into()),
            ..Default::default()
        },
    )
    .expect("server");
    let greedy = server.tenant("greedy").unwrap();
    let good = server.tenant("good").unwrap();
    let hostile = guest_bytes("guest-hostile");
    let first = wasm(&server, &greedy, "hostile", &hostile);
    assert_eq!(first.status, 201, "{}", first.text);
    let files = code_files(&server);
    assert!(
        metric(&server, "flavorbox_compile_cpu_microseconds_total") >= 1000.0,
        "the compile's CPU time was charged"
    );

    // Its one compile spent the minute's budget: new content is refused
    // before it is compiled.
    let compiled = compiles(&server);
    let more = server
        .request(
            "POST",
            "/v1/flavors",
            Some(&greedy),
            Some((
                "application/wasm",
                &flavorbox_bench::distinct_variant(&hostile, 7),
            )),
        )
        .unwrap();
    assert_eq!(more.status, 429, "{}", more.text);
    assert_eq!(more.body["error"]["code"], "quota_exceeded");
    assert!(more.text.contains("compiles"), "{}", more.text);
    assert!(more.retry_after.is_some(), "429 carries Retry-After");
    assert_eq!(compiles(&server), compiled);
    assert_eq!(code_files(&server), files);
    assert_eq!(
        metric(
            &server,
            "flavorbox_compile_rejections_total{reason=\"cpu_budget\"}"
        ),
        1.0
    );

    let other = wasm(&server, &good, "hostile", &hostile);
    assert_eq!(other.status, 201, "another tenant compiles: {}", other.text);
}

#[test]
fn a_denial_reads_the_same_from_the_local_cli_and_through_a_server() {
    let s = services::services();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![s.open_registry.clone()],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("deny").unwrap();
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let (ok, _, err) = cli(
        &remote,
        &["login", &server.url, "--token-stdin"],
        Some(&token),
        &[],
    );
    assert!(ok, "{err}");
    let hostile = flavorbox_tests::guest_path("guest-hostile");
    let image = format!("{}/denied/app:1", s.open_registry);
    let mut said = Vec::new();
    for home in [&local, &remote] {
        for args in [
            vec!["flavor", "register", hostile.to_str().unwrap()],
            vec![
                "registry",
                "register",
                "strict",
                "--flavor",
                "hostile",
                "--uri",
                &s.open_registry,
                "--config",
                "deny=no pushes on Fridays",
            ],
        ] {
            let (ok, _, err) = cli(home, &args, None, &[]);
            assert!(ok, "{err}");
        }
        // Denied before any engine is needed, dry run or not.
        for dry_run in [&["--dry-run"][..], &[]] {
            let args = [&["push", &image, "--registry", "strict"][..], dry_run].concat();
            let (ok, out, err) = cli(home, &args, None, &[]);
            assert!(!ok && out.is_empty(), "{out}");
            said.push(err);
        }
    }
    assert!(
        said[0].contains(&format!(
            "flavor `hostile` denied the push of `{image}`: no pushes on Fridays"
        )),
        "{}",
        said[0]
    );
    assert!(said.iter().all(|err| *err == said[0]), "{said:#?}");
}

#[test]
fn a_server_started_with_another_secrets_key_refuses_to_start_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &ServerOptions::default()).expect("server");
    let token = server.tenant("keyed").unwrap();
    let created = server
        .json(
            "PUT",
            "/v1/secrets/registry",
            Some(&token),
            &json!({"username": "me", "password": "hunter2"}),
        )
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text);
    let listed = |server: &Server| {
        let answer = server.get("/v1/secrets", Some(&token)).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body
    };
    let before = listed(&server);
    let (home, admin) = (server.home.clone(), server.admin.clone());
    server.stop().expect("stop");

    // Another key (a replica or a restart configured with the wrong file):
    // refused at start, saying what to do; the database is untouched.
    let key = dir.path().join("secrets.key");
    let right = std::fs::read(&key).unwrap();
    std::fs::write(&key, [0x5a; 32]).unwrap();
    let err = Server::start_with(
        dir.path(),
        home.clone(),
        admin.clone(),
        &ServerOptions::default(),
    )
    .err()
    .expect("another key is refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("not the key this database's secrets are sealed with")
            && message.contains("FLAVORBOX_SECRETS_KEY_FILE"),
        "{message}"
    );
    // The right key starts again, and finds the tenant's secrets as they were.
    std::fs::write(&key, right).unwrap();
    let mut again =
        Server::start_with(dir.path(), home, admin, &ServerOptions::default()).expect("restart");
    assert_eq!(listed(&again), before);
    again.stop().expect("stop");
}

/// The `flavorbox_config_info` labels a server's `/metrics` shows.
fn config_info(server: &Server) -> (String, String) {
    let metrics = server.get("/metrics", None).unwrap().text;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("flavorbox_config_info{"))
        .unwrap_or_else(|| panic!("no flavorbox_config_info in {metrics}"));
    let label = |name: &str| {
        let start = line
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("{name} in {line}"))
            + name.len()
            + 2;
        line[start..].split('"').next().unwrap().to_string()
    };
    assert!(line.ends_with(" 1"), "{line}");
    (label("replica"), label("fingerprint"))
}

#[test]
fn replicas_show_their_name_and_one_config_fingerprint_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str, config: &str| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        Server::start(
            &home,
            &ServerOptions {
                config: Some(config.into()),
                env: vec![("FLAVORBOX_REPLICA".into(), name.into())],
                ..Default::default()
            },
        )
        .expect("server")
    };
    let same = "[quotas]\ntimeout_ms = 1500\n";
    let (a, b) = (start("replica-a", same), start("replica-b", same));
    let other = start("replica-c", "[quotas]\ntimeout_ms = 1400\n");
    let (name_a, fp_a) = config_info(&a);
    let (name_b, fp_b) = config_info(&b);
    let (_, fp_c) = config_info(&other);
    assert_eq!(
        (name_a.as_str(), name_b.as_str()),
        ("replica-a", "replica-b")
    );
    assert_eq!(fp_a.len(), 16, "{fp_a}");
    assert_eq!(
        fp_a, fp_b,
        "one configuration, one fingerprint, whatever the home"
    );
    assert_ne!(fp_a, fp_c, "another timeout shows");
}
