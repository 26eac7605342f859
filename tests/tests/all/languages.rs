//! Hostile flavors in Python and JavaScript (tests/guests-py/hostile,
//! tests/guests-js/hostile, built from source with the pinned toolchains)
//! through the real sandbox: an endless loop, a memory bomb, deep recursion,
//! an uncaught exception, a huge return value and attempts to reach files,
//! sockets and HTTP are contained with the same typed errors as the Rust
//! hostile guest (tests/tests/all/sandbox.rs), the host carries on, and an
//! exception's message reaches the user bounded and escaped.

use std::sync::Arc;
use std::time::Duration;

use flavorbox_sandbox::{CallContext, CallErrorKind, Limits, LoadedFlavor, Sandbox};
use flavorbox_tests::polyglot::{self, Lang};

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
