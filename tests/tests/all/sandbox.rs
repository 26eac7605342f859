//! The sandbox against real guest components built from `tests/guests/` and
//! `guest-flavors/`: limits, typed errors, deny-by-default WASI, the
//! `repository-exists` grant and deadline, and loader errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flavorbox_grammar::Reference;
use flavorbox_sandbox::{
    CallContext, CallErrorKind, Limits, LoadError, LookupError, RepositoryLookup, Sandbox,
    SandboxConfig,
};
use flavorbox_tests::guest_bytes;

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).expect("sandbox")
}

fn hostile(sandbox: &Sandbox) -> Arc<flavorbox_sandbox::LoadedFlavor> {
    sandbox
        .load(&guest_bytes("guest-hostile"))
        .expect("hostile guest loads")
}

fn mode(m: &str) -> String {
    format!(r#"{{"mode":"{m}"}}"#)
}

/// Tight fuel and memory; a deadline far beyond what the fuel takes even on
/// a loaded machine, so tests that expect fuel or memory errors never race it.
fn small_limits() -> Limits {
    Limits {
        fuel: 50_000_000,
        timeout: Duration::from_secs(120),
        memory_bytes: 32 << 20,
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

/// How a call in mode `m` ends, the same for the hostile guest built for
/// WIT 0.1 and for 0.2: every hostile case holds for both versions.
fn err_kind(sandbox: &Sandbox, ctx: &CallContext, m: &str) -> CallErrorKind {
    let kinds = [flavorbox_tests::HOSTILE, flavorbox_tests::HOSTILE_V0_2].map(|guest| {
        let flavor = sandbox
            .load(&guest_bytes(guest))
            .expect("hostile guest loads");
        match sandbox.validate_config(&flavor, ctx, &mode(m)) {
            Ok(o) => panic!("{guest}: mode {m} should fail, got {:?}", o.value),
            Err(e) => {
                assert_eq!(e.flavor, "hostile");
                assert_eq!(e.function, "validate-config");
                e.kind
            }
        }
    });
    let [v0_1, v0_2] = kinds;
    assert_eq!(v0_1, v0_2, "mode {m} ends alike for the 0.1 and 0.2 builds");
    v0_1
}

fn assert_next_call_works(sandbox: &Sandbox) {
    let flavor = hostile(sandbox);
    let ok = sandbox
        .validate_config(&flavor, &ctx(small_limits()), &mode("ok"))
        .expect("next call on the same host succeeds");
    assert!(ok.value.is_ok());
}

#[test]
fn every_builtin_flavor_loads_through_the_sandbox() {
    let sandbox = sandbox();
    let mut names: Vec<String> = flavorbox_builtin::components()
        .map(|bytes| {
            sandbox
                .load(bytes)
                .expect("built-in loads")
                .name()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, flavorbox_tests::BUILTIN_NAMES);
}

#[test]
fn trapping_guest_gets_a_typed_trap_and_the_host_carries_on() {
    let sandbox = sandbox();
    let kind = err_kind(&sandbox, &ctx(small_limits()), "trap");
    match &kind {
        // The panic message from the guest's stderr comes with the trap.
        CallErrorKind::Trap(msg) => assert!(msg.contains("panics on purpose"), "{msg}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_next_call_works(&sandbox);
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let sandbox = sandbox();
    let kind = err_kind(&sandbox, &ctx(small_limits()), "loop");
    assert_eq!(kind, CallErrorKind::OutOfFuel(50_000_000));
    assert_next_call_works(&sandbox);
}

#[test]
fn endless_loop_with_ample_fuel_hits_the_deadline() {
    let sandbox = sandbox();
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_millis(300),
        ..small_limits()
    };
    let started = Instant::now();
    let kind = err_kind(&sandbox, &ctx(limits), "loop");
    assert_eq!(kind, CallErrorKind::Timeout(Duration::from_millis(300)));
    // Not a timing gate: only proves the call ended instead of looping on.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_next_call_works(&sandbox);
}

#[test]
fn a_sleeping_guest_is_woken_at_the_deadline() {
    let sandbox = sandbox();
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..small_limits()
    };
    let started = Instant::now();
    let kind = err_kind(&sandbox, &ctx(limits), "sleep");
    assert_eq!(kind, CallErrorKind::Timeout(Duration::from_millis(300)));
    // The guest asked to sleep for an hour: ending at all proves the wait
    // was cut at the deadline (not a timing gate).
    assert!(started.elapsed() < Duration::from_secs(600));
    assert_next_call_works(&sandbox);
}

#[test]
fn guest_text_cannot_inject_terminal_control_characters() {
    let sandbox = sandbox();
    let flavor = hostile(&sandbox);
    let out = sandbox
        .validate_config(&flavor, &ctx(small_limits()), &mode("escape"))
        .expect("call");
    let issues = out.value.expect_err("rejected");
    for text in [&issues[0].field, &issues[0].message, &out.logs[0].message] {
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    assert!(
        issues[0].message.contains("\\r\\n"),
        "{:?}",
        issues[0].message
    );
}

#[test]
fn endless_allocation_hits_the_memory_limit() {
    let sandbox = sandbox();
    let limits = Limits {
        fuel: u64::MAX / 2,
        ..small_limits()
    };
    let kind = err_kind(&sandbox, &ctx(limits), "alloc");
    assert_eq!(kind, CallErrorKind::MemoryLimit(32 << 20));
    assert_next_call_works(&sandbox);
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    let sandbox = sandbox();
    let kind = err_kind(&sandbox, &ctx(small_limits()), "recurse");
    assert!(matches!(kind, CallErrorKind::StackOverflow(_)), "{kind:?}");
    assert_next_call_works(&sandbox);
}

#[test]
fn oversized_or_malformed_output_is_bad_output() {
    let sandbox = sandbox();
    let limits = Limits {
        memory_bytes: 64 << 20,
        ..small_limits()
    };
    for m in ["big-output", "not-json", "no-issues"] {
        let kind = err_kind(&sandbox, &ctx(limits.clone()), m);
        assert!(matches!(kind, CallErrorKind::BadOutput(_)), "{m}: {kind:?}");
    }
    assert_next_call_works(&sandbox);
}

#[test]
fn every_call_gets_a_fresh_instance() {
    let sandbox = sandbox();
    let flavor = hostile(&sandbox);
    for _ in 0..3 {
        let out = sandbox
            .validate_config(&flavor, &ctx(small_limits()), &mode("calls"))
            .expect("call");
        let map = out.value.expect("config accepted");
        assert_eq!(map["calls"], 1, "state leaked between calls");
    }
}

#[test]
fn wasi_is_deny_by_default() {
    let sandbox = sandbox();
    let flavor = hostile(&sandbox);
    let out = sandbox
        .validate_config(&flavor, &ctx(small_limits()), &mode("probe"))
        .expect("probe runs");
    let seen = out.value.expect("probe returns its observations");
    assert_eq!(seen["env"], serde_json::json!([]), "{seen:?}");
    assert_eq!(seen["args"], serde_json::json!([]), "{seen:?}");
    assert_eq!(seen["read_dir_root"], false, "{seen:?}");
    assert_eq!(seen["read_etc_passwd"], false, "{seen:?}");
    assert_eq!(seen["tcp_connect"], false, "{seen:?}");
    assert_eq!(seen["wall_clock_secs"], 0, "{seen:?}");
}

#[test]
fn wasi_http_is_linked_but_every_request_is_refused() {
    let sandbox = sandbox();
    let flavor = hostile(&sandbox);
    let out = sandbox
        .validate_config(&flavor, &ctx(small_limits()), &mode("http"))
        .expect("a guest importing wasi:http loads and runs");
    let seen = out.value.expect("probe returns what happened");
    let http = seen["http"].as_str().expect("text");
    assert!(http.starts_with("refused: "), "{http}");
    assert!(http.contains("HttpRequestDenied"), "{http}");
}

#[test]
fn logs_and_stdio_are_captured_and_bounded() {
    let sandbox = sandbox();
    let flavor = hostile(&sandbox);
    let out = sandbox
        .validate_config(&flavor, &ctx(small_limits()), &mode("print"))
        .expect("print runs");
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

    let limits = Limits {
        max_log_lines: 10,
        max_log_line_bytes: 100,
        fuel: 5_000_000_000,
        ..small_limits()
    };
    let out = sandbox
        .validate_config(&flavor, &ctx(limits), &mode("log-flood"))
        .expect("log flood runs");
    assert_eq!(
        out.logs.len(),
        11,
        "10 lines and one saying how many were dropped"
    );
    assert!(out.logs.iter().all(|l| l.message.len() <= 104));
    assert!(out.logs[10].message.contains("9990 more log lines dropped"));

    // Printing far past the stdio cap is bounded, and the call still succeeds.
    let limits = Limits {
        max_stdio_bytes: 4096,
        fuel: 20_000_000_000,
        ..small_limits()
    };
    let out = sandbox
        .validate_config(&flavor, &ctx(limits), &mode("print-flood"))
        .expect("a flood of prints is not an error");
    assert!(out.value.is_ok());
    let captured: usize = out.logs.iter().map(|l| l.message.len() + 1).sum();
    assert!(captured <= 4096 + 200, "captured {captured} bytes");
    assert!(
        out.logs
            .iter()
            .any(|l| l.message.starts_with("stdout line 0 "))
    );
}

struct FixedLookup(bool, AtomicUsize);

impl RepositoryLookup for FixedLookup {
    fn repository_exists(&self, repository: &str, _timeout: Duration) -> Result<bool, LookupError> {
        assert_eq!(repository, "team/app");
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(self.0)
    }
}

struct HangingLookup;

impl RepositoryLookup for HangingLookup {
    fn repository_exists(&self, _repository: &str, timeout: Duration) -> Result<bool, LookupError> {
        // A hanging registry: the host's own client gives up at the deadline.
        std::thread::sleep(timeout);
        Err(LookupError::TimedOut)
    }
}

#[test]
fn repository_lookup_needs_a_grant() {
    let sandbox = sandbox();
    let flavor = hostile(&sandbox);
    let out = sandbox
        .validate_config(&flavor, &ctx(small_limits()), &mode("lookup"))
        .expect("call");
    let issues = out.value.expect_err("no grant: the guest gets an error");
    assert!(issues[0].message.contains("not granted"), "{issues:?}");

    let lookup = Arc::new(FixedLookup(true, AtomicUsize::new(0)));
    let granted = CallContext {
        repository_lookup: Some(lookup.clone()),
        ..ctx(small_limits())
    };
    let out = sandbox
        .validate_config(&flavor, &granted, &mode("lookup"))
        .expect("call");
    assert_eq!(out.value.expect("answered")["exists"], true);
    assert_eq!(lookup.1.load(Ordering::SeqCst), 1);
}

#[test]
fn a_hanging_host_lookup_is_bounded_by_the_call_deadline() {
    let sandbox = sandbox();
    let flavor = hostile(&sandbox);
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..small_limits()
    };
    let ctx = CallContext {
        repository_lookup: Some(Arc::new(HangingLookup)),
        ..ctx(limits)
    };
    let image = Reference::parse("localhost:5000/team/app:1").expect("valid");
    let err = sandbox
        .prepare_image_push(&flavor, &ctx, "{}", &image, None)
        .expect_err("times out");
    assert_eq!(err.kind, CallErrorKind::Timeout(Duration::from_millis(200)));
    assert_eq!(err.function, "prepare-image-push");
    assert_next_call_works(&sandbox);
}

#[test]
fn concurrent_calls_do_not_interfere() {
    let sandbox = Arc::new(sandbox());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let sandbox = sandbox.clone();
            std::thread::spawn(move || {
                let m = if i % 2 == 0 { "loop" } else { "calls" };
                let flavor = hostile(&sandbox);
                (
                    m,
                    sandbox.validate_config(&flavor, &ctx(small_limits()), &mode(m)),
                )
            })
        })
        .collect();
    for t in threads {
        let (m, result) = t.join().expect("thread");
        match m {
            "loop" => assert_eq!(
                result.expect_err("loops").kind,
                CallErrorKind::OutOfFuel(50_000_000)
            ),
            _ => assert_eq!(result.expect("ok").value.expect("accepted")["calls"], 1),
        }
    }
}

#[test]
fn loader_explains_what_is_wrong() {
    let sandbox = sandbox();
    assert!(matches!(
        sandbox.load(b"hello world"),
        Err(LoadError::NotWasm)
    ));
    // The smallest core module: magic and version 1.
    assert!(matches!(
        sandbox.load(b"\0asm\x01\0\0\0"),
        Err(LoadError::CoreModule)
    ));
    // A truncated component.
    let mut truncated = guest_bytes("guest-hostile");
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        sandbox.load(&truncated),
        Err(LoadError::Invalid(_))
    ));

    match sandbox.load(&guest_bytes("guest-unknown-import")) {
        Err(LoadError::UnknownImport { name }) => assert_eq!(name, "evil:net/exfiltrate@1.0.0"),
        other => panic!("expected UnknownImport, got {other:?}"),
    }
    match sandbox.load(&guest_bytes("guest-unknown-wasi")) {
        Err(LoadError::UnknownImport { name }) => {
            assert_eq!(name, "wasi:keyvalue/store@0.2.0-draft")
        }
        other => panic!("expected UnknownImport, got {other:?}"),
    }
    match sandbox.load(&guest_bytes("guest-no-export")) {
        Err(e @ LoadError::MissingExport { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("flavorbox:registry/flavor@0.2.0"), "{msg}");
            assert!(msg.contains("acme:greeter/greet@1.0.0"), "{msg}");
        }
        other => panic!("expected MissingExport, got {other:?}"),
    }
    match sandbox.load(&guest_bytes("guest-wrong-shape")) {
        Err(e @ LoadError::WrongWorld(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("container-registry-flavor"), "{msg}");
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
    match sandbox.load(&guest_bytes("guest-wrong-version")) {
        Err(e @ LoadError::UnsupportedVersion { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("flavorbox:registry/flavor@0.9.0"), "{msg}");
            assert!(msg.contains("0.1.x"), "{msg}");
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn an_edited_working_wit_cannot_change_what_a_0_1_flavor_is_checked_against() {
    // `tests/guests/edited-wit` is a well-behaved flavor built from its own
    // copy of the working WIT (`wit/flavor.wit`) with one edit
    // (`validate-config` takes a second parameter) and the package still
    // named `flavorbox:registry@0.1.0`. The host's 0.1 bindings come from
    // its frozen copy (`crates/sandbox/wit/v0.1/`, pinned by digest), never
    // from the working WIT, so the edit is a different contract and the
    // flavor is refused at load, by type.
    let sandbox = sandbox();
    match sandbox.load(&guest_bytes("guest-edited-wit")) {
        Err(e @ LoadError::WrongWorld(_)) => {
            let msg = e.to_string();
            // "... world: failed to convert function to given type: type
            // mismatch with parameters: expected 1-tuple, found 2-tuple"
            assert!(msg.contains("container-registry-flavor"), "{msg}");
            assert!(msg.contains("type mismatch with parameters"), "{msg}");
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
    // The built-ins, built from the frozen 0.2 (the flavor kit's default),
    // load and are dispatched as 0.2.
    for bytes in flavorbox_builtin::components() {
        let flavor = sandbox.load(bytes).expect("a built-in loads");
        assert_eq!(flavor.metadata().wit_version, "0.2.0", "{}", flavor.name());
    }
    // A flavor built before 0.2 (the `default` built-in against the frozen
    // 0.1, `tests/guests-v0-1/default`) still loads, is dispatched as 0.1 and
    // answers as the 0.2 built-in does.
    let old = sandbox
        .load(&guest_bytes(flavorbox_tests::DEFAULT_V0_1))
        .expect("the 0.1 default flavor loads");
    assert_eq!(old.name(), "default");
    assert_eq!(old.metadata().wit_version, "0.1.0");
    let new = sandbox
        .load(flavorbox_builtin::component("default").expect("`default` is built in"))
        .expect("the built-in default flavor loads");
    let ctx = ctx(Limits::default());
    for config in [
        r#"{"uri":"localhost:5000/team"}"#,
        r#"{"uri":"localhost:50a0/Team"}"#,
    ] {
        let answer = |flavor: &flavorbox_sandbox::LoadedFlavor| {
            sandbox
                .validate_config(flavor, &ctx, config)
                .expect("the call succeeds")
                .value
        };
        assert_eq!(answer(&old), answer(&new), "{config}");
    }
}

#[test]
fn precompiled_code_is_cached_by_content_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SandboxConfig {
        code_cache_dir: Some(dir.path().to_path_buf()),
        code_cache_key: [7; 32],
        ..SandboxConfig::default()
    };
    let bytes = guest_bytes("guest-hostile");
    let first = Sandbox::new(config.clone())
        .expect("sandbox")
        .load(&bytes)
        .expect("load");
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].starts_with(first.sha256()));
    // A second host reuses the precompiled code and behaves the same.
    let sandbox = Sandbox::new(config).expect("sandbox");
    let again = sandbox.load(&bytes).expect("load from cache");
    assert_eq!(again.sha256(), first.sha256());
    assert!(
        sandbox
            .validate_config(&again, &ctx(small_limits()), &mode("ok"))
            .expect("call")
            .value
            .is_ok()
    );
}
