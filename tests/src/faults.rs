//! Support for the fault suite (`tests/tests/all/faults.rs`): how many trials
//! to run and a seeded generator for kill points, a CLI write killed part
//! way, the state checks every fault ends with (SQLite's own integrity check,
//! no litter, blobs that match their rows) and guards for the mounts the
//! disk faults need.
//!
//! The database is read with Python's `sqlite3` module (read-only URI), so
//! the checks use a SQLite that is not the one under test and add no crate.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// Trials per fault: `FLAVORBOX_FAULT_TRIALS`, 8 unless set (the long run
/// uses 100 or more; see `docs/faults.md`).
pub fn trials() -> usize {
    std::env::var("FLAVORBOX_FAULT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(8)
}

/// A xorshift64* generator: kill points that differ from run to run, and a
/// printed seed (`FLAVORBOX_FAULT_SEED`) to replay a failing run.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `FLAVORBOX_FAULT_SEED`, else from the clock; prints the seed.
    pub fn new(test: &str) -> Rng {
        let seed = std::env::var("FLAVORBOX_FAULT_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ (u64::from(std::process::id()) << 32)
            })
            .max(1);
        eprintln!("{test}: seed {seed} (FLAVORBOX_FAULT_SEED={seed} replays it)");
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[min, max]`, to the microsecond.
    pub fn between(&mut self, min: Duration, max: Duration) -> Duration {
        let span = max.saturating_sub(min).as_micros() as u64;
        min + Duration::from_micros(self.below(span + 1))
    }
}

/// How a CLI command that may have been killed ended.
#[derive(Debug)]
pub enum Outcome {
    /// Exited 0 before the kill: the write was acknowledged.
    Acknowledged,
    /// Exited non-zero on its own.
    Failed {
        /// Its exit code.
        code: Option<i32>,
        /// Its stderr.
        stderr: String,
    },
    /// Still running at the kill point, killed with SIGKILL.
    Killed,
}

/// A kill point no command reaches: [`cli_killed_after`] then just runs it.
pub const NO_KILL: Duration = Duration::from_secs(600);

/// Runs `flavorbox --home HOME ARGS` with `stdin`, and SIGKILLs it `after`
/// its start unless it exited first.
pub fn cli_killed_after(
    home: &Path,
    args: &[&str],
    stdin: Option<&str>,
    after: Duration,
) -> Outcome {
    let mut child = Command::new(crate::flavorbox_bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("FLAVORBOX_SERVER")
        .env_remove("FLAVORBOX_TOKEN")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run flavorbox");
    let start = Instant::now();
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The process may already be gone: a broken pipe is one outcome.
        let _ = pipe.write_all(text.as_bytes());
    }
    drop(child.stdin.take());
    // stderr is read to the end in the background: a full pipe must not
    // hold the process up and move the kill point.
    let mut pipe = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let exited = loop {
        if let Some(status) = child.try_wait().expect("wait for flavorbox") {
            break Some(status);
        }
        if start.elapsed() >= after {
            break None;
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let status = match exited {
        Some(status) => status,
        None => {
            // It may have exited since the last poll: then the kill is a
            // no-op and the exit status tells.
            let _ = child.kill();
            child.wait().expect("wait for flavorbox")
        }
    };
    let stderr = stderr.join().unwrap_or_default();
    if status.success() {
        Outcome::Acknowledged
    } else if std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL) {
        Outcome::Killed
    } else {
        Outcome::Failed {
            code: status.code(),
            stderr,
        }
    }
}

/// Runs a command that must succeed; returns its stdout, else fails with its stderr.
pub fn cli_ok(home: &Path, args: &[&str]) -> String {
    let (ok, out, err) = crate::run_cli(home, args, None, &[]);
    assert!(ok, "`flavorbox {}` failed:\n{err}", args.join(" "));
    out
}

/// Runs a command with `--json` that must succeed; returns the document.
pub fn cli_json(home: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = cli_ok(home, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The `name` of each object in a JSON array (a list answer of the CLI or the server).
pub fn names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter_map(|item| item["name"].as_str().map(str::to_string))
        .collect()
}

/// The names of the flavors, secrets and registry components of the local
/// tenant in `home`, read through the CLI.
pub fn cli_state(home: &Path) -> [BTreeSet<String>; 3] {
    [
        names(&cli_json(home, &["flavor", "list"])),
        names(&cli_json(home, &["secret", "list"])),
        names(&cli_json(home, &["registry", "list"])),
    ]
}

/// What must have survived a fault, by name: present, absent, or either
/// (`None`: a write of it was in flight when the fault struck).
#[derive(Debug, Default)]
pub struct Expected(BTreeMap<String, Option<bool>>);

impl Expected {
    /// `name` was acknowledged as written (`true`) or deleted (`false`).
    pub fn acknowledged(&mut self, name: &str, present: bool) {
        self.0.insert(name.to_string(), Some(present));
    }

    /// A write of `name` was in flight at the fault: either state is right.
    pub fn in_flight(&mut self, name: &str) {
        self.0.insert(name.to_string(), None);
    }

    /// Whether `name` is known to be present (`None`: unknown or never seen).
    pub fn present(&self, name: &str) -> Option<bool> {
        self.0.get(name).copied().flatten()
    }

    /// Asserts that `observed` (the names listed after the fault) agrees,
    /// then takes it as the known state.
    pub fn check(&mut self, what: &str, observed: &BTreeSet<String>, context: &str) {
        for (name, expected) in &mut self.0 {
            let listed = observed.contains(name);
            if let Some(present) = *expected {
                assert_eq!(
                    listed,
                    present,
                    "{what} `{name}`: acknowledged as {}, but it is {} ({context})",
                    if present { "written" } else { "deleted" },
                    if listed { "listed" } else { "gone" }
                );
            }
            *expected = Some(listed);
        }
    }
}

/// Runs `query` on `home/flavorbox.db`, opened read-only by Python's
/// sqlite3; returns the rows.
pub fn sql(home: &Path, query: &str) -> Vec<Vec<Value>> {
    const SCRIPT: &str = "import json, sqlite3, sys\n\
        db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
        print(json.dumps([list(r) for r in db.execute(sys.argv[2]).fetchall()]))\n";
    let out = python(&[
        SCRIPT,
        &home.join("flavorbox.db").display().to_string(),
        query,
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{query}: not JSON ({e}): {out}"))
}

/// The lowercase hex SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> String {
    const SCRIPT: &str = "import hashlib, sys\n\
        print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())\n";
    python(&[SCRIPT, &path.display().to_string()])
        .trim()
        .to_string()
}

fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .args(args)
        .output()
        .expect("python3 is needed by the fault suite");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts SQLite's `PRAGMA integrity_check` says `ok` for `home`'s database.
pub fn assert_integrity(home: &Path) {
    let rows = sql(home, "PRAGMA integrity_check");
    assert_eq!(
        rows,
        vec![vec![Value::from("ok")]],
        "integrity check of {}",
        home.display()
    );
}

/// Asserts that `home` holds no litter after a command that swept it,
/// which started at `sweep`: no temporary file older than the sweep in the
/// home, `blobs/sha256/` or `cache/code/`; every blob file is used by a
/// flavor row (of any tenant), and every row's blob exists and hashes to
/// its name.
pub fn assert_no_litter(home: &Path, sweep: SystemTime) {
    let blob_dir = home.join("blobs").join("sha256");
    let mut litter = Vec::new();
    for dir in [
        home.to_path_buf(),
        blob_dir.clone(),
        home.join("cache").join("code"),
    ] {
        for (name, path) in files(&dir) {
            let temporary = name.starts_with(".tmp") || name.starts_with("tmp");
            let modified = std::fs::metadata(&path).and_then(|m| m.modified());
            if temporary && modified.is_ok_and(|m| m < sweep) {
                litter.push(path);
            }
        }
    }
    assert!(
        litter.is_empty(),
        "temporary files survived the sweep: {litter:?}"
    );
    let rows: BTreeSet<String> = sql(home, "SELECT sha256 FROM flavors")
        .into_iter()
        .filter_map(|row| row.first().and_then(Value::as_str).map(str::to_string))
        .collect();
    let stored: BTreeSet<String> = files(&blob_dir).into_iter().map(|(name, _)| name).collect();
    let orphans: Vec<_> = stored.difference(&rows).collect();
    assert!(orphans.is_empty(), "blobs no flavor uses: {orphans:?}");
    for sha in &rows {
        let path = blob_dir.join(sha);
        assert!(
            path.is_file(),
            "the blob of a registered flavor is missing: {}",
            path.display()
        );
        assert_eq!(
            &sha256_file(&path),
            sha,
            "blob {} is damaged",
            path.display()
        );
    }
}

/// The regular files of `dir` with their names; none if it does not exist.
pub fn files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    files.sort();
    files
}

/// A mount made by a test, unmounted when dropped (also on a panic).
pub struct Mount {
    path: PathBuf,
}

impl Mount {
    /// A tmpfs of `mib` MiB, mode 0700, at `path` (created if missing).
    pub fn tmpfs(path: &Path, mib: u64) -> Mount {
        std::fs::create_dir_all(path).expect("mount point");
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mib}m,mode=0700"),
            "tmpfs",
            &path.display().to_string(),
        ]);
        Mount {
            path: path.to_path_buf(),
        }
    }

    /// A read-only view of `source` at `path` (a bind mount remounted read-only).
    pub fn read_only_bind(source: &Path, path: &Path) -> Mount {
        std::fs::create_dir_all(path).expect("mount point");
        let target = path.display().to_string();
        mount(&["--bind", &source.display().to_string(), &target]);
        let guard = Mount {
            path: path.to_path_buf(),
        };
        mount(&["-o", "remount,bind,ro", &target]);
        guard
    }
}

fn mount(args: &[&str]) {
    let out = Command::new("mount")
        .args(args)
        .output()
        .expect("run mount(8)");
    assert!(
        out.status.success(),
        "`mount {}` failed (the fault suite runs as root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Mount {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut command = Command::new("umount");
            if lazy {
                command.arg("-l");
            }
            command.arg(&self.path).status().is_ok_and(|s| s.success())
        };
        // A process still using it (a server a panic left running) makes a
        // plain umount fail: detach it then, never leave it mounted.
        if !umount(false) && !umount(true) {
            eprintln!("could not unmount {}", self.path.display());
        }
    }
}

/// A Docker engine on loopback that never answers while it stalls (a push
/// job that reaches it stays running, the ones behind it queued) and
/// otherwise closes every connection at once (an engine that is down, so a
/// server start does not wait for it).
pub struct StalledEngine {
    /// `tcp://127.0.0.1:PORT`, for `DOCKER_HOST`.
    pub host: String,
    stall: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
}

impl StalledEngine {
    /// Starts one, not stalling.
    pub fn start() -> StalledEngine {
        let listener = TcpListener::bind("127.0.0.1:0").expect("engine port");
        listener.set_nonblocking(true).expect("non-blocking");
        let host = format!("tcp://{}", listener.local_addr().expect("address"));
        let stall = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let (stalling, finished) = (stall.clone(), done.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !finished.load(Ordering::SeqCst) {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                if !stalling.load(Ordering::SeqCst) {
                    held.clear();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        StalledEngine { host, stall, done }
    }

    /// Stalls (`true`) or closes connections (`false`) from now on.
    pub fn stall(&self, on: bool) {
        self.stall.store(on, Ordering::SeqCst);
    }
}

impl Drop for StalledEngine {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}
