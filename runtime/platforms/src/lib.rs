//! Platform adapters: each turns a platform's protocol into Nimbus
//! invocations and back, and owns no policy of its own.
//!
//! - [`local`]: `nimbus serve`, an API-gateway-like HTTP server with routes
//!   from the manifest and the Lambda Invoke API for event functions.
#![deny(missing_docs)]

pub mod local;
