//! Hostile flavors in Python and JavaScript (tests/guests-py/hostile,
//! tests/guests-js/hostile, built from source with the pinned toolchains)
//! through the real sandbox: an endless loop, a memory bomb, deep recursion,
//! an uncaught exception, a huge return value and attempts to reach files,
//! sockets and HTTP are contained with the same typed errors as the Rust
//! hostile guest (tests/tests/all/sandbox.rs), the host carries on, and an
//! exception's message reaches the user bounded and escaped.
//!
//! The SDKs' WIT adapters hand WIT 0.2's `image-info` to authors as the SDKs
//! document it (their native tests, with the bindings' shapes), and the
//! guide's image policy examples (sdk/*/policy-example) build, load asking
//! for `image-info`, and decide on what the real sandbox hands them.

use std::sync::Arc;
use std::time::Duration;

use flavorbox_grammar::{ImageFacts, LayerFacts, Platform, Reference};
use flavorbox_sandbox::flavor::{Capability, PushDecision};
use flavorbox_sandbox::{CallContext, CallErrorKind, Limits, LoadedFlavor, Sandbox};
use flavorbox_tests::polyglot::{self, Lang, repo, run_native};

fn sandbox() -> Sandbox {
    Sandbox::new(polyglot::caching_sandbox_config()).expect("sandbox")
}

fn hostile(sandbox: &Sandbox, lang: Lang) -> Arc<LoadedFlavor> {
    let path = polyglot::test_guest(lang, "hostile");
    sandbox
        .load_file(&path)
        .unwrap_or_else(|e| panic!("the {} hostile guest loads: {e}", lang.name()))
}

/// Fuel and memory for an interpreter: enough for a normal call, far from
/// what a runaway one wants; a deadline far beyond what the fuel takes, so
/// fuel and memory errors never race it.
fn limits() -> Limits {
    Limits {
        fuel: 500_000_000,
        timeout: Duration::from_secs(300),
        memory_bytes: 128 << 20,
        ..Limits::default()
    }
}

fn ctx(limits: Limits) -> CallContext {
    CallContext {
        tenant: "t1".into(),
        limits: Some(limits),
        repository_lookup: None,
    }
}

fn mode(m: &str) -> String {
    format!(r#"{{"mode":"{m}"}}"#)
}

/// The typed error of a call that must fail, checked to name the flavor and function.
fn err_kind(sandbox: &Sandbox, flavor: &LoadedFlavor, limits: Limits, m: &str) -> CallErrorKind {
    match sandbox.validate_config(flavor, &ctx(limits), &mode(m)) {
        Ok(o) => panic!("{}: mode {m} should fail, got {:?}", flavor.name(), o.value),
        Err(e) => {
            assert_eq!(e.flavor, flavor.name());
            assert_eq!(e.function, "validate-config");
            e.kind
        }
    }
}

/// A call after a failed one, on the same sandbox, works.
fn assert_next_call_works(sandbox: &Sandbox, flavor: &LoadedFlavor) {
    let out = sandbox
        .validate_config(flavor, &ctx(limits()), &mode("calls"))
        .unwrap_or_else(|e| panic!("{}: the next call fails: {e}", flavor.name()));
    let map = out.value.expect("accepted");
    assert_eq!(
        map["calls"],
        1,
        "{}: state leaked between calls",
        flavor.name()
    );
}

/// Runs `test` against the hostile guest of each language, then a normal
/// call; fails with every language's failure.
fn each_language(test: impl Fn(&Sandbox, &LoadedFlavor, Lang)) {
    let sandbox = sandbox();
    let failures: Vec<String> = Lang::ALL
        .into_iter()
        .filter_map(|lang| {
            let flavor = hostile(&sandbox, lang);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                test(&sandbox, &flavor, lang);
                assert_next_call_works(&sandbox, &flavor);
            }))
            .err()
            .map(|e| {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("{}: {why}", lang.name())
            })
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_call_gets_a_fresh_interpreter() {
    each_language(|sandbox, flavor, _| {
        for _ in 0..3 {
            assert_next_call_works(sandbox, flavor);
        }
    });
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    each_language(|sandbox, flavor, _| {
        let kind = err_kind(sandbox, flavor, limits(), "loop");
        assert_eq!(kind, CallErrorKind::OutOfFuel(limits().fuel));
    });
}

#[test]
fn endless_loop_with_ample_fuel_hits_the_deadline() {
    each_language(|sandbox, flavor, _| {
        let limits = Limits {
            fuel: u64::MAX / 2,
            timeout: Duration::from_millis(300),
            ..limits()
        };
        let kind = err_kind(sandbox, flavor, limits, "loop");
        assert_eq!(kind, CallErrorKind::Timeout(Duration::from_millis(300)));
    });
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    each_language(|sandbox, flavor, _| {
        let limits = Limits {
            fuel: u64::MAX / 2,
            ..limits()
        };
        let kind = err_kind(sandbox, flavor, limits, "alloc");
        assert_eq!(kind, CallErrorKind::MemoryLimit(128 << 20));
    });
}

#[test]
fn deep_recursion_is_stopped_with_a_typed_error() {
    each_language(|sandbox, flavor, lang| {
        let limits = Limits {
            fuel: u64::MAX / 2,
            ..limits()
        };
        let kind = err_kind(sandbox, flavor, limits, "recurse");
        match lang {
            // Past Python's own limit, the interpreter overflows the wasm stack.
            Lang::Python => assert!(matches!(kind, CallErrorKind::StackOverflow(_)), "{kind:?}"),
            // SpiderMonkey stops the recursion itself and ends the call
            // without a value, which componentize-js returns as an empty
            // rejection: the host's contract check calls that bad output.
            Lang::Js => assert_eq!(
                kind,
                CallErrorKind::BadOutput("rejected the config without naming an issue".into())
            ),
        }
    });
}

#[test]
fn uncaught_exception_fails_the_call_and_its_message_reaches_the_user_bounded_and_escaped() {
    each_language(|sandbox, flavor, lang| {
        let message = match lang {
            // As a Rust panic: a trap, with the exception's last line.
            Lang::Python => match err_kind(sandbox, flavor, limits(), "raise") {
                CallErrorKind::Trap(message) => message,
                other => panic!("expected a trap, got {other:?}"),
            },
            // componentize-js turns any exception into a rejection; the kit
            // makes it one with the message (fail closed).
            Lang::Js => {
                let out = sandbox
                    .validate_config(flavor, &ctx(limits()), &mode("raise"))
                    .expect("the call returns");
                let issues = out.value.expect_err("rejected");
                assert_eq!(issues.len(), 1, "{issues:?}");
                assert_eq!(issues[0].field, "");
                issues[0].message.clone()
            }
        };
        println!("{}: {} bytes: {:.300}", lang.name(), message.len(), message);
        assert!(message.contains("on purpose"), "{message:.2000}");
        assert!(message.contains("Error: hostile"), "{message:.2000}");
        assert!(!message.chars().any(char::is_control), "{message:.2000}");
        assert!(message.contains("[2J"), "{message:.2000}");
        assert!(message.len() < 4096, "{} bytes", message.len());
    });
}

#[test]
fn huge_return_value_is_bad_output() {
    each_language(|sandbox, flavor, _| {
        // Building 4 MiB of JSON in an interpreter takes more than a normal call's fuel.
        let limits = Limits {
            fuel: u64::MAX / 2,
            ..limits()
        };
        let kind = err_kind(sandbox, flavor, limits, "big-output");
        assert!(matches!(kind, CallErrorKind::BadOutput(_)), "{kind:?}");
    });
}

#[test]
fn files_sockets_http_environment_and_clock_are_denied() {
    each_language(|sandbox, flavor, lang| {
        let out = sandbox
            .validate_config(flavor, &ctx(limits()), &mode("probe"))
            .unwrap_or_else(|e| panic!("{}: probe runs: {e}", lang.name()));
        let seen = out.value.expect("the probe returns what it saw");
        println!("{}: {seen:?}", lang.name());
        assert_eq!(seen["wall_clock_secs"], 0, "{seen:?}");
        match lang {
            Lang::Python => {
                assert_eq!(seen["env"], serde_json::json!([]), "{seen:?}");
                assert_eq!(seen["args"], serde_json::json!([]), "{seen:?}");
                assert_eq!(seen["read_dir_root"], false, "{seen:?}");
                assert_eq!(seen["read_etc_passwd"], false, "{seen:?}");
                assert_eq!(seen["write_file"], false, "{seen:?}");
                assert_eq!(seen["tcp_connect"], false, "{seen:?}");
                let http = seen["http"].as_str().expect("text");
                assert!(http.starts_with("refused: "), "{http}");
            }
            Lang::Js => {
                assert_eq!(seen["has_process"], false, "{seen:?}");
                assert_eq!(seen["has_require"], false, "{seen:?}");
            }
        }
    });
}

#[test]
fn prints_are_captured_as_log_lines() {
    each_language(|sandbox, flavor, lang| {
        let out = sandbox
            .validate_config(flavor, &ctx(limits()), &mode("print"))
            .unwrap_or_else(|e| panic!("{}: print runs: {e}", lang.name()));
        let lines: Vec<_> = out
            .logs
            .iter()
            .map(|l| (l.level.as_str(), l.message.as_str()))
            .collect();
        assert!(
            lines.contains(&("stdout", "hello from stdout")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&("stderr", "hello from stderr")),
            "{lines:?}"
        );
    });
}

#[test]
fn repository_lookup_needs_a_grant() {
    each_language(|sandbox, flavor, lang| {
        let out = sandbox
            .validate_config(flavor, &ctx(limits()), &mode("lookup"))
            .unwrap_or_else(|e| panic!("{}: lookup runs: {e}", lang.name()));
        let issues = out.value.expect_err("no grant: the guest gets an error");
        assert_eq!(issues[0].field, "lookup");
        assert!(issues[0].message.contains("not granted"), "{issues:?}");
    });
}

#[test]
fn sdk_adapters_hand_the_image_info_to_authors_and_keep_0_1_flavors_working() {
    // The adapters with the shapes componentize-py and componentize-js give
    // (BigInt sizes, `none` as undefined, labels as a list of records), a
    // flavor written for 0.1 (no `info` parameter), and capability mistakes.
    run_native(
        &repo().join("sdk/python"),
        "python3",
        &["-B", "-m", "unittest", "-v", "test_flavorbox_kit"],
    );
    run_native(
        &repo().join("sdk/js"),
        "node",
        &["--test", "flavorbox-kit.test.js"],
    );
}

/// The guide's image policy example in `lang`, built and loaded.
fn policy_example(sandbox: &Sandbox, lang: Lang) -> Arc<LoadedFlavor> {
    let dir = repo().join("sdk").join(lang.name()).join("policy-example");
    let path = polyglot::guest(lang, &dir);
    sandbox
        .load_file(&path)
        .unwrap_or_else(|e| panic!("the {} policy example loads: {e}", lang.name()))
}

/// An image that meets the policy: labelled, linux/amd64, 80 MiB.
fn good_image() -> ImageFacts {
    let size = 80 << 20;
    ImageFacts {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        config_digest: format!("sha256:{}", "c".repeat(64)),
        created: Some("2026-01-02T03:04:05Z".into()),
        age_seconds: Some(86_400),
        labels: vec![
            ("a".into(), "1".into()),
            (
                "org.opencontainers.image.source".into(),
                "https://git.acme.internal/ml".into(),
            ),
        ],
        env_names: vec!["PATH".into()],
        layer_count: 1,
        layers: vec![LayerFacts {
            digest: format!("sha256:{}", "1".repeat(64)),
            compressed_size: None,
            uncompressed_size: Some(size),
        }],
        uncompressed_size: Some(size),
        ..ImageFacts::default()
    }
}

/// The flavor's decision on `image` with `info`.
fn decide(
    sandbox: &Sandbox,
    flavor: &LoadedFlavor,
    config: &str,
    info: Option<&ImageFacts>,
) -> PushDecision {
    let image = Reference::parse("registry.acme.internal/ml/trainer:1").expect("reference");
    sandbox
        .prepare_image_push(flavor, &ctx(limits()), config, &image, info)
        .unwrap_or_else(|e| panic!("{}: prepare-image-push: {e}", flavor.name()))
        .value
}

fn denial(decision: PushDecision) -> String {
    match decision {
        PushDecision::Deny { reason } => reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn policy_examples_load_asking_for_image_info_and_decide_on_it() {
    let sandbox = sandbox();
    for lang in Lang::ALL {
        let flavor = policy_example(&sandbox, lang);
        let name = lang.name();
        let metadata = flavor.metadata();
        assert_eq!(metadata.name, "acme-policy", "{name}");
        assert_eq!(metadata.capabilities, [Capability::ImageInfo], "{name}");
        assert_eq!(metadata.wit_version, "0.2.0", "{name}");
        assert!(flavor.wants_image_info(), "{name}");

        let config = sandbox
            .validate_config(
                &flavor,
                &ctx(limits()),
                r#"{"uri":"registry.acme.internal/ml"}"#,
            )
            .unwrap_or_else(|e| panic!("{name}: validate-config: {e}"))
            .value
            .unwrap_or_else(|issues| panic!("{name}: {issues:?}"));
        assert_eq!(config["max_size_mib"], 512, "{name}");
        let config = serde_json::Value::Object(config).to_string();

        let image = Reference::parse("registry.acme.internal/ml/trainer:1").expect("reference");
        let outcome = sandbox
            .prepare_image_push(
                &flavor,
                &ctx(limits()),
                &config,
                &image,
                Some(&good_image()),
            )
            .unwrap_or_else(|e| panic!("{name}: prepare-image-push: {e}"));
        assert_eq!(
            outcome.value,
            PushDecision::Approve { warnings: vec![] },
            "{name}"
        );
        assert!(
            outcome.logs.iter().any(|l| l.message
                == "acme-policy: `registry.acme.internal/ml/trainer` meets the image policy"),
            "{name}: {:?}",
            outcome.logs
        );

        // Every broken rule is named; a size past 2^32 arrives whole (a
        // BigInt in JavaScript, made a number by the kit).
        let mut bad = good_image();
        bad.labels.retain(|(k, _)| k == "a");
        bad.platform.architecture = "arm64".into();
        bad.platform.variant = Some("v8".into());
        bad.uncompressed_size = Some(5_000_000_000);
        let reason = denial(decide(&sandbox, &flavor, &config, Some(&bad)));
        for part in [
            "`registry.acme.internal/ml/trainer` breaks ACME's image policy: ",
            "it has no `org.opencontainers.image.source` label (add",
            "it is built for linux/arm64/v8, not linux/amd64",
            "it is 4768.4 MiB, more than the 512 MiB this registry accepts",
        ] {
            assert!(reason.contains(part), "{name}: {part:?} not in {reason}");
        }

        // The compressed size counts when the host knows it; an image the
        // host could not see whole, or measure, is refused.
        let mut compressed = good_image();
        compressed.compressed_size = Some(600 << 20);
        let reason = denial(decide(&sandbox, &flavor, &config, Some(&compressed)));
        assert!(reason.contains("it is 600.0 MiB"), "{name}: {reason}");
        let mut cut = good_image();
        cut.labels.retain(|(k, _)| k == "a");
        cut.truncated = vec!["labels".into()];
        cut.uncompressed_size = None;
        let reason = denial(decide(&sandbox, &flavor, &config, Some(&cut)));
        assert!(
            reason.contains("label among the labels the host read"),
            "{name}: {reason}"
        );
        assert!(
            reason.contains("the host could not measure its size"),
            "{name}: {reason}"
        );

        // A check by name alone: approved, with a warning that the push checks the image.
        match decide(&sandbox, &flavor, &config, None) {
            PushDecision::Approve { warnings } => {
                assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
                assert!(
                    warnings[0].contains("was checked by name only"),
                    "{name}: {warnings:?}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
