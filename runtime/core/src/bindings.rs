//! Host-side bindings for the `nimbus:function` WIT package.
//!
//! Generated from the same `guest-sdk/wit` directory the SDK uses, so host
//! and guest cannot drift apart. WASI interfaces are mapped onto the
//! `wasmtime-wasi` / `wasmtime-wasi-http` implementations rather than
//! regenerated.

#[allow(missing_docs, clippy::all)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../guest-sdk/wit",
        world: "nimbus:function/event-function",
        exports: { default: async },
        require_store_data_send: true,
        // A span handle the guest passes back may be stale: that is a trap, not a panic.
        imports: { "nimbus:function/tracing": trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:filesystem": wasmtime_wasi::p2::bindings::filesystem,
            "wasi:sockets": wasmtime_wasi::p2::bindings::sockets,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "nimbus:function/tracing.span": crate::caps::spans::GuestSpan,
        },
    });
}

pub use generated::nimbus::function::{invocation, tracing, types};
pub use generated::wasi::logging::logging;
pub use generated::{EventFunction, EventFunctionPre};
