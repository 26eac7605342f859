//! `flavorbox bench`: what an isolated flavor call costs, measured in one
//! run against the baselines that give it meaning: the same logic called as
//! a native function (the physical limit) and run in one short-lived native
//! process per call (what people reach for to isolate untrusted code).
//!
//! Every isolated call goes through [`Sandbox::validate_config`] or
//! [`Sandbox::prepare_image_push`], the code path the CLI and the server
//! use, on a sandbox configured as the application configures it: a fresh
//! instance per call. Figures are medians (and a p99) over many calls;
//! nothing here is a timed test. See docs/performance.md.

pub mod native;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use flavorbox_grammar::Reference;
use flavorbox_sandbox::measure::ProcessMemory;
pub use flavorbox_sandbox::measure::distinct_variant;
use flavorbox_sandbox::{CallContext, LoadedFlavor, Sandbox, SandboxConfig, Validation};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Target {
    /// The flavor's name.
    pub name: String,
    /// Its component bytes.
    pub bytes: Vec<u8>,
    /// Its logic compiled natively (the built-in flavors only).
    pub native: Option<native::NativeValidate>,
    /// The config to validate; none: one made from the schema's examples.
    pub config: Option<String>,
}

/// The benchmark's figures. `--json` prints exactly these keys.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Cold compile of the component, ms.
    pub compile_ms: f64,
    /// Load of the precompiled artifact from the code cache in a fresh engine, ms.
    pub cached_load_ms: f64,
    /// `validate-config`, fresh instance per call, µs.
    pub isolated_call_p50_us: f64,
    /// The same, 99th percentile, µs.
    pub isolated_call_p99_us: f64,
    /// The WIT version the flavor was built for.
    pub wit_version: String,
    /// `prepare-image-push`, fresh instance per call, µs: the call without
    /// the image, as every 0.1 flavor (and a 0.2 check by name) is called.
    pub prepare_call_p50_us: f64,
    /// `prepare-image-push` with a typical image's info handed in (WIT 0.2,
    /// a flavor that asks for `image-info`), µs; none for other flavors.
    pub prepare_with_info_call_p50_us: Option<f64>,
    /// Building that info from an image config (bounding it, dropping env
    /// values), µs: the host's share of reading an image besides I/O.
    pub image_info_build_us: f64,
    /// `validate-config` repeated on one instance (comparison only), µs.
    pub warm_call_p50_us: f64,
    /// The same logic as a native function call, µs (built-in flavors only).
    pub native_call_p50_us: Option<f64>,
    /// One short-lived native process per validation, µs (built-in flavors only).
    pub process_call_p50_us: Option<f64>,
    /// Isolated calls per second on all cores.
    pub throughput_calls_per_s: f64,
    /// Isolated calls per second on one thread.
    pub throughput_one_thread_calls_per_s: f64,
    /// Isolated call p50 over native call p50.
    pub sandbox_over_native: Option<f64>,
    /// Process-per-call p50 over isolated call p50.
    pub process_over_sandbox: Option<f64>,
    /// `--scale` figures.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
}

/// `--scale`: memory per loaded flavor, call cost with many flavors loaded
/// and with large configs.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    /// Resident memory per loaded flavor, KiB (1000 loaded).
    pub rss_per_flavor_kib: f64,
    /// Reserved virtual memory per loaded flavor, KiB (1000 loaded).
    pub virtual_per_flavor_kib: f64,
    /// Isolated call p50 with 1 flavor loaded, µs.
    pub isolated_call_p50_us_1_flavor: f64,
    /// Isolated call p50 over 100 distinct loaded flavors, µs.
    pub isolated_call_p50_us_100_flavors: f64,
    /// Isolated call p50 over 1000 distinct loaded flavors, µs.
    pub isolated_call_p50_us_1000_flavors: f64,
    /// Isolated call p50 with a 100-byte config, µs.
    pub config_100b_call_p50_us: f64,
    /// Isolated call p50 with a 10 KB config, µs.
    pub config_10kb_call_p50_us: f64,
    /// Isolated call p50 with a 1 MB config, µs.
    pub config_1mb_call_p50_us: f64,
}

/// How many distinct flavors `--scale` loads.
pub const SCALE_FLAVORS: usize = 1000;

/// Runs the benchmark. `config` is the sandbox configuration the
/// application would use (limits, grants, pool size); the benchmark gives
/// it code caches of its own in temporary directories. `process_exe` is the
/// native one-validation-per-process binary.
pub fn run(
    target: &Target,
    config: &SandboxConfig,
    process_exe: Option<&Path>,
    scale: bool,
) -> anyhow::Result<Report> {
    let cache = tempfile::tempdir()?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let cached = SandboxConfig {
        code_cache_dir: Some(cache.path().to_path_buf()),
        code_cache_key: key,
        ..config.clone()
    };
    let uncached = SandboxConfig {
        code_cache_dir: None,
        ..config.clone()
    };

    // Cold compiles, each in a fresh engine with no cache.
    let compile = repeat(3, || {
        let sandbox = Sandbox::new(uncached.clone())?;
        let started = Instant::now();
        sandbox.load(&target.bytes)?;
        Ok(started.elapsed())
    })?;
    // The first load through the cache compiles and stores the artifact;
    // each later one is a fresh engine loading it.
    Sandbox::new(cached.clone())?.load(&target.bytes)?;
    let cached_load = repeat(15, || {
        let sandbox = Sandbox::new(cached.clone())?;
        let started = Instant::now();
        sandbox.load(&target.bytes)?;
        Ok(started.elapsed())
    })?;

    let sandbox = Arc::new(Sandbox::new(cached.clone())?);
    let flavor = sandbox.load(&target.bytes)?;
    let config_json = match &target.config {
        Some(c) => c.clone(),
        None => sample_config(&flavor),
    };
    let verdict = validate(&sandbox, &flavor, &config_json)?;
    let image = sample_image(&verdict);
    let push_config = match &verdict {
        Ok(map) => serde_json::to_string(map)?,
        Err(_) => config_json.clone(),
    };

    let isolated = sample(Duration::from_millis(1500), 200_000, || {
        validate(&sandbox, &flavor, &config_json).map(drop)
    })?;
    let prepare = sample(Duration::from_millis(800), 100_000, || {
        sandbox
            .prepare_image_push(&flavor, &CallContext::default(), &push_config, &image, None)
            .map(drop)
            .map_err(anyhow::Error::from)
    })?;
    let facts = sample_facts(unix_now());
    let prepare_with_info = if flavor.wants_image_info() {
        let times = sample(Duration::from_millis(800), 100_000, || {
            sandbox
                .prepare_image_push(
                    &flavor,
                    &CallContext::default(),
                    &push_config,
                    &image,
                    Some(&facts),
                )
                .map(drop)
                .map_err(anyhow::Error::from)
        })?;
        Some(percentile_us(&times, 50))
    } else {
        None
    };
    let image_info_build = image_info_build_us();
    let (warm, warm_verdict) = sandbox.warm_validate_timings(&flavor, &config_json, 20_000)?;
    same_verdict("a warm call", &verdict, &warm_verdict)?;
    let warm = median_us(&warm[100..]);

    let native = match target.native {
        Some(f) => {
            let native_verdict = f(&config_json);
            if native_verdict.is_ok() != verdict.is_ok() {
                anyhow::bail!(
                    "the native build of `{}` and the component disagree on the config",
                    target.name
                );
            }
            Some(native_p50_us(f, &config_json))
        }
        None => None,
    };
    let process = match (target.native, process_exe) {
        (Some(_), Some(exe)) => Some(process_p50_us(exe, &target.name, &config_json)?),
        _ => None,
    };

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all_cores = throughput(&sandbox, &flavor, &config_json, cores)?;
    let throughput_one = throughput(&sandbox, &flavor, &config_json, 1)?;

    let isolated_p50 = percentile_us(&isolated, 50);
    let scale = if scale {
        Some(measure_scale(target, &cached, &config_json, &push_config)?)
    } else {
        None
    };
    Ok(Report {
        compile_ms: median_us(&compile) / 1000.0,
        cached_load_ms: median_us(&cached_load) / 1000.0,
        isolated_call_p50_us: isolated_p50,
        isolated_call_p99_us: percentile_us(&isolated, 99),
        wit_version: flavor.metadata().wit_version.clone(),
        prepare_call_p50_us: percentile_us(&prepare, 50),
        prepare_with_info_call_p50_us: prepare_with_info,
        image_info_build_us: image_info_build,
        warm_call_p50_us: warm,
        native_call_p50_us: native,
        process_call_p50_us: process,
        throughput_calls_per_s: all_cores,
        throughput_one_thread_calls_per_s: throughput_one,
        sandbox_over_native: native.map(|n| isolated_p50 / n),
        process_over_sandbox: process.map(|p| p / isolated_p50),
        scale,
    })
}

fn validate(sandbox: &Sandbox, flavor: &LoadedFlavor, config: &str) -> anyhow::Result<Validation> {
    Ok(sandbox
        .validate_config(flavor, &CallContext::default(), config)?
        .value)
}

fn same_verdict(what: &str, a: &Validation, b: &Validation) -> anyhow::Result<()> {
    if a.is_ok() != b.is_ok() {
        anyhow::bail!("{what} gave another verdict than an isolated call");
    }
    Ok(())
}

/// A config made of the first example of each required property in the
/// flavor's schema (every built-in flavor gives `uri` examples).
fn sample_config(flavor: &LoadedFlavor) -> String {
    let schema = &flavor.metadata().config_schema;
    let mut config = serde_json::Map::new();
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    for name in required.iter().filter_map(|v| v.as_str()) {
        let example = schema["properties"][name]["examples"][0].clone();
        let value = if example.is_null() {
            serde_json::Value::String("localhost:5000".into())
        } else {
            example
        };
        config.insert(name.to_string(), value);
    }
    serde_json::Value::Object(config).to_string()
}

/// An image inside the validated registry, or a local one.
fn sample_image(verdict: &Validation) -> Reference {
    let uri = match verdict {
        Ok(map) => map.get("uri").and_then(|v| v.as_str()).unwrap_or_default(),
        Err(_) => "",
    };
    Reference::parse(&format!("{uri}/bench/app:1.0"))
        .or_else(|_| Reference::parse("localhost:5000/bench/app:1.0"))
        .expect("a valid reference")
}

/// The host's clock in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The config of a typical application image: a dozen labels, a few env
/// variables, ports, an entrypoint and eight layers.
const SAMPLE_CONFIG: &str = r#"{
  "architecture": "amd64", "os": "linux", "created": "2026-11-20T10:00:00Z",
  "config": {
    "User": "app", "ExposedPorts": {"8080/tcp": {}, "9090/tcp": {}},
    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "PYTHONUNBUFFERED=1",
            "APP_HOME=/app", "MODEL_DIR=/models", "API_TOKEN=not-for-flavors"],
    "Entrypoint": ["/usr/local/bin/python", "-m", "trainer"], "Cmd": ["--epochs", "10"],
    "Labels": {
      "org.opencontainers.image.source": "https://github.com/example/trainer",
      "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
      "org.opencontainers.image.version": "1.4.2", "org.opencontainers.image.vendor": "Example",
      "org.opencontainers.image.title": "trainer", "org.opencontainers.image.licenses": "Apache-2.0",
      "org.opencontainers.image.created": "2026-11-20T10:00:00Z", "team": "ml", "tier": "batch",
      "maintainer": "ml@example.com", "com.example.cost-center": "1234", "com.example.pii": "none"
    }
  },
  "rootfs": {"type": "layers", "diff_ids": []}
}"#;

/// The typical image's info, as the host hands it to a flavor.
fn sample_facts(now: i64) -> flavorbox_grammar::ImageFacts {
    let config = flavorbox_grammar::ImageConfig::parse(SAMPLE_CONFIG.as_bytes())
        .expect("the sample config parses");
    let layers: Vec<flavorbox_grammar::LayerFacts> = (0..8u64)
        .map(|i| flavorbox_grammar::LayerFacts {
            digest: format!("sha256:{i:064x}"),
            compressed_size: Some(10_000_000 + i),
            uncompressed_size: Some(30_000_000 + i),
        })
        .collect();
    flavorbox_grammar::ImageFacts::from_config("sha256:0", &config, &layers, now)
}

/// The median cost of parsing and bounding the typical image's config, µs.
fn image_info_build_us() -> f64 {
    let now = unix_now();
    let mut times = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        std::hint::black_box(sample_facts(std::hint::black_box(now)));
        times.push(started.elapsed());
    }
    median_us(&times)
}

/// Runs `f` `n` times, timing each run.
fn repeat(
    n: usize,
    mut f: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Vec<Duration>> {
    (0..n).map(|_| f()).collect()
}

/// Times calls of `f` (after a warm-up) until `budget` has passed or `max` calls.
fn sample(
    budget: Duration,
    max: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..200 {
        f()?;
    }
    let mut times = Vec::with_capacity(max.min(1 << 16));
    let end = Instant::now() + budget;
    while times.len() < max && Instant::now() < end {
        let started = Instant::now();
        f()?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// The native call's median, timed over batches of 100 calls (a single call
/// is too short to time on its own without the clock dominating).
fn native_p50_us(f: native::NativeValidate, config: &str) -> f64 {
    const BATCH: u32 = 100;
    for _ in 0..1000 {
        std::hint::black_box(f(std::hint::black_box(config)).is_ok());
    }
    let mut batches = Vec::with_capacity(300);
    for _ in 0..300 {
        let started = Instant::now();
        for _ in 0..BATCH {
            std::hint::black_box(f(std::hint::black_box(config)).is_ok());
        }
        batches.push(started.elapsed() / BATCH);
    }
    median_us(&batches)
}

/// One short-lived process per validation: spawn, hand it the config on
/// stdin, read its verdict from stdout.
fn process_p50_us(exe: &Path, name: &str, config: &str) -> anyhow::Result<f64> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let once = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut child = Command::new(exe)
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", exe.display()))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(config.as_bytes())?;
        let output = child.wait_with_output()?;
        let elapsed = started.elapsed();
        if output.stdout.is_empty() || output.status.code().is_none_or(|c| c > 1) {
            anyhow::bail!("{} gave no verdict ({})", exe.display(), output.status);
        }
        Ok(elapsed)
    };
    for _ in 0..10 {
        once()?;
    }
    let times = repeat(200, once)?;
    Ok(median_us(&times))
}

/// Isolated calls per second with `threads` threads sharing one sandbox.
fn throughput(
    sandbox: &Sandbox,
    flavor: &LoadedFlavor,
    config: &str,
    threads: usize,
) -> anyhow::Result<f64> {
    let budget = Duration::from_millis(1500);
    let counts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<(u64, Duration)> {
                    for _ in 0..100 {
                        let _verdict = validate(sandbox, flavor, config)?;
                    }
                    let started = Instant::now();
                    let mut calls = 0u64;
                    while started.elapsed() < budget {
                        let _verdict = validate(sandbox, flavor, config)?;
                        calls += 1;
                    }
                    Ok((calls, started.elapsed()))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("benchmark thread panicked"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok(counts
        .iter()
        .map(|(calls, took)| *calls as f64 / took.as_secs_f64())
        .sum())
}

/// `--scale`: loads [`SCALE_FLAVORS`] distinct flavors (the target with a
/// distinct custom section each, so each has its own content hash, its own
/// compiled code in memory and its own instance template), then calls them.
fn measure_scale(
    target: &Target,
    config: &SandboxConfig,
    config_json: &str,
    normalised: &str,
) -> anyhow::Result<Scale> {
    let config = SandboxConfig {
        code_cache_dir: None,
        max_loaded_flavors: SCALE_FLAVORS + 1,
        ..config.clone()
    };
    let sandbox = Sandbox::new(config)?;
    let code = sandbox.precompile(&target.bytes)?;
    let variants: Vec<Vec<u8>> = (0..SCALE_FLAVORS)
        .map(|i| distinct_variant(&target.bytes, i))
        .collect();
    let calls = |flavors: &[Arc<LoadedFlavor>]| -> anyhow::Result<f64> {
        let mut next = 0usize;
        let times = sample(Duration::from_millis(600), 50_000, || {
            // A stride through the loaded flavors, so that consecutive calls
            // rarely hit the same one.
            next = (next + 7919) % flavors.len();
            validate(&sandbox, &flavors[next], config_json).map(drop)
        })?;
        Ok(percentile_us(&times, 50))
    };

    let before = ProcessMemory::read();
    let mut loaded = Vec::with_capacity(SCALE_FLAVORS);
    let mut p50 = Vec::new();
    for (i, variant) in variants.iter().enumerate() {
        loaded.push(sandbox.load_from(variant, Some(&code))?);
        if [1, 100].contains(&(i + 1)) {
            p50.push(calls(&loaded)?);
        }
    }
    let after = ProcessMemory::read();
    p50.push(calls(&loaded)?);
    if sandbox.loaded_count() != SCALE_FLAVORS {
        anyhow::bail!(
            "only {} of {SCALE_FLAVORS} flavors stayed loaded",
            sandbox.loaded_count()
        );
    }
    let per_flavor = |a: u64, b: u64| b.saturating_sub(a) as f64 / SCALE_FLAVORS as f64;

    let flavor = &loaded[0];
    let mut sized = Vec::new();
    for (size, budget) in [(100, 400), (10_000, 400), (1_000_000, 1500)] {
        let padded = pad_config(normalised, size);
        let times = sample(Duration::from_millis(budget), 20_000, || {
            validate(&sandbox, flavor, &padded).map(drop)
        })?;
        sized.push(percentile_us(&times, 50));
    }
    Ok(Scale {
        rss_per_flavor_kib: per_flavor(before.rss_kib, after.rss_kib),
        virtual_per_flavor_kib: per_flavor(before.virtual_kib, after.virtual_kib),
        isolated_call_p50_us_1_flavor: p50[0],
        isolated_call_p50_us_100_flavors: p50[1],
        isolated_call_p50_us_1000_flavors: p50[2],
        config_100b_call_p50_us: sized[0],
        config_10kb_call_p50_us: sized[1],
        config_1mb_call_p50_us: sized[2],
    })
}

/// A JSON object text padded with whitespace to `size` bytes (or left as
/// it is when already longer): the same config, more to copy and parse.
fn pad_config(config: &str, size: usize) -> String {
    let Some(body) = config.strip_suffix('}') else {
        return config.to_string();
    };
    let padding = size.saturating_sub(config.len());
    let mut out = String::with_capacity(size);
    out.push_str(body);
    out.extend(std::iter::repeat_n(' ', padding));
    out.push('}');
    out
}

fn median_us(times: &[Duration]) -> f64 {
    percentile_us(times, 50)
}

fn percentile_us(times: &[Duration], pct: usize) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let i = (sorted.len() * pct / 100).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

/// The process-per-call binary next to the running executable, if present.
pub fn process_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.with_file_name(format!(
        "flavorbox-native-flavor{}",
        std::env::consts::EXE_SUFFIX
    ));
    candidate.is_file().then_some(candidate)
}

/// The built-in flavor named `name` as a benchmark target.
pub fn builtin_target(name: &str) -> Option<Target> {
    flavorbox_builtin::component(name).map(|bytes| Target {
        name: name.to_string(),
        bytes: bytes.to_vec(),
        native: native::validate_fn(name),
        config: None,
    })
}
