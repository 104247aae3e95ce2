//! Host capabilities: what a guest can reach beyond its own memory.
//!
//! Every capability is isolated the way wasmtime's own WASI crates are: it owns a per-invocation
//! context (its `Ctx`), and its WIT host traits are implemented on a borrowed [`View`] of that context
//! (plus the invocation, read-only, and the store's resource table), never on the whole store data.
//! A capability can reach only its own state; what two of them share (the innermost guest span that an
//! outgoing request is a child of) is handed to both, explicitly, in [`Grants`].
//!
//! Every capability has the same three phases, so per-request work stays visible and tiny:
//! 1. `link`: once per engine, add its WIT bindings to the linker;
//! 2. `configure`: once per function at boot, read its manifest section and build shared state (I/O
//!    allowed here and only here);
//! 3. `prepare`: once per invocation, build its context from the shared state, the invocation and the
//!    [`Grants`] the invocation's kind brings (a WebSocket event's sender, a task's run): clones only.
//!
//! The one list of capabilities is the [`capabilities!`] invocation below: it declares the shared and
//! per-invocation structs, `configure`, `prepare`, the views and `link_all`, so a new capability is one
//! line there plus its module.
//!
//! Every call that leaves the sandbox goes through one small trait per call family — the seam that
//! fault injection, circuit breakers and recording wrap ([`Intercept`]):
//! outbound HTTP ([`outbound::OutboundHttp`]), config ([`config::ConfigStore`]), key-value
//! ([`nimbus_kv::KvStore`]), the checkpoint store ([`nimbus_checkpoint::Backend`]) and WebSocket sends
//! ([`crate::websocket::ConnectionSender`]).

pub mod checkpoint;
pub mod config;
pub mod connections;
pub mod intercept;
pub mod invocation;
pub mod keyvalue;
pub mod limits;
pub mod logging;
pub mod outbound;
pub mod trace;

pub use intercept::Intercept;

use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use crate::telemetry::Telemetry;
use std::marker::PhantomData;
use std::sync::Arc;
use trace::SpanIds;
use wasmtime::component::{HasData, Linker, ResourceTable};

/// A host capability.
pub trait Capability {
    /// Its name in logs and errors.
    const NAME: &'static str;
    /// Built once per function at boot.
    type Shared: Send + Sync + 'static;
    /// Its per-invocation context, kept in the store; the only state its host traits reach.
    type Ctx: Send + 'static;

    /// Adds the capability's imports to the linker (once per engine), reaching the store data through
    /// `view`, which borrows only this capability's context.
    fn link(linker: &mut Linker<HostState>, view: ViewFn<Self::Ctx>) -> wasmtime::Result<()>;

    /// Builds the function's shared state from its manifest entry.
    fn configure(spec: &FunctionSpec, boot: &Boot) -> impl Future<Output = Result<Self::Shared, BootError>> + Send;

    /// Makes the per-invocation context: clones only, no I/O, no parsing. Takes from `grants` what the
    /// invocation's kind brings for this capability.
    fn prepare(shared: &Self::Shared, inv: &Arc<Invocation>, grants: &mut Grants) -> Self::Ctx;
}

/// What a capability's host traits are implemented on: its own context, the invocation (read-only) and
/// the store's resource table (for the resources it hands out).
pub struct View<'a, C> {
    /// The capability's per-invocation context.
    pub ctx: &'a mut C,
    /// The invocation being served.
    pub inv: &'a Arc<Invocation>,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// How the linker reaches a capability's [`View`] from the store data.
pub type ViewFn<C> = fn(&mut HostState) -> View<'_, C>;

/// The [`HasData`] of a capability whose context is `C`: its bindings see a [`View`] of `C`.
pub struct ViewOf<C>(PhantomData<C>);

impl<C: Send + 'static> HasData for ViewOf<C> {
    type Data<'a> = View<'a, C>;
}

/// What one invocation brings its capabilities beyond the [`Invocation`], each taken by the capability
/// it is for in its `prepare`.
pub struct Grants {
    /// A WebSocket event's own sender (the API that delivered it), for `connections`.
    pub connections: Option<crate::websocket::Sender>,
    /// A task run, for `checkpoint`.
    pub run: Option<nimbus_checkpoint::Run>,
    /// The innermost open guest span: written by `trace`, read by `outbound` for its client spans.
    pub span_cursor: trace::SpanCursor,
}

impl Grants {
    /// The grants of an invocation that brings nothing of its own (HTTP, events).
    pub fn none() -> Grants {
        Grants {
            connections: None,
            run: None,
            span_cursor: trace::SpanCursor::default(),
        }
    }
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
    pub keyvalue: Option<Arc<dyn nimbus_kv::KvStore>>,
    /// How outbound requests are sent ([`crate::BootOptions::outbound`]), shared by every function.
    pub outbound: Arc<dyn outbound::OutboundHttp>,
    /// Where the host writes records about an invocation (e.g. a refused outbound request).
    pub log_sink: crate::logs::LogSink,
    /// Where `ssm` / `ssm_path` config keys are read from ([`crate::BootOptions::ssm`]), shared by every
    /// function so at most one SSM client is built.
    pub ssm: config::SsmProvider,
    /// Where `oos` / `oos_path` config keys are read from ([`crate::BootOptions::oos`]), shared by every
    /// function.
    pub oos: config::OosProvider,
    /// The app's name (`[app] name`), for the log lines capabilities write about a function.
    pub app: Arc<str>,
    /// What wraps the host-call families ([`crate::BootOptions::intercept`]).
    pub intercept: intercept::Interceptor,
}

/// Declares every capability once: the field of its shared state and of its context, its type.
macro_rules! capabilities {
    ($($field:ident: $cap:ty),* $(,)?) => {
        /// Every capability's shared state for one function.
        pub struct Shared {
            $(
                #[doc = concat!("`", stringify!($field), "`.")]
                pub $field: <$cap as Capability>::Shared,
            )*
        }

        /// Every capability's context for one invocation.
        pub struct Contexts {
            $(
                #[doc = concat!("`", stringify!($field), "`.")]
                pub $field: <$cap as Capability>::Ctx,
            )*
        }

        impl Shared {
            /// Runs every capability's `configure` for one function.
            pub async fn configure(spec: &FunctionSpec, boot: &Boot) -> Result<Shared, BootError> {
                Ok(Shared { $($field: <$cap>::configure(spec, boot).await?,)* })
            }
        }

        impl Contexts {
            /// Runs every capability's `prepare` for one invocation: the whole per-request setup.
            pub fn prepare(shared: &Shared, inv: &Arc<Invocation>, grants: &mut Grants) -> Contexts {
                Contexts { $($field: <$cap>::prepare(&shared.$field, inv, grants),)* }
            }
        }

        /// Links WASI (cli, clocks, random, io, filesystem, sockets — all empty or denied by default),
        /// `wasi:http`, and every Nimbus capability, each through its own view.
        pub fn link_all(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
            wasmtime_wasi::p2::add_to_linker_async(linker)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
            $(
                <$cap>::link(linker, |s| s.view(|c| &mut c.$field))
                    .map_err(|e| e.context(format!("linking the `{}` capability", <$cap>::NAME)))?;
            )*
            Ok(())
        }
    };
}

capabilities! {
    invocation: invocation::InvocationCap,
    logging: logging::Logging,
    config: config::Config,
    trace: trace::Trace,
    outbound: outbound::Outbound,
    checkpoint: checkpoint::Checkpoint,
    connections: connections::Connections,
    keyvalue: keyvalue::KeyValue,
}
