//! One call of a flavor export: a fresh store and instance with the call's
//! limits, the capabilities' state composed into the store data, and every
//! way the call can end mapped to a typed [`CallError`].

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};

use super::error::{CallError, CallErrorKind};
use super::host::{DeadlineExceeded, HostState, LogSink, RepositoryLookup};
use super::http::{self, HttpState};
use super::limits::{Deadline, Limits, MemoryLimiter};
use super::state::CallState;
use super::text::{clean, first_line, truncate};
use super::wasi::WasiState;
use super::{LoadedFlavor, Sandbox};
use crate::flavor::{Capability, LogLevel, LogLine};
use crate::world;

/// Who is calling and with what grants and limits.
#[derive(Clone, Default)]
pub struct CallContext {
    /// Tenant the call is made for (attributed on every log line).
    pub tenant: String,
    /// Limits for this call; `None`: the sandbox's defaults.
    pub limits: Option<Limits>,
    /// Answers `repository-exists` for the component being served. It
    /// reaches the guest only when the sandbox's grants allow it for this
    /// flavor and function.
    pub repository_lookup: Option<Arc<dyn RepositoryLookup>>,
}

/// A call's result with the log lines it emitted.
#[derive(Debug, Clone)]
pub struct Outcome<T> {
    /// What the guest returned, checked by the host.
    pub value: T,
    /// Log lines, in order.
    pub logs: Vec<LogLine>,
}

impl Sandbox {
    /// The limits of a call.
    pub(super) fn limits<'a>(&'a self, ctx: &'a CallContext) -> &'a Limits {
        ctx.limits.as_ref().unwrap_or(&self.config.default_limits)
    }

    /// Refuses output over the call's cap.
    pub(super) fn check_size(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        function: &'static str,
        size: usize,
    ) -> Result<(), CallError> {
        let max = self.limits(ctx).max_output_bytes;
        if size > max {
            return Err(CallError {
                flavor: flavor.name().to_string(),
                function,
                kind: CallErrorKind::BadOutput(format!(
                    "returned {size} bytes, more than the limit of {max}"
                )),
            });
        }
        Ok(())
    }

    /// The store for one call, with its limits set.
    pub(super) fn new_store(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        function: &'static str,
        limits: &Limits,
    ) -> Result<Store<CallState>, CallErrorKind> {
        // Per-call limits were not checked with the sandbox's: check now,
        // rather than silently clamping them.
        limits
            .check(self.config.max_memory_bytes)
            .map_err(|e| CallErrorKind::Instantiate(format!("invalid call limits: {e}")))?;
        let started = Instant::now();
        let deadline = Deadline::new(started, limits.timeout);
        let granted =
            self.config
                .grants
                .allows(&flavor.metadata, function, Capability::RepositoryExists);
        let lookup = if granted {
            ctx.repository_lookup.clone()
        } else {
            None
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(http::table_capacity(limits.memory_bytes));
        let state = CallState {
            table,
            wasi: WasiState::new(started, deadline, limits.max_stdio_bytes),
            http: HttpState::new(),
            host: HostState::new(
                LogSink::new(limits, flavor.name(), &ctx.tenant),
                lookup,
                deadline,
            ),
            limiter: MemoryLimiter::new(limits.memory_bytes),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| CallErrorKind::Instantiate(format!("{e:#}")))?;
        store.set_epoch_deadline(super::engine::epoch_ticks(limits.timeout));
        store.epoch_deadline_trap();
        // What the guest may hand the host in one host call (arguments of
        // imports, the export's results): bounded by the output cap plus
        // room for the record around it, so a guest cannot make the host
        // copy hundreds of MiB before the cap is checked.
        store.set_hostcall_fuel(limits.max_output_bytes.saturating_add(64 << 10));
        Ok(store)
    }

    /// Runs one export in a fresh store and instance, with the call's limits.
    pub(super) fn call<R>(
        &self,
        flavor: &LoadedFlavor,
        ctx: &CallContext,
        function: &'static str,
        run: impl FnOnce(&world::Flavor, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<Outcome<R>, CallError> {
        let limits = self.limits(ctx).clone();
        let error = |kind| CallError {
            flavor: flavor.name().to_string(),
            function,
            kind,
        };
        let mut store = self
            .new_store(flavor, ctx, function, &limits)
            .map_err(error)?;
        let result = match flavor.pre.instantiate(&mut store) {
            Ok(bindings) => match run(&bindings, &mut store) {
                // A guest woken at the deadline from a longer wait may return
                // before wasm code checks the epoch: it is still too late.
                Ok(_) if store.data().wasi.wait_capped && store.data().host.deadline().passed() => {
                    Err(CallErrorKind::Timeout(limits.timeout))
                }
                Ok(value) => Ok(value),
                Err(e) => Err(self.classify(e, &store, &limits)),
            },
            // A trap or a limit while instantiating (start functions, initial
            // memory) is that; anything else is the instance not fitting.
            Err(e) if e.downcast_ref::<Trap>().is_none() && !store.data().limiter.hit() => {
                Err(CallErrorKind::Instantiate(first_line(&format!("{e:#}"))))
            }
            Err(e) => Err(self.classify(e, &store, &limits)),
        };
        let state = store.into_data();
        let (stdout, stderr) = state.wasi.captured();
        let mut logs = state.host.logs;
        logs.capture(LogLevel::Stdout, &stdout);
        logs.capture(LogLevel::Stderr, &stderr);
        let logs = logs.finish();
        match result {
            Ok(value) => Ok(Outcome { value, logs }),
            Err(CallErrorKind::Trap(msg)) => {
                Err(error(CallErrorKind::Trap(with_panic_message(msg, &stderr))))
            }
            Err(kind) => Err(error(kind)),
        }
    }

    /// Maps a failed call to its kind, using what the store observed.
    fn classify(
        &self,
        err: wasmtime::Error,
        store: &Store<CallState>,
        limits: &Limits,
    ) -> CallErrorKind {
        let state = store.data();
        if state.host.deadline_hit || err.downcast_ref::<DeadlineExceeded>().is_some() {
            return CallErrorKind::Timeout(limits.timeout);
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => return CallErrorKind::OutOfFuel(limits.fuel),
            Some(Trap::Interrupt) => return CallErrorKind::Timeout(limits.timeout),
            Some(Trap::StackOverflow) => {
                return CallErrorKind::StackOverflow(self.config.max_wasm_stack);
            }
            _ => {}
        }
        if state.limiter.hit() {
            return CallErrorKind::MemoryLimit(state.limiter.max_bytes());
        }
        // What the host holds for the guest ran into its bounds: the
        // resource table is full, or a header map is at its size cap.
        if let Some(wasmtime::component::ResourceTableError::Full) =
            find_in_chain::<wasmtime::component::ResourceTableError>(&err)
        {
            return CallErrorKind::MemoryLimit(state.limiter.max_bytes());
        }
        if let Some(
            wasmtime_wasi_http::FieldMapError::TotalSizeTooBig
            | wasmtime_wasi_http::FieldMapError::TooManyFields,
        ) = find_in_chain::<wasmtime_wasi_http::FieldMapError>(&err)
        {
            return CallErrorKind::MemoryLimit(state.limiter.max_bytes());
        }
        if let Some(trap) = err.downcast_ref::<Trap>() {
            return CallErrorKind::Trap(trap.to_string());
        }
        let cause = root_cause(&err);
        // Lifting more than the host-call budget allows: the guest tried to
        // hand the host more than its output cap.
        if cause.contains("too much data is being copied") || cause.contains("hostcall fuel") {
            return CallErrorKind::BadOutput(format!(
                "the flavor passed the host more than {} bytes in one call",
                limits.max_output_bytes
            ));
        }
        CallErrorKind::Trap(cause)
    }
}

/// The first error of type `E` in an error's chain.
fn find_in_chain<E: std::error::Error + 'static>(err: &wasmtime::Error) -> Option<&E> {
    err.chain().find_map(|e| e.downcast_ref::<E>())
}

/// The innermost message of an error chain that says something: the
/// outermost is often only "error while executing at wasm backtrace".
fn root_cause(err: &wasmtime::Error) -> String {
    let messages: Vec<String> = err
        .chain()
        .map(|e| first_line(&e.to_string()))
        .filter(|m| !m.is_empty() && !m.starts_with("error while executing at wasm backtrace"))
        .collect();
    match messages.last() {
        Some(m) => clean(m),
        None => clean(&first_line(&format!("{err:#}"))),
    }
}

/// A panicking guest says why on stderr: keep that with the trap.
fn with_panic_message(msg: String, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    match text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("note: run with"))
    {
        Some(last) => format!("{msg}; guest stderr: {}", clean(&truncate(last, 300))),
        None => msg,
    }
}
