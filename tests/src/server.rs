//! The real `flavorbox serve` binary on a loopback port, for the server
//! suites: started with a private state directory, an admin token and a
//! secrets key, driven with a real HTTP client, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin token it was started with.
    pub admin: String,
    /// Its state directory (kept across restarts of the same test).
    pub home: PathBuf,
    child: Option<Child>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How to start one.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `--allow-registry` entries.
    pub allow: Vec<String>,
    /// The TOML config file's content, if any.
    pub config: Option<String>,
    /// Extra arguments after `serve`.
    pub args: Vec<String>,
    /// Extra environment variables (e.g. `DOCKER_HOST` of the test engine).
    pub env: Vec<(String, String)>,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body, parsed as JSON when it is JSON (else a string).
    pub body: Value,
    /// Raw body text.
    pub text: String,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
}

impl Server {
    /// Starts a server on a fresh state directory inside `dir`.
    pub fn start(dir: &Path, options: &ServerOptions) -> Result<Server> {
        let home = dir.join("home");
        let admin = format!("admin-{}", "x".repeat(40));
        Server::start_with(dir, home, admin, options)
    }

    /// Starts a server on `home` (e.g. again after a stop).
    pub fn start_with(
        dir: &Path,
        home: PathBuf,
        admin: String,
        options: &ServerOptions,
    ) -> Result<Server> {
        let key = dir.join("secrets.key");
        if !key.exists() {
            use std::os::unix::fs::PermissionsExt as _;
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
            std::fs::write(&key, bytes)?;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        }
        let mut command = Command::new(crate::flavorbox_bin());
        command
            .arg("--home")
            .arg(&home)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("FLAVORBOX_ADMIN_TOKEN", &admin)
            .env("FLAVORBOX_SECRETS_KEY_FILE", &key)
            .env("FLAVORBOX_LOG", "info")
            .env_remove("FLAVORBOX_SERVER")
            .env_remove("FLAVORBOX_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Ok(host) = std::env::var("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        for entry in &options.allow {
            command.args(["--allow-registry", entry]);
        }
        if let Some(config) = &options.config {
            let path = dir.join("server.toml");
            std::fs::write(&path, config)?;
            command.arg("--config").arg(path);
        }
        command.args(&options.args);
        command.envs(options.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().context("starting flavorbox serve")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let mut server = Server {
            url: String::new(),
            admin,
            home,
            child: Some(child),
            stderr: Some(stderr),
        };
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => line,
            Err(_) => bail!("the server did not start: {}", server.stop_kill()),
        };
        server.url = line
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("unexpected first line `{line}`"))?
            .to_string();
        server.wait_ready(Duration::from_secs(120))?;
        Ok(server)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.get("/readyz", None).is_ok_and(|a| a.status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the server was not ready within {timeout:?}")
    }

    /// Any request. `token` goes in `Authorization: Bearer`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Result<Answer> {
        let mut request =
            ureq::request(method, &format!("{}{path}", self.url)).timeout(Duration::from_secs(120));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some((content_type, bytes)) => {
                request.set("Content-Type", content_type).send_bytes(bytes)
            }
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow!("{method} {path}: {e}")),
        };
        let status = response.status();
        let retry_after = response.header("retry-after").map(str::to_string);
        let text = response.into_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        Ok(Answer {
            status,
            body,
            text,
            retry_after,
        })
    }

    /// GET.
    pub fn get(&self, path: &str, token: Option<&str>) -> Result<Answer> {
        self.request("GET", path, token, None)
    }

    /// A JSON request.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Answer> {
        let bytes = body.to_string().into_bytes();
        self.request(method, path, token, Some(("application/json", &bytes)))
    }

    /// Creates a tenant; returns its token.
    pub fn tenant(&self, name: &str) -> Result<String> {
        let answer = self.json(
            "POST",
            "/v1/tenants",
            Some(&self.admin.clone()),
            &serde_json::json!({ "name": name }),
        )?;
        if answer.status != 201 {
            bail!("creating tenant {name}: {} {}", answer.status, answer.text);
        }
        answer.body["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no token in {}", answer.text))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits for the exit; returns its status and stderr.
    pub fn stop(&mut self) -> Result<(ExitStatus, String)> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("already stopped"))?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = self.stderr.take().map(|h| h.join().unwrap_or_default());
                return Ok((status, log.unwrap_or_default()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the server did not stop within 120 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it with SIGKILL and waits for the exit; returns its stderr.
    pub fn kill(&mut self) -> String {
        self.stop_kill()
    }

    fn stop_kill(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let log = self.stop_kill();
        // FLAVORBOX_TEST_SERVER_LOG=1 shows what a failing test's server said.
        if std::env::var_os("FLAVORBOX_TEST_SERVER_LOG").is_some() {
            eprintln!("---- log of the server at {} ----\n{log}", self.url);
        }
    }
}

/// haproxy (Debian's package) on a free loopback port, balancing requests
/// round robin over several servers and checking each one's `/readyz`:
/// the load balancer an operator puts in front of replicas. Stopped on
/// drop, and with the test process (`PR_SET_PDEATHSIG`).
pub struct LoadBalancer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl LoadBalancer {
    /// Starts haproxy in front of `servers` (their `http://` URLs), its
    /// config in `dir`; waits until it answers `/readyz`.
    pub fn start(dir: &Path, servers: &[&str]) -> Result<LoadBalancer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut config = format!(
            "global\n  maxconn 1024\ndefaults\n  mode http\n  timeout connect 5s\n  \
             timeout client 60s\n  timeout server 60s\nfrontend flavorbox\n  \
             bind 127.0.0.1:{port}\n  default_backend replicas\nbackend replicas\n  \
             balance roundrobin\n  option httpchk GET /readyz\n"
        );
        for (i, server) in servers.iter().enumerate() {
            let address = server.trim_start_matches("http://");
            config.push_str(&format!("  server r{i} {address} check inter 500ms\n"));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config)?;
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        let binary = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("haproxy");
        let mut command = Command::new(binary);
        command
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::dies_with_test(&mut command);
        let child = command
            .spawn()
            .context("starting haproxy (scripts/setup.sh installs Debian's haproxy)")?;
        let balancer = LoadBalancer {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = ureq::get(&format!("{}/readyz", balancer.url))
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok();
            if ready {
                return Ok(balancer);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("haproxy did not answer within 30 s")
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
