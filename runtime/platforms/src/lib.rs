//! Platform adapters: each turns a platform's protocol into Nimbus
//! invocations and back, and owns no policy of its own.
//!
//! - [`azure`]: an Azure Functions custom handler, the web server the Functions host sends invocations to;
//! - [`lambda`]: AWS Lambda's Runtime API, driven by [`bootstrap`], the
//!   custom runtime's executable;
//! - [`knative`]: Cloud Run and Knative Serving (HTTP on `$PORT`, CloudEvents, Pub/Sub push);
//! - [`local`]: `nimbus serve`, an API-gateway-like HTTP server with routes
//!   from the manifest and the Lambda Invoke API for event functions;
//! - [`listener`]: the HTTP listener with its connection limits, shared by
//!   every adapter that accepts connections;
//! - [`serving`]: serving `bootstrap`'s one function over that listener until
//!   SIGTERM, for the platforms that call in (Function Compute, Cloud Run /
//!   Knative, Azure custom handlers).
#![deny(missing_docs)]

pub mod azure;
pub mod bootstrap;
pub mod fc;
pub mod knative;
pub mod lambda;
pub mod listener;
pub mod local;
pub mod reply;
pub mod runtime;
pub mod serving;
pub mod task_api;
