//! The audit trail end to end: what the local CLI records for its pushes,
//! dry runs and changes and shows with `flavorbox audit`; what a server
//! records per tenant with who asked (token id, request id, replica), its
//! tenant and operator views, their paging and their refusals of a bad
//! query; and the CLI logged in to a server showing the same rows as the API.

use std::collections::BTreeSet;
use std::time::Duration;

use flavorbox_tests::images::{ImageSpec, load_image, save_tarball};
use flavorbox_tests::server::{Server, ServerOptions};
use flavorbox_tests::services::{
    engine_cli as cli, output_text as text, registry_manifest_digest, services,
};
use flavorbox_tests::{block_on, guest_bytes, run_cli};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A unique repository per run: the registries outlive a test.
fn repository(name: &str) -> String {
    flavorbox_tests::services::unique_repository("audit", name)
}

/// `flavorbox audit --json ARGS` on `home`: the page.
fn audit_json(home: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["audit", "--json"];
    all.extend(args);
    let out = cli(home, &all);
    assert!(out.status.success(), "audit {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn events(page: &Value) -> &Vec<Value> {
    page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {page}"))
}

/// (action, verdict) of every event, in the page's order.
fn kinds(page: &Value) -> Vec<(String, String)> {
    events(page)
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, v)| (a.to_string(), v.to_string()))
        .collect()
}

fn ids(page: &Value) -> Vec<i64> {
    events(page)
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect()
}

/// Ids strictly decreasing: newest first.
fn assert_newest_first(page: &Value) {
    let ids = ids(page);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
}

fn sha256_of(home: &std::path::Path, flavor: &str) -> String {
    let out = cli(home, &["flavor", "describe", flavor, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    info["sha256"].as_str().unwrap().to_string()
}

#[test]
fn the_local_cli_records_decisions_and_changes_and_shows_them() {
    let s = services();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let repo = repository("cli");
    let uri = format!("{}/{repo}", s.open_registry);
    let strict_uri = format!("{uri}-strict");

    let out = cli(
        home,
        &[
            "registry", "register", "prod", "--flavor", "default", "--uri", &uri,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(
        home,
        &[
            "registry",
            "register",
            "strict",
            "--flavor",
            "policy",
            "--uri",
            &strict_uri,
            "--config",
            r#"platforms=["linux/arm64"]"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Allowed: a dry run of an image the engine holds.
    let image = format!("{uri}/app:1");
    block_on(load_image(&image, &ImageSpec::default())).unwrap();
    let out = cli(home, &["push", &image, "--registry", "prod", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    // Refused by the host: the image is not under the registry's uri.
    let outside = "docker.io/library/elsewhere:1";
    let out = cli(home, &["push", outside, "--registry", "prod"]);
    assert!(!out.status.success(), "{}", text(&out));
    let refusal = String::from_utf8_lossy(&out.stderr).to_string();
    // Denied by the flavor: an amd64 image where only arm64 is allowed.
    let denied_image = format!("{strict_uri}/app:1");
    block_on(load_image(&denied_image, &ImageSpec::default())).unwrap();
    let out = cli(home, &["push", &denied_image, "--registry", "strict"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("platforms"), "{}", text(&out));

    let page = audit_json(home, &[]);
    assert_eq!(
        kinds(&page),
        pairs(&[
            ("push", "denied"),
            ("push", "refused"),
            ("dry-run", "allowed"),
            ("component.register", "changed"),
            ("component.register", "changed"),
        ]),
        "{page:#}"
    );
    assert_newest_first(&page);
    assert!(page.get("next").is_none(), "one page: {page:#}");
    let (default_sha, policy_sha) = (sha256_of(home, "default"), sha256_of(home, "policy"));
    let e = events(&page);
    for event in e {
        assert_eq!(event["tenant"], "default", "the local tenant: {event}");
        assert!(
            !event["replica"].as_str().unwrap_or_default().is_empty(),
            "{event}"
        );
        assert!(event.get("token_id").is_none(), "no token locally: {event}");
        assert!(event.get("request_id").is_none(), "{event}");
        assert!(event.get("digest").is_none(), "nothing pushed: {event}");
    }
    // The denial: the flavor, its hash and its reason.
    assert_eq!(e[0]["image"], denied_image.as_str());
    assert_eq!(e[0]["component"], "strict");
    assert_eq!(e[0]["flavor"], "policy");
    assert_eq!(e[0]["flavor_sha256"], policy_sha.as_str());
    let reason = e[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("platforms") && reason.contains("linux/amd64"),
        "{reason}"
    );
    // The refusal: before any flavor, with the host's reason.
    assert_eq!(e[1]["image"], outside);
    assert_eq!(e[1]["component"], "prod");
    assert!(e[1].get("flavor").is_none(), "{}", e[1]);
    let reason = e[1]["reason"].as_str().unwrap_or_default();
    assert!(
        !reason.is_empty() && refusal.contains(reason),
        "{reason} / {refusal}"
    );
    // The approval.
    assert_eq!(e[2]["image"], image.as_str());
    assert_eq!(e[2]["component"], "prod");
    assert_eq!(e[2]["flavor"], "default");
    assert_eq!(e[2]["flavor_sha256"], default_sha.as_str());
    assert!(e[2].get("reason").is_none(), "{}", e[2]);
    // The changes, oldest last.
    assert_eq!(
        (&e[3]["component"], &e[3]["flavor"], &e[3]["flavor_sha256"]),
        (&json!("strict"), &json!("policy"), &json!(policy_sha))
    );
    assert_eq!(
        (&e[4]["component"], &e[4]["flavor"], &e[4]["flavor_sha256"]),
        (&json!("prod"), &json!("default"), &json!(default_sha))
    );

    // Filters.
    let denied = audit_json(home, &["--verdict", "denied"]);
    assert_eq!(events(&denied), &vec![e[0].clone()], "{denied:#}");
    let one_image = audit_json(home, &["--image", &image]);
    assert_eq!(events(&one_image), &vec![e[2].clone()], "{one_image:#}");
    assert_eq!(
        audit_json(home, &["--since", "2000-01-01T00:00:00Z"]),
        page,
        "everything is after 2000"
    );
    assert_eq!(
        events(&audit_json(home, &["--until", "2000-01-01T00:00:00Z"])).len(),
        0
    );

    // Pages of two, walked with the command the CLI prints.
    let mut walked = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["audit", "--json", "--limit", "2"];
        if let Some(id) = &before {
            args.extend(["--before", id.as_str()]);
        }
        let out = cli(home, &args);
        assert!(out.status.success(), "{}", text(&out));
        let part: Value = serde_json::from_slice(&out.stdout).unwrap();
        walked.extend(events(&part).iter().cloned());
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        match part.get("next").and_then(Value::as_i64) {
            Some(next) => {
                assert!(
                    stderr.contains(&format!("flavorbox audit --limit 2 --before {next}")),
                    "how to get the next page: {stderr}"
                );
                before = Some(next.to_string());
            }
            None => {
                assert!(!stderr.contains("--before"), "{stderr}");
                break;
            }
        }
    }
    assert_eq!(&walked, e, "paging walks every row once");

    // The table: one row per event, the reason or the digest as detail.
    let out = cli(home, &["audit"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    for column in [
        "ID",
        "AT",
        "ACTION",
        "VERDICT",
        "IMAGE/FLAVOR",
        "COMPONENT",
        "DETAIL",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(
        lines[1].contains("denied") && lines[1].contains("platforms"),
        "{table}"
    );
    assert!(lines[4].contains("component.register") && lines[4].contains("policy"));

    // A bad query is refused with the field named, and records nothing.
    let before_refusals = audit_json(home, &[]);
    for (args, field) in [
        (vec!["audit", "--verdict", "nonsense"], "verdict"),
        (vec!["audit", "--json", "--since", "yesterday"], "since"),
        (vec!["audit", "--until", "2026-13-45"], "until"),
        (vec!["audit", "--limit", "0"], "limit"),
    ] {
        let out = cli(home, &args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(&format!("`{field}`")),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(audit_json(home, &[]), before_refusals);
    assert_eq!(before_refusals, page, "reading records nothing");
}

/// The tenant's check of `image` through `component`: (the answer, its
/// `x-request-id`).
fn check(server: &Server, token: &str, component: &str, image: &str) -> (Value, String) {
    let response = ureq::post(&format!("{}/v1/registries/{component}/check", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .timeout(Duration::from_secs(120))
        .send_string(&json!({ "image": image }).to_string())
        .unwrap_or_else(|e| panic!("check {image} through {component}: {e}"));
    let id = response
        .header("x-request-id")
        .expect("an x-request-id")
        .to_string();
    let body = response.into_string().expect("a body");
    (serde_json::from_str(&body).expect("json"), id)
}

/// GET `path` with `token`, which must answer 200.
fn get_ok(server: &Server, path: &str, token: &str) -> Value {
    let answer = server.get(path, Some(token)).unwrap();
    assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    answer.body
}

/// Every page of `path` (which has a query already) one row at a time.
fn walk(server: &Server, path: &str, token: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let page = get_ok(
            server,
            &format!(
                "{path}&limit=1{}",
                before.map(|b| format!("&before={b}")).unwrap_or_default()
            ),
            token,
        );
        let got = events(&page);
        assert!(got.len() <= 1, "{page}");
        rows.extend(got.iter().cloned());
        match page.get("next").and_then(Value::as_i64) {
            Some(next) => {
                assert_eq!(Some(next), got.last().and_then(|e| e["id"].as_i64()));
                before = Some(next);
            }
            None => return rows,
        }
        assert!(rows.len() < 1000, "paging does not end");
    }
}

/// A server whose tenants push to the open registry; no engine.
fn start_server(dir: &std::path::Path) -> Server {
    Server::start(
        dir,
        &ServerOptions {
            allow: vec![services().open_registry.clone()],
            env: vec![(
                "DOCKER_HOST".into(),
                format!("unix://{}/no-engine.sock", dir.display()),
            )],
            ..Default::default()
        },
    )
    .expect("server")
}

/// Registers, for `token`, `prod` (the default flavor at `uri`) and
/// `strict` (the hostile guest denying every push, at `uri-strict`).
fn register_components(server: &Server, token: &str, uri: &str) {
    let put = server
        .json(
            "PUT",
            "/v1/registries/prod",
            Some(token),
            &json!({"flavor": "default", "uri": uri}),
        )
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text);
    let put = server
        .request(
            "PUT",
            "/v1/flavors/hostile",
            Some(token),
            Some((
                "application/wasm",
                &guest_bytes(flavorbox_tests::HOSTILE_V0_2),
            )),
        )
        .unwrap();
    assert!(put.status == 201 || put.status == 200, "{}", put.text);
    let put = server
        .json(
            "PUT",
            "/v1/registries/strict",
            Some(token),
            &json!({
                "flavor": "hostile",
                "uri": format!("{uri}-strict"),
                "config": {"mode": "ok", "deny": "no pushes today"},
            }),
        )
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text);
}

#[test]
fn a_server_records_who_asked_and_keeps_each_tenant_s_trail_its_own() {
    let s = services();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let a = server.tenant("acme").unwrap();
    let b = server.tenant("globex").unwrap();
    let repo = repository("server");
    let uri = format!("{}/{repo}", s.open_registry);
    register_components(&server, &a, &uri);
    let put = server
        .json(
            "PUT",
            "/v1/registries/prod",
            Some(&b),
            &json!({"flavor": "default", "uri": format!("{uri}-globex")}),
        )
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text);

    // An allowed check waits in memory; a read of the trail writes it first.
    let image = format!("{uri}/app:1");
    let (allowed, allowed_id) = check(&server, &a, "prod", &image);
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let page = get_ok(&server, "/v1/audit", &a);
    let newest = &events(&page)[0];
    assert_eq!(
        (&newest["action"], &newest["verdict"], &newest["request_id"]),
        (&json!("check"), &json!("allowed"), &json!(allowed_id)),
        "{page:#}"
    );

    let denied_image = format!("{uri}-strict/app:1");
    let (denied, denied_id) = check(&server, &a, "strict", &denied_image);
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_ne!(allowed_id, denied_id);

    // A push that lands.
    let tarball = save_tarball(&image, &ImageSpec::default()).unwrap();
    let response = ureq::post(&format!(
        "{}/v1/registries/prod/push?image={}",
        server.url,
        image.replace(':', "%3A").replace('/', "%2F")
    ))
    .set("Authorization", &format!("Bearer {a}"))
    .set("Content-Type", "application/x-tar")
    .timeout(Duration::from_secs(120))
    .send_bytes(&tarball)
    .expect("upload");
    assert_eq!(response.status(), 202);
    let push_id = response.header("x-request-id").unwrap().to_string();
    let accepted: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    let job = flavorbox_tests::hostile::wait_job(
        &server,
        &a,
        accepted["id"].as_str().unwrap(),
        Duration::from_secs(300),
    );
    assert_eq!(job["status"], "succeeded", "{job}");
    let digest =
        registry_manifest_digest(&s.open_registry, &format!("{repo}/app"), "1", None).unwrap();
    assert_eq!(job["digest"], digest.as_str());

    let page = get_ok(&server, "/v1/audit", &a);
    assert_eq!(
        kinds(&page),
        pairs(&[
            ("push", "pushed"),
            ("push", "allowed"),
            ("check", "denied"),
            ("check", "allowed"),
            ("component.register", "changed"),
            ("flavor.register", "changed"),
            ("component.register", "changed"),
        ]),
        "{page:#}"
    );
    assert_newest_first(&page);
    let e = events(&page);
    let token_id = &hex(&Sha256::digest(a.as_bytes()))[..16];
    for event in e {
        assert_eq!(event["tenant"], "acme", "{event}");
        assert_eq!(event["token_id"], token_id, "{event}");
        assert!(!a.contains(token_id), "the id is not part of the token");
        assert!(
            !event["replica"].as_str().unwrap_or_default().is_empty(),
            "{event}"
        );
        assert!(
            event["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{event}"
        );
    }
    assert_eq!(e[0]["digest"], digest.as_str(), "{}", e[0]);
    assert_eq!(e[0]["request_id"], push_id.as_str(), "the job's upload");
    assert_eq!(e[1]["request_id"], push_id.as_str());
    assert_eq!(e[0]["image"], image.as_str());
    assert_eq!(e[0]["flavor"], "default");
    assert_eq!(e[2]["request_id"], denied_id.as_str());
    assert_eq!(e[2]["reason"], "no pushes today");
    assert_eq!(e[2]["flavor"], "hostile");
    assert_eq!(e[2]["component"], "strict");
    assert_eq!(e[2]["image"], denied_image.as_str());
    assert_eq!(e[3]["request_id"], allowed_id.as_str());
    assert_eq!(e[3]["image"], image.as_str());
    let hostile_sha = hex(&Sha256::digest(guest_bytes(flavorbox_tests::HOSTILE_V0_2)));
    assert_eq!(e[5]["flavor"], "hostile");
    assert_eq!(e[5]["flavor_sha256"], hostile_sha.as_str());
    assert_eq!(e[4]["flavor_sha256"], hostile_sha.as_str());
    assert_eq!(e[2]["flavor_sha256"], hostile_sha.as_str());

    // Filters.
    let only = get_ok(&server, "/v1/audit?verdict=denied", &a);
    assert_eq!(events(&only), &vec![e[2].clone()]);
    let only = get_ok(
        &server,
        &format!(
            "/v1/audit?image={}",
            image.replace(':', "%3A").replace('/', "%2F")
        ),
        &a,
    );
    assert_eq!(
        events(&only),
        &vec![e[0].clone(), e[1].clone(), e[3].clone()]
    );

    // The other tenant sees its own row only.
    let theirs = get_ok(&server, "/v1/audit", &b);
    assert_eq!(
        kinds(&theirs),
        pairs(&[("component.register", "changed")]),
        "{theirs:#}"
    );
    assert_eq!(events(&theirs)[0]["tenant"], "globex");
    let a_ids: BTreeSet<i64> = ids(&page).into_iter().collect();
    assert!(ids(&theirs).iter().all(|id| !a_ids.contains(id)));

    // The operator sees both, or one.
    let all = get_ok(&server, "/v1/admin/audit", &server.admin);
    let tenants: BTreeSet<&str> = events(&all)
        .iter()
        .filter_map(|e| e["tenant"].as_str())
        .collect();
    assert_eq!(tenants, BTreeSet::from(["acme", "globex"]), "{all:#}");
    assert_eq!(events(&all).len(), e.len() + 1);
    assert_newest_first(&all);
    assert_eq!(
        get_ok(&server, "/v1/admin/audit?tenant=acme", &server.admin),
        page
    );
    assert_eq!(
        get_ok(&server, "/v1/admin/audit?tenant=globex", &server.admin),
        theirs
    );
    assert_eq!(
        server.get("/v1/admin/audit", Some(&a)).unwrap().status,
        401,
        "a tenant's token is not the operator's"
    );
    assert_eq!(server.get("/v1/audit", None).unwrap().status, 401);

    // Paging one row at a time walks every row exactly once.
    assert_eq!(&walk(&server, "/v1/audit?", &a), e);
    assert_eq!(
        &walk(&server, "/v1/admin/audit?", &server.admin),
        events(&all)
    );

    // A bad query is a 400 naming the field.
    for (query, field) in [
        ("verdict=bogus", "verdict"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("before=abc", "before"),
    ] {
        for (path, token) in [("/v1/audit", &a), ("/v1/admin/audit", &server.admin)] {
            let answer = server.get(&format!("{path}?{query}"), Some(token)).unwrap();
            assert_eq!(answer.status, 400, "{path}?{query}: {}", answer.text);
            let message = answer.body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(field), "{path}?{query}: {message}");
        }
    }
    assert_eq!(
        get_ok(&server, "/v1/audit", &a),
        page,
        "refusals recorded nothing"
    );
}

#[test]
fn the_cli_logged_in_to_a_server_shows_the_api_s_rows() {
    let s = services();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let token = server.tenant("acme").unwrap();
    let uri = format!("{}/{}", s.open_registry, repository("remote"));
    register_components(&server, &token, &uri);
    let home = dir.path().join("client");
    let env = [
        ("FLAVORBOX_SERVER", server.url.as_str()),
        ("FLAVORBOX_TOKEN", token.as_str()),
    ];

    // A remote push asks the server's check first: the denial is its row.
    let (ok, _, err) = run_cli(
        &home,
        &[
            "push",
            &format!("{uri}-strict/app:1"),
            "--registry",
            "strict",
        ],
        None,
        &env,
    );
    assert!(!ok && err.contains("no pushes today"), "{err}");
    // The allowed check of a dry run waits in memory until the CLI reads.
    let docker = format!("unix://{}/no-engine.sock", dir.path().display());
    let mut dry_env = env.to_vec();
    dry_env.push(("DOCKER_HOST", docker.as_str()));
    let (ok, _, err) = run_cli(
        &home,
        &[
            "push",
            &format!("{uri}/app:1"),
            "--registry",
            "prod",
            "--dry-run",
        ],
        None,
        &dry_env,
    );
    assert!(ok, "{err}");

    let (ok, out, err) = run_cli(&home, &["audit", "--json"], None, &env);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("json");
    let api = get_ok(&server, "/v1/audit", &token);
    assert_eq!(shown, api);
    assert_eq!(
        kinds(&shown),
        pairs(&[
            ("check", "allowed"),
            ("check", "denied"),
            ("component.register", "changed"),
            ("flavor.register", "changed"),
            ("component.register", "changed"),
        ]),
        "{shown:#}"
    );

    // Filters and pages go to the server as parameters.
    let (ok, out, err) = run_cli(
        &home,
        &["audit", "--json", "--verdict", "denied"],
        None,
        &env,
    );
    assert!(ok, "{err}");
    let denied: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(events(&denied), &vec![events(&api)[1].clone()]);
    let (ok, out, err) = run_cli(&home, &["audit", "--limit", "2"], None, &env);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let next = events(&api)[1]["id"].as_i64().unwrap();
    assert!(
        err.contains(&format!("flavorbox audit --limit 2 --before {next}")),
        "{err}"
    );
    let (ok, out, err) = run_cli(
        &home,
        &[
            "audit",
            "--json",
            "--limit",
            "2",
            "--before",
            &next.to_string(),
        ],
        None,
        &env,
    );
    assert!(ok, "{err}");
    let older: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(events(&older), &events(&api)[2..4].to_vec());

    // The server's refusal reaches the user as an error line naming the field.
    for (args, field) in [
        (["audit", "--verdict", "bogus"], "verdict"),
        (["audit", "--since", "yesterday"], "since"),
    ] {
        let (ok, out, err) = run_cli(&home, &args, None, &env);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            err.starts_with("error: ") && err.contains(&format!("`{field}`")),
            "{args:?}: {err}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
