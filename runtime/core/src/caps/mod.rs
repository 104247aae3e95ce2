//! Host capabilities: what a guest can reach beyond its own memory.
//!
//! Every capability has the same three phases, so per-request work stays
//! visible and tiny:
//! 1. `link`: once per engine, add its WIT bindings to the linker;
//! 2. `configure`: once per function at boot, read its manifest section and
//!    build shared state (I/O allowed here and only here);
//! 3. `prepare`: once per invocation, put cheap clones into the store.
//!
//! [`link_all`] and [`crate::state::HostState::prepare`] name every
//! capability explicitly: together they are the whole per-request cost.

pub mod checkpoint;
pub mod config;
pub mod connections;
pub mod invocation;
pub mod keyvalue;
pub mod limits;
pub mod logging;
pub mod outbound;
pub mod propagate;
pub mod spans;
pub mod trace;
pub mod trace_headers;

use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use crate::telemetry::Telemetry;
use propagate::SpanIds;
use std::sync::Arc;
use wasmtime::component::Linker;

/// A host capability.
pub trait Capability {
    /// Its name in logs and errors.
    const NAME: &'static str;
    /// Built once per function at boot.
    type Shared: Send + Sync + 'static;
    /// One per invocation, kept in [`HostState`].
    type State: Send + 'static;

    /// Adds the capability's imports to the linker (once per engine).
    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()>;

    /// Builds the function's shared state from its manifest entry.
    fn configure(spec: &FunctionSpec, boot: &Boot) -> impl Future<Output = Result<Self::Shared, BootError>> + Send;

    /// Makes the per-invocation state: clones only, no I/O, no parsing.
    fn prepare(shared: &Self::Shared, inv: &Arc<Invocation>) -> Self::State;
}

/// Links WASI (cli, clocks, random, io, filesystem, sockets — all empty or
/// denied by default), `wasi:http`, `wasi:logging`, and every Nimbus capability.
pub fn link_all(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    link::<config::Config>(linker)?;
    link::<invocation::InvocationCap>(linker)?;
    link::<logging::Logging>(linker)?;
    link::<spans::Spans>(linker)?;
    link::<checkpoint::Checkpoint>(linker)?;
    link::<connections::Connections>(linker)?;
    link::<keyvalue::KeyValue>(linker)?;
    Ok(())
}

/// Links one capability; a failure names it.
fn link<C: Capability>(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    C::link(linker).map_err(|e| e.context(format!("linking the `{}` capability", C::NAME)))
}

/// What the host hands every capability's `configure`: what the boot shares.
#[derive(Clone)]
pub struct Boot {
    /// The span exporter, when export is on.
    pub telemetry: Option<Telemetry>,
    /// The boot's own span (`nimbus.init`): work done at boot is its child.
    pub init: SpanIds,
    /// The default WebSocket sender ([`crate::BootOptions::connections`]).
    pub connections: Option<crate::websocket::Sender>,
    /// The key-value store ([`crate::BootOptions::keyvalue`]).
    pub keyvalue: Option<std::sync::Arc<dyn nimbus_kv::KvStore>>,
    /// How outbound requests connect ([`crate::BootOptions::outbound`]), shared by every function.
    pub outbound: Arc<outbound::send::Connector>,
    /// Where the host writes records about an invocation (e.g. a refused outbound request).
    pub log_sink: crate::logs::LogSink,
    /// Where `ssm` / `ssm_path` config keys are read from ([`crate::BootOptions::ssm`]), shared by every
    /// function so at most one SSM client is built.
    pub ssm: config::SsmProvider,
    /// The app's name (`[app] name`), for the log lines capabilities write about a function.
    pub app: Arc<str>,
}

/// Every capability's shared state for one function.
pub struct Shared {
    /// `config`.
    pub config: <config::Config as Capability>::Shared,
    /// `outbound`.
    pub outbound: <outbound::Outbound as Capability>::Shared,
    /// `spans`.
    pub spans: <spans::Spans as Capability>::Shared,
    /// `checkpoint`.
    pub checkpoint: <checkpoint::Checkpoint as Capability>::Shared,
    /// `connections`.
    pub connections: <connections::Connections as Capability>::Shared,
    /// `keyvalue`.
    pub keyvalue: <keyvalue::KeyValue as Capability>::Shared,
}

impl Shared {
    /// Runs every capability's `configure` for one function.
    pub async fn configure(spec: &FunctionSpec, boot: &Boot) -> Result<Shared, BootError> {
        Ok(Shared {
            config: config::Config::configure(spec, boot).await?,
            outbound: outbound::Outbound::configure(spec, boot).await?,
            spans: spans::Spans::configure(spec, boot).await?,
            checkpoint: checkpoint::Checkpoint::configure(spec, boot).await?,
            connections: connections::Connections::configure(spec, boot).await?,
            keyvalue: keyvalue::KeyValue::configure(spec, boot).await?,
        })
    }
}
