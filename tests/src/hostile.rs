//! Support for the hostile-tenant suite (`tests/tests/all/hostile_tenants.rs`):
//! a canary that counts every connection made to it, a hostile registry
//! stub that speaks just enough HTTP/1.1 to send the server to the canary,
//! a registry that accepts connections and never answers, image archives
//! made by hand (no engine needed), raw half-sent requests, and the good
//! tenant's latency, measured and reported but never used as a gate.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Answer, Server};

/// A loopback listener that must never be reached: it counts every
/// connection accepted (and records the request line, when one comes),
/// answers 502 and hangs up.
pub struct Canary {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(SocketAddr, String)>>>,
    probes: Mutex<Vec<SocketAddr>>,
}

impl Canary {
    /// Starts one on `127.0.0.1:0`.
    pub fn start() -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the canary");
        let addr = listener.local_addr().expect("canary address");
        let seen: Arc<Mutex<Vec<(SocketAddr, String)>>> = Arc::default();
        let log = seen.clone();
        // Accepted one at a time, in the kernel's order, so `hits` can tell
        // when every earlier connection has been counted.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                let index = {
                    let mut seen = log.lock().expect("canary log");
                    seen.push((peer, String::new()));
                    seen.len() - 1
                };
                let log = log.clone();
                std::thread::spawn(move || {
                    let head = read_head(&stream, Duration::from_secs(2));
                    let line = head.lines().next().unwrap_or("").to_string();
                    if let Ok(mut seen) = log.lock() {
                        seen[index].1 = line;
                    }
                    let _ = stream.write_all(&http("502 Bad Gateway", &[], b""));
                });
            }
        });
        Canary {
            addr,
            seen,
            probes: Mutex::new(Vec::new()),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every connection made to it so far (the request line, when one was
    /// read): connects once itself and counts what was accepted before.
    pub fn hits(&self) -> Vec<String> {
        let probe = TcpStream::connect(self.addr).expect("probe the canary");
        let me = probe.local_addr().expect("probe address");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let seen = self.seen.lock().expect("canary log");
                if let Some(at) = seen.iter().position(|(peer, _)| *peer == me) {
                    let mut probes = self.probes.lock().expect("probes");
                    let hits = seen[..at]
                        .iter()
                        .filter(|(peer, _)| !probes.contains(peer))
                        .map(|(peer, line)| format!("{peer}: {line}"))
                        .collect();
                    probes.push(me);
                    return hits;
                }
            }
            assert!(Instant::now() < deadline, "the canary never saw its probe");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that nothing reached it.
    pub fn assert_untouched(&self, what: &str) {
        let hits = self.hits();
        assert!(hits.is_empty(), "{what}: the canary was reached: {hits:?}");
    }
}

/// One request as a stub saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The whole head, lower-cased header names and all.
    pub head: String,
}

/// A registry stub on loopback: `answer` gives each request's whole
/// response (sent with `Connection: close`).
pub struct Stub {
    addr: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Stub {
    /// Starts one on `127.0.0.1:0`.
    pub fn start(answer: impl Fn(&Request) -> Vec<u8> + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub");
        let addr = listener.local_addr().expect("stub address").to_string();
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let log = seen.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || {
                    let head = read_head(&stream, Duration::from_secs(10));
                    let mut words = head.split_whitespace();
                    let request = Request {
                        method: words.next().unwrap_or("").to_string(),
                        path: words.next().unwrap_or("").to_string(),
                        head: head.clone(),
                    };
                    // A small body is read, so closing does not reset the
                    // connection before the client reads the answer.
                    if let Some(length) = header(&head, "content-length")
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|l| *l <= 1 << 20)
                    {
                        let mut body = Vec::new();
                        let _ = (&stream).take(length).read_to_end(&mut body);
                    }
                    let response = answer(&request);
                    log.lock().expect("stub log").push(request);
                    let _ = stream.write_all(&response);
                    let _ = stream.flush();
                });
            }
        });
        Stub { addr, seen }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The requests it answered so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("stub log").clone()
    }
}

/// What a hostile registry does to send its client to the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostility {
    /// Speaks the API, but hands out upload `Location`s on the canary.
    UploadToCanary,
    /// Answers blobs, uploads and manifests with `307` to the canary.
    RedirectToCanary,
    /// Challenges with a Bearer realm on the canary (the registry's IP,
    /// another port).
    RealmOnCanary,
    /// Challenges with a Bearer realm on another host name (`localhost`)
    /// at the canary's port.
    RealmOnOtherHost,
}

/// A registry stub that behaves as `how`, aiming at `canary`.
pub fn hostile_registry(canary: &Canary, how: Hostility) -> Stub {
    let canary_url = format!("http://127.0.0.1:{}", canary.port());
    let other_host = format!("http://localhost:{}", canary.port());
    Stub::start(move |request| {
        let path = request.path.as_str();
        let bearer = |realm: &str| {
            let challenge =
                format!(r#"Bearer realm="{realm}/token",service="stub",scope="repository:x:push""#);
            http(
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
        };
        let to_canary = |what: &str| {
            http(
                "307 Temporary Redirect",
                &[("Location", &format!("{canary_url}/{what}"))],
                b"",
            )
        };
        match how {
            Hostility::RealmOnCanary => bearer(&canary_url),
            Hostility::RealmOnOtherHost => bearer(&other_host),
            _ if path == "/v2/" || path == "/v2" => {
                http("200 OK", &[("Content-Type", "application/json")], b"{}")
            }
            Hostility::UploadToCanary if request.method == "HEAD" => {
                http("404 Not Found", &[], b"")
            }
            Hostility::UploadToCanary if path.contains("/blobs/uploads/") => http(
                "202 Accepted",
                &[
                    ("Location", &format!("{canary_url}/upload")),
                    ("Docker-Upload-UUID", "0"),
                    ("Range", "0-0"),
                ],
                b"",
            ),
            Hostility::UploadToCanary | Hostility::RedirectToCanary => to_canary("redirected"),
        }
    })
}

/// A registry that accepts connections and never answers: a push to it
/// holds its worker until a deadline ends it. Returns its `127.0.0.1:PORT`
/// and the count of connections it holds.
pub fn silent_registry() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the silent registry");
    let addr = listener.local_addr().expect("address").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, accepted)
}

/// A loopback `127.0.0.1:PORT` nothing listens on (the good tenant's
/// component: its checks never connect).
pub fn unused_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// A whole HTTP/1.1 response, closing the connection.
pub fn http(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A request head (up to the blank line), read within `timeout`.
fn read_head(stream: &TcpStream, timeout: Duration) -> String {
    let _ = stream.set_read_timeout(Some(timeout));
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

/// A header's value in a head, by case-insensitive name.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

// Image archives, made by hand: what `docker save` writes for one image.

/// `docker save` of one image whose one layer is `layer` (a tar, or a
/// gzip), with `diff_id` in its config.
pub fn saved_image(layer: &[u8], diff_id: &str) -> Vec<u8> {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let config_name = format!("{}.json", &sha256(config.as_bytes())["sha256:".len()..]);
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": ["hostile/app:1"],
        "Layers": ["layer/layer.tar"],
    }])
    .to_string();
    let mut builder = tar::Builder::new(Vec::new());
    append(&mut builder, &config_name, config.as_bytes());
    append(&mut builder, "layer/layer.tar", layer);
    append(&mut builder, "manifest.json", manifest.as_bytes());
    builder.into_inner().expect("archive")
}

/// A small image whose one file says `label`, unique to this call.
pub fn small_image(label: &str) -> Vec<u8> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let content = format!(
        "hostile suite {label} pid {} n {} t {:?}\n",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
    );
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, "hello.txt", content.as_bytes());
    let layer = layer.into_inner().expect("layer");
    saved_image(&layer, &sha256(&layer))
}

/// A gzip layer of `mib` MiB of zeros (about a thousandth of that
/// compressed), made by the `gzip` tool.
pub fn gzip_bomb(mib: usize) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = child.stdin.take().expect("gzip stdin");
    let writer = std::thread::spawn(move || {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..mib {
            stdin.write_all(&zeros).expect("feed gzip");
        }
    });
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("gzip feeder");
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

/// Appends a regular file.
pub fn append(builder: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, name, bytes)
        .expect("append to a tar");
}

/// Appends an entry whose raw header name (and link target, for a link)
/// is exactly what is given: what the `tar` crate refuses to write
/// itself (`..`, absolute paths).
pub fn append_raw(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    bytes: &[u8],
) {
    let mut header = tar::Header::new_gnu();
    {
        let gnu = header.as_gnu_mut().expect("gnu header");
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname = [0; 100];
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    header.set_entry_type(kind);
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append(&header, bytes).expect("append a raw entry");
}

/// `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    flavorbox_net::registry_api::session::sha256_digest(bytes)
}

// Requests.

/// `POST /v1/registries/{component}/push?image=...` with `archive`.
pub fn push(server: &Server, token: &str, component: &str, image: &str, archive: &[u8]) -> Answer {
    server
        .request(
            "POST",
            &format!("/v1/registries/{component}/push?image={}", encode(image)),
            Some(token),
            Some(("application/x-tar", archive)),
        )
        .expect("push request")
}

/// `image` for a query string.
pub fn encode(image: &str) -> String {
    image
        .replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
        .replace('@', "%40")
}

/// Registers registry component `name` at `uri` with the built-in flavor.
pub fn component(server: &Server, token: &str, name: &str, uri: &str) -> Answer {
    server
        .json(
            "PUT",
            &format!("/v1/registries/{name}"),
            Some(token),
            &json!({"flavor": "default", "uri": uri}),
        )
        .expect("PUT registry")
}

/// Waits for job `id` to end (at most `within`); its record.
pub fn wait_job(server: &Server, token: &str, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job = server
            .get(&format!("/v1/jobs/{id}"), Some(token))
            .expect("job");
        assert_eq!(job.status, 200, "{}", job.text);
        let status = job.body["status"].as_str().unwrap_or_default();
        if matches!(status, "succeeded" | "failed" | "interrupted") {
            return job.body;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not end: {}",
            job.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Opens a connection to the server at `url` and sends `bytes` (and
/// nothing more).
pub fn raw(url: &str, bytes: &[u8]) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.write_all(bytes).expect("send");
    stream
}

/// Reads one answer: its head and as much body as its `content-length`
/// says, or what came before the server closed, or before `timeout`.
pub fn read_answer(stream: &mut TcpStream, timeout: Duration) -> String {
    let _ = stream.set_read_timeout(Some(timeout));
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = header(head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return text,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the server closes `stream` within `within` (reading and
/// dropping whatever it sends first).
pub fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A counter or gauge of the server's `/metrics` by its exposed name and
/// labels (`flavorbox_compiles_running`), with the metrics token if any.
pub fn metric(server: &Server, name: &str, token: Option<&str>) -> f64 {
    let text = server.get("/metrics", token).expect("metrics").text;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

// Measures.

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The bytes of the files directly in `dir` (0 when it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The good tenant: a component whose checks it times.
pub struct Good {
    /// Its token.
    pub token: String,
    /// The component it checks against.
    pub component: String,
    /// The image it checks.
    pub image: String,
}

impl Good {
    /// `n` sequential `POST /v1/registries/{component}/check`s; asserts
    /// every one was served (200) and returns their p99.
    pub fn p99(&self, server: &Server, n: usize, during: &str) -> Duration {
        let mut latencies = Vec::with_capacity(n);
        let body = json!({ "image": self.image });
        for i in 0..n {
            let start = Instant::now();
            let answer = server
                .json(
                    "POST",
                    &format!("/v1/registries/{}/check", self.component),
                    Some(&self.token),
                    &body,
                )
                .unwrap_or_else(|e| panic!("{during}: good check {i} failed: {e}"));
            latencies.push(start.elapsed());
            assert_eq!(
                answer.status, 200,
                "{during}: the good tenant is still served (check {i}): {}",
                answer.text
            );
        }
        latencies.sort();
        let at = (n * 99).div_ceil(100).saturating_sub(1);
        latencies[at.min(n - 1)]
    }
}

/// Prints the good tenant's p99 alone and under `attack`, and appends the
/// row `| attack | alone ms | attacked ms | ratio |` to the file named by
/// `FLAVORBOX_HOSTILE_REPORT`, if set. A report, never a gate.
pub fn report(attack: &str, alone: Duration, attacked: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = ms(attacked) / ms(alone).max(0.001);
    let row = format!(
        "| {attack} | {:.2} | {:.2} | {ratio:.2}x |",
        ms(alone),
        ms(attacked)
    );
    eprintln!("good tenant p99: {row}");
    if let Some(path) = std::env::var_os("FLAVORBOX_HOSTILE_REPORT") {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{row}"));
        if let Err(e) = written {
            eprintln!("cannot append to {}: {e}", Path::new(&path).display());
        }
    }
}
