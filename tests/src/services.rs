//! The real services the end-to-end suites push to: a Docker engine and two
//! CNCF distribution registries on loopback, one open and one behind htpasswd.
//!
//! They start once per test process, on first use, and are stopped when the
//! process exits. An engine that already answers (DOCKER_HOST, or the default
//! socket) is reused; otherwise a private `dockerd` runs from a temporary
//! directory. Every child is spawned from one thread that lives as long as the
//! process, with `PR_SET_PDEATHSIG`, so a killed test run leaves nothing
//! behind; a normal exit stops them through an `atexit` handler.
//!
//! Nothing here is pulled from the internet: images are made locally with
//! [`make_image`] (an import of an in-memory tarball).

use std::fs;
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

/// The command that installs everything the fixture runs.
const SETUP_HINT: &str =
    "run `scripts/setup.sh` (as root) to install docker.io, docker-registry and apache2-utils";
/// How long a private dockerd may take to answer.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a registry may take to answer `/v2/`.
const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(20);
/// bollard's request timeout for fixture calls, in seconds.
const DOCKER_CLIENT_TIMEOUT_SECS: u64 = 120;

/// Addresses of the running services.
#[derive(Debug)]
pub struct Services {
    /// The engine, as a DOCKER_HOST value (`unix:///.../docker.sock`).
    pub docker_host: String,
    /// A registry without authentication, `127.0.0.1:PORT`.
    pub open_registry: String,
    /// A registry with htpasswd authentication, `127.0.0.1:PORT`.
    pub auth_registry: String,
    /// The user the auth registry accepts.
    pub auth_user: String,
    /// That user's password.
    pub auth_password: String,
    /// The open registry's storage directory (filesystem driver root), for
    /// tests that tamper with what it serves.
    pub open_registry_storage: PathBuf,
}

/// The services, started on first use; panics with what is missing if they cannot start.
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Result<Services, String>> = OnceLock::new();
    let started = SERVICES.get_or_init(|| {
        // Start from a thread that lives for the whole process: children get
        // PR_SET_PDEATHSIG, which fires when the *thread* that spawned them
        // ends, so they must not be spawned from a short-lived test thread.
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("flavorbox-services".into())
            .spawn(move || {
                let result = start().map_err(|e| format!("{e:#}"));
                // The receiver waits for this; if it is gone there is nothing to do.
                let _ = tx.send(result);
                loop {
                    std::thread::park();
                }
            });
        match spawned {
            Ok(_) => rx
                .recv()
                .unwrap_or_else(|_| Err("the services thread ended without an answer".into())),
            Err(e) => Err(format!("cannot start the services thread: {e}")),
        }
    });
    match started {
        Ok(services) => services,
        Err(message) => panic!("test services could not start: {message}"),
    }
}

/// A `127.0.0.1:PORT` where nothing listens.
pub fn dead_registry() -> String {
    match free_port() {
        Ok(port) => format!("127.0.0.1:{port}"),
        // Port 9 (discard) is not served on a test machine.
        Err(_) => "127.0.0.1:9".to_string(),
    }
}

/// A client for the services' engine, with the API version negotiated.
pub async fn docker() -> Result<Docker> {
    connect(&services().docker_host).await
}

/// Creates a small unique image locally under `reference` (`domain/path:tag`), without any pull.
pub async fn make_image(reference: &str) -> Result<()> {
    let (repo, tag) = split_reference(reference)?;
    let docker = docker().await?;
    let layer = layer_tar(reference)?;
    let options = CreateImageOptions {
        from_src: Some("-".to_string()),
        repo: Some(repo.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    // `import_image` in bollard is `docker load` (a saved image with
    // manifest.json and digests); `create_image` with fromSrc=- is
    // `docker import` of a plain root filesystem tarball, which is all we need.
    let mut stream =
        docker.create_image(Some(options), Some(bollard::body_full(layer.into())), None);
    while let Some(item) = stream.next().await {
        item.with_context(|| format!("importing a test image as {reference}"))?;
    }
    Ok(())
}

/// The tags of `repo` on `registry`, from GET /v2/<repo>/tags/list.
pub fn registry_tags(
    registry: &str,
    repo: &str,
    auth: Option<(&str, &str)>,
) -> Result<Vec<String>> {
    let url = format!("http://{registry}/v2/{repo}/tags/list");
    let response = with_auth(ureq::get(&url), auth)
        .timeout(Duration::from_secs(10))
        .call()
        .with_context(|| format!("GET {url}"))?;
    let text = response
        .into_string()
        .with_context(|| format!("GET {url}: reading the body"))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("GET {url}: body is not JSON"))?;
    let tags = body
        .get("tags")
        .and_then(|t| t.as_array())
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(tags)
}

/// The digest the registry reports for `repo:tag` (`Docker-Content-Digest` of the manifest).
pub fn registry_manifest_digest(
    registry: &str,
    repo: &str,
    tag: &str,
    auth: Option<(&str, &str)>,
) -> Result<String> {
    let url = format!("http://{registry}/v2/{repo}/manifests/{tag}");
    let accept = [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
    .join(", ");
    let response = with_auth(ureq::head(&url), auth)
        .set("Accept", &accept)
        .timeout(Duration::from_secs(10))
        .call()
        .with_context(|| format!("HEAD {url}"))?;
    response
        .header("Docker-Content-Digest")
        .map(str::to_string)
        .ok_or_else(|| anyhow!("HEAD {url}: no Docker-Content-Digest header"))
}

/// The manifest of `repo:tag` (GET, as JSON), for what it refers to.
pub fn registry_manifest(
    registry: &str,
    repo: &str,
    tag: &str,
    auth: Option<(&str, &str)>,
) -> Result<serde_json::Value> {
    let url = format!("http://{registry}/v2/{repo}/manifests/{tag}");
    let accept = [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
    .join(", ");
    let text = with_auth(ureq::get(&url), auth)
        .set("Accept", &accept)
        .timeout(Duration::from_secs(10))
        .call()
        .with_context(|| format!("GET {url}"))?
        .into_string()
        .with_context(|| format!("GET {url}: reading the body"))?;
    serde_json::from_str(&text).with_context(|| format!("GET {url}: body is not JSON"))
}

/// Adds Basic auth to a request when credentials are given.
fn with_auth(request: ureq::Request, auth: Option<(&str, &str)>) -> ureq::Request {
    match auth {
        Some((user, password)) => {
            let value = BASE64.encode(format!("{user}:{password}"));
            request.set("Authorization", &format!("Basic {value}"))
        }
        None => request,
    }
}

/// Splits `domain/path:tag` into repository and tag.
fn split_reference(reference: &str) -> Result<(&str, &str)> {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    let colon = reference[name_start..]
        .rfind(':')
        .ok_or_else(|| anyhow!("`{reference}` has no tag"))?;
    Ok((
        &reference[..name_start + colon],
        &reference[name_start + colon + 1..],
    ))
}

/// A one-file root filesystem tarball whose content is unique to this call.
fn layer_tar(reference: &str) -> Result<Vec<u8>> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let content = format!(
        "flavorbox test image {reference}\npid {} n {} t {} r {}\n",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        random_hex(16)?,
    );
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, "flavorbox-test.txt", content.as_bytes())?;
    Ok(builder.into_inner()?)
}

/// `n` random bytes from the kernel, as hex.
fn random_hex(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Connects bollard to a DOCKER_HOST-style address and negotiates the API version.
async fn connect(host: &str) -> Result<Docker> {
    let docker = if host.starts_with("unix://") || host.starts_with('/') {
        Docker::connect_with_unix(
            host,
            DOCKER_CLIENT_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
    } else {
        Docker::connect_with_http(
            host,
            DOCKER_CLIENT_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
    }
    .with_context(|| format!("connecting to the Docker engine at {host}"))?;
    // Debian 12's engine speaks API 1.41, older than bollard's default.
    docker
        .negotiate_version()
        .await
        .with_context(|| format!("negotiating the API version with {host}"))
}

/// Whether an engine answers a ping at `host` within a few seconds.
fn engine_answers(runtime: &tokio::runtime::Runtime, host: &str) -> bool {
    runtime.block_on(async {
        let ping = async {
            connect(host)
                .await?
                .ping()
                .await
                .map_err(anyhow::Error::from)
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), ping).await,
            Ok(Ok(_))
        )
    })
}

/// What the `atexit` handler stops and removes.
struct Cleanup {
    /// Children to SIGTERM, with whether to wait for them to exit.
    children: Vec<(Child, bool)>,
    /// Temporary directories to remove once the children are gone.
    dirs: Vec<PathBuf>,
}

static CLEANUP: Mutex<Cleanup> = Mutex::new(Cleanup {
    children: Vec::new(),
    dirs: Vec::new(),
});

/// Stops the children and removes the temporary directories at process exit.
extern "C" fn cleanup_at_exit() {
    let Ok(mut cleanup) = CLEANUP.lock() else {
        return;
    };
    for (child, _) in &cleanup.children {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill only sends a signal to a child we spawned and have not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for (child, wait) in &mut cleanup.children {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if *wait && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
    for dir in cleanup.dirs.drain(..) {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Registers the `atexit` handler once.
fn register_cleanup() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: the handler is a plain extern "C" function that never unwinds.
        unsafe { libc::atexit(cleanup_at_exit) };
    });
}

/// Spawns `command` so it dies with this process, and records it for cleanup.
fn spawn_owned(mut command: Command, wait_at_exit: bool) -> io::Result<u32> {
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("the test process exited during spawn"));
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child.id();
    if let Ok(mut cleanup) = CLEANUP.lock() {
        cleanup.children.push((child, wait_at_exit));
    }
    Ok(pid)
}

/// Finds an executable on PATH or in the sbin directories (dockerd lives in /usr/sbin).
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Like [`find_binary`], failing with the package to install.
fn require_binary(name: &str, package: &str) -> Result<PathBuf> {
    find_binary(name).ok_or_else(|| {
        anyhow!("`{name}` (Debian package {package}) is not installed: {SETUP_HINT}")
    })
}

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A log file for a child's stdout and stderr.
fn log_file(path: &Path) -> Result<(Stdio, Stdio)> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok((file.try_clone()?.into(), file.into()))
}

/// The file in a services directory naming the test process that owns it.
const OWNER_FILE: &str = "owner.pid";

/// Whether a process with the pid written in `file` is alive.
fn pid_file_alive(file: &Path) -> bool {
    let Some(pid) = fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
    else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Removes the directories of earlier test processes that were killed
/// before their `atexit` handler ran (their children died with them).
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let ours = entry.file_name().to_string_lossy().starts_with("fbx-");
        if ours
            && dir.join(OWNER_FILE).is_file()
            && !pid_file_alive(&dir.join(OWNER_FILE))
            && !pid_file_alive(&dir.join("docker").join("dockerd.pid"))
        {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// Starts everything; runs on the long-lived services thread.
fn start() -> Result<Services> {
    register_cleanup();
    remove_stale_dirs();
    // A short base path: dockerd's exec-root holds containerd's unix socket,
    // and socket paths are limited to 108 bytes.
    let root = tempfile::Builder::new()
        .prefix("fbx-")
        .tempdir_in("/tmp")
        .context("creating a temporary directory in /tmp")?
        .keep();
    if let Ok(mut cleanup) = CLEANUP.lock() {
        cleanup.dirs.push(root.clone());
    }
    fs::write(root.join(OWNER_FILE), std::process::id().to_string())?;

    // Check every binary first, so a fresh machine gets one clear message.
    let registry_bin = find_binary("docker-registry")
        .or_else(|| find_binary("registry"))
        .ok_or_else(|| {
            anyhow!(
                "`docker-registry` (Debian package docker-registry) is not installed: {SETUP_HINT}"
            )
        })?;
    let htpasswd_bin = require_binary("htpasswd", "apache2-utils")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime for the services thread")?;
    let docker_host = start_docker(&runtime, &root)?;

    let open_registry = start_registry(&registry_bin, &root.join("registry-open"), None)?;
    let auth_user = format!("fbx{}", random_hex(4)?);
    let auth_password = random_hex(16)?;
    let output = Command::new(&htpasswd_bin)
        .args(["-Bbn", &auth_user, &auth_password])
        .output()
        .with_context(|| format!("running {}", htpasswd_bin.display()))?;
    if !output.status.success() {
        bail!(
            "htpasswd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let htpasswd_path = root.join("htpasswd");
    fs::write(
        &htpasswd_path,
        String::from_utf8_lossy(&output.stdout).trim().to_string() + "\n",
    )?;
    let auth_registry = start_registry(
        &registry_bin,
        &root.join("registry-auth"),
        Some(&htpasswd_path),
    )?;

    for registry in [&open_registry, &auth_registry] {
        wait_for_registry(registry, &root)?;
    }
    Ok(Services {
        docker_host,
        open_registry,
        auth_registry,
        auth_user,
        auth_password,
        open_registry_storage: root.join("registry-open").join("storage"),
    })
}

/// Reuses a running engine or starts a private dockerd; returns its DOCKER_HOST value.
fn start_docker(runtime: &tokio::runtime::Runtime, root: &Path) -> Result<String> {
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.is_empty()
        && engine_answers(runtime, &host)
    {
        return Ok(host);
    }
    let default = "unix:///var/run/docker.sock";
    if Path::new("/var/run/docker.sock").exists() && engine_answers(runtime, default) {
        return Ok(default.to_string());
    }

    let dockerd = require_binary("dockerd", "docker.io")?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "no Docker engine answers (DOCKER_HOST or /var/run/docker.sock) and starting dockerd needs root: run the tests as root or start an engine and set DOCKER_HOST"
        );
    }
    let dir = root.join("docker");
    fs::create_dir_all(&dir)?;
    let socket = dir.join("docker.sock");
    let host = format!("unix://{}", socket.display());
    // An empty config file, so a machine's /etc/docker/daemon.json cannot
    // clash with the flags below.
    let config = dir.join("daemon.json");
    fs::write(&config, "{}\n")?;
    let log = dir.join("dockerd.log");
    let (stdout, stderr) = log_file(&log)?;
    let mut command = Command::new(&dockerd);
    command
        .arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(&host)
        // vfs works on any filesystem (no overlay in containers); no
        // iptables or bridge: pushing needs neither, and both need privileges
        // a container may lack.
        .args(["--storage-driver=vfs", "--iptables=false", "--bridge=none"])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let pid =
        spawn_owned(command, true).with_context(|| format!("starting {}", dockerd.display()))?;

    let deadline = Instant::now() + DOCKERD_START_TIMEOUT;
    loop {
        if socket.exists() && engine_answers(runtime, &host) {
            return Ok(host);
        }
        if child_exited(pid) {
            bail!(
                "dockerd exited during start-up; the end of {}:\n{}",
                log.display(),
                log_tail(&log, 30)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "dockerd did not answer on {host} within {DOCKERD_START_TIMEOUT:?}; the end of {}:\n{}",
                log.display(),
                log_tail(&log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the child with this pid has exited.
fn child_exited(pid: u32) -> bool {
    let Ok(mut cleanup) = CLEANUP.lock() else {
        return false;
    };
    cleanup
        .children
        .iter_mut()
        .find(|(child, _)| child.id() == pid)
        .is_some_and(|(child, _)| matches!(child.try_wait(), Ok(Some(_))))
}

/// Starts a registry with filesystem storage under `dir`; returns its `127.0.0.1:PORT`.
fn start_registry(binary: &Path, dir: &Path, htpasswd: Option<&Path>) -> Result<String> {
    fs::create_dir_all(dir.join("storage"))?;
    let port = free_port().context("finding a free port for a registry")?;
    let addr = format!("127.0.0.1:{port}");
    let auth = match htpasswd {
        Some(path) => format!(
            "auth:\n  htpasswd:\n    realm: flavorbox-test\n    path: {}\n",
            path.display()
        ),
        None => String::new(),
    };
    let config = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: {secret}\n{auth}",
        storage = dir.join("storage").display(),
        secret = random_hex(16)?,
    );
    let config_path = dir.join("config.yml");
    fs::write(&config_path, config)?;
    let (stdout, stderr) = log_file(&dir.join("registry.log"))?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    spawn_owned(command, false).with_context(|| format!("starting {}", binary.display()))?;
    Ok(addr)
}

/// Waits until a registry answers `/v2/` (200 when open, 401 behind auth).
fn wait_for_registry(addr: &str, root: &Path) -> Result<()> {
    let url = format!("http://{addr}/v2/");
    let deadline = Instant::now() + REGISTRY_START_TIMEOUT;
    loop {
        match ureq::get(&url).timeout(Duration::from_secs(2)).call() {
            Ok(_) | Err(ureq::Error::Status(_, _)) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "registry at {addr} did not answer within {REGISTRY_START_TIMEOUT:?} ({e}); its logs are under {}",
                    root.display()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The local CLI on `home` with the test services' Docker engine, and no
/// server or log settings of the environment: its whole output.
pub fn engine_cli(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(crate::flavorbox_bin())
        .args(args)
        .env("FLAVORBOX_HOME", home)
        .env("DOCKER_HOST", &services().docker_host)
        .env_remove("FLAVORBOX_LOG")
        .env_remove("FLAVORBOX_SERVER")
        .env_remove("FLAVORBOX_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run flavorbox")
}

/// What a command printed, stdout then stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A repository path of its own for one test run, `PREFIX-NAME-PID-NANOS`:
/// the registries outlive a test.
pub fn unique_repository(prefix: &str, name: &str) -> String {
    format!(
        "{prefix}-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_000_000)
            .unwrap_or(0)
    )
}
