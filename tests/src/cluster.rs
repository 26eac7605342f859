//! What a cluster of replicas needs besides PostgreSQL: an S3-compatible
//! object store (moto's server, from the virtualenv `scripts/setup.sh`
//! makes, on a loopback port) and a TCP proxy that slows one direction, so
//! a push is still running when a test kills or pauses its replica.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running moto S3 server.
#[derive(Debug)]
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The S3 server, started on first use for the whole test process (it dies
/// with it); panics with what is missing if it cannot start.
pub fn s3() -> &'static S3 {
    static SERVER: OnceLock<Result<S3, String>> = OnceLock::new();
    let started = SERVER.get_or_init(|| flavorbox_testdb::on_lasting_thread("s3", start));
    match started {
        Ok(s3) => s3,
        Err(message) => panic!("the S3 server could not start: {message}"),
    }
}

fn moto_server() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/flavorbox/moto-venv/bin/moto_server")
}

fn start() -> Result<S3, String> {
    let bin = moto_server();
    if !bin.exists() {
        return Err(format!(
            "{} is missing: run `scripts/setup.sh`, which installs moto[server]",
            bin.display()
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let mut command = Command::new(&bin);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::dies_with_test(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto_server exited at start: {status}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("moto_server did not listen within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The child is never waited for: it lives until the process ends.
    std::mem::forget(child);
    Ok(S3 {
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

impl S3 {
    /// A new empty bucket's name.
    pub fn fresh_bucket(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "flavorbox-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let status = self.raw("PUT", &format!("/{name}"));
        assert!(status.contains(" 200 "), "creating bucket {name}: {status}");
        name
    }

    /// The keys in `bucket` (moto's ListObjectsV2, read as text).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let answer = self.raw("GET", &format!("/{bucket}?list-type=2"));
        answer
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The environment a replica needs to reach this server (moto takes
    /// any credentials).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "flavorbox-test"),
            ("AWS_SECRET_ACCESS_KEY", "flavorbox-test-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// One unsigned request (moto does not check signatures); the whole
    /// answer as text.
    fn raw(&self, method: &str, path: &str) -> String {
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).expect("connecting to moto");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("writing to moto");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }
}

/// A TCP proxy on a loopback port to `target` that passes what the client
/// sends at most `bytes_per_sec` (answers at full speed): a registry
/// behind it takes uploads slowly.
pub struct SlowProxy {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
}

impl SlowProxy {
    /// Starts one; it lives until the process ends.
    pub fn start(target: &str, bytes_per_sec: usize) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        let target = target.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (client_read, server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy(client_read, server_write, Some(bytes_per_sec)));
                std::thread::spawn(move || copy(server, client, None));
            }
        });
        SlowProxy { addr }
    }
}

/// Copies `from` to `to`, at most `rate` bytes a second if given.
fn copy(mut from: TcpStream, mut to: TcpStream, rate: Option<usize>) {
    let chunk = rate.map_or(64 << 10, |r| (r / 10).max(1));
    let mut buf = vec![0u8; chunk];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if rate.is_some() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
    let _ = from.shutdown(std::net::Shutdown::Read);
}
