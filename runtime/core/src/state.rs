//! `HostState`: the data of one invocation's `Store`.

use crate::caps::{self, Contexts, Grants, View};
use crate::invocation::Invocation;
use crate::logs::{CurrentInvocation, GuestLog, LogSink, Stream};
use crate::manifest::Reuse;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The most host resources (request and response handles, streams, pollables, fields, key-value buckets…)
/// one instance may hold at once. wasmtime's default (a million) would let one guest that creates handles in
/// a loop hold a gigabyte of host memory before it failed; a handler needs tens. Past this the guest's
/// call fails (wasmtime traps it: "resource table has no free keys") and only that invocation ends.
pub const MAX_GUEST_RESOURCES: usize = 16_384;

/// Everything one invocation's store holds: the resource table, WASI's and `wasi:http`'s contexts, the
/// memory limiter, and one context per capability ([`Contexts`]), each reached only through its view.
pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) limits: caps::limits::MemoryLimiter,
    pub(crate) inv: Arc<Invocation>,
    /// The same invocation, as the log streams see it (swapped by [`HostState::begin`]).
    current: CurrentInvocation,
    /// The capabilities' contexts.
    pub(crate) caps: Contexts,
}

impl HostState {
    /// The per-invocation setup: WASI's context and every capability's `prepare`, nothing else.
    pub fn prepare(
        shared: &caps::Shared,
        inv: &Arc<Invocation>,
        grants: &mut Grants,
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
        HostState {
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_GUEST_RESOURCES);
                table
            },
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            limits: caps::limits::MemoryLimiter::new(memory),
            inv: inv.clone(),
            current,
            caps: Contexts::prepare(shared, inv, grants),
        }
    }

    /// Points a warm instance's state at its next invocation: the same `prepare` of every capability,
    /// keeping what the instance holds (its resource table, its WASI context and streams).
    pub fn begin(&mut self, shared: &caps::Shared, inv: &Arc<Invocation>, grants: &mut Grants) {
        self.current.set(inv.clone());
        self.inv = inv.clone();
        self.limits.hit = false;
        self.caps = Contexts::prepare(shared, inv, grants);
    }

    /// One capability's view: its context (picked by `pick`), the invocation and the table.
    pub(crate) fn view<C>(&mut self, pick: impl FnOnce(&mut Contexts) -> &mut C) -> View<'_, C> {
        View {
            ctx: pick(&mut self.caps),
            inv: &self.inv,
            table: &mut self.table,
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
            hooks: &mut self.caps.outbound,
        }
    }
}
