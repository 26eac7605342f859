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
    "image_info_build_us",
    "image_info_archive_32mib_ms",
    "sha256_32mib_ms",
    "image_info_archive_over_sha256",
];

/// Keys whose value is not a measured number: the WIT version, and the
/// prepare call with the image's info, measured only for a flavor that asks
/// for it (`null` otherwise).
const OTHER_KEYS: &[&str] = &["wit_version", "prepare_with_info_call_p50_us"];

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
    let mut expected: Vec<&str> = KEYS
        .iter()
        .chain(SCALE_KEYS)
        .chain(OTHER_KEYS)
        .copied()
        .collect();
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
    assert!(close(
        measured(report, "image_info_archive_over_sha256"),
        measured(report, "image_info_archive_32mib_ms") / measured(report, "sha256_32mib_ms")
    ));
    // `github` is a 0.2 flavor that does not ask to see the image.
    assert_eq!(report["wit_version"], "0.2.0");
    assert_eq!(report["prepare_with_info_call_p50_us"], Value::Null);
}

#[test]
fn bench_measures_the_prepare_call_with_the_image_and_a_0_1_component_file() {
    let home = tempfile::tempdir().expect("tempdir");
    // `policy` asks for `image-info`: its prepare call with it is measured.
    let (ok, stdout, stderr) = run_cli(
        home.path(),
        &["bench", "--json", "--flavor", "policy"],
        None,
        &[],
    );
    assert!(ok, "bench failed: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");
    let report = report.as_object().expect("an object");
    measured(report, "prepare_with_info_call_p50_us");
    measured(report, "prepare_call_p50_us");
    assert_eq!(report["wit_version"], "0.2.0");

    // A component file, unregistered: the `default` flavor built for 0.1.
    let wasm = flavorbox_tests::guest_path(&flavorbox_tests::builtin_v0_1("default"));
    let (ok, stdout, stderr) = run_cli(
        home.path(),
        &["bench", "--json", "--wasm", wasm.to_str().expect("utf-8")],
        None,
        &[],
    );
    assert!(ok, "bench --wasm failed: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");
    let report = report.as_object().expect("an object");
    assert_eq!(report["wit_version"], "0.1.0");
    measured(report, "prepare_call_p50_us");
    measured(report, "isolated_call_p50_us");
    // Nothing was registered to measure it.
    let (ok, listed, _) = run_cli(home.path(), &["flavor", "list", "--json"], None, &[]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&listed).expect("a list");
    assert_eq!(
        listed.as_array().expect("array").len(),
        flavorbox_tests::BUILTIN_NAMES.len()
    );

    // A file that is not there says so.
    let (ok, _, stderr) = run_cli(
        home.path(),
        &["bench", "--wasm", "/nonexistent/flavor.wasm"],
        None,
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("cannot read the component /nonexistent/flavor.wasm"),
        "{stderr}"
    );
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
