//! The engine's settings: `NIMBUS_POOL_INSTANCES`, `NIMBUS_EPOCH_TICK_MS`, `NIMBUS_KEEP_RESIDENT`,
//! `NIMBUS_POOLING`, `NIMBUS_MEMORY_COW` and `NIMBUS_PAGEMAP_SCAN` (what each knob does, and its default, is in
//! [`crate::engine::EngineOptions`]).

use super::SettingsError;
use super::vars::Vars;
use crate::engine::EngineOptions;
use std::time::Duration;

/// The engine settings the environment gives; `None`: the entry point's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineSettings {
    /// `NIMBUS_POOL_INSTANCES`: the least instance slots the pool has (at least 1); boot raises it to what the
    /// functions' concurrency needs, never lowers it ([`EngineOptions::fit_pool`]).
    pub pool_instances: Option<u32>,
    /// `NIMBUS_EPOCH_TICK_MS`: the deadline resolution (at least 1 ms).
    pub epoch_tick: Option<Duration>,
    /// `NIMBUS_KEEP_RESIDENT`: bytes of each linear memory kept resident when an instance is freed.
    pub keep_resident: Option<u64>,
    /// `NIMBUS_POOLING`: `0` turns the pooling allocator off, any other number keeps it.
    pub pooling: Option<bool>,
    /// `NIMBUS_MEMORY_COW`: a number other than `0` maps linear memories from a copy-on-write image.
    pub memory_cow: Option<bool>,
    /// `NIMBUS_PAGEMAP_SCAN`: `0` resets all kept-resident memory on free instead of asking the kernel
    /// which pages were dirtied.
    pub pagemap_scan: Option<bool>,
}

impl EngineSettings {
    pub(super) fn read(vars: &Vars) -> Result<EngineSettings, SettingsError> {
        let switch = |name| vars.parse::<u8>(name, "0 (off) or 1 (on)").map(|v| v.map(|n| n != 0));
        Ok(EngineSettings {
            pool_instances: vars
                .parse::<u32>("NIMBUS_POOL_INSTANCES", "a number of instance slots, e.g. 64")?
                .map(|n| n.max(1)),
            epoch_tick: vars
                .parse::<u64>("NIMBUS_EPOCH_TICK_MS", "milliseconds, e.g. 1")?
                .map(|ms| Duration::from_millis(ms.max(1))),
            keep_resident: vars.parse::<u64>("NIMBUS_KEEP_RESIDENT", "bytes, e.g. 4194304")?,
            pooling: switch("NIMBUS_POOLING")?,
            memory_cow: switch("NIMBUS_MEMORY_COW")?,
            pagemap_scan: switch("NIMBUS_PAGEMAP_SCAN")?,
        })
    }

    /// `base` with every setting given applied.
    pub fn apply(&self, base: EngineOptions) -> EngineOptions {
        EngineOptions {
            pool_instances: self.pool_instances.unwrap_or(base.pool_instances),
            epoch_tick: self.epoch_tick.unwrap_or(base.epoch_tick),
            keep_resident: self.keep_resident.unwrap_or(base.keep_resident),
            pooling: self.pooling.unwrap_or(base.pooling),
            memory_cow: self.memory_cow.unwrap_or(base.memory_cow),
            pagemap_scan: self.pagemap_scan.unwrap_or(base.pagemap_scan),
            ..base
        }
    }
}
