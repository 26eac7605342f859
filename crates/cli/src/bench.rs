//! `flavorbox bench`: runs [`flavorbox_bench`] on a built-in flavor or one
//! registered in the local state, and prints the figures as a table or,
//! with `--json`, as one object.

use std::path::PathBuf;

use super::output::{print_json, print_table};
use super::{BenchArgs, LimitArgs};
use flavorbox_app::{App, AppConfig, Tenant};
use flavorbox_bench::{self as bench, Report, Target};

pub(crate) async fn bench(
    limits: &LimitArgs,
    home: PathBuf,
    args: BenchArgs,
) -> anyhow::Result<()> {
    let config = limits.config(home)?;
    let mut target = match (&args.wasm, bench::builtin_target(&args.flavor)) {
        (Some(path), _) => file_target(path)?,
        (None, Some(target)) => target,
        (None, None) => registered_target(config.clone(), &args.flavor).await?,
    };
    target.config = args.config;
    let sandbox_config = App::sandbox_config(&config);
    let scale = args.scale;
    let name = target.name.clone();
    let report = tokio::task::spawn_blocking(move || {
        bench::run(
            &target,
            &sandbox_config,
            bench::process_exe().as_deref(),
            scale,
        )
    })
    .await??;
    let archive = tokio::task::spawn_blocking(|| archive_read(&limits_for_bench())).await??;
    if args.out.json {
        let mut value = serde_json::to_value(&report)?;
        value["image_info_archive_32mib_ms"] = archive.facts_ms.into();
        value["sha256_32mib_ms"] = archive.sha256_ms.into();
        value["image_info_archive_over_sha256"] = (archive.facts_ms / archive.sha256_ms).into();
        return print_json(&value);
    }
    print_report(&name, &report, &archive);
    Ok(())
}

/// What reading an image's info from an uploaded archive costs (the
/// server's share for a flavor that asks for `image-info`), against the
/// floor of any reader that checks what it reads: one sha256 pass over the
/// same bytes, measured in the same run.
struct ArchiveRead {
    /// Median of `archive_facts` on a 32 MiB `docker save` tarball, ms.
    facts_ms: f64,
    /// Median of sha256 over the same layer bytes, ms.
    sha256_ms: f64,
}

/// The server's default archive limits, large enough for the sample.
fn limits_for_bench() -> flavorbox_app::ArchiveLimits {
    AppConfig::builder(std::env::temp_dir())
        .build()
        .map(|c| c.archive_limits())
        .unwrap_or_else(|_| unreachable!("the default config is valid"))
}

fn archive_read(limits: &flavorbox_app::ArchiveLimits) -> anyhow::Result<ArchiveRead> {
    use sha2::{Digest, Sha256};
    use std::time::Instant;
    const LAYER: usize = 32 << 20;
    // Incompressible, so nothing is cheaper than it would be for real.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let content: Vec<u8> = (0..LAYER)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let append = |builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, bytes)
    };
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, "data.bin", &content)?;
    let layer = layer.into_inner()?;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&layer)));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"User": "app", "Labels": {"team": "ml"}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let config_name = format!("{}.json", hex(&Sha256::digest(&config)));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": ["bench/app:1"], "Layers": ["layer/layer.tar"],
    }]))?;
    let mut archive = tar::Builder::new(Vec::new());
    append(&mut archive, "layer/layer.tar", &layer)?;
    append(&mut archive, &config_name, &config)?;
    append(&mut archive, "manifest.json", &manifest)?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), archive.into_inner()?)?;
    let now = 1_767_225_600;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut facts = Vec::new();
    let mut sha = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        flavorbox_app::archive_facts(file.path(), limits, now)?;
        facts.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        std::hint::black_box(Sha256::digest(std::hint::black_box(&layer)));
        sha.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(ArchiveRead {
        facts_ms: median(facts),
        sha256_ms: median(sha),
    })
}

/// A component file, measured without registering it; named by its path
/// (its metadata's name may be a built-in's, as a 0.1 build of one is).
fn file_target(path: &std::path::Path) -> anyhow::Result<Target> {
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the component {}: {e}; build it first (`flavorbox flavor build` prints its path)",
            path.display()
        )
    })?;
    Ok(Target {
        name: path.display().to_string(),
        bytes,
        native: None,
        config: None,
    })
}

/// A flavor registered in the local state, by name.
async fn registered_target(config: AppConfig, name: &str) -> anyhow::Result<Target> {
    let home = config.home().to_path_buf();
    let app = App::open(config).await?;
    let Some(bytes) = app.tenant(&Tenant::local()).flavor_component(name).await? else {
        anyhow::bail!(
            "no flavor named `{name}`: name a built-in flavor ({}) or one registered in {} (`flavorbox flavor list`)",
            bench::native::NAMES.join(", "),
            home.display()
        );
    };
    Ok(Target {
        name: name.to_string(),
        bytes,
        native: None,
        config: None,
    })
}

fn print_report(name: &str, r: &Report, archive: &ArchiveRead) {
    let us = |v: f64| format!("{v:.1} µs");
    let ms = |v: f64| format!("{v:.2} ms");
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| {
        v.map_or_else(|| "n/a (no native build)".to_string(), f)
    };
    let ratio = |v: f64| format!("{v:.1}×");
    let rate = |v: f64| format!("{v:.0} calls/s");
    let mut rows = vec![
        ("compile_ms", ms(r.compile_ms)),
        ("cached_load_ms", ms(r.cached_load_ms)),
        ("isolated_call_p50_us", us(r.isolated_call_p50_us)),
        ("isolated_call_p99_us", us(r.isolated_call_p99_us)),
        ("wit_version", r.wit_version.clone()),
        ("prepare_call_p50_us", us(r.prepare_call_p50_us)),
        (
            "prepare_with_info_call_p50_us",
            r.prepare_with_info_call_p50_us
                .map_or_else(|| "n/a (the flavor does not ask for image-info)".into(), us),
        ),
        ("image_info_build_us", us(r.image_info_build_us)),
        ("image_info_archive_32mib_ms", ms(archive.facts_ms)),
        ("sha256_32mib_ms", ms(archive.sha256_ms)),
        (
            "image_info_archive_over_sha256",
            ratio(archive.facts_ms / archive.sha256_ms),
        ),
        ("warm_call_p50_us", us(r.warm_call_p50_us)),
        ("native_call_p50_us", opt(r.native_call_p50_us, &us)),
        ("process_call_p50_us", opt(r.process_call_p50_us, &us)),
        ("throughput_calls_per_s", rate(r.throughput_calls_per_s)),
        (
            "throughput_one_thread_calls_per_s",
            rate(r.throughput_one_thread_calls_per_s),
        ),
        ("sandbox_over_native", opt(r.sandbox_over_native, &ratio)),
        ("process_over_sandbox", opt(r.process_over_sandbox, &ratio)),
    ];
    if let Some(s) = &r.scale {
        let kib = |v: f64| format!("{v:.0} KiB");
        rows.extend([
            ("rss_per_flavor_kib", kib(s.rss_per_flavor_kib)),
            ("virtual_per_flavor_kib", kib(s.virtual_per_flavor_kib)),
            (
                "isolated_call_p50_us_1_flavor",
                us(s.isolated_call_p50_us_1_flavor),
            ),
            (
                "isolated_call_p50_us_100_flavors",
                us(s.isolated_call_p50_us_100_flavors),
            ),
            (
                "isolated_call_p50_us_1000_flavors",
                us(s.isolated_call_p50_us_1000_flavors),
            ),
            ("config_100b_call_p50_us", us(s.config_100b_call_p50_us)),
            ("config_10kb_call_p50_us", us(s.config_10kb_call_p50_us)),
            ("config_1mb_call_p50_us", us(s.config_1mb_call_p50_us)),
        ]);
    }
    println!("flavor `{name}`, one run:");
    print_table(
        &["FIGURE", "VALUE"],
        rows.into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
    );
}
