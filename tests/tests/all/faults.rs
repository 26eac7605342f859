//! Faults end to end: the real `flavorbox` binary killed with SIGKILL at
//! random points of its writes (CLI and server), a disk that fills up, a
//! read-only home, a database removed under a running server, clients that
//! stall at SIGTERM, processes racing on one home, damaged files. After
//! each fault the state is checked for what matters: every acknowledged
//! write is there, SQLite's integrity check passes, nothing is left behind
//! (temporary files, orphan blobs, uploads, unfinished jobs), and the next
//! command works.
//!
//! Trial counts come from `FLAVORBOX_FAULT_TRIALS` (small by default; see
//! `docs/faults.md` for the long run) and kill points from a seeded
//! generator whose seed is printed. The mounts need root, as in CI.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use flavorbox_tests::faults::{
    Expected, Mount, NO_KILL, Outcome, Rng, StalledEngine, assert_integrity, assert_no_litter,
    cli_json, cli_killed_after, cli_ok, cli_state, files, names, sha256_file, sql, trials,
};
use flavorbox_tests::server::{Answer, Server, ServerOptions};
use flavorbox_tests::{guest_bytes, guest_path, run_cli};
use serde_json::{Value, json};

/// The test flavor: `guest-hostile` names itself `hostile` and accepts an
/// empty config.
const FLAVOR: &str = "hostile";
/// A loopback registry the servers allow (nothing listens: no test pushes to it).
const REGISTRY: &str = "127.0.0.1:5993";

fn flavor_file() -> String {
    guest_path("guest-hostile").display().to_string()
}

fn admin_token() -> String {
    format!("admin-{}", "x".repeat(40))
}

fn put_flavor(server: &Server, token: &str, bytes: &[u8]) -> Result<Answer, anyhow::Error> {
    server.request(
        "PUT",
        &format!("/v1/flavors/{FLAVOR}"),
        Some(token),
        Some(("application/wasm", bytes)),
    )
}

fn put_secret(server: &Server, token: &str, name: &str, password: &str) -> Answer {
    server
        .json(
            "PUT",
            &format!("/v1/secrets/{name}"),
            Some(token),
            &json!({"username": "u", "password": password}),
        )
        .unwrap_or_else(|e| panic!("PUT secret {name}: {e}"))
}

fn put_registry(server: &Server, token: &str, name: &str) {
    let answer = server
        .json(
            "PUT",
            &format!("/v1/registries/{name}"),
            Some(token),
            &json!({"flavor": "default", "uri": format!("{REGISTRY}/team")}),
        )
        .expect("PUT registry");
    assert_eq!(answer.status, 201, "{}", answer.text);
}

/// The path that pushes an image under [`REGISTRY`] through `component`.
fn push_path(component: &str) -> String {
    let image = format!("{REGISTRY}/team/app:1")
        .replace(':', "%3A")
        .replace('/', "%2F");
    format!("/v1/registries/{component}/push?image={image}")
}

/// Names in a tenant's list (`/v1/flavors`, `/v1/secrets`, ...).
fn listed(server: &Server, token: &str, path: &str) -> BTreeSet<String> {
    let answer = server.get(path, Some(token)).expect("GET list");
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
    names(&answer.body)
}

/// One CLI write of the kill trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CliWrite {
    RegisterFlavor,
    DeleteFlavor,
    CreateSecret,
    RegisterRegistry,
    DeleteRegistry,
}

impl CliWrite {
    const ALL: [CliWrite; 5] = [
        CliWrite::RegisterFlavor,
        CliWrite::RegisterRegistry,
        CliWrite::CreateSecret,
        CliWrite::DeleteRegistry,
        CliWrite::DeleteFlavor,
    ];

    /// Arguments and stdin of this write of `name`.
    fn command(self, name: &str) -> (Vec<String>, Option<&'static str>) {
        let file = flavor_file();
        let uri = "localhost:5000/team";
        let (args, stdin): (Vec<&str>, _) = match self {
            CliWrite::RegisterFlavor => (vec!["flavor", "register", &file], None),
            CliWrite::DeleteFlavor => (vec!["flavor", "delete", name], None),
            CliWrite::CreateSecret => (
                vec![
                    "secret",
                    "create",
                    name,
                    "--username",
                    "u",
                    "--password-stdin",
                ],
                Some("pw\n"),
            ),
            CliWrite::RegisterRegistry => (
                vec![
                    "registry", "register", name, "--flavor", "default", "--uri", uri,
                ],
                None,
            ),
            CliWrite::DeleteRegistry => (vec!["registry", "delete", name], None),
        };
        (args.into_iter().map(String::from).collect(), stdin)
    }

    /// Which list of [`cli_state`] it changes, and whether the name is there after it.
    fn effect(self) -> (usize, bool) {
        match self {
            CliWrite::RegisterFlavor => (0, true),
            CliWrite::DeleteFlavor => (0, false),
            CliWrite::CreateSecret => (1, true),
            CliWrite::RegisterRegistry => (2, true),
            CliWrite::DeleteRegistry => (2, false),
        }
    }
}

/// Asserts that the flavor in `home` loads and runs: a registry component
/// whose config it validates is registered, then deleted again.
fn assert_flavor_loads(home: &Path) {
    let uri = "localhost:5000/t";
    cli_ok(
        home,
        &[
            "registry",
            "register",
            "uses-flavor",
            "--flavor",
            FLAVOR,
            "--uri",
            uri,
        ],
    );
    cli_ok(home, &["registry", "delete", "uses-flavor"]);
}

/// Runs a CLI write to its end; it must succeed. Returns how long it took.
fn cli_write(home: &Path, write: CliWrite, name: &str) -> Duration {
    let (args, stdin) = write.command(name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    match cli_killed_after(home, &args, stdin, NO_KILL) {
        Outcome::Acknowledged => start.elapsed(),
        other => panic!("`flavorbox {}`: {other:?}", args.join(" ")),
    }
}

#[test]
fn cli_writes_killed_at_random_points_lose_nothing_acknowledged_and_leave_no_litter() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let mut rng = Rng::new("cli kills");

    // Each write once without a kill: it must work, and its duration sets
    // the window its kill points are drawn from (at least 40 ms), so that a
    // kill can land anywhere in it, the write itself included.
    let mut windows = std::collections::BTreeMap::new();
    for write in CliWrite::ALL {
        let name = match write {
            CliWrite::RegisterFlavor | CliWrite::DeleteFlavor => FLAVOR,
            CliWrite::CreateSecret => "setup",
            CliWrite::RegisterRegistry | CliWrite::DeleteRegistry => "r0",
        };
        let took = cli_write(&home, write, name);
        // Capped: a first registration compiles, and on a loaded machine
        // that can take far longer than the write itself ever does again.
        let window = (took * 5 / 4).clamp(Duration::from_millis(40), Duration::from_secs(3));
        windows.insert(write, window);
    }
    eprintln!("kill windows: {windows:?}");

    let mut expected: [Expected; 3] = Default::default();
    let mut state = cli_state(&home);
    for (set, list) in expected.iter_mut().zip(&state) {
        for name in list {
            set.acknowledged(name, true);
        }
    }
    let (mut acknowledged, mut killed) = (0, 0);
    for trial in 0..trials() {
        let (write, name) = match rng.below(3) {
            0 if state[0].contains(FLAVOR) => (CliWrite::DeleteFlavor, FLAVOR.to_string()),
            0 => (CliWrite::RegisterFlavor, FLAVOR.to_string()),
            1 => (CliWrite::CreateSecret, format!("s{trial}")),
            _ => {
                let name = format!("r{}", rng.below(2));
                if state[2].contains(&name) {
                    (CliWrite::DeleteRegistry, name)
                } else {
                    (CliWrite::RegisterRegistry, name)
                }
            }
        };
        let (args, stdin) = write.command(&name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let kill_at = rng.between(Duration::ZERO, windows[&write]);
        let context = format!(
            "trial {trial}: `flavorbox {}` killed at {kill_at:?}",
            args.join(" ")
        );
        let (set, present) = write.effect();
        match cli_killed_after(&home, &args, stdin, kill_at) {
            Outcome::Acknowledged => {
                acknowledged += 1;
                expected[set].acknowledged(&name, present);
            }
            Outcome::Killed => {
                killed += 1;
                expected[set].in_flight(&name);
            }
            Outcome::Failed { code, stderr } => {
                panic!("{context}: failed on its own ({code:?}):\n{stderr}")
            }
        }

        // The next command works (and sweeps at open); nothing acknowledged is lost.
        let sweep = SystemTime::now();
        state = cli_state(&home);
        for ((set, list), what) in
            expected
                .iter_mut()
                .zip(&state)
                .zip(["flavor", "secret", "registry component"])
        {
            set.check(what, list, &context);
        }
        assert_integrity(&home);
        assert_no_litter(&home, sweep);
    }
    eprintln!("{acknowledged} writes acknowledged, {killed} killed");
}

/// What one writer thread of a server kill trial saw.
#[derive(Debug, Default)]
struct Writes {
    /// Names (or job ids) whose write was answered 2xx.
    acknowledged: Vec<String>,
    /// The name whose write got no answer (the server died under it).
    in_flight: Option<String>,
    /// A quota's refusal (429) that ended the writer: nothing was stored.
    refused: Option<String>,
    /// Answers that are neither 2xx, a quota's 429 nor the kill: each is a failure.
    wrong: Vec<String>,
}

impl Writes {
    /// Records one request; whether the writer goes on.
    fn record(
        &mut self,
        name: String,
        answer: anyhow::Result<Answer>,
        killing: &AtomicBool,
    ) -> bool {
        match answer {
            Ok(a) if (200..300).contains(&a.status) => {
                self.acknowledged.push(name);
                true
            }
            Ok(a) if a.status == 429 && a.body["error"]["code"] == "quota_exceeded" => {
                self.refused = Some(format!("{name}: {}", a.text));
                false
            }
            Ok(a) => {
                self.wrong.push(format!("{name}: {} {}", a.status, a.text));
                false
            }
            Err(e) => {
                if !killing.load(Ordering::SeqCst) {
                    self.wrong
                        .push(format!("{name}: no answer before the kill: {e}"));
                }
                self.in_flight = Some(name);
                false
            }
        }
    }
}

#[test]
fn a_server_killed_during_writes_and_uploads_keeps_every_acknowledged_write_and_no_job_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    // During a trial a push job waits on the engine until the kill; at a
    // start the engine is down, so the start does not wait for it.
    let engine = StalledEngine::start();
    let options = ServerOptions {
        allow: vec![REGISTRY.into()],
        // One push job at a time, and quotas out of the way of hundreds of
        // writes (a quota that still bites ends that writer: a 429 stores nothing).
        config: Some(
            "max_running_jobs = 1\n[quotas]\nmax_jobs = 100000\nmax_secrets = 100000\n\
             max_secret_kib = 1000000\nmax_uploads_in_flight = 100000\n\
             max_upload_disk_mib = 1000000\n"
                .into(),
        ),
        env: vec![("DOCKER_HOST".into(), engine.host.clone())],
        ..Default::default()
    };
    let mut server = Server::start(dir.path(), &options).expect("server");
    let (home, admin) = (server.home.clone(), server.admin.clone());
    let token = server.tenant("acme").unwrap();
    put_registry(&server, &token, "r");
    let wasm = guest_bytes("guest-hostile");
    // Never read: the job waits for the engine before it opens the upload.
    let tarball = vec![0x5a_u8; 1 << 20];
    let push = push_path("r");
    // A flavor upload is the slowest write (it is compiled and run): the
    // kill points span at least one, timed here with its code cached as in
    // the trials.
    assert_eq!(put_flavor(&server, &token, &wasm).unwrap().status, 201);
    let path = format!("/v1/flavors/{FLAVOR}");
    assert_eq!(
        server
            .request("DELETE", &path, Some(&token), None)
            .unwrap()
            .status,
        204
    );
    let start = Instant::now();
    assert_eq!(put_flavor(&server, &token, &wasm).unwrap().status, 201);
    let window = Duration::from_millis(300).max(start.elapsed() * 3 / 2);
    let mut rng = Rng::new("server kills");
    eprintln!("kill window: {window:?}");
    let mut secrets = Expected::default();
    let mut flavors = Expected::default();
    flavors.acknowledged(FLAVOR, true);
    for trial in 0..trials() {
        let kill_at = rng.between(Duration::from_millis(30), window);
        let killing = AtomicBool::new(false);
        engine.stall(true);
        let flavor_present = flavors.present(FLAVOR).expect("known after the last check");
        let (secret_writes, flavor_writes, jobs, flavor_after) = std::thread::scope(|s| {
            let secret_writes = s.spawn(|| {
                let mut writes = Writes::default();
                for i in 0.. {
                    let name = format!("s{trial}-{i}");
                    let answer = server.json(
                        "PUT",
                        &format!("/v1/secrets/{name}"),
                        Some(&token),
                        &json!({"username": "u", "password": "p"}),
                    );
                    if !writes.record(name, answer, &killing) {
                        break;
                    }
                }
                writes
            });
            // Register and delete the flavor in turn; `present` follows the answers.
            let flavor_writes = s.spawn(|| {
                let mut writes = Writes::default();
                let mut present = flavor_present;
                loop {
                    let (label, answer) = if present {
                        (
                            "delete",
                            server.request("DELETE", &path, Some(&token), None),
                        )
                    } else {
                        ("register", put_flavor(&server, &token, &wasm))
                    };
                    if writes.record(label.into(), answer, &killing) {
                        present = !present;
                        continue;
                    }
                    // Unanswered: either state is right; refused: unchanged.
                    let after = writes.in_flight.is_none().then_some(present);
                    break (writes, after);
                }
            });
            let jobs = s.spawn(|| {
                let mut writes = Writes::default();
                loop {
                    let answer = server.request(
                        "POST",
                        &push,
                        Some(&token),
                        Some(("application/x-tar", &tarball)),
                    );
                    let id = match &answer {
                        Ok(a) if a.status == 202 => {
                            a.body["id"].as_str().unwrap_or_default().to_string()
                        }
                        _ => "push".to_string(),
                    };
                    if !writes.record(id, answer, &killing) {
                        break writes;
                    }
                }
            });
            std::thread::sleep(kill_at);
            killing.store(true, Ordering::SeqCst);
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(server.pid() as i32, libc::SIGKILL) };
            let (flavor_writes, flavor_after) = flavor_writes.join().unwrap();
            (
                secret_writes.join().unwrap(),
                flavor_writes,
                jobs.join().unwrap(),
                flavor_after,
            )
        });
        drop(server);
        engine.stall(false);
        let context = format!("trial {trial}, SIGKILL at {kill_at:?}");
        for writes in [&secret_writes, &flavor_writes, &jobs] {
            assert!(writes.wrong.is_empty(), "{context}: {:?}", writes.wrong);
            if let Some(refusal) = &writes.refused {
                eprintln!("{context}: a writer stopped at a quota: {refusal}");
            }
        }
        for name in &secret_writes.acknowledged {
            secrets.acknowledged(name, true);
        }
        if let Some(name) = &secret_writes.in_flight {
            secrets.in_flight(name);
        }
        match flavor_after {
            Some(present) => flavors.acknowledged(FLAVOR, present),
            None => flavors.in_flight(FLAVOR),
        }
        // What the database says was unfinished at the kill, read before the restart.
        let unfinished: Vec<String> = sql(
            &home,
            "SELECT id FROM jobs WHERE status IN ('queued', 'running')",
        )
        .into_iter()
        .filter_map(|row| row.first().and_then(Value::as_str).map(str::to_string))
        .collect();

        server = Server::start_with(dir.path(), home.clone(), admin.clone(), &options)
            .unwrap_or_else(|e| panic!("{context}: the restart failed: {e:#}"));
        secrets.check("secret", &listed(&server, &token, "/v1/secrets"), &context);
        flavors.check("flavor", &listed(&server, &token, "/v1/flavors"), &context);
        for id in &jobs.acknowledged {
            let job = server.get(&format!("/v1/jobs/{id}"), Some(&token)).unwrap();
            assert_eq!(
                job.status, 200,
                "{context}: accepted job {id}: {}",
                job.text
            );
            let status = job.body["status"].as_str().unwrap_or_default();
            assert!(
                !matches!(status, "queued" | "running"),
                "{context}: job {id} is still {status} after the restart: {}",
                job.text
            );
        }
        for id in &unfinished {
            let job = server.get(&format!("/v1/jobs/{id}"), Some(&token)).unwrap();
            let interrupted = job.body["status"] == "interrupted"
                || (job.body["status"] == "failed" && job.body["error"]["code"] == "interrupted");
            assert!(
                interrupted,
                "{context}: job {id}, unfinished at the kill, is not marked interrupted: {}",
                job.text
            );
        }
        let running = sql(
            &home,
            "SELECT id, status FROM jobs WHERE status IN ('queued', 'running')",
        );
        assert!(
            running.is_empty(),
            "{context}: jobs left unfinished: {running:?}"
        );
        let uploads = files(&home.join("uploads"));
        assert!(
            uploads.is_empty(),
            "{context}: uploads left behind: {uploads:?}"
        );
        assert_integrity(&home);
        eprintln!(
            "{context}: {} secrets, {} flavor writes, {} pushes acknowledged; {} jobs were unfinished",
            secret_writes.acknowledged.len(),
            flavor_writes.acknowledged.len(),
            jobs.acknowledged.len(),
            unfinished.len()
        );
    }
}

/// Writes to `path` until the file system is full; panics on any other error.
fn fill_disk(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler file");
    let mut written = 0u64;
    for chunk in [1 << 20, 4 << 10, 512] {
        let block = vec![0xa5_u8; chunk];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    let _ = file.sync_all();
    written
}

#[test]
fn a_full_disk_refuses_writes_with_507_and_writes_work_again_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    // Room for two homes (the built-ins' compiled code included) and a filler.
    let mount = Mount::tmpfs(&disk, 48);
    let cli_home = disk.join("cli");
    let mut server = Server::start_with(
        dir.path(),
        disk.join("server"),
        admin_token(),
        &ServerOptions::default(),
    )
    .expect("a server with its home on the tmpfs");
    let a = server.tenant("a").unwrap();
    let b = server.tenant("b").unwrap();
    let wasm = guest_bytes("guest-hostile");
    assert_eq!(put_flavor(&server, &a, &wasm).unwrap().status, 201);
    assert_eq!(put_secret(&server, &a, "kept", "p").status, 201);
    cli_write(&cli_home, CliWrite::CreateSecret, "kept");
    cli_write(&cli_home, CliWrite::RegisterRegistry, "kept");
    // New content (another digest) that needs room for its blob and code.
    let variant = flavorbox_bench::distinct_variant(&wasm, 0xfa11);
    let variant_file = dir.path().join("variant.wasm");
    std::fs::write(&variant_file, &variant).unwrap();
    let variant_file = variant_file.display().to_string();
    let snapshot = |server: &Server| {
        ["/v1/flavors", "/v1/secrets"].map(|p| server.get(p, Some(&a)).unwrap().text)
    };
    let before = snapshot(&server);
    let cli_before = cli_state(&cli_home);

    let filler = disk.join("filler");
    let filled = fill_disk(&filler);
    eprintln!("filled the tmpfs with {} MiB", filled >> 20);

    let refused = put_flavor(&server, &b, &variant).unwrap();
    assert_eq!(
        refused.status, 507,
        "flavor upload on a full disk: {}",
        refused.text
    );
    assert_eq!(
        refused.body["error"]["code"], "insufficient_storage",
        "{}",
        refused.text
    );
    // A commit that needs new pages in the write-ahead log (well under
    // the tenant's secret quota).
    let big = "p".repeat(100 << 10);
    let refused = put_secret(&server, &a, "big", &big);
    assert_eq!(
        refused.status, 507,
        "secret on a full disk: {}",
        refused.text
    );
    assert_eq!(
        refused.body["error"]["code"], "insufficient_storage",
        "{}",
        refused.text
    );
    match cli_killed_after(
        &cli_home,
        &["flavor", "register", &variant_file],
        None,
        NO_KILL,
    ) {
        Outcome::Failed { code, stderr } => {
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains("no space left on device")
                    && stderr.contains("free space and retry"),
                "the CLI says what is wrong and what to do: {stderr}"
            );
        }
        other => panic!("a CLI register on a full disk: {other:?}"),
    }
    assert_eq!(
        snapshot(&server),
        before,
        "nothing stored was lost or added"
    );
    assert!(!listed(&server, &b, "/v1/flavors").contains(FLAVOR));

    std::fs::remove_file(&filler).unwrap();
    let answer = put_flavor(&server, &b, &variant).unwrap();
    assert_eq!(
        answer.status, 201,
        "the first write after freeing space: {}",
        answer.text
    );
    for i in 0..20 {
        let answer = put_secret(&server, &a, &format!("k{i}"), "p");
        assert_eq!(
            answer.status, 201,
            "write {i} after freeing space, same server process: {}",
            answer.text
        );
    }
    let answer = put_secret(&server, &a, "big", &big);
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(listed(&server, &a, "/v1/secrets").len(), 22);

    let sweep = SystemTime::now();
    assert_eq!(
        cli_ok(&cli_home, &["flavor", "register", &variant_file]).trim(),
        FLAVOR
    );
    let cli_after = cli_state(&cli_home);
    assert!(cli_after[0].contains(FLAVOR));
    assert_eq!(
        cli_after[1..],
        cli_before[1..],
        "the CLI's state is as it was"
    );
    assert_integrity(&cli_home);
    assert_no_litter(&cli_home, sweep);

    let server_home = server.home.clone();
    server.stop().expect("stop");
    let sweep = SystemTime::now();
    cli_ok(&server_home, &["flavor", "list"]);
    assert_integrity(&server_home);
    assert_no_litter(&server_home, sweep);
    // The server goes before the file system it runs on.
    drop(server);
    drop(mount);
}

#[test]
fn sigterm_with_stalled_clients_exits_within_the_drain_and_leaves_no_upload() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        allow: vec![REGISTRY.into()],
        config: Some("drain_timeout_secs = 2\nheader_timeout_secs = 2\n".into()),
        ..Default::default()
    };
    let mut server = Server::start(dir.path(), &options).expect("server");
    let token = server.tenant("acme").unwrap();
    put_registry(&server, &token, "r");
    let address = server.url.trim_start_matches("http://").to_string();
    let uploads = server.home.join("uploads");

    // One client stops half way through its headers...
    let mut half = TcpStream::connect(&address).unwrap();
    half.write_all(b"GET /v1/flavors HTTP/1.1\r\nHost: flavorbox\r\nAuthoriz")
        .unwrap();
    // ...another announces 10 MB and sends a little of it.
    let mut upload = TcpStream::connect(&address).unwrap();
    let push = push_path("r");
    write!(
        upload,
        "POST {push} HTTP/1.1\r\nHost: flavorbox\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/x-tar\r\n\
         Content-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    upload.write_all(&vec![0u8; 256 << 10]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while files(&uploads).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the stalled upload never reached {}",
            uploads.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let start = Instant::now();
    let (status, log) = server
        .stop()
        .unwrap_or_else(|e| panic!("SIGTERM with two stalled clients: {e:#}"));
    let took = start.elapsed();
    eprintln!("exited {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(30),
        "the server took {took:?} to exit after SIGTERM\n{log}"
    );
    assert!(status.success(), "exit after SIGTERM: {status:?}\n{log}");
    drop((half, upload));
    let left = files(&uploads);
    if !left.is_empty() {
        eprintln!("uploads left at exit, a restart must remove them: {left:?}");
        let mut again = Server::start_with(
            dir.path(),
            server.home.clone(),
            server.admin.clone(),
            &options,
        )
        .expect("restart");
        let left = files(&uploads);
        again.stop().expect("stop");
        assert!(left.is_empty(), "uploads left after a restart: {left:?}");
    }
}

#[test]
fn racing_register_and_delete_never_leave_a_flavor_without_its_blob() {
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let file = flavor_file();
    let failures = Mutex::new(Vec::new());
    let run = |args: &[&str]| {
        let (ok, _, err) = run_cli(&home, args, None, &[]);
        if !ok {
            failures
                .lock()
                .unwrap()
                .push(format!("`flavorbox {}`: {err}", args.join(" ")));
        }
    };
    for epoch in 0..trials() {
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    run(&["flavor", "register", &file]);
                    run(&["flavor", "delete", FLAVOR]);
                }
            });
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    run(&["flavor", "register", &file]);
                }
            });
        });
        let failures = std::mem::take(&mut *failures.lock().unwrap());
        assert!(
            failures.is_empty(),
            "epoch {epoch}: racing commands failed:\n{}",
            failures.join("\n")
        );

        let sweep = SystemTime::now();
        if names(&cli_json(&home, &["flavor", "list"])).contains(FLAVOR) {
            // Listed means usable.
            assert_flavor_loads(&home);
        }
        assert_integrity(&home);
        assert_no_litter(&home, sweep);
    }
}

#[test]
fn a_database_removed_under_a_running_server_stops_writes_and_a_restart_refuses_to_start_empty() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions::default();
    let mut server = Server::start(dir.path(), &options).expect("server");
    let token = server.tenant("acme").unwrap();
    assert_eq!(
        put_flavor(&server, &token, &guest_bytes("guest-hostile"))
            .unwrap()
            .status,
        201
    );
    assert_eq!(put_secret(&server, &token, "s", "p").status, 201);
    let home = server.home.clone();
    let blob_dir = home.join("blobs").join("sha256");
    let blobs = files(&blob_dir);
    assert!(!blobs.is_empty(), "the flavor's blob is stored");

    for suffix in ["", "-wal", "-shm"] {
        let path = home.join(format!("flavorbox.db{suffix}"));
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("removing {}: {e}", path.display());
        }
    }
    let ready = server.get("/readyz", None).unwrap();
    assert_eq!(
        ready.status, 503,
        "readiness with the database gone: {}",
        ready.text
    );
    let write = put_secret(&server, &token, "y", "p");
    assert_eq!(
        write.status, 503,
        "a write with the database gone: {}",
        write.text
    );
    assert_eq!(write.body["error"]["code"], "unavailable", "{}", write.text);
    let (status, log) = server.stop().expect("stop");
    eprintln!("stopped with the database gone: {status:?}");

    let started = Server::start_with(dir.path(), home.clone(), server.admin.clone(), &options);
    let error = match started {
        Ok(_) => panic!("a server started on a home whose database is gone\n{log}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("refusing to create an empty database"),
        "the start says why it refuses: {error}"
    );
    assert!(
        !home.join("flavorbox.db").exists(),
        "no empty database was created"
    );
    assert_eq!(files(&blob_dir), blobs, "the blobs are untouched");
    for (name, path) in &blobs {
        assert_eq!(&sha256_file(path), name);
    }
}

#[test]
fn a_read_only_home_lists_and_describes_and_refuses_writes_as_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    cli_ok(&home, &["flavor", "register", &flavor_file()]);
    let tree = |home: &Path| -> Vec<(String, u64)> {
        [PathBuf::new(), "blobs/sha256".into(), "cache/code".into()]
            .iter()
            .flat_map(|sub| files(&home.join(sub)))
            .map(|(name, path)| (name, std::fs::metadata(path).map_or(0, |m| m.len())))
            .collect()
    };
    let before = tree(&home);

    let view = dir.path().join("read-only");
    let mount = Mount::read_only_bind(&home, &view);
    assert!(names(&cli_json(&view, &["flavor", "list"])).contains(FLAVOR));
    assert_eq!(
        cli_json(&view, &["flavor", "describe", FLAVOR])["name"],
        FLAVOR
    );
    let (ok, _, err) = run_cli(&view, &["flavor", "delete", FLAVOR], None, &[]);
    assert!(!ok, "a delete on a read-only home succeeded");
    assert!(
        err.contains("read-only"),
        "the error says the home is read-only: {err}"
    );
    drop(mount);

    assert_eq!(tree(&home), before, "nothing in the home changed");
    assert!(names(&cli_json(&home, &["flavor", "list"])).contains(FLAVOR));
}

#[test]
fn a_truncated_code_cache_key_is_replaced_and_commands_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    cli_ok(&home, &["flavor", "register", &flavor_file()]);
    let key = home.join("code-cache.key");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&key)
        .and_then(|f| f.set_len(5))
        .unwrap();

    assert!(names(&cli_json(&home, &["flavor", "list"])).contains(FLAVOR));
    assert_eq!(
        std::fs::metadata(&key).unwrap().len(),
        32,
        "a new key was written"
    );
    // The flavor's code is compiled again under the new key.
    assert_flavor_loads(&home);
}

#[test]
fn registering_again_repairs_a_damaged_blob() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    cli_ok(&home, &["flavor", "register", &flavor_file()]);
    let sha = cli_json(&home, &["flavor", "describe", FLAVOR])["sha256"]
        .as_str()
        .expect("sha256")
        .to_string();
    let blob = home.join("blobs").join("sha256").join(&sha);
    let length = std::fs::metadata(&blob).unwrap().len() as usize;
    std::fs::write(&blob, vec![0x5a_u8; length]).unwrap();
    assert_ne!(sha256_file(&blob), sha);

    assert_eq!(
        cli_ok(&home, &["flavor", "register", &flavor_file()]).trim(),
        FLAVOR
    );
    assert_eq!(sha256_file(&blob), sha, "the blob hashes to its name again");
    assert_flavor_loads(&home);
}

#[test]
fn identical_concurrent_uploads_all_succeed_and_store_the_flavor_once() {
    const UPLOADERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &ServerOptions::default()).expect("server");
    let token = server.tenant("acme").unwrap();
    let wasm = guest_bytes("guest-hostile");
    for round in 0..trials() {
        if round > 0 {
            let deleted = server
                .request(
                    "DELETE",
                    &format!("/v1/flavors/{FLAVOR}"),
                    Some(&token),
                    None,
                )
                .unwrap();
            assert_eq!(deleted.status, 204, "{}", deleted.text);
        }
        let start = Barrier::new(UPLOADERS);
        let answers: Vec<(u16, String)> = std::thread::scope(|s| {
            let uploads: Vec<_> = (0..UPLOADERS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        let answer = put_flavor(&server, &token, &wasm).unwrap();
                        (answer.status, answer.text)
                    })
                })
                .collect();
            uploads.into_iter().map(|u| u.join().unwrap()).collect()
        });
        assert!(
            answers
                .iter()
                .all(|(status, _)| matches!(status, 200 | 201)),
            "round {round}: every identical upload succeeds: {answers:?}"
        );
        let flavors = server.get("/v1/flavors", Some(&token)).unwrap();
        let copies = flavors
            .body
            .as_array()
            .expect("list")
            .iter()
            .filter(|f| f["name"] == FLAVOR)
            .count();
        assert_eq!(copies, 1, "round {round}: {}", flavors.text);
    }
}
