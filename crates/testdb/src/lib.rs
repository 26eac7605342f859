//! A private PostgreSQL server for tests: Debian's `postgresql` binaries,
//! a cluster made by `initdb` in a temporary directory, listening on one
//! free loopback port, started once per test process on first use and
//! stopped with it. Each test asks for a [`Postgres::fresh_database`] of
//! its own, so tests run in parallel without seeing each other's rows.
//!
//! `initdb` refuses to run as root, so as root the cluster belongs to the
//! `postgres` user (which Debian's package creates) and the server runs as
//! that user. The server gets `PR_SET_PDEATHSIG` (set after the change of
//! user, which would clear it), so a killed test run leaves no server
//! behind; data directories of dead runs are removed by the next run.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How to get the binaries when they are missing.
const SETUP_HINT: &str = "run `scripts/setup.sh` (as root) to install Debian's postgresql";
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The prefix of the data directories under the temporary directory.
const DIR_PREFIX: &str = "flavorbox-pg-";

/// A running server.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    dir: PathBuf,
}

/// The server, started on first use; panics with what is missing if it cannot start.
pub fn postgres() -> &'static Postgres {
    static SERVER: OnceLock<Result<Postgres, String>> = OnceLock::new();
    let started = SERVER.get_or_init(|| on_lasting_thread("postgres", start));
    match started {
        Ok(server) => server,
        Err(message) => panic!("the test PostgreSQL server could not start: {message}"),
    }
}

/// Runs `start` on a thread of its own that then lives as long as the
/// process, and returns what it returned: children that `start` spawns get
/// `PR_SET_PDEATHSIG`, which fires when the *thread* that spawned them ends,
/// so they must not be spawned from a short-lived test thread.
pub fn on_lasting_thread<T: Send + 'static>(
    name: &str,
    start: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("flavorbox-{name}"))
        .spawn(move || {
            let _ = tx.send(start());
            loop {
                std::thread::park();
            }
        });
    match spawned {
        Ok(_) => rx
            .recv()
            .unwrap_or_else(|_| Err(format!("the {name} thread ended without an answer"))),
        Err(e) => Err(format!("cannot start the {name} thread: {e}")),
    }
}

impl Postgres {
    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory (owned by the user it runs as).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The URL of a database on the server (which need not exist).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        self.url(&name)
    }

    /// Runs `sql` with `psql` in `database` as the superuser; its output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running psql: {e}; {SETUP_HINT}"))?;
        if !output.status.success() {
            return Err(format!(
                "psql -c {sql:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// Where Debian puts the server's binaries: the newest
/// `/usr/lib/postgresql/N/bin` that has `initdb`.
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}; {SETUP_HINT}"))?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no initdb under /usr/lib/postgresql; {SETUP_HINT}"))
}

/// The uid and gid the cluster runs as: this user's, or `postgres`'s when root.
fn run_as() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|e| e.to_string())?;
    // SAFETY: a valid NUL-terminated name; the result is read at once,
    // before any other call could reuse the static buffer.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(format!(
            "running as root needs the `postgres` user to run the cluster; {SETUP_HINT}"
        ));
    }
    // SAFETY: non-null, just returned by getpwnam.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

/// A command that runs as `user` (uid, gid) when given.
fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        // std drops root's supplementary groups when it changes the user.
        command.uid(uid).gid(gid);
    }
    command
}

/// Removes data directories of test runs whose process is gone.
fn remove_dead_runs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> Result<Postgres, String> {
    let bin = bin_dir()?;
    let user = run_as()?;
    remove_dead_runs();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let log = dir.join("initdb.log");
    let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let status = command(&bin.join("initdb"), user)
        .args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .status()
        .map_err(|e| format!("running initdb: {e}; {SETUP_HINT}"))?;
    if !status.success() {
        return Err(format!(
            "initdb failed: {}",
            fs::read_to_string(&log).unwrap_or_default()
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))?;
    let server_log = dir.join("server.log");
    let server_log_file =
        fs::File::create(&server_log).map_err(|e| format!("{}: {e}", server_log.display()))?;
    let mut server = command(&bin.join("postgres"), user);
    server
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        // A test server: durability is not what is tested, speed is wanted.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
        .stdin(Stdio::null())
        .stdout(server_log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(server_log_file);
    // SAFETY: prctl is async-signal-safe. It runs after the change of
    // user (which would clear it), so the server dies with this process.
    unsafe {
        server.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = server
        .spawn()
        .map_err(|e| format!("starting postgres: {e}; {SETUP_HINT}"))?;
    let pg = Postgres { port, bin, dir };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "postgres exited ({status}): {}",
                fs::read_to_string(&server_log).unwrap_or_default()
            ));
        }
        if pg.psql("postgres", "SELECT 1").is_ok() {
            return Ok(pg);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "postgres did not accept connections within {START_TIMEOUT:?}: {}",
                fs::read_to_string(&server_log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
