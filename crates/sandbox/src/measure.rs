//! What the benchmark (`flavorbox bench`) needs from inside the sandbox and
//! nothing else uses: calls on one reused instance, a comparison figure that
//! real calls never take (every real call gets a fresh instance), and seeding
//! the code cache, so that a thousand distinct flavors load through the real
//! load path without a thousand compiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{CallError, CallErrorKind, LoadError};
use super::text::first_line;
use super::{CallContext, CodeOwner, CodeSource, LoadedFlavor, Sandbox, Validation};

impl Sandbox {
    /// [`Sandbox::load`], with the compiled code taken from `precompiled`
    /// (what [`Sandbox::precompile`] made of the same code in this process)
    /// instead of a compile or the code cache: the benchmark and the tests
    /// load a thousand distinct flavors this way without a thousand compiles.
    pub fn load_from(
        &self,
        bytes: &[u8],
        precompiled: Option<&[u8]>,
    ) -> Result<Arc<LoadedFlavor>, LoadError> {
        let source = match precompiled {
            Some(code) => CodeSource::Precompiled(code),
            None => CodeSource::CacheOrCompile,
        };
        let prepared = self
            .prepare_with(&CodeOwner::Shared, bytes, source)?
            .ok_or_else(|| LoadError::Invalid("the component was not compiled".into()))?;
        Ok(self.keep(prepared))
    }

    /// Calls `validate-config` `n` times on ONE instance and times each call
    /// (fuel and deadline are refilled before each, and the host checks each
    /// result as it does for an isolated call). Returns the last verdict.
    pub fn warm_validate_timings(
        &self,
        flavor: &LoadedFlavor,
        config_json: &str,
        n: usize,
    ) -> Result<(Vec<Duration>, Validation), CallError> {
        let ctx = CallContext::default();
        let limits = self.limits(&ctx).clone();
        let error = |kind| CallError {
            flavor: flavor.name().to_string(),
            function: "validate-config",
            kind,
        };
        let mut store = self
            .new_store(flavor, &ctx, "validate-config", &limits)
            .map_err(error)?;
        let bindings = flavor
            .pre
            .instantiate(&mut store)
            .map_err(|e| error(CallErrorKind::Instantiate(first_line(&format!("{e:#}")))))?;
        let ticks = super::engine::epoch_ticks(limits.timeout);
        let mut times = Vec::with_capacity(n);
        let mut last = None;
        for _ in 0..n.max(1) {
            let started = Instant::now();
            store
                .set_fuel(limits.fuel)
                .map_err(|e| error(CallErrorKind::Instantiate(format!("{e:#}"))))?;
            store.set_epoch_deadline(ticks);
            let raw = bindings
                .validate_config(&mut store, config_json)
                .map_err(|e| error(CallErrorKind::Trap(first_line(&format!("{e:#}")))))?;
            let verdict = self.check_validation(flavor, &ctx, raw)?;
            times.push(started.elapsed());
            last = Some(verdict);
        }
        Ok((times, last.expect("at least one call")))
    }

    /// This engine's precompiled code for a component (no checks: only for
    /// bytes that [`Sandbox::load`] has accepted).
    pub fn precompile(&self, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        self.engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::Invalid(first_line(&format!("{e:#}"))))
    }

    /// Caches `code` as the precompiled form of the component whose content
    /// hash is `sha256`, authenticated like any code the sandbox compiles.
    /// `false` without a code cache.
    #[cfg(test)]
    pub fn seed_code_cache(&self, sha256: &str, code: &[u8]) -> bool {
        match &self.code_cache {
            Some(cache) => {
                let owner = super::CodeOwner::Shared;
                cache.put(
                    &cache.path(&self.engine, sha256, &owner),
                    sha256,
                    &owner,
                    code,
                );
                true
            }
            None => false,
        }
    }
}

/// `bytes` with a custom section that makes it distinct (another content
/// hash) without changing what it does.
pub fn distinct_variant(bytes: &[u8], i: usize) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"flavorbox-variant";
    let payload = (i as u64).to_le_bytes();
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// This process's resident and reserved memory (Linux; zero elsewhere).
pub struct ProcessMemory {
    pub rss_kib: u64,
    pub virtual_kib: u64,
}

impl ProcessMemory {
    pub fn read() -> ProcessMemory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        ProcessMemory {
            rss_kib: field("VmRSS:"),
            virtual_kib: field("VmSize:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SandboxConfig;

    fn default_flavor() -> &'static [u8] {
        flavorbox_builtin::BUILTIN_COMPONENTS
            .iter()
            .find(|(package, _)| *package == "flavor-default")
            .map(|(_, bytes)| *bytes)
            .expect("the default flavor is built in")
    }

    const GOOD: &str = r#"{"uri":"Registry.Example.com/team/"}"#;
    const BAD: &str = r#"{"uri":"registry.example.com/Team"}"#;

    /// The verdicts every load of the default flavor must give.
    fn answers(sandbox: &Sandbox) -> (String, Vec<String>) {
        let flavor = sandbox.load(default_flavor()).expect("loads");
        assert_eq!(flavor.name(), "default");
        let ctx = CallContext::default();
        let good = sandbox
            .validate_config(&flavor, &ctx, GOOD)
            .expect("call")
            .value
            .expect("accepted");
        let bad = sandbox
            .validate_config(&flavor, &ctx, BAD)
            .expect("call")
            .value
            .expect_err("refused");
        (
            serde_json::Value::Object(good).to_string(),
            bad.into_iter().map(|i| i.field).collect(),
        )
    }

    fn cached_file(dir: &std::path::Path) -> std::path::PathBuf {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("cache dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        assert_eq!(files.len(), 1, "one artifact: {files:?}");
        files.pop().expect("one")
    }

    #[test]
    fn a_stale_or_corrupt_cache_entry_is_rebuilt_and_answers_right() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SandboxConfig {
            code_cache_dir: Some(dir.path().to_path_buf()),
            code_cache_key: [7; 32],
            ..SandboxConfig::default()
        };
        let fresh = || Sandbox::new(config.clone()).expect("sandbox");
        let expected = answers(&fresh());
        assert_eq!(
            expected,
            (
                r#"{"uri":"registry.example.com/team"}"#.to_string(),
                vec!["uri".to_string()]
            )
        );
        let file = cached_file(dir.path());
        let good = std::fs::read(&file).expect("artifact");

        // Stale: code an engine with other settings (no fuel, no epochs)
        // compiled, under the right name and with a valid tag, as an older
        // host would have left it. wasmtime refuses it; it is rebuilt.
        let stale = wasmtime::Engine::default()
            .precompile_component(default_flavor())
            .expect("precompile");
        let sandbox = fresh();
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(default_flavor()));
        assert!(sandbox.seed_code_cache(&sha256, &stale));
        assert_ne!(std::fs::read(&file).expect("stale artifact"), good);
        assert_eq!(answers(&sandbox), expected);
        let rebuilt = std::fs::read(cached_file(dir.path())).expect("rebuilt artifact");
        assert!(!rebuilt.ends_with(&stale), "the stale code was kept");

        // Corrupt: one flipped byte in the code. The tag fails; rebuilt.
        let mut corrupt = rebuilt.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0x40;
        std::fs::write(&file, &corrupt).expect("corrupt");
        assert_eq!(answers(&fresh()), expected);
        assert_ne!(
            std::fs::read(cached_file(dir.path())).expect("artifact"),
            corrupt
        );
        // And what was rebuilt is trusted again.
        assert_eq!(answers(&fresh()), expected);
    }

    #[test]
    fn a_thousand_distinct_flavors_fit_in_one_host() {
        const N: usize = 1000;
        let sandbox = Sandbox::new(SandboxConfig {
            max_loaded_flavors: N,
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        let code = sandbox.precompile(default_flavor()).expect("precompile");
        let before = crate::measure::ProcessMemory::read();
        let mut loaded = Vec::with_capacity(N);
        for i in 0..N {
            let variant = crate::measure::distinct_variant(default_flavor(), i);
            loaded.push(sandbox.load_from(&variant, Some(&code)).expect("loads"));
        }
        let after = crate::measure::ProcessMemory::read();
        assert_eq!(sandbox.loaded_count(), N, "every flavor stays loaded");
        let distinct: std::collections::HashSet<&str> = loaded.iter().map(|f| f.sha256()).collect();
        assert_eq!(distinct.len(), N);
        // Each answers, from its own instance.
        let ctx = CallContext::default();
        for flavor in &loaded {
            let verdict = sandbox
                .validate_config(flavor, &ctx, GOOD)
                .expect("call")
                .value;
            assert!(verdict.is_ok(), "{} refused a good config", flavor.sha256());
        }
        // Memory grows with what each flavor's code needs (about 0.7 MiB
        // for this one, docs/performance.md), not with pool slots or copies
        // of the engine; the bound leaves room for other tests in this
        // process. /proc is Linux's.
        if after.rss_kib > 0 {
            let per_flavor_kib = after.rss_kib.saturating_sub(before.rss_kib) / N as u64;
            assert!(
                per_flavor_kib < 4096,
                "{per_flavor_kib} KiB resident per loaded flavor"
            );
        }
    }
}
