//! The wasmtime engine for untrusted code, and the linker every flavor is
//! instantiated against. Every `Config` knob that matters for untrusted code
//! is set here, explicitly, with the reason.

use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::SandboxConfig;
use super::state::CallState;
use super::{http, wasi};
use crate::world;

/// How often the epoch ticker advances the engine's epoch: the granularity
/// of the wall-clock deadline inside wasm code.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The epoch deadline, in ticks, of a call that may run for `timeout`.
pub fn epoch_ticks(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos() / EPOCH_TICK.as_nanos() + 1).unwrap_or(u64::MAX)
}

/// Bytes of each table kept resident in a freed pool slot: flavors' tables
/// are a few entries.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Builds the engine every flavor runs in.
pub fn engine(config: &SandboxConfig) -> wasmtime::Result<Engine> {
    let mut wasm = code_config(config);
    if config.pooling {
        // Pooling: instantiation is a slot reuse, not an mmap per call.
        // Slots bound how many instances can exist at once; the memory
        // slot size is the ceiling of any call's memory limit.
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_concurrent_instances.max(1);
        pool.total_component_instances(n);
        pool.total_core_instances(n * 16);
        pool.total_memories(n * 4);
        pool.total_tables(n * 16);
        pool.max_core_instances_per_component(64);
        pool.max_memories_per_component(16);
        pool.max_tables_per_component(64);
        pool.max_memory_size(config.max_memory_bytes);
        pool.max_core_instance_size(4 << 20);
        pool.max_component_instance_size(4 << 20);
        // A freed slot keeps the pages a call touched, reset in place (only
        // the dirty ones, found with Linux's PAGEMAP_SCAN where the kernel has
        // it), instead of handing them back with madvise and faulting them in
        // again on the next call: page faults, their zeroing and the TLB
        // shootdowns of madvise were most of an isolated call and what made
        // a second thread lower throughput (docs/performance.md).
        pool.linear_memory_keep_resident(config.keep_resident_bytes);
        pool.table_keep_resident(TABLE_KEEP_RESIDENT);
        pool.pagemap_scan(wasmtime::Enabled::Auto);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&wasm)
}

/// The engine that compiles tenants' components: the same code settings as
/// [`engine`] (its output is deserialised there, and wasmtime checks that
/// the two agree), compiling on the calling thread only. Cranelift's
/// parallel compile spreads one component over every core, where no
/// thread's CPU clock sees it; on one thread a compile holds at most one
/// core and its CPU time is the thread's, charged to the tenant like a
/// call's. No instance is made in this engine, so it has no pool.
pub fn compile_engine(config: &SandboxConfig) -> wasmtime::Result<Engine> {
    let mut wasm = code_config(config);
    wasm.parallel_compilation(false);
    Engine::new(&wasm)
}

/// The settings that decide what code is generated: the same wherever the
/// code is compiled and wherever it runs.
fn code_config(config: &SandboxConfig) -> Config {
    let mut wasm = Config::new();
    // Flavors are components; nothing else is loaded.
    wasm.wasm_component_model(true);
    // Deterministic CPU bound: fuel, refilled per call.
    wasm.consume_fuel(true);
    // Wall-clock bound: the epoch, advanced by a ticker thread.
    wasm.epoch_interruption(true);
    // A guest's recursion is bounded well below the host thread's stack.
    wasm.max_wasm_stack(config.max_wasm_stack);
    // Optimised code: calls are many, compiles are cached.
    wasm.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // Threads, GC and async are not compiled into this build of wasmtime
    // (see the workspace's feature list): flavors need none of them, and
    // each is attack surface.
    wasm
}

/// Builds the deny-by-default linker: WASI, `wasi:http` and the host
/// imports of every supported WIT version, each capability linked through a
/// projection to its own state.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::<CallState>::new(engine);
    wasi::add_to_linker(&mut linker)?;
    http::add_to_linker(&mut linker)?;
    world::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("flavorbox-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}
