//! Component loading: arbitrary bytes and mutated real components (the
//! corpus is seeded with the built-in flavors) through `Sandbox::load` never
//! panic or crash the host; every failure is a `LoadError`.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use flavorbox_sandbox::{Limits, Sandbox, SandboxConfig};
use libfuzzer_sys::fuzz_target;

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            // Few slots and small memories keep the fuzzer's RSS low.
            max_concurrent_instances: 2,
            max_memory_bytes: 64 << 20,
            default_limits: Limits {
                fuel: 100_000_000,
                timeout: Duration::from_secs(2),
                memory_bytes: 32 << 20,
                ..Limits::default()
            },
            ..SandboxConfig::default()
        })
        .expect("sandbox")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = sandbox().load(data);
});
