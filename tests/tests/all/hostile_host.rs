//! Host-side work a guest can trigger obeys the call's limits: waits end at
//! the deadline, what the host holds or copies for the guest is bounded, and
//! the host is unharmed afterwards. Each case asserts the typed error, a loose
//! bound on wall time (never a precise timing) and a bound on the host
//! process's peak RSS growth. The cases run one at a time (RSS is per
//! process), in one test, which runs in a process of its own
//! ([`flavorbox_tests::in_own_process`]): other suites in this binary would
//! move its memory figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flavorbox_grammar::Reference;
use flavorbox_sandbox::{
    CallContext, CallErrorKind, Limits, LookupError, RepositoryLookup, Sandbox, SandboxConfig,
};
use flavorbox_tests::guest_bytes;

const MIB: u64 = 1 << 20;
/// Generous: only a call that never ends (or ends minutes late) fails it.
const WALL: Duration = Duration::from_secs(60);

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Resets the peak RSS (VmHWM) to the current RSS.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rss_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

fn peak_bytes() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn limits(memory_mib: usize, timeout: Duration) -> Limits {
    Limits {
        fuel: 50_000_000_000,
        timeout,
        memory_bytes: memory_mib << 20,
        ..Limits::default()
    }
}

fn ctx(limits: Limits, lookup: Option<Arc<dyn RepositoryLookup>>) -> CallContext {
    CallContext {
        tenant: "t1".into(),
        limits: Some(limits),
        repository_lookup: lookup,
    }
}

/// Runs `mode` on its own thread; returns the result, the wall time and the
/// peak RSS growth. Panics if the call does not end within [`WALL`].
fn run(
    sandbox: &Arc<Sandbox>,
    config: String,
    ctx: CallContext,
) -> (Result<String, CallErrorKind>, Duration, u64) {
    let sandbox = sandbox.clone();
    let flavor = sandbox.load(&guest_bytes("guest-hostile")).expect("loads");
    reset_peak();
    let before = rss_bytes();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let shown = config.clone();
    std::thread::spawn(move || {
        let out = sandbox
            .validate_config(&flavor, &ctx, &config)
            .map(|o| match o.value {
                Ok(map) => serde_json::Value::Object(map).to_string(),
                Err(issues) => format!("issues: {issues:?}"),
            })
            .map_err(|e| e.kind);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(WALL)
        .unwrap_or_else(|_| panic!("call did not end within {WALL:?}: {shown}"));
    (out, started.elapsed(), peak_bytes().saturating_sub(before))
}

struct CountingLookup(AtomicUsize);

impl RepositoryLookup for CountingLookup {
    fn repository_exists(
        &self,
        _repository: &str,
        _timeout: Duration,
    ) -> Result<bool, LookupError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
}

#[test]
fn host_work_a_guest_triggers_is_bounded_and_the_host_recovers() {
    flavorbox_tests::in_own_process(
        "hostile_host::host_work_a_guest_triggers_is_bounded_and_the_host_recovers",
        host_work_is_bounded,
    );
}

fn host_work_is_bounded() {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).expect("sandbox"));
    let builtin = flavorbox_builtin::components()
        .map(|bytes| sandbox.load(bytes).expect("built-in loads"))
        .find(|f| f.name() == "default")
        .expect("the default flavor is built in");
    // Warm up (first calls touch code pages), then take the baseline.
    let good = |sandbox: &Sandbox| {
        sandbox
            .validate_config(
                &builtin,
                &ctx(Limits::default(), None),
                r#"{"uri":"localhost:5000"}"#,
            )
            .expect("good call")
            .value
            .expect("accepted")
    };
    good(&sandbox);
    let baseline = rss_bytes();

    // 1. A write into a body nothing drains, and polling it, end at the deadline
    //    (the host hands out no body at all).
    for mode in ["http-body-hang", "http-response-hang"] {
        let (out, took, _) = run(
            &sandbox,
            format!(r#"{{"mode":"{mode}"}}"#),
            ctx(limits(64, Duration::from_secs(1)), None),
        );
        match out {
            Ok(text) => assert!(text.contains("body refused"), "{mode}: {text}"),
            Err(kind) => assert!(
                matches!(kind, CallErrorKind::Timeout(_)),
                "{mode}: {kind:?}"
            ),
        }
        assert!(took < WALL, "{mode} took {took:?}");
    }

    // 2. Host memory a guest makes the host hold stays bounded by the call's limit.
    for mode in ["http-body-bomb", "fields-bomb", "request-strings-bomb"] {
        let (out, _, growth) = run(
            &sandbox,
            format!(r#"{{"mode":"{mode}"}}"#),
            ctx(limits(16, Duration::from_secs(30)), None),
        );
        match out {
            Err(CallErrorKind::MemoryLimit(_)) => {}
            Ok(text) if mode == "http-body-bomb" => {
                assert!(text.contains("bomb ended"), "{mode}: {text}")
            }
            other => panic!("{mode}: expected a memory limit, got {other:?}"),
        }
        assert!(growth < 256 * MIB, "{mode}: host grew {} MiB", growth / MIB);
    }

    // 2b. Random bytes are asked for in GiB: refused, not allocated.
    let (out, _, growth) = run(
        &sandbox,
        r#"{"mode":"random-bomb"}"#.into(),
        ctx(limits(64, Duration::from_secs(30)), None),
    );
    assert!(matches!(out, Err(CallErrorKind::Trap(_))), "{out:?}");
    assert!(growth < 128 * MIB, "random: host grew {} MiB", growth / MIB);

    // 3. A 64 MiB log line of control characters is refused before it is
    //    copied (or truncated before it is cleaned): quick and small.
    let (out, took, growth) = run(
        &sandbox,
        r#"{"mode":"huge-log","bytes":67108864}"#.into(),
        ctx(limits(256, Duration::from_secs(30)), None),
    );
    assert!(matches!(out, Err(CallErrorKind::BadOutput(_))), "{out:?}");
    assert!(took < WALL);
    // The guest itself holds ~128 MiB (the line and its building); the host
    // must not add a copy of it, let alone its escaped form (6x).
    assert!(
        growth < 256 * MIB,
        "huge log: host grew {} MiB",
        growth / MIB
    );
    // Below the host-call budget, a long line is kept, truncated first.
    let flavor = sandbox.load(&guest_bytes("guest-hostile")).expect("loads");
    let out = sandbox
        .validate_config(
            &flavor,
            &ctx(limits(64, Duration::from_secs(30)), None),
            r#"{"mode":"huge-log","bytes":921600}"#,
        )
        .expect("a 900 KiB line is fine");
    let line = &out.logs[0].message;
    assert!(line.len() <= 6 * 1024 + 16, "line of {} bytes", line.len());
    assert!(line.starts_with("\\u{1b}"), "{}", &line[..20]);

    // 4. A 90 MiB return value is refused without the host copying it.
    let (out, _, growth) = run(
        &sandbox,
        r#"{"mode":"huge-return","bytes":94371840}"#.into(),
        ctx(limits(256, Duration::from_secs(30)), None),
    );
    assert!(matches!(out, Err(CallErrorKind::BadOutput(_))), "{out:?}");
    // The guest's own string is ~90 MiB (plus its growth); a host copy would add 90 more.
    assert!(
        growth < 200 * MIB,
        "huge return: host grew {} MiB",
        growth / MIB
    );

    // 5. repository-exists in a tight loop: the lookup runs at most 16 times.
    let lookup = Arc::new(CountingLookup(AtomicUsize::new(0)));
    let (out, took, _) = run(
        &sandbox,
        r#"{"mode":"lookup-loop"}"#.into(),
        ctx(limits(64, Duration::from_secs(30)), Some(lookup.clone())),
    );
    assert!(
        matches!(
            out,
            Ok(_) | Err(CallErrorKind::OutOfFuel(_)) | Err(CallErrorKind::Timeout(_))
        ),
        "{out:?}"
    );
    assert!(took < WALL);
    assert!(lookup.0.load(Ordering::SeqCst) <= 16);

    // 6. The same host serves a good flavor correctly, back near where it started.
    let accepted = good(&sandbox);
    assert_eq!(accepted["uri"], "localhost:5000");
    let image = Reference::parse("localhost:5000/team/app:1").expect("valid");
    sandbox
        .prepare_image_push(
            &builtin,
            &ctx(Limits::default(), None),
            r#"{"uri":"localhost:5000"}"#,
            &image,
            None,
        )
        .expect("good push decision");
    let after = rss_bytes();
    assert!(
        after < baseline + 64 * MIB,
        "RSS {} MiB after the suite, {} MiB before",
        after / MIB,
        baseline / MIB
    );
}

#[test]
fn guest_text_cannot_hide_bidi_overrides_or_zero_width_characters() {
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let flavor = sandbox.load(&guest_bytes("guest-hostile")).expect("loads");
    let out = sandbox
        .validate_config(&flavor, &ctx(Limits::default(), None), r#"{"mode":"bidi"}"#)
        .expect("call");
    let issues = out.value.expect_err("issues");
    for issue in &issues {
        for c in ['\u{202E}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{FEFF}'] {
            assert!(
                !issue.field.contains(c) && !issue.message.contains(c),
                "{issue:?}"
            );
        }
    }
    assert!(issues[0].message.contains("\\u{202e}"), "{issues:?}");
}

#[test]
fn a_trap_reports_its_root_cause() {
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let flavor = sandbox.load(&guest_bytes("guest-hostile")).expect("loads");
    let err = sandbox
        .validate_config(
            &flavor,
            &ctx(limits(256, Duration::from_secs(30)), None),
            r#"{"mode":"huge-return","bytes":94371840}"#,
        )
        .expect_err("refused");
    let text = err.to_string();
    assert!(!text.contains("error while executing"), "{text}");
    assert!(text.contains("more than"), "{text}");
}
