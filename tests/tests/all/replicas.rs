//! Several `flavorbox serve` replicas on one real PostgreSQL server (a
//! private one on loopback, from `flavorbox_testdb`), each with its own home
//! (its compiled-code cache), driven over HTTP: what one replica writes the
//! other reads, a flavor uploaded to one runs on the other, the audit trail
//! is one, a replica with another secrets key refuses to start, `/readyz`
//! follows the database, and `flavorbox migrate` runs the migrations as a
//! step of its own.

use std::path::Path;

use flavorbox_tests::server::{Answer, LoadBalancer, Server, ServerOptions};
use flavorbox_tests::{flavorbox_bin, guest_bytes, run_cli};
use serde_json::{Value, json};

/// A registry the egress policy lets through; checks never contact it.
const REGISTRY: &str = "127.0.0.1:5999";

/// What the uploaded flavor answers every push with.
const DENIAL: &str = "denied by the flavor uploaded to the other replica";

/// Options of a replica on the database at `url`.
fn on(url: &str) -> ServerOptions {
    ServerOptions {
        allow: vec![REGISTRY.into()],
        args: vec!["--database".into(), url.into()],
        ..ServerOptions::default()
    }
}

/// Starts replica `name` with its own home in `dir`, the secrets key and
/// admin token the others have.
fn replica(dir: &Path, name: &str, url: &str) -> Server {
    replica_with(dir, name, url, None)
}

/// [`replica`] with a server config file of `config`.
fn replica_with(dir: &Path, name: &str, url: &str, config: Option<&str>) -> Server {
    let mut options = on(url);
    options.config = config.map(str::to_string);
    options.env.push(("FLAVORBOX_REPLICA".into(), name.into()));
    Server::start_with(dir, dir.join(name), admin(), &options)
        .unwrap_or_else(|e| panic!("replica {name}: {e:#}"))
}

fn admin() -> String {
    format!("admin-{}", "x".repeat(40))
}

/// Uploads the hostile test flavor as `hostile` for the tenant of `token`.
fn upload_hostile(server: &Server, token: &str) {
    let upload = server
        .request(
            "PUT",
            "/v1/flavors/hostile",
            Some(token),
            Some(("application/wasm", &guest_bytes("guest-hostile"))),
        )
        .unwrap();
    assert_eq!(upload.status, 201, "{}", upload.text);
}

fn check(server: &Server, token: &str, registry: &str, image: &str) -> Answer {
    server
        .json(
            "POST",
            &format!("/v1/registries/{registry}/check"),
            Some(token),
            &json!({ "image": image }),
        )
        .unwrap()
}

fn audit(server: &Server, token: &str) -> Vec<Value> {
    let answer = server.get("/v1/audit", Some(token)).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn replicas_on_one_database_share_tenants_flavors_components_and_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let a = replica(dir.path(), "replica-a", &url);
    let b = replica(dir.path(), "replica-b", &url);

    // A tenant made on one replica authenticates on the other.
    let acme = a.tenant("acme").unwrap();
    let globex = b.tenant("globex").unwrap();
    assert_eq!(b.get("/v1/flavors", Some(&acme)).unwrap().status, 200);

    // A flavor uploaded to A runs on B, which never saw the upload.
    upload_hostile(&a, &acme);
    let listed = b.get("/v1/flavors", Some(&acme)).unwrap();
    assert!(listed.text.contains("hostile"), "{}", listed.text);
    let put = b
        .json(
            "PUT",
            "/v1/registries/prod",
            Some(&acme),
            &json!({"flavor": "hostile", "uri": format!("{REGISTRY}/acme"), "config": {"mode": "ok", "deny": DENIAL}}),
        )
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text);
    // The component written on B is read on A.
    let got = a.get("/v1/registries/prod", Some(&acme)).unwrap();
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["flavor"], "hostile");

    // The flavor's own answer, given on B.
    let denied = check(&b, &acme, "prod", &format!("{REGISTRY}/acme/app:1"));
    assert_eq!(denied.status, 200, "{}", denied.text);
    assert_eq!(denied.body["allowed"], false, "{}", denied.text);
    assert_eq!(denied.body["reason"], DENIAL, "{}", denied.text);
    let outside = check(&a, &acme, "prod", &format!("{REGISTRY}/acmeevil/app:1"));
    assert_eq!(outside.status, 422, "{}", outside.text);

    // A name taken on one replica is taken on the other.
    let again = a
        .json(
            "POST",
            "/v1/tenants",
            Some(&admin()),
            &json!({ "name": "acme" }),
        )
        .unwrap();
    assert_eq!(again.status, 409, "{}", again.text);

    // One audit trail: the decisions and changes either replica served,
    // read alike on both, each row naming the replica that served it.
    let on_a = audit(&a, &acme);
    let on_b = audit(&b, &acme);
    assert_eq!(on_a, on_b);
    let replicas: std::collections::BTreeSet<&str> =
        on_a.iter().filter_map(|e| e["replica"].as_str()).collect();
    assert_eq!(
        replicas,
        ["replica-a", "replica-b"].into_iter().collect(),
        "{on_a:#?}"
    );
    assert!(
        on_a.iter().any(|e| e["action"] == "check"
            && e["verdict"] == "denied"
            && e["replica"] == "replica-b"),
        "{on_a:#?}"
    );
    // And never another tenant's.
    assert!(audit(&a, &globex).is_empty());
    assert!(audit(&b, &globex).is_empty());

    // The flavor deleted on B is gone on A, and its blob with it.
    let delete = b
        .request("DELETE", "/v1/registries/prod", Some(&acme), None)
        .unwrap();
    assert_eq!(delete.status, 204, "{}", delete.text);
    let delete = b
        .request("DELETE", "/v1/flavors/hostile", Some(&acme), None)
        .unwrap();
    assert_eq!(delete.status, 204, "{}", delete.text);
    assert_eq!(
        a.get("/v1/flavors/hostile", Some(&acme)).unwrap().status,
        404
    );
    let database = url.rsplit('/').next().unwrap();
    let blobs = flavorbox_testdb::postgres()
        .psql(database, "SELECT count(*) FROM blobs")
        .unwrap();
    assert_eq!(blobs, "0");
}

#[test]
fn a_replica_with_another_secrets_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let a = replica(dir.path(), "replica-a", &url);
    let acme = a.tenant("acme").unwrap();
    let secret = a
        .json(
            "PUT",
            "/v1/secrets/reg",
            Some(&acme),
            &json!({"username": "u", "password": "p4ssw0rd"}),
        )
        .unwrap();
    assert_eq!(secret.status, 201, "{}", secret.text);

    // Another directory: another secrets.key.
    let other = tempfile::tempdir().unwrap();
    let refused = Server::start_with(other.path(), other.path().join("home"), admin(), &on(&url));
    let message = format!("{:#}", refused.err().expect("the replica refuses to start"));
    assert!(message.contains("key"), "{message}");
    // The database still serves the replica with the right key.
    assert_eq!(a.get("/v1/secrets", Some(&acme)).unwrap().status, 200);
}

#[test]
fn readyz_follows_the_shared_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let a = replica(dir.path(), "replica-a", &url);
    assert_eq!(a.get("/readyz", None).unwrap().status, 200);
    let pg = flavorbox_testdb::postgres();
    let database = url.rsplit('/').next().unwrap();
    // The database refuses connections and drops the ones it has.
    pg.psql(
        "postgres",
        &format!(
            "ALTER DATABASE {database} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        ),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut status = 0;
    while std::time::Instant::now() < deadline {
        status = a.get("/readyz", None).unwrap().status;
        if status == 503 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 503, "readyz without the database");
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        status = a.get("/readyz", None).unwrap().status;
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 200, "readyz once the database is back");
}

#[test]
fn migrate_applies_the_schema_once_and_says_so() {
    let url = flavorbox_testdb::postgres().fresh_database();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(flavorbox_bin())
            .args(args)
            .env_remove("FLAVORBOX_DATABASE_URL")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["migrate", "--database", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("applied migration(s) 1, 2"), "{out}");
    let (ok, out, err) = run(&["migrate", "--database", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("up to date"), "{out}");

    let (ok, _, err) = run(&["migrate", "--database", "mysql://u:hunter2@h/db"]);
    assert!(!ok);
    assert!(err.contains("not a PostgreSQL URL"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password is never shown: {err}"
    );

    // A server that cannot reach its database says which, without the password.
    let dead = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/nothing",
        flavorbox_tests::services::dead_registry()
            .rsplit(':')
            .next()
            .unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let refused = Server::start_with(dir.path(), dir.path().join("home"), admin(), &on(&dead));
    let message = format!("{:#}", refused.err().expect("no database, no server"));
    assert!(
        message.contains("cannot connect to the database"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn restarting_a_replica_interrupts_its_own_jobs_and_no_other_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let mut a = replica(dir.path(), "replica-a", &url);
    let b = replica(dir.path(), "replica-b", &url);
    let acme = a.tenant("acme").unwrap();
    let database = url.rsplit('/').next().unwrap();
    let pg = flavorbox_testdb::postgres();
    // A job each replica is running (as its push handler records them).
    for (id, owner) in [("job-of-a", "replica-a"), ("job-of-b", "replica-b")] {
        pg.psql(
            database,
            &format!(
                "INSERT INTO jobs (tenant, id, component, image, status, detail_json, created_at, \
                 updated_at, owner, lease_until) VALUES ('acme', '{id}', 'prod', \
                 '{REGISTRY}/acme/app:1', 'running', '{{}}', '2026-01-01T00:00:00.000Z', \
                 '2026-01-01T00:00:00.000Z', '{owner}', '2999-01-01T00:00:00.000Z')"
            ),
        )
        .unwrap();
    }
    let status = |server: &Server, id: &str| {
        let answer = server.get(&format!("/v1/jobs/{id}"), Some(&acme)).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["status"].as_str().unwrap().to_string()
    };
    a.stop().unwrap();
    let a = replica(dir.path(), "replica-a", &url);
    assert_eq!(status(&a, "job-of-a"), "interrupted");
    assert_eq!(status(&a, "job-of-b"), "running");
    assert_eq!(status(&b, "job-of-b"), "running");
}

/// Checks on `reader` (which keeps the token, component and flavor in its
/// cache), changes made on `writer`: each change takes effect on the
/// reader's next request, at once when they are one server, within the time
/// a notification takes when they are two replicas (well inside the TTL).
fn changes_take_effect_on_the_next_request(writer: &Server, reader: &Server, same: bool) {
    let acme = writer.tenant("acme").unwrap();
    let put = |deny: &str| {
        let answer = if deny != "second" {
            writer.json(
                "PUT",
                "/v1/registries/prod",
                Some(&acme),
                &json!({"flavor": "hostile", "uri": format!("{REGISTRY}/acme"), "config": {"mode": "ok", "deny": deny}}),
            )
        } else {
            writer.json(
                "PATCH",
                "/v1/registries/prod",
                Some(&acme),
                &json!({"config": {"deny": deny}}),
            )
        }
        .unwrap();
        assert!(
            answer.status == 200 || answer.status == 201,
            "{}",
            answer.text
        );
    };
    upload_hostile(writer, &acme);
    put("first");
    let image = format!("{REGISTRY}/acme/app:1");
    for _ in 0..3 {
        let answer = check(reader, &acme, "prod", &image);
        assert_eq!(answer.body["reason"], "first", "{}", answer.text);
    }
    // Waits for `done` on the reader: at once for one server.
    let next = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now()
            + if same {
                std::time::Duration::ZERO
            } else {
                flavorbox_store::CACHE_TTL / 2
            };
        loop {
            if done() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what} not seen");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    put("second");
    next("an updated component", &|| {
        check(reader, &acme, "prod", &image).body["reason"] == "second"
    });
    let delete = writer
        .request("DELETE", "/v1/registries/prod", Some(&acme), None)
        .unwrap();
    assert_eq!(delete.status, 204, "{}", delete.text);
    next("a deleted component", &|| {
        check(reader, &acme, "prod", &image).status == 404
    });
    let delete = writer
        .request("DELETE", "/v1/flavors/hostile", Some(&acme), None)
        .unwrap();
    assert_eq!(delete.status, 204, "{}", delete.text);
    let missing = writer
        .json(
            "PUT",
            "/v1/registries/prod",
            Some(&acme),
            &json!({"flavor": "hostile", "uri": format!("{REGISTRY}/acme"), "config": {}}),
        )
        .unwrap();
    assert_eq!(missing.status, 404, "{}", missing.text);
    // The flavor registered again, a component on it: the reader, which
    // last saw the flavor and the component gone, decides with them.
    upload_hostile(writer, &acme);
    put("third");
    next("a flavor registered again", &|| {
        check(reader, &acme, "prod", &image).body["reason"] == "third"
    });
    let revoke = writer
        .request("DELETE", "/v1/tenants/acme", Some(&admin()), None)
        .unwrap();
    assert_eq!(revoke.status, 204, "{}", revoke.text);
    next("a revoked token", &|| {
        reader.get("/v1/flavors", Some(&acme)).unwrap().status == 401
    });
}

#[test]
fn cache_invalidation_takes_effect_on_the_next_request_on_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec![REGISTRY.into()],
            ..ServerOptions::default()
        },
    )
    .unwrap();
    changes_take_effect_on_the_next_request(&server, &server, true);
}

#[test]
fn cache_invalidation_reaches_the_other_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let a = replica(dir.path(), "replica-a", &url);
    let b = replica(dir.path(), "replica-b", &url);
    changes_take_effect_on_the_next_request(&a, &b, false);
}

#[test]
fn the_cli_works_through_a_load_balancer_in_front_of_three_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let replicas: Vec<Server> = ["replica-1", "replica-2", "replica-3"]
        .iter()
        .map(|name| replica(dir.path(), name, &url))
        .collect();
    let urls: Vec<&str> = replicas.iter().map(|r| r.url.as_str()).collect();
    let balancer = LoadBalancer::start(dir.path(), &urls).expect("haproxy");
    let token = replicas[0].tenant("acme").unwrap();
    let home = dir.path().join("cli");
    let cli = |args: &[&str], stdin: Option<&str>| {
        let (ok, out, err) = run_cli(&home, args, stdin, &[]);
        assert!(ok, "flavorbox {args:?}: {err}");
        out
    };
    cli(&["login", &balancer.url, "--token-stdin"], Some(&token));
    let hostile = flavorbox_tests::guest_path("guest-hostile");
    cli(&["flavor", "register", hostile.to_str().unwrap()], None);
    cli(
        &[
            "registry",
            "register",
            "prod",
            "--flavor",
            "hostile",
            "--uri",
            &format!("{REGISTRY}/acme"),
            "--config",
            "deny=closed for the audit",
        ],
        None,
    );
    // Round robin: consecutive commands land on different replicas, and
    // every one sees what the others wrote.
    for _ in 0..6 {
        assert!(cli(&["flavor", "list"], None).contains("hostile"));
        assert!(cli(&["registry", "list"], None).contains("prod"));
    }
    let trail = cli(&["audit", "--json"], None);
    let trail: Value = serde_json::from_str(&trail).unwrap();
    let rows = trail["events"].as_array().cloned().unwrap_or_default();
    assert!(rows.len() >= 2, "{trail:#}");
    // Every replica answered some of those requests.
    let served: std::collections::BTreeSet<String> = replicas
        .iter()
        .map(|r| {
            let metrics = r.get("/metrics", None).unwrap().text;
            metrics
                .lines()
                .filter(|l| l.starts_with("flavorbox_http_requests_total") && l.contains("/v1/"))
                .map(|_| r.url.clone())
                .next()
                .unwrap_or_default()
        })
        .filter(|u| !u.is_empty())
        .collect();
    assert_eq!(served.len(), 3, "round robin reached every replica");
}

#[test]
fn a_tenants_cpu_budget_spent_on_one_replica_is_spent_on_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let config = "[quotas]\ntimeout_ms = 300\ncpu_ms_per_minute = 500\n";
    let a = replica_with(dir.path(), "replica-a", &url, Some(config));
    let b = replica_with(dir.path(), "replica-b", &url, Some(config));
    let evil = a.tenant("evil").unwrap();
    upload_hostile(&a, &evil);
    let burn = |server: &Server| {
        server
            .json(
                "PUT",
                "/v1/registries/x",
                Some(&evil),
                &json!({"flavor": "hostile", "uri": format!("{REGISTRY}/evil"), "config": {"mode": "loop"}}),
            )
            .unwrap()
    };
    // Endless loops on A until A refuses: its budget is spent there.
    let mut refused = None;
    for _ in 0..20 {
        let answer = burn(&a);
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.status, 422, "{}", answer.text);
    }
    let refused = refused.expect("A refuses once the budget is spent");
    assert!(refused.text.contains("CPU time"), "{}", refused.text);
    // B spent nothing itself; within a few exchanges it knows what A spent,
    // and refuses the same tenant before running anything.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let on_b = burn(&b);
    assert_eq!(on_b.status, 429, "{}", on_b.text);
    assert!(on_b.text.contains("CPU time"), "{}", on_b.text);
    // Another tenant on B is not held by it.
    let good = b.tenant("good").unwrap();
    let put = b
        .json(
            "PUT",
            "/v1/registries/r",
            Some(&good),
            &json!({"flavor": "default", "uri": format!("{REGISTRY}/good")}),
        )
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text);
}

/// Two or more replicas sharing uploads through a real S3 server (moto),
/// with a 3 s job lease, in front of a registry reached through a proxy
/// that takes uploads slowly: a push is still running seconds after it
/// was accepted.
struct TakeoverCluster {
    dir: tempfile::TempDir,
    url: String,
    bucket: String,
    /// `127.0.0.1:PORT` of the slow proxy in front of the open registry.
    registry: String,
}

impl TakeoverCluster {
    fn new() -> TakeoverCluster {
        let s3 = flavorbox_tests::cluster::s3();
        let proxy = flavorbox_tests::cluster::SlowProxy::start(
            &flavorbox_tests::services::services().open_registry,
            256 << 10,
        );
        TakeoverCluster {
            dir: tempfile::tempdir().unwrap(),
            url: flavorbox_testdb::postgres().fresh_database(),
            bucket: s3.fresh_bucket(),
            registry: proxy.addr.to_string(),
        }
    }

    fn replica(&self, name: &str) -> Server {
        let mut options = on(&self.url);
        options.allow = vec![self.registry.clone()];
        options.config = Some(format!(
            "job_lease_secs = 3\nuploads_store = \"s3://{}/cluster\"\n",
            self.bucket
        ));
        options.env.extend(flavorbox_tests::cluster::s3().env());
        options.env.push(("FLAVORBOX_REPLICA".into(), name.into()));
        Server::start_with(
            self.dir.path(),
            self.dir.path().join(name),
            admin(),
            &options,
        )
        .unwrap_or_else(|e| panic!("replica {name}: {e:#}"))
    }

    /// A tenant with a registry component `prod` on `server` whose flavor
    /// allows every push; its token.
    fn tenant(&self, server: &Server, tenant: &str) -> String {
        let token = server.tenant(tenant).unwrap();
        upload_hostile(server, &token);
        let put = server
            .json(
                "PUT",
                "/v1/registries/prod",
                Some(&token),
                &json!({"flavor": "hostile", "uri": format!("{}/{tenant}", self.registry), "config": {"mode": "ok"}}),
            )
            .unwrap();
        assert_eq!(put.status, 201, "{}", put.text);
        token
    }

    /// Pushes a 3 MiB image as `image` through `server`; the job's id.
    fn push(&self, server: &Server, token: &str, image: &str) -> String {
        let spec = flavorbox_tests::images::ImageSpec {
            layer_bytes: 3 << 20,
            ..Default::default()
        };
        let tarball = flavorbox_tests::images::save_tarball(image, &spec).unwrap();
        let answer = server
            .request(
                "POST",
                &format!("/v1/registries/prod/push?image={image}"),
                Some(token),
                Some(("application/x-tar", &tarball)),
            )
            .unwrap();
        assert_eq!(answer.status, 202, "{}", answer.text);
        answer.body["id"].as_str().unwrap().to_string()
    }
}

/// Job `id` as `server` reports it.
fn job(server: &Server, token: &str, id: &str) -> Value {
    let answer = server.get(&format!("/v1/jobs/{id}"), Some(token)).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

/// Waits until job `id` has pushed some of its layer.
fn wait_pushing(server: &Server, token: &str, id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let job = job(server, token, id);
        let pushing = job["progress"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p.to_string().contains("Pushing")));
        if job["status"] == "running" && pushing {
            return;
        }
        assert!(
            job["status"] == "queued" || job["status"] == "running",
            "the job ended before the test could stop its replica: {job}"
        );
        assert!(std::time::Instant::now() < deadline, "never pushing: {job}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits until the S3 bucket holds no upload (they go when their job ends).
fn wait_no_uploads(bucket: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let keys = flavorbox_tests::cluster::s3().keys(bucket);
        if keys.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "uploads left behind: {keys:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_replica_killed_mid_push_has_its_job_finished_by_another_with_the_registrys_digest() {
    let cluster = TakeoverCluster::new();
    let mut a = cluster.replica("replica-a");
    let b = cluster.replica("replica-b");
    let token = cluster.tenant(&a, "acme");
    let image = format!("{}/acme/app:1", cluster.registry);
    let id = cluster.push(&a, &token, &image);
    assert_eq!(
        flavorbox_tests::cluster::s3().keys(&cluster.bucket).len(),
        1,
        "the upload is shared before the push is answered"
    );
    wait_pushing(&b, &token, &id);
    a.kill();

    let ended =
        flavorbox_tests::hostile::wait_job(&b, &token, &id, std::time::Duration::from_secs(120));
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["attempt"], 2, "taken over once: {ended}");
    let digest = flavorbox_tests::services::registry_manifest_digest(
        &flavorbox_tests::services::services().open_registry,
        "acme/app",
        "1",
        None,
    )
    .unwrap();
    assert_eq!(ended["digest"], digest.as_str(), "{ended}");
    // Nothing stays stored: the upload is gone from the bucket once the
    // job ended.
    wait_no_uploads(&cluster.bucket);
}

#[test]
fn a_replica_paused_past_its_lease_writes_nothing_when_it_resumes() {
    let cluster = TakeoverCluster::new();
    let mut a = cluster.replica("replica-a");
    let b = cluster.replica("replica-b");
    let token = cluster.tenant(&a, "acme");
    let image = format!("{}/acme/app:2", cluster.registry);
    let id = cluster.push(&a, &token, &image);
    wait_pushing(&b, &token, &id);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(a.pid() as i32, libc::SIGSTOP) };
    let ended =
        flavorbox_tests::hostile::wait_job(&b, &token, &id, std::time::Duration::from_secs(120));
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["attempt"], 2, "{ended}");
    let registry = &flavorbox_tests::services::services().open_registry;
    let digest =
        flavorbox_tests::services::registry_manifest_digest(registry, "acme/app", "2", None)
            .unwrap();
    assert_eq!(ended["digest"], digest.as_str());

    // SAFETY: as above.
    unsafe { libc::kill(a.pid() as i32, libc::SIGCONT) };
    // Long enough for A's push to reach its next write (every 500 ms of
    // progress) and its lease renewal (every second).
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(
        job(&b, &token, &id),
        ended,
        "the paused replica wrote to the job"
    );
    assert_eq!(
        flavorbox_tests::services::registry_manifest_digest(registry, "acme/app", "2", None)
            .unwrap(),
        digest,
        "the tag stayed where the job's new owner put it"
    );
    assert_eq!(a.get("/healthz", None).unwrap().status, 200, "A lives on");
    let (_, log) = a.stop().unwrap();
    assert!(
        log.contains("no longer owns"),
        "A says it stopped the push it lost: {log}"
    );
    wait_no_uploads(&cluster.bucket);
}

#[test]
fn registrations_racing_across_replicas_never_exceed_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let config = "[quotas]\nmax_registries = 3\n";
    let a = replica_with(dir.path(), "replica-a", &url, Some(config));
    let b = replica_with(dir.path(), "replica-b", &url, Some(config));
    let acme = a.tenant("acme").unwrap();
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..12)
            .map(|i| {
                let (server, acme) = (if i % 2 == 0 { &a } else { &b }, &acme);
                s.spawn(move || {
                    server
                        .json(
                            "PUT",
                            &format!("/v1/registries/r{i}"),
                            Some(acme),
                            &json!({"flavor": "default", "uri": format!("{REGISTRY}/acme/r{i}")}),
                        )
                        .unwrap()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let created = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(created, 3, "{answers:#?}");
    for refused in answers.iter().filter(|a| a.status != 201) {
        assert_eq!(refused.status, 429, "{}", refused.text);
        assert_eq!(
            refused.body["error"]["code"], "quota_exceeded",
            "{}",
            refused.text
        );
    }
    for server in [&a, &b] {
        let listed = server.get("/v1/registries", Some(&acme)).unwrap();
        assert_eq!(listed.status, 200, "{}", listed.text);
        let count = listed.body.as_array().map_or_else(
            || listed.body["registries"].as_array().map_or(0, Vec::len),
            Vec::len,
        );
        assert_eq!(count, 3, "{}", listed.text);
    }
}

#[test]
fn deletes_and_registrations_racing_across_replicas_leave_every_flavor_with_its_blob() {
    let dir = tempfile::tempdir().unwrap();
    let url = flavorbox_testdb::postgres().fresh_database();
    let a = replica(dir.path(), "replica-a", &url);
    let b = replica(dir.path(), "replica-b", &url);
    let acme = a.tenant("acme").unwrap();
    let globex = a.tenant("globex").unwrap();
    let wasm = guest_bytes("guest-hostile");
    let database = url.rsplit('/').next().unwrap();
    let blobs = || {
        flavorbox_testdb::postgres()
            .psql(database, "SELECT count(*) FROM blobs")
            .unwrap()
    };
    let register = |server: &Server, token: &str| {
        server
            .request(
                "PUT",
                "/v1/flavors/hostile",
                Some(token),
                Some(("application/wasm", &wasm)),
            )
            .unwrap()
    };
    let delete = |server: &Server, token: &str| {
        server
            .request("DELETE", "/v1/flavors/hostile", Some(token), None)
            .unwrap()
    };
    for round in 0..50 {
        // acme holds the blob; globex registers the same content on B while
        // acme deletes its flavor (and the blob, if unused) on A.
        assert_eq!(register(&a, &acme).status, 201, "round {round}");
        let (deleted, registered) = std::thread::scope(|s| {
            let deleting = s.spawn(|| delete(&a, &acme));
            let registering = s.spawn(|| register(&b, &globex));
            (deleting.join().unwrap(), registering.join().unwrap())
        });
        assert_eq!(deleted.status, 204, "round {round}: {}", deleted.text);
        assert_eq!(registered.status, 201, "round {round}: {}", registered.text);
        assert_eq!(blobs(), "1", "round {round}: globex's flavor kept its blob");
        let got = a.get("/v1/flavors/hostile", Some(&globex)).unwrap();
        assert_eq!(got.status, 200, "round {round}: {}", got.text);
        assert_eq!(delete(&b, &globex).status, 204, "round {round}");
    }
    assert_eq!(blobs(), "0", "the last delete collected the blob");
    // And the content still runs when registered again, on either replica.
    upload_hostile(&b, &globex);
    let put = a
        .json(
            "PUT",
            "/v1/registries/prod",
            Some(&globex),
            &json!({"flavor": "hostile", "uri": format!("{REGISTRY}/globex"), "config": {"mode": "ok", "deny": DENIAL}}),
        )
        .unwrap();
    assert_eq!(put.status, 201, "{}", put.text);
    let denied = check(&a, &globex, "prod", &format!("{REGISTRY}/globex/app:1"));
    assert_eq!(denied.body["reason"], DENIAL, "{}", denied.text);
}
