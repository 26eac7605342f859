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
    let mut target = match bench::builtin_target(&args.flavor) {
        Some(target) => target,
        None => registered_target(config.clone(), &args.flavor).await?,
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
    if args.out.json {
        return print_json(&report);
    }
    print_report(&name, &report);
    Ok(())
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

fn print_report(name: &str, r: &Report) {
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
        ("prepare_call_p50_us", us(r.prepare_call_p50_us)),
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
