//! `HostState`: the data of one invocation's `Store`.

use crate::caps::{self, Capability};
use crate::invocation::Invocation;
use crate::logs::{CurrentInvocation, GuestLog, LogSink, Stream};
use crate::manifest::Reuse;
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
    /// The same invocation, as the log streams see it (swapped by [`HostState::begin`]).
    current: CurrentInvocation,
    /// Where `wasi:logging` records go (stdout/stderr have their own copy).
    pub(crate) sink: LogSink,
    pub(crate) config: <caps::config::Config as Capability>::State,
    pub(crate) outbound: <caps::outbound::Outbound as Capability>::State,
    pub(crate) spans: <caps::spans::Spans as Capability>::State,
    pub(crate) checkpoint: <caps::checkpoint::Checkpoint as Capability>::State,
    pub(crate) connections: <caps::connections::Connections as Capability>::State,
    pub(crate) keyvalue: <caps::keyvalue::KeyValue as Capability>::State,
}

impl HostState {
    /// The per-invocation setup: every capability's `prepare`, nothing else.
    pub fn prepare(
        shared: &caps::Shared,
        inv: &Arc<Invocation>,
        memory: u64,
        sink: &LogSink,
        reuse: Reuse,
    ) -> HostState {
        // No host env, no args, no preopens, no sockets: a guest sees only what
        // its capabilities grant. stdout/stderr become JSON log lines.
        let current = CurrentInvocation::new(inv.clone());
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestLog::new(current.clone(), sink.clone(), Stream::Stdout))
            .stderr(GuestLog::new(current.clone(), sink.clone(), Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let (Some(xray), Reuse::Fresh) = (&inv.trace.xray, reuse) {
            // Lambda semantics, per invocation: AWS SDKs in the guest read it
            // from here. A warm instance reads its environment once, so it
            // would see the first invocation's id forever: it gets none, and
            // the SDK derives the header from the invocation's trace context.
            wasi.env(caps::trace::XRAY_ENV, xray);
        }
        caps::invocation::InvocationCap::prepare(&(), inv);
        caps::logging::Logging::prepare(&(), inv);
        HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            limits: caps::limits::MemoryLimiter::new(memory),
            inv: inv.clone(),
            current,
            sink: sink.clone(),
            config: caps::config::Config::prepare(&shared.config, inv),
            outbound: caps::outbound::Outbound::prepare(&shared.outbound, inv),
            spans: caps::spans::Spans::prepare(&shared.spans, inv),
            checkpoint: caps::checkpoint::Checkpoint::prepare(&shared.checkpoint, inv),
            connections: caps::connections::Connections::prepare(&shared.connections, inv),
            keyvalue: caps::keyvalue::KeyValue::prepare(&shared.keyvalue, inv),
        }
    }

    /// Points a warm instance's state at its next invocation: the same
    /// `prepare` of every capability, keeping what the instance holds (its
    /// resource table, its WASI context and streams).
    pub fn begin(&mut self, shared: &caps::Shared, inv: &Arc<Invocation>) {
        self.current.set(inv.clone());
        self.inv = inv.clone();
        self.limits.hit = false;
        caps::invocation::InvocationCap::prepare(&(), inv);
        self.config = caps::config::Config::prepare(&shared.config, inv);
        self.outbound = caps::outbound::Outbound::prepare(&shared.outbound, inv);
        self.spans = caps::spans::Spans::prepare(&shared.spans, inv);
        self.checkpoint = caps::checkpoint::Checkpoint::prepare(&shared.checkpoint, inv);
        self.connections = caps::connections::Connections::prepare(&shared.connections, inv);
        self.keyvalue = caps::keyvalue::KeyValue::prepare(&shared.keyvalue, inv);
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
