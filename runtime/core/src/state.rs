//! `HostState`: the data of one invocation's `Store`.

use crate::caps::{self, Capability};
use crate::invocation::Invocation;
use crate::logs::{GuestLog, LogSink, Stream};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Everything one invocation's store holds.
pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) limits: caps::limits::MemoryLimiter,
    pub(crate) inv: Arc<Invocation>,
    pub(crate) config: <caps::config::Config as Capability>::State,
    pub(crate) outbound: <caps::outbound::Outbound as Capability>::State,
}

impl HostState {
    /// The per-invocation setup: every capability's `prepare`, nothing else.
    pub fn prepare(shared: &caps::Shared, inv: &Arc<Invocation>, memory: u64, sink: &LogSink) -> HostState {
        // No host env, no args, no preopens, no sockets: a guest sees only what
        // its capabilities grant. stdout/stderr become JSON log lines.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog::new(inv.clone(), sink.clone(), Stream::Stdout))
            .stderr(GuestLog::new(inv.clone(), sink.clone(), Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(xray) = &inv.trace.xray {
            // Lambda semantics, per invocation: AWS SDKs in the guest read it from here.
            wasi.env(caps::trace::XRAY_ENV, xray);
        }
        caps::invocation::InvocationCap::prepare(&(), inv);
        HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            limits: caps::limits::MemoryLimiter::new(memory),
            inv: inv.clone(),
            config: caps::config::Config::prepare(&shared.config, inv),
            outbound: caps::outbound::Outbound::prepare(&shared.outbound, inv),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
