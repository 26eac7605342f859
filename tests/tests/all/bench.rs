//! `flavorbox bench`: every figure is printed, measured, under its key. The
//! figures' sizes are the benchmark's business (docs/performance.md), never
//! a test's: nothing here is timed.

use flavorbox_tests::run_cli;
use serde_json::Value;

const KEYS: &[&str] = &[
    "compile_ms",
    "cached_load_ms",
    "isolated_call_p50_us",
    "isolated_call_p99_us",
    "prepare_call_p50_us",
    "warm_call_p50_us",
    "native_call_p50_us",
    "process_call_p50_us",
    "throughput_calls_per_s",
    "throughput_one_thread_calls_per_s",
    "sandbox_over_native",
    "process_over_sandbox",
];

const SCALE_KEYS: &[&str] = &[
    "rss_per_flavor_kib",
    "virtual_per_flavor_kib",
    "isolated_call_p50_us_1_flavor",
    "isolated_call_p50_us_100_flavors",
    "isolated_call_p50_us_1000_flavors",
    "config_100b_call_p50_us",
    "config_10kb_call_p50_us",
    "config_1mb_call_p50_us",
];

fn measured(report: &serde_json::Map<String, Value>, key: &str) -> f64 {
    let value = report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number: {}", report[key]));
    assert!(
        value.is_finite() && value > 0.0,
        "`{key}` = {value} is not a measured value"
    );
    value
}

#[test]
fn bench_json_prints_exactly_its_keys_each_measured() {
    let home = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) = run_cli(
        home.path(),
        &["bench", "--json", "--scale", "--flavor", "github"],
        None,
        &[],
    );
    assert!(ok, "bench failed: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");
    let report = report.as_object().expect("an object");
    let mut expected: Vec<&str> = KEYS.iter().chain(SCALE_KEYS).copied().collect();
    expected.sort_unstable();
    let mut got: Vec<&str> = report.keys().map(String::as_str).collect();
    got.sort_unstable();
    assert_eq!(got, expected);
    for key in KEYS.iter().chain(SCALE_KEYS) {
        measured(report, key);
    }
    // The ratios are this run's own figures divided, not constants.
    let isolated = measured(report, "isolated_call_p50_us");
    let native = measured(report, "native_call_p50_us");
    let process = measured(report, "process_call_p50_us");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs());
    assert!(close(
        measured(report, "sandbox_over_native"),
        isolated / native
    ));
    assert!(close(
        measured(report, "process_over_sandbox"),
        process / isolated
    ));
}

#[test]
fn bench_of_an_unknown_flavor_names_the_choices() {
    let home = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) = run_cli(home.path(), &["bench", "--flavor", "nope"], None, &[]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("no flavor named `nope`"), "{stderr}");
    assert!(
        stderr.contains("default") && stderr.contains("flavor list"),
        "{stderr}"
    );
}
