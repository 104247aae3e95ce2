//! # nimbus-sdk: write Nimbus functions in Rust
//!
//! A Nimbus function is a WebAssembly component that the Nimbus host runs in
//! a fresh, bounded sandbox per invocation — on AWS Lambda, other FaaS
//! platforms, or locally with `nimbus serve`. This crate gives you the two
//! handler shapes and typed access to what the host injects:
//!
//! - [`http`]: an HTTP handler, exported with [`http_function!`];
//! - [`event`]: an event handler (direct invocations, queues, schedules), exported with [`event_function!`];
//! - [`config`]: the configuration keys declared in `nimbus.toml`;
//! - [`invocation`]: request id, deadline, remaining time, trace context;
//! - [`log`]: structured log records with levels (`wasi:logging`);
//! - [`trace`]: spans of your own in the invocation's trace, with attributes;
//! - [`task`]: long tasks with typed, durable state across invocations, exported with [`task_function!`];
//! - [`websocket`]: the lifecycle of WebSocket clients, exported with [`websocket_function!`];
//! - [`connections`]: sending to WebSocket clients from any function;
//! - [`kv`]: the key-value buckets declared for the function (`wasi:keyvalue`);
//! - [`sqs`]: SQS batches with partial failures (`batchItemFailures`);
//! - [`aws_events`]: the typed AWS event shapes (`aws_lambda_events`), for [`event::Event::json`].
//!
//! ```no_run
//! use nimbus_sdk::http::{Request, Response};
//!
//! fn hello(req: Request) -> Response {
//!     let name = req.uri().query().unwrap_or("world").to_owned();
//!     Response::new(format!("hello, {name}\n").into_bytes())
//! }
//!
//! nimbus_sdk::http_function!(hello);
//! # fn main() {}
//! ```
//!
//! Build with `nimbus build` (or `cargo build --target wasm32-wasip2 --release`).
#![deny(missing_docs)]

pub mod config;
pub mod connections;
pub mod event;
pub mod http;
pub mod invocation;
pub mod kv;
pub mod log;
pub mod sqs;
pub mod task;
pub mod trace;
pub mod websocket;

/// Typed AWS event payloads (SQS, SNS, S3, EventBridge, DynamoDB, Kinesis),
/// re-exported from `aws_lambda_events`: `event.json::<aws_events::s3::S3Event>()`.
pub use aws_lambda_events::event as aws_events;

/// Raw bindings generated from the `nimbus:function` WIT package.
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "wit",
        world: "nimbus:function/event-function",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_event_function",
        default_bindings_module: "::nimbus_sdk::wit",
    });
}

/// Bindings of a world that adds one export to `imports`: only the export is new; every import is mapped
/// onto [`wit`]'s, so all kinds of function share one set of import bindings.
macro_rules! export_world {
    ($(#[$doc:meta])* $module:ident, $world:literal, $export_macro:literal, $bindings:literal) => {
        $(#[$doc])*
        #[doc(hidden)]
        pub mod $module {
            wit_bindgen::generate!({
                path: "wit",
                world: $world,
                with: {
                    "nimbus:function/types@0.1.0": crate::wit::nimbus::function::types,
                    "nimbus:function/invocation@0.1.0": crate::wit::nimbus::function::invocation,
                    "nimbus:function/tracing@0.1.0": crate::wit::nimbus::function::tracing,
                    "nimbus:function/checkpoint@0.1.0": crate::wit::nimbus::function::checkpoint,
                    "nimbus:function/connections@0.1.0": crate::wit::nimbus::function::connections,
                    "wasi:keyvalue/store@0.2.0-draft": crate::wit::wasi::keyvalue::store,
                    "wasi:keyvalue/atomics@0.2.0-draft": crate::wit::wasi::keyvalue::atomics,
                    "wasi:keyvalue/batch@0.2.0-draft": crate::wit::wasi::keyvalue::batch,
                },
                generate_all,
                pub_export_macro: true,
                export_macro_name: $export_macro,
                default_bindings_module: $bindings,
            });
        }
    };
}

export_world!(
    /// Raw bindings of the `task-function` world (its `task` export).
    task_wit,
    "nimbus:function/task-function",
    "export_task_function",
    "::nimbus_sdk::task_wit"
);

export_world!(
    /// Raw bindings of the `websocket-function` world (its `websocket` export).
    websocket_wit,
    "nimbus:function/websocket-function",
    "export_websocket_function",
    "::nimbus_sdk::websocket_wit"
);

#[doc(hidden)]
pub use wasip2;
