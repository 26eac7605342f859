//! WASI 0.2, deny-by-default: no preopened directories, no environment, no
//! arguments, every socket and name lookup refused, stdout and stderr
//! captured up to a cap, a wall clock frozen at the Unix epoch and a
//! monotonic clock that counts from the start of the call in milliseconds.
//!
//! Components built by toolchains that import all of WASI (componentize-py,
//! componentize-js) load, and can reach nothing. Clock waits are the only
//! blocking WASI calls a guest can make on what is linked here (stdin is
//! empty, stdout and stderr never block, there is no descriptor or socket to
//! wait on), and they end no later than the call's deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::limits::Deadline;

/// Store data that holds a call's WASI state and the resource table.
pub trait WasiCall: WasiView + 'static {
    /// The WASI state and the table, borrowed together.
    fn wasi_parts(&mut self) -> (&mut WasiState, &mut ResourceTable);
}

/// The WASI version whose clock functions [`add_to_linker`] replaces: the
/// one wasmtime-wasi links (older 0.2 imports resolve to it by semver).
const WASI_CLOCKS: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Most bytes one `get-random-bytes` call may ask for.
pub const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// The WASI state of one call. The context itself is built on the guest's
/// first WASI call: most flavor calls make none, and building one (seeding
/// its random generators among other things) was a measurable share of an
/// isolated call.
pub struct WasiState {
    ctx: Option<WasiCtx>,
    stdout: CappedPipe,
    stderr: CappedPipe,
    clock: CallClock,
    deadline: Deadline,
    /// A clock wait was cut at the deadline.
    pub wait_capped: bool,
}

impl WasiState {
    /// An empty context for a call starting at `started`.
    pub fn new(started: Instant, deadline: Deadline, max_stdio_bytes: usize) -> Self {
        WasiState {
            ctx: None,
            stdout: CappedPipe::new(max_stdio_bytes),
            stderr: CappedPipe::new(max_stdio_bytes),
            clock: CallClock(started),
            deadline,
            wait_capped: false,
        }
    }

    fn build(&self) -> WasiCtx {
        WasiCtxBuilder::new()
            .stdout(self.stdout.clone())
            .stderr(self.stderr.clone())
            .wall_clock(FrozenWallClock)
            .monotonic_clock(self.clock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // One `get-random-bytes` call makes the host allocate what it
            // asks for (64 MiB by default): a flavor needs a few bytes.
            .max_random_size(MAX_RANDOM_BYTES)
            .build()
    }

    /// What the guest wrote to stdout and stderr (each up to the cap).
    pub fn captured(&self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout.contents(), self.stderr.contents())
    }
}

impl WasiState {
    /// The view WASI's host functions work on.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiCtxView<'a> {
        if self.ctx.is_none() {
            self.ctx = Some(self.build());
        }
        WasiCtxView {
            ctx: self.ctx.as_mut().expect("built above"),
            table,
        }
    }
}

/// Links WASI 0.2 with clock waits bounded by the call's deadline.
pub fn add_to_linker<T: WasiCall>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    bound_clock_waits(linker)
}

/// Replaces WASI's clock subscriptions with ones that end no later than the
/// call's deadline. Fuel and epochs only fire in wasm code; a guest that
/// sleeps waits in host code, so without this a `sleep(1 hour)` would hold
/// the call (and its thread and instance slot) for an hour.
fn bound_clock_waits<T: WasiCall>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn subscribe<T: WasiCall>(
        state: &mut T,
        wait: Duration,
    ) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let (wasi, table) = state.wasi_parts();
        let remaining = wasi.deadline.remaining();
        if wait > remaining {
            wasi.wait_capped = true;
        }
        let until = tokio::time::Instant::now() + wait.min(remaining);
        let sleep = table.push(CappedSleep(until))?;
        Ok((wasmtime_wasi::p2::subscribe(table, sleep)?,))
    }

    linker.allow_shadowing(true);
    let mut clocks = linker.instance(WASI_CLOCKS)?;
    clocks.func_wrap("subscribe-duration", |mut store, (nanos,): (u64,)| {
        subscribe(store.data_mut(), Duration::from_nanos(nanos))
    })?;
    clocks.func_wrap("subscribe-instant", |mut store, (when,): (u64,)| {
        let state: &mut T = store.data_mut();
        let now = state.wasi_parts().0.clock.now();
        subscribe(state, Duration::from_nanos(when.saturating_sub(now)))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A clock wait that ends at an instant no later than the call's deadline.
struct CappedSleep(tokio::time::Instant);

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for CappedSleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.0).await;
    }
}

/// Captures a guest's stdout or stderr up to a cap and drops the rest, so a
/// chatty guest is bounded without its writes failing (wasmtime's
/// `MemoryOutputPipe` traps the guest instead).
#[derive(Clone)]
struct CappedPipe {
    buffer: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl CappedPipe {
    fn new(capacity: usize) -> Self {
        CappedPipe {
            buffer: Arc::new(Mutex::new(Vec::new())),
            capacity,
        }
    }

    fn contents(&self) -> Vec<u8> {
        self.buffer.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Ok(mut buffer) = self.buffer.lock() {
            let room = self.capacity.saturating_sub(buffer.len());
            buffer.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        // Accept everything: what is over the cap is dropped, not refused.
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The guest's wall clock: frozen at the Unix epoch. The host's time is not
/// the guest's business.
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The guest's monotonic clock: nanoseconds since the call started.
#[derive(Clone, Copy)]
struct CallClock(Instant);

impl HostMonotonicClock for CallClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        // Millisecond resolution: enough to measure, too coarse for timing attacks.
        let ms = self.0.elapsed().as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX / 1_000_000) * 1_000_000
    }
}
