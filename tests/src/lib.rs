//! Support for the end-to-end suites: the guests built from `tests/guests/`
//! and the real services (Docker daemon, registries) the push tests need.

pub mod cluster;
pub mod faults;
pub mod hostile;
pub mod images;
pub mod polyglot;
pub mod server;
pub mod services;

use std::path::PathBuf;

/// Path of a test guest component built by `build.rs`, e.g. `guest-hostile`.
pub fn guest_path(package: &str) -> PathBuf {
    PathBuf::from(env!("FLAVORBOX_TEST_GUESTS")).join(format!("{package}.wasm"))
}

/// Bytes of a test guest component built by `build.rs`.
pub fn guest_bytes(package: &str) -> Vec<u8> {
    let path = guest_path(package);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test guest {}: {e}", path.display()))
}

/// The hostile test guest (`tests/guests/hostile`) as a WIT 0.1 component,
/// built through `tests/guests-v0-1/hostile`: what the sandbox suites load.
pub const HOSTILE: &str = "guest-hostile";

/// The same hostile test guest as a WIT 0.2 component: it asks for
/// `image-info`, and `{"mode": "echo-info"}` / `{"mode": "info-stats"}` make
/// its `prepare-image-push` deny with what it was handed.
pub const HOSTILE_V0_2: &str = "guest-hostile-v0-2";

/// The built-in `default` flavor as a WIT 0.1 component
/// (`tests/guests-v0-1/default`): a flavor built before 0.2.
pub const DEFAULT_V0_1: &str = "guest-default-v0-1";

/// The built-in flavor `name` as a WIT 0.1 component
/// (`tests/guests-v0-1/NAME`, for `default`, `github` and `aws`): the
/// conformance tables run against them too.
pub fn builtin_v0_1(name: &str) -> String {
    format!("guest-{name}-v0-1")
}

/// Path of the `flavorbox` binary of this build, brought up to date first.
///
/// The binary lives next to the test executables (`<target>/<profile>/`).
/// Cargo builds a package's binaries only for that package's own tests, so
/// this runs `cargo build -p flavorbox --bin flavorbox` once per test process:
/// a no-op when it is fresh, and no stale binary when a test crate is run
/// alone after a change to the runtime.
pub fn flavorbox_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test> -> <target>/<profile>/flavorbox
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test executable is in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        // With the process-per-call baseline `flavorbox bench` runs beside it.
        build.args([
            "build",
            "--quiet",
            "-p",
            "flavorbox",
            "--bin",
            "flavorbox",
            "--bin",
            "flavorbox-native-flavor",
        ]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the flavorbox binary");
        assert!(status.success(), "building the flavorbox binary failed");
        profile_dir.join("flavorbox")
    })
    .clone()
}

/// The built-in flavors this project ships, by name: the one list the suites
/// hold the embedded built-ins, the CLI's listing and the server's to.
pub const BUILTIN_NAMES: [&str; 9] = [
    "aws",
    "azure",
    "default",
    "digitalocean",
    "dockerhub",
    "gcp",
    "github",
    "gitlab",
    "policy",
];

/// Runs `body` in a process of its own: the test binary runs itself again
/// with only the test named `name` (its full path in the binary, e.g.
/// `hostile_host::host_work…`), and this process waits for it. For a test
/// that measures its own process (resident memory), which other tests
/// running beside it in one binary would disturb.
pub fn in_own_process(name: &str, body: impl FnOnce()) {
    const CHILD: &str = "FLAVORBOX_TEST_IN_OWN_PROCESS";
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, name)
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its own process:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{name} did not run in its own process (is the name its full path?):\n{stdout}\n{stderr}"
    );
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Runs the `flavorbox` CLI on the state in `home`, never logged in through
/// the environment, with `stdin` written to it and extra `env`; returns
/// (success, stdout, stderr).
pub fn run_cli(
    home: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    use std::io::Write;
    let mut command = std::process::Command::new(flavorbox_bin());
    command
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("FLAVORBOX_SERVER")
        .env_remove("FLAVORBOX_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("run flavorbox");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait for flavorbox");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Makes `command`'s process die (SIGKILL) when the thread that spawns it
/// ends: a killed test run leaves no service behind. Spawn it from a thread
/// that lives as long as the process.
pub fn dies_with_test(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl in the child before exec; async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
