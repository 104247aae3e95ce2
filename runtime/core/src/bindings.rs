//! Host-side bindings for the `nimbus:function` WIT package.
//!
//! Generated from the same `guest-sdk/wit` directory the SDK uses, so host
//! and guest cannot drift apart. WASI interfaces are mapped onto the
//! `wasmtime-wasi` / `wasmtime-wasi-http` implementations rather than
//! regenerated.
//!
//! Several worlds, one source of truth: `event-function` generates every
//! import (all worlds share `imports`) and the `events` export;
//! `task-function` and `websocket-function` generate only their export and
//! map each of their imports back onto the first, so a capability implements
//! its interface once for every kind.

#[allow(missing_docs, clippy::all)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../guest-sdk/wit",
        world: "nimbus:function/event-function",
        exports: { default: async },
        require_store_data_send: true,
        imports: {
            // A span handle the guest passes back may be stale: that is a trap, not a panic.
            "nimbus:function/tracing": trappable,
            // Saving commits to the store (I/O): async. Trappable so a host fault is a trap, while the
            // guest-visible failures (too large, fenced, store down) are `checkpoint-error` values.
            "nimbus:function/checkpoint.save": async | trappable,
            "nimbus:function/checkpoint.set-progress": async | trappable,
            // Sends and closes go to a gateway (a socket's queue, or the API Gateway Management API): async.
            "nimbus:function/connections.send": async | trappable,
            "nimbus:function/connections.close": async | trappable,
            // Key-value calls are I/O (files, DynamoDB): async, and trappable for host faults.
            "wasi:keyvalue/store": async | trappable,
            // Config reads are from memory, but what wraps them may wait (injected latency): async.
            "wasi:config/store": async,
            "wasi:keyvalue/atomics": async | trappable,
            "wasi:keyvalue/batch": async | trappable,
        },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:filesystem": wasmtime_wasi::p2::bindings::filesystem,
            "wasi:sockets": wasmtime_wasi::p2::bindings::sockets,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "nimbus:function/tracing.span": crate::caps::trace::GuestSpan,
            "wasi:keyvalue/store.bucket": crate::caps::keyvalue::Bucket,
        },
    });
}

/// Bindings of a world that adds one export to `imports`: only the export is generated; every import is
/// mapped onto [`generated`]'s, so a capability implements its interface once for every kind.
macro_rules! export_world {
    ($module:ident, $world:literal) => {
        #[allow(missing_docs, clippy::all)]
        mod $module {
            wasmtime::component::bindgen!({
                path: "../../guest-sdk/wit",
                world: $world,
                exports: { default: async },
                require_store_data_send: true,
                with: {
                    "wasi:io": wasmtime_wasi::p2::bindings::io,
                    "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
                    "wasi:random": wasmtime_wasi::p2::bindings::random,
                    "wasi:cli": wasmtime_wasi::p2::bindings::cli,
                    "wasi:filesystem": wasmtime_wasi::p2::bindings::filesystem,
                    "wasi:sockets": wasmtime_wasi::p2::bindings::sockets,
                    "wasi:http": wasmtime_wasi_http::p2::bindings::http,
                    "wasi:config": super::generated::wasi::config,
                    "wasi:logging": super::generated::wasi::logging,
                    "wasi:keyvalue": super::generated::wasi::keyvalue,
                    "nimbus:function/types": super::generated::nimbus::function::types,
                    "nimbus:function/invocation": super::generated::nimbus::function::invocation,
                    "nimbus:function/tracing": super::generated::nimbus::function::tracing,
                    "nimbus:function/checkpoint": super::generated::nimbus::function::checkpoint,
                    "nimbus:function/connections": super::generated::nimbus::function::connections,
                },
            });
        }
    };
}

export_world!(task_generated, "nimbus:function/task-function");
export_world!(websocket_generated, "nimbus:function/websocket-function");

pub use generated::nimbus::function::{checkpoint, connections, invocation, tracing, types};
pub use generated::wasi::config::store as config;
pub use generated::wasi::keyvalue;
pub use generated::wasi::logging::logging;
pub use generated::{EventFunction, EventFunctionPre};
pub use task_generated::exports::nimbus::function::task::TaskOutcome;
pub use task_generated::{TaskFunction, TaskFunctionPre};
pub use websocket_generated::exports::nimbus::function::websocket;
pub use websocket_generated::{WebsocketFunction, WebsocketFunctionPre};
