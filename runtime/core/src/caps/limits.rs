//! `limits`: per-instance memory and table limits, and a record of whether
//! the guest hit them, so an out-of-memory trap is reported as such.

use wasmtime::ResourceLimiter;

/// Most table elements one instance may have (function pointers, mostly).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The store's resource limiter.
pub struct MemoryLimiter {
    memory: usize,
    /// The largest linear memory granted so far (instantiation counts too).
    peak: usize,
    /// Set when a `memory.grow` was refused.
    pub hit: bool,
}

impl MemoryLimiter {
    /// Limits linear memory to `bytes`.
    pub fn new(bytes: u64) -> Self {
        MemoryLimiter {
            memory: usize::try_from(bytes).unwrap_or(usize::MAX),
            peak: 0,
            hit: false,
        }
    }

    /// Lowers the limit to `bytes` (never raises it): a fault rule's memory pressure.
    pub fn lower(&mut self, bytes: u64) {
        self.memory = self.memory.min(usize::try_from(bytes).unwrap_or(usize::MAX));
    }

    /// The instance's peak linear memory in bytes (for metrics).
    pub fn peak(&self) -> u64 {
        self.peak as u64
    }

    /// The limit in MiB (for error messages).
    pub fn limit_mb(&self) -> u64 {
        (self.memory >> 20) as u64
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
