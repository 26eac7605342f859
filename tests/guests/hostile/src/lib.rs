//! A flavor that misbehaves on request, for the sandbox tests.
//!
//! `validate-config` reads `{"mode": "..."}` and does what the mode says;
//! `prepare-image-push` denies with the config's `deny` text when there is
//! one, else asks the host whether the image's repository exists and reports
//! the answer as a warning.
//!
//! Built twice by `tests/build.rs`: against WIT 0.2 (the kit's default;
//! `guest-hostile-v0-2.wasm`) and, through `tests/guests-v0-1/hostile`,
//! against the frozen WIT 0.1 (`guest-hostile.wasm`, what the sandbox suites
//! load). It asks for `image-info`; the 0.1 build drops that capability.
//! With `{"mode": "echo-info"}` or `{"mode": "info-stats"}`,
//! `prepare-image-push` denies with a JSON dump of the image info it was
//! handed (`{"wit": ..., "info": ...}`), or with its counts and longest
//! items, so a test can see exactly what reached the guest.

use std::sync::atomic::{AtomicU64, Ordering};

use flavor_kit::serde_json::{Value, json};
use flavor_kit::{
    Capability, ConfigIssue, Flavor, Host, ImageInfo, ImageReference, LogLevel, Metadata,
    PushDecision,
};

/// Counts calls within one instance: must be 1 on every call if the host
/// gives each call a fresh instance.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// The misbehaving flavor.
pub struct Hostile;

/// Recursion that keeps its frames in wasm locals (no address taken, so no
/// shadow stack in linear memory) and that LLVM cannot turn into a loop: it
/// overflows the engine's wasm stack limit.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n % 1_000_000_007 == 1 {
        return n;
    }
    recurse(n.wrapping_add(2)).rotate_left(1) ^ n
}

/// Tries an outgoing HTTP request through `wasi:http`; reports what happened.
#[cfg(target_arch = "wasm32")]
fn http_probe() -> String {
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some("127.0.0.1:9"));
    let _ = request.set_path_with_query(Some("/"));
    let outcome = match wasip2::http::outgoing_handler::handle(request, None) {
        Err(e) => format!("refused: {e:?}"),
        Ok(response) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(r))) => format!("response {}", r.status()),
                Some(Ok(Err(e))) => format!("refused: {e:?}"),
                other => format!("no answer: {other:?}"),
            }
        }
    };
    flavor_kit::serde_json::json!({ "http": outcome }).to_string()
}

#[cfg(not(target_arch = "wasm32"))]
fn http_probe() -> String {
    r#"{"http":"not wasm"}"#.to_string()
}

/// Attacks on what the host does for the guest in `wasi:http` and `wasi:random`.
#[cfg(target_arch = "wasm32")]
fn host_attack(mode: &str) -> String {
    use wasip2::http::types::{Fields, OutgoingRequest, OutgoingResponse};
    let chunk = vec![b'x'; 4096];
    match mode {
        // Write into a request body nothing drains: blocks forever in the
        // host unless the host refuses the body or ends the wait.
        "http-body-hang" => {
            let request = OutgoingRequest::new(Fields::new());
            let Ok(body) = request.body() else {
                return "body refused".into();
            };
            let Ok(stream) = body.write() else {
                return "stream refused".into();
            };
            for _ in 0..8 {
                let _ = stream.blocking_write_and_flush(&chunk);
            }
            "writes returned".into()
        }
        "http-response-hang" => {
            let response = OutgoingResponse::new(Fields::new());
            let Ok(body) = response.body() else {
                return "body refused".into();
            };
            let Ok(stream) = body.write() else {
                return "stream refused".into();
            };
            loop {
                let _ = stream.write(&chunk);
                stream.subscribe().block();
            }
        }
        // Many bodies with 1 MiB in each: host memory outside the limit.
        "http-body-bomb" => {
            let big = vec![b'y'; 1 << 20];
            let mut keep = Vec::new();
            for _ in 0..4096 {
                let request = OutgoingRequest::new(Fields::new());
                if let Ok(body) = request.body()
                    && let Ok(stream) = body.write()
                {
                    let _ = stream.write(&big);
                    keep.push((stream, body));
                }
                // Leak the handle: the host keeps the request for the call.
                std::mem::forget(request);
            }
            "bomb ended".into()
        }
        // Many header maps with large values.
        "fields-bomb" => {
            let value = vec![b'v'; 64 << 10];
            let mut keep = Vec::new();
            for i in 0..100_000 {
                let fields = Fields::new();
                for j in 0..16 {
                    let _ = fields.append(&format!("x-h{i}-{j}"), &value);
                }
                keep.push(fields);
            }
            "bomb ended".into()
        }
        // Many long authorities held by many requests.
        "request-strings-bomb" => {
            let authority = "a".repeat(512 << 10);
            let mut keep = Vec::new();
            for _ in 0..100_000 {
                let request = OutgoingRequest::new(Fields::new());
                let _ = request.set_authority(Some(&authority));
                keep.push(request);
            }
            "bomb ended".into()
        }
        "random-bomb" => {
            for _ in 0..10_000 {
                let bytes = wasip2::random::random::get_random_bytes(1 << 30);
                std::hint::black_box(bytes);
            }
            "random ended".into()
        }
        other => format!("unknown attack {other}"),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn host_attack(mode: &str) -> String {
    format!("{mode}: not wasm")
}

/// Everything the guest could observe of its environment, as JSON.
fn probe() -> String {
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    let root = std::fs::read_dir("/")
        .map(|d| d.count())
        .map_err(|e| e.to_string());
    let etc = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string());
    let tcp = std::net::TcpStream::connect("127.0.0.1:22")
        .map(|_| ())
        .map_err(|e| e.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    flavor_kit::serde_json::json!({
        "env": env,
        "args": args,
        "read_dir_root": root.is_ok(),
        "read_etc_passwd": etc.is_ok(),
        "tcp_connect": tcp.is_ok(),
        "wall_clock_secs": now,
    })
    .to_string()
}

impl Flavor for Hostile {
    fn metadata() -> Metadata {
        Metadata {
            name: "hostile".into(),
            display_name: "Hostile test flavor".into(),
            description: "Misbehaves on request".into(),
            docs_url: "https://example.invalid/hostile".into(),
            logo_url: String::new(),
            config_schema: r#"{"type":"object"}"#.into(),
            capabilities: vec![Capability::RepositoryExists, Capability::ImageInfo],
        }
    }

    fn validate_config(host: &dyn Host, config: &str) -> Result<String, Vec<ConfigIssue>> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let map = flavor_kit::parse_config(config)?;
        let mode = map.get("mode").and_then(|m| m.as_str()).unwrap_or("ok");
        match mode {
            "ok" => Ok(config.to_string()),
            "calls" => Ok(format!(r#"{{"calls":{calls}}}"#)),
            "trap" => panic!("hostile flavor panics on purpose"),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = vec![0u8; 1 << 20];
                    block[0] = 1;
                    hoard.push(std::hint::black_box(block));
                }
            }
            "recurse" => Ok(format!(r#"{{"n":{}}}"#, recurse(0))),
            "big-output" => Ok(format!(r#"{{"pad":"{}"}}"#, "x".repeat(4 << 20))),
            "not-json" => Ok("this is not json".into()),
            "no-issues" => Err(Vec::new()),
            "log-flood" => {
                for i in 0..10_000 {
                    host.log(LogLevel::Info, &format!("line {i} {}", "y".repeat(5000)));
                }
                Ok(config.to_string())
            }
            "print" => {
                println!("hello from stdout");
                eprintln!("hello from stderr");
                Ok(config.to_string())
            }
            "print-flood" => {
                for i in 0..100_000 {
                    println!("stdout line {i} {}", "z".repeat(100));
                }
                Ok(config.to_string())
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(config.to_string())
            }
            "escape" => {
                host.log(LogLevel::Warn, "\x1b[2Jfake\nerror: injected");
                Err(vec![ConfigIssue::new(
                    "uri\x1b[31m",
                    "bad\r\nerror: forged line",
                )])
            }
            "probe" => Ok(probe()),
            // Answered by `prepare-image-push`.
            "echo-info" | "info-stats" => Ok(config.to_string()),
            "http-body-hang"
            | "http-response-hang"
            | "http-body-bomb"
            | "fields-bomb"
            | "request-strings-bomb"
            | "random-bomb" => {
                let outcome = host_attack(mode);
                Ok(flavor_kit::serde_json::json!({ "outcome": outcome }).to_string())
            }
            "huge-log" => {
                let n = map
                    .get("bytes")
                    .and_then(|b| b.as_u64())
                    .unwrap_or(64 << 20);
                let line = "\x1b".repeat(usize::try_from(n).unwrap_or(0));
                host.log(LogLevel::Info, &line);
                Ok(config.to_string())
            }
            "huge-return" => {
                let n = map
                    .get("bytes")
                    .and_then(|b| b.as_u64())
                    .unwrap_or(90 << 20);
                Ok("r".repeat(usize::try_from(n).unwrap_or(0)))
            }
            "lookup-loop" => {
                let mut answered = 0u64;
                for _ in 0..1_000_000 {
                    if host.repository_exists("team/app").is_ok() {
                        answered += 1;
                    }
                }
                Ok(format!(r#"{{"answered":{answered}}}"#))
            }
            "bidi" => Err(vec![ConfigIssue::new(
                "uri\u{202E}",
                "evil\u{202E}txt.exe \u{2066}x\u{2069} zero\u{200B}width\u{FEFF}",
            )]),
            "http" => Ok(http_probe()),
            "lookup" => match host.repository_exists("team/app") {
                Ok(b) => Ok(format!(r#"{{"exists":{b}}}"#)),
                Err(e) => Err(vec![ConfigIssue::new("lookup", e)]),
            },
            other => Err(vec![ConfigIssue::new(
                "mode",
                format!("unknown mode `{other}`"),
            )]),
        }
    }

    fn prepare_image_push_with_info(
        host: &dyn Host,
        config: &str,
        image: &ImageReference,
        info: Option<&ImageInfo>,
    ) -> PushDecision {
        let mode = flavor_kit::parse_config(config)
            .ok()
            .and_then(|map| map.get("mode").and_then(|m| m.as_str()).map(str::to_string));
        match mode.as_deref() {
            Some("echo-info") => PushDecision::Deny(
                json!({
                    "wit": flavor_kit::WIT_VERSION,
                    "info": info.map(info_json),
                })
                .to_string(),
            ),
            Some("info-stats") => PushDecision::Deny(
                json!({
                    "wit": flavor_kit::WIT_VERSION,
                    "info": info.map(info_stats),
                })
                .to_string(),
            ),
            _ => Self::prepare_image_push(host, config, image),
        }
    }

    fn prepare_image_push(host: &dyn Host, config: &str, image: &ImageReference) -> PushDecision {
        let deny = flavor_kit::parse_config(config)
            .ok()
            .and_then(|map| map.get("deny").and_then(|d| d.as_str()).map(str::to_string));
        if let Some(reason) = deny {
            return PushDecision::Deny(reason);
        }
        match host.repository_exists(&image.path) {
            Ok(exists) => PushDecision::Approve(vec![format!("exists={exists}")]),
            Err(e) => PushDecision::Deny(format!("lookup failed: {e}")),
        }
    }
}

/// Everything in `info`, field by field (the WIT record's names, in snake case).
fn info_json(info: &ImageInfo) -> Value {
    json!({
        "platform": {
            "os": info.platform.os,
            "architecture": info.platform.architecture,
            "variant": info.platform.variant,
        },
        "config_digest": info.config_digest,
        "created": info.created,
        "age_seconds": info.age_seconds,
        "user": info.user,
        "labels": info
            .labels
            .iter()
            .map(|(key, value)| json!({ "key": key, "value": value }))
            .collect::<Vec<_>>(),
        "exposed_ports": info.exposed_ports,
        "entrypoint": info.entrypoint,
        "cmd": info.cmd,
        "env_names": info.env_names,
        "layer_count": info.layer_count,
        "layers": info
            .layers
            .iter()
            .map(|l| json!({
                "digest": l.digest,
                "compressed_size": l.compressed_size,
                "uncompressed_size": l.uncompressed_size,
            }))
            .collect::<Vec<_>>(),
        "compressed_size": info.compressed_size,
        "uncompressed_size": info.uncompressed_size,
        "truncated": info.truncated,
    })
}

/// The counts and longest items (in bytes) of every bounded field of
/// `info`, small enough to come back whole whatever the image: what a test
/// of the host's bounds needs. `env_names_with_equals` counts names holding
/// `=` (a value that leaked into a name).
fn info_stats(info: &ImageInfo) -> Value {
    fn longest<'a>(items: impl IntoIterator<Item = &'a String>) -> usize {
        items.into_iter().map(String::len).max().unwrap_or(0)
    }
    json!({
        "platform": info.platform.to_string(),
        "labels": info.labels.len(),
        "longest_label_key": longest(info.labels.iter().map(|(k, _)| k)),
        "longest_label_value": longest(info.labels.iter().map(|(_, v)| v)),
        "exposed_ports": info.exposed_ports.len(),
        "longest_exposed_port": longest(&info.exposed_ports),
        "entrypoint": info.entrypoint.len(),
        "longest_entrypoint_item": longest(&info.entrypoint),
        "cmd": info.cmd.len(),
        "longest_cmd_item": longest(&info.cmd),
        "env_names": info.env_names.len(),
        "longest_env_name": longest(&info.env_names),
        "env_names_with_equals": info.env_names.iter().filter(|n| n.contains('=')).count(),
        "layers": info.layers.len(),
        "layer_count": info.layer_count,
        "user_len": info.user.len(),
        "created_len": info.created.as_ref().map(String::len),
        "age_seconds": info.age_seconds,
        "compressed_size": info.compressed_size,
        "uncompressed_size": info.uncompressed_size,
        "truncated": info.truncated,
    })
}

flavor_kit::export_flavor!(Hostile);
