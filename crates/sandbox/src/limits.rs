//! What a call may use, and the operator's grants, decided in one place.
//!
//! [`Limits`] are per call (fuel, deadline, memory, output, logs, stdio);
//! [`SandboxConfig`] is engine-wide (stack, pool, code cache) and carries the
//! default limits and the operator's [`Grants`]. Both are checked once, when
//! the sandbox is made ([`SandboxConfig::check`]), so a contradiction (a call
//! memory limit above the pool's slot size, zero fuel) is refused with a
//! message instead of being clamped silently. [`MemoryLimiter`] enforces the
//! memory limit over the guest's linear memories and what the host holds
//! for it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::flavor::{Capability, FlavorMetadata};

/// Per-call limits. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (roughly wasm instructions) a call may burn.
    pub fuel: u64,
    /// Wall-clock deadline of a call, host imports included.
    pub timeout: Duration,
    /// Linear memory a call's instance may grow to, in bytes; what the host
    /// holds for the guest is bounded to a share of it (see `sandbox::http`).
    pub memory_bytes: usize,
    /// Bytes of strings a call may return; also the most the host copies out
    /// of the guest in one host call (wasmtime's host-call fuel).
    pub max_output_bytes: usize,
    /// Log lines a call may emit (the rest are counted and dropped).
    pub max_log_lines: usize,
    /// Bytes of one log line (longer lines are truncated).
    pub max_log_line_bytes: usize,
    /// Bytes captured from the guest's stdout and from its stderr.
    pub max_stdio_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 2_000_000_000,
            timeout: Duration::from_secs(10),
            memory_bytes: 128 << 20,
            max_output_bytes: 1 << 20,
            max_log_lines: 100,
            max_log_line_bytes: 1024,
            max_stdio_bytes: 64 << 10,
        }
    }
}

/// The smallest memory limit a call can have: a component needs a few pages.
pub const MIN_MEMORY_BYTES: usize = 1 << 20;

impl Limits {
    /// Checks that the limits make sense together and fit under `max_memory_bytes`.
    pub fn check(&self, max_memory_bytes: usize) -> Result<(), String> {
        if self.fuel == 0 {
            return Err("fuel must be at least 1 unit".into());
        }
        if self.timeout.is_zero() {
            return Err("the call timeout must be more than 0 ms".into());
        }
        if self.timeout > Duration::from_secs(24 * 3600) {
            return Err("the call timeout must be at most 24 hours".into());
        }
        if self.memory_bytes < MIN_MEMORY_BYTES {
            return Err(format!(
                "the memory limit must be at least {} MiB",
                MIN_MEMORY_BYTES >> 20
            ));
        }
        if self.memory_bytes > max_memory_bytes {
            return Err(format!(
                "the memory limit of {} MiB is above the sandbox's maximum of {} MiB (the pooling allocator's slot size)",
                self.memory_bytes >> 20,
                max_memory_bytes >> 20
            ));
        }
        if self.max_output_bytes < 1024 {
            return Err("the output cap must be at least 1 KiB".into());
        }
        if self.max_log_line_bytes == 0 {
            return Err("the log line cap must be at least 1 byte".into());
        }
        Ok(())
    }
}

/// What the operator lets flavors ask the host for. A flavor gets a
/// capability only when it asked for it in its metadata *and* the operator
/// grants it here; [`Grants::allows`] is the one place that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// Flavors that ask for `repository-exists` may call it.
    pub repository_exists: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            repository_exists: true,
        }
    }
}

impl Grants {
    /// Whether `flavor`, during `function`, may use `capability`. Never
    /// while it describes itself (`metadata`): what it asks for is not
    /// known until it answered.
    pub fn allows(self, flavor: &FlavorMetadata, function: &str, capability: Capability) -> bool {
        let operator = match capability {
            Capability::RepositoryExists => self.repository_exists,
            // Reading the image costs the host, not the operator's network:
            // any flavor that asks gets it.
            Capability::ImageInfo => true,
        };
        operator && function != "metadata" && flavor.capabilities.contains(&capability)
    }
}

/// Engine-wide settings, fixed when the sandbox is created.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Maximum wasm stack per call, in bytes.
    pub max_wasm_stack: usize,
    /// Use the pooling instance allocator (fast instantiation, bounded slots).
    pub pooling: bool,
    /// Instances that may exist at once (pooling slots).
    pub max_concurrent_instances: u32,
    /// Loaded flavors kept in memory; the least recently used is dropped
    /// past this (and loaded again from its precompiled code when called).
    pub max_loaded_flavors: usize,
    /// Ceiling for any call's memory limit: the size of a pooling memory slot.
    pub max_memory_bytes: usize,
    /// Bytes of a freed pooling memory slot kept resident (the pages a call
    /// dirtied are reset in place rather than returned to the kernel): about
    /// what a small guest touches in one call.
    pub keep_resident_bytes: usize,
    /// Largest component accepted by `load`, in bytes.
    pub max_component_bytes: usize,
    /// Directory for precompiled code, keyed by content hash; none: compile in memory.
    pub code_cache_dir: Option<PathBuf>,
    /// Key that authenticates precompiled code in the cache (an HMAC-SHA256
    /// key kept where only the host can read it); code whose tag does not
    /// verify is recompiled, never run.
    pub code_cache_key: [u8; 32],
    /// Limits used when a call does not set its own.
    pub default_limits: Limits,
    /// What the operator grants flavors that ask.
    pub grants: Grants,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_wasm_stack: 512 << 10,
            pooling: true,
            max_concurrent_instances: 64,
            max_loaded_flavors: 256,
            max_memory_bytes: 1 << 30,
            keep_resident_bytes: 1 << 20,
            max_component_bytes: 64 << 20,
            code_cache_dir: None,
            code_cache_key: [0; 32],
            default_limits: Limits::default(),
            grants: Grants::default(),
        }
    }
}

impl SandboxConfig {
    /// Checks the settings together; says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.max_wasm_stack < 64 << 10 || self.max_wasm_stack > 64 << 20 {
            return Err("the wasm stack must be between 64 KiB and 64 MiB".into());
        }
        if self.max_concurrent_instances == 0 {
            return Err("at least one concurrent instance is needed".into());
        }
        if self.max_component_bytes < 1024 {
            return Err("the component size cap must be at least 1 KiB".into());
        }
        if self.code_cache_dir.is_some() && self.code_cache_key == [0; 32] {
            return Err("a code cache needs a secret key to authenticate what it stores".into());
        }
        self.default_limits
            .check(self.max_memory_bytes)
            .map_err(|e| format!("default limits: {e}"))
    }
}

/// A call's wall-clock deadline, shared by every capability that can wait.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the call must end.
    pub at: Instant,
}

impl Deadline {
    /// A deadline `timeout` from `start`.
    pub fn new(start: Instant, timeout: Duration) -> Self {
        Deadline {
            at: start + timeout,
        }
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether it has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// Caps the memory of a call (all of its linear memories together) and
/// remembers when the cap was hit. What the host holds for the guest is
/// bounded separately, by construction (see `sandbox::http`).
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    linear_bytes: usize,
    hit: bool,
}

impl MemoryLimiter {
    /// A limiter for a call with `max_bytes` in all.
    pub fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            linear_bytes: 0,
            hit: false,
        }
    }

    /// The cap, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Whether a growth was refused.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let linear = (self.linear_bytes - current.min(self.linear_bytes)).saturating_add(desired);
        if linear > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.linear_bytes = linear;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictory_limits_are_refused_with_a_reason() {
        let max = 1 << 30;
        assert!(Limits::default().check(max).is_ok());
        for (limits, needle) in [
            (
                Limits {
                    fuel: 0,
                    ..Limits::default()
                },
                "fuel",
            ),
            (
                Limits {
                    timeout: Duration::ZERO,
                    ..Limits::default()
                },
                "timeout",
            ),
            (
                Limits {
                    memory_bytes: 2 << 30,
                    ..Limits::default()
                },
                "maximum",
            ),
            (
                Limits {
                    memory_bytes: 4096,
                    ..Limits::default()
                },
                "at least",
            ),
            (
                Limits {
                    max_output_bytes: 10,
                    ..Limits::default()
                },
                "output",
            ),
        ] {
            let err = limits.check(max).expect_err("refused");
            assert!(err.contains(needle), "{err}");
        }
        let cache_without_key = SandboxConfig {
            code_cache_dir: Some(PathBuf::from("/tmp/x")),
            ..SandboxConfig::default()
        };
        assert!(cache_without_key.check().unwrap_err().contains("key"));
    }

    #[test]
    fn all_memories_of_a_call_share_one_cap() {
        use wasmtime::ResourceLimiter;
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(!limiter.memory_growing(0, 50, None).unwrap());
        assert!(limiter.hit());
        assert!(limiter.memory_growing(60, 90, None).unwrap());
    }
}
