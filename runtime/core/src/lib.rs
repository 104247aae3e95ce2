//! Nimbus core: the sandbox host that every platform adapter drives.
//!
//! A [`Host`] is booted once per process from a [`Manifest`]: it builds one
//! wasmtime engine (pooling allocator, epoch interruption), loads each
//! function's component or precompiled artifact, links the host
//! capabilities, and keeps one `InstancePre` per function. Each invocation
//! then gets a fresh, bounded instance: its own memory limit, its own
//! deadline, nothing left over from the previous request.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use nimbus_core::{BootOptions, Event, EventSource, Host, Manifest, Outcome, Payload, TraceContext};
//!
//! let manifest = Manifest::load("nimbus.toml")?;
//! let host = Host::boot(manifest, BootOptions::default()).await?;
//! let echo = host.function("echo").expect("declared in nimbus.toml");
//! let inv = host.new_invocation(echo, None, TraceContext::new_root());
//! let event = Event { source: EventSource::Direct, payload: br#"{"hi":1}"#.to_vec() };
//! if let Outcome::Event(output) = host.invoke(echo, inv, Payload::Event(event)).await? {
//!     println!("{}", String::from_utf8_lossy(&output));
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod artifact;
pub mod aws;
mod bindings;
pub mod breaker;
pub mod caps;
pub mod degrade;
pub mod engine;
pub mod error;
mod exports;
pub mod faults;
pub mod host;
mod incoming;
pub mod invocation;
pub mod logs;
pub mod manifest;
pub mod metrics;
pub mod router;
pub mod settings;
pub mod state;
pub mod tasks;
pub mod websocket;

pub use error::{BootError, InvokeError};
pub use exports::Kind;
pub use host::{BootOptions, Function, Host, RunContext, RunEnd, TaskError};
pub use invocation::{DeadlineCause, Event, EventSource, Invocation, Outcome, Payload, PlatformDeadline, TraceContext};
pub use manifest::Manifest;
/// Spans, span ids and OTLP metrics: the nimbus-telemetry crate, under the path the host's users (platforms,
/// the CLI, the tests) have always imported it from.
pub use nimbus_telemetry as telemetry;
pub use router::RouteMatch;
pub use settings::{Settings, SettingsError};
pub use state::HostState;
pub use tasks::{Handled, Tasks, TasksError};

/// The HTTP body type Nimbus hands to and receives from guests.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, HttpError>;

/// The error type of [`Body`] (wasi-http's).
pub use wasmtime_wasi_http::Error as HttpError;
