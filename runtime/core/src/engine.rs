//! The wasmtime engine every function shares, and the epoch ticker that
//! enforces deadlines.
//!
//! One engine per process: compiled code, the instance pool and the epoch
//! counter are shared by all functions. Every knob that matters for speed or
//! safety is set here, with the reason next to it, and may be overridden by a
//! `NIMBUS_*` environment variable ([`crate::settings::EngineSettings`]: a bad
//! value fails boot, never panics).

use crate::error::BootError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
pub use wasmtime::Engine;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine is built. `Default` is what `nimbus serve` and `bootstrap` use.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The least component instances the pool holds (`NIMBUS_POOL_INSTANCES`;
    /// 16 by default, [`MIN_POOL_INSTANCES`] under `bootstrap`); boot raises it
    /// to what the functions' `concurrency` needs ([`EngineOptions::fit_pool`]).
    /// Each slot costs address space and boot time.
    pub pool_instances: u32,
    /// Largest linear memory any function may grow to, in bytes.
    pub max_memory: u64,
    /// How often the epoch advances; the deadline resolution.
    pub epoch_tick: Duration,
    /// Bytes of each linear memory kept resident and reset with `memset`
    /// instead of `madvise` when an instance is freed.
    pub keep_resident: u64,
    /// Use the pooling allocator (`NIMBUS_POOLING=0` turns it off, e.g. for valgrind).
    pub pooling: bool,
    /// Initialise linear memories by mapping a copy-on-write image (`NIMBUS_MEMORY_COW=1`)
    /// instead of copying data segments.
    pub memory_cow: bool,
    /// Ask the kernel which pages a request dirtied (`PAGEMAP_SCAN`, Linux 6.7+) when an
    /// instance is freed, instead of resetting all of the `keep_resident` bytes
    /// (`NIMBUS_PAGEMAP_SCAN`).
    pub pagemap_scan: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pool_instances: 16,
            max_memory: 128 << 20,
            epoch_tick: Duration::from_millis(1),
            // A Rust hello's memory is ~1.1 MiB (a 1 MiB stack and its data).
            // Keeping it resident means freeing an instance never calls
            // `madvise`, which on a multi-threaded host costs a TLB shootdown
            // on every core: the main per-request cost of `wasmtime serve`.
            // Without the pagemap scan the kept bytes are zeroed on each free;
            // a smaller budget measured slower (page faults on the next use).
            keep_resident: 4 << 20,
            pooling: true,
            memory_cow: false,
            pagemap_scan: PAGEMAP_SCAN_DEFAULT,
        }
    }
}

/// Whether freeing an instance asks the kernel for its dirty pages by default: no.
///
/// wasmtime 50's scan no longer requires dirty pages to be present, and Linux
/// (6.18 here) reports every untouched page of a page table the guest touched as
/// written, so the scan resets the whole memory up to `keep_resident` and costs
/// the scan on top: release `invoke_cost`, event 65-75 µs with the scan against
/// 48-53 µs without (wasmtime 48's scan: 21 µs). BENCHMARKS.md, "wasmtime 48.0.8
/// → 50.0.1". Kernels before 6.7 (Lambda's) have no scan at all.
pub const PAGEMAP_SCAN_DEFAULT: bool = false;

/// The fewest slots a pool has. Its totals scale with its slots (two
/// memories per slot, …): 4 keep room for a component with several memories
/// and tables even when one invocation at a time is all there is.
pub const MIN_POOL_INSTANCES: u32 = 4;

/// The most slots boot sizes a pool to for the manifest's needs (a function's
/// `concurrency` is at most 10 000 too).
const MAX_FITTED_POOL: u64 = 10_000;

impl EngineOptions {
    /// Sizes the pool for functions whose concurrency adds up to `needed`:
    /// `pool_instances` is kept when it holds that many (and at least
    /// [`MIN_POOL_INSTANCES`]), and raised to it otherwise. Never lowered: a
    /// pool smaller than the concurrency it serves would fail invocations
    /// where they should queue.
    pub fn fit_pool(&mut self, needed: u64) {
        let needed = needed.clamp(u64::from(MIN_POOL_INSTANCES), MAX_FITTED_POOL) as u32;
        self.pool_instances = self.pool_instances.max(needed);
    }
}

/// Names the settings [`code_config`] applies. Artifacts record it and the
/// host compares it; change it whenever `code_config` changes.
pub const CODE_SETTINGS: &str = "component,epoch,stack=1MiB,opt=speed";

/// The settings that decide compiled code, for this host. `nimbus compile`
/// and the host must agree on them, so both call this.
pub fn code_config() -> Config {
    let mut c = Config::new();
    // Deadlines: generated code checks an epoch counter at loop headers and
    // function entries. Cheaper than fuel, and a ticker thread drives it.
    c.epoch_interruption(true);
    // Components are what Nimbus runs; core modules are not accepted.
    c.wasm_component_model(true);
    // Deep recursion in a guest traps cleanly instead of overflowing a host stack.
    c.max_wasm_stack(1 << 20);
    c.cranelift_opt_level(wasmtime::OptLevel::Speed);
    c
}

/// The whole engine configuration: code settings, memory initialisation
/// and the instance pool.
fn full_config(opts: &EngineOptions) -> Config {
    let mut config = code_config();
    config.memory_init_cow(opts.memory_cow);
    if opts.pooling {
        let mut pool = PoolingAllocationConfig::new();
        let n = opts.pool_instances;
        // A Rust component is a handful of core instances (the program,
        // the WASI adapter, shims), each with up to a few tables and one
        // or two memories: size the totals from the instance count.
        pool.total_component_instances(n);
        pool.total_core_instances(n.saturating_mul(8));
        pool.total_memories(n.saturating_mul(2));
        pool.total_tables(n.saturating_mul(4));
        pool.total_stacks(n);
        pool.max_core_instances_per_component(32);
        pool.max_memories_per_component(4);
        pool.max_tables_per_component(16);
        pool.max_memory_size(usize::try_from(opts.max_memory).unwrap_or(usize::MAX));
        pool.linear_memory_keep_resident(usize::try_from(opts.keep_resident).unwrap_or(usize::MAX));
        pool.table_keep_resident(64 << 10);
        pool.pagemap_scan(if opts.pagemap_scan {
            wasmtime::Enabled::Auto
        } else {
            wasmtime::Enabled::No
        });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// An engine that only compiles: `nimbus compile` and `nimbus package`.
///
/// Its settings are the host's, so the artifacts it makes load without a
/// fallback. With `target`, it cross-compiles for that architecture's
/// baseline CPU (any Lambda machine of that architecture runs the code;
/// `nimbus package --arch arm64` works on x86_64); without, it compiles for
/// this machine's CPU features.
pub fn compiler(target: Option<crate::artifact::Target>) -> Result<Engine, BootError> {
    let mut config = full_config(&EngineOptions {
        pool_instances: 1,
        ..EngineOptions::default()
    });
    if let Some(t) = target {
        config
            .target(t.triple())
            .map_err(|e| BootError::Engine(format!("target {}: {e:#}", t.triple())))?;
    }
    Engine::new(&config).map_err(|e| BootError::Engine(format!("{e:#}")))
}

/// A running engine and its epoch ticker; the ticker stops when this drops.
pub struct NimbusEngine {
    engine: Engine,
    tick: Duration,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl NimbusEngine {
    /// Builds the engine and starts the ticker.
    pub fn new(opts: &EngineOptions) -> Result<NimbusEngine, BootError> {
        // What was asked of the engine, after boot fitted the pool to the manifest: `NIMBUS_LOG=debug` shows it.
        tracing::debug!(
            pool_instances = opts.pool_instances,
            pooling = opts.pooling,
            epoch_tick_ms = opts.epoch_tick.as_millis() as u64,
            keep_resident = opts.keep_resident,
            memory_cow = opts.memory_cow,
            pagemap_scan = opts.pagemap_scan,
            max_memory = opts.max_memory,
            "engine settings"
        );
        let config = full_config(opts);
        let engine = Engine::new(&config).map_err(|e| BootError::Engine(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let weak = engine.weak();
            let stop = stop.clone();
            let tick = opts.epoch_tick;
            std::thread::Builder::new()
                .name("nimbus-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        match weak.upgrade() {
                            Some(e) => e.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .map_err(|e| BootError::Engine(format!("cannot start the epoch ticker: {e}")))?
        };
        Ok(NimbusEngine {
            engine,
            tick: opts.epoch_tick,
            stop,
            ticker: Some(ticker),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The epoch tick: deadlines are enforced to this resolution.
    pub fn tick(&self) -> Duration {
        self.tick
    }
}

impl Drop for NimbusEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
