//! The two error types of the host and their one mapping to platform error
//! types and HTTP statuses.

use crate::invocation::DeadlineCause;
use crate::manifest::ManifestError;
use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

/// Why the host could not start. Boot errors name the function, file or
/// setting at fault; platform adapters report them as init errors.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The manifest is missing, unreadable or invalid.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// An environment setting (`NIMBUS_*`, `OTEL_*`) has a bad value.
    #[error(transparent)]
    Setting(#[from] crate::settings::SettingsError),
    /// The wasmtime engine could not be built.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// A component or artifact could not be loaded.
    #[error("function `{function}`: cannot load {}: {message}", path.display())]
    Artifact {
        /// The function it belongs to.
        function: String,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The component needs something the host does not provide, or exports nothing it can call.
    #[error("function `{function}`: {message}")]
    Component {
        /// The function.
        function: String,
        /// What went wrong.
        message: String,
    },
    /// A declared config value could not be resolved.
    #[error("function `{function}`: config key `{key}`: {message}")]
    Config {
        /// The function.
        function: String,
        /// The config key.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// Two routes collide or a route is malformed.
    #[error("function `{function}`: route {route:?} (manifest line {line}): {message}")]
    Route {
        /// The function.
        function: String,
        /// The route text.
        route: String,
        /// Its line in the manifest.
        line: usize,
        /// What went wrong.
        message: String,
    },
}

/// Why one invocation failed. The host stays up after every one of these.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, stack overflow).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest ran past its deadline and was stopped; the cause says which deadline (the manifest's
    /// `timeout` or the platform's).
    #[error("deadline exceeded: {0}")]
    Deadline(DeadlineCause),
    /// The guest tried to grow its memory past the limit.
    #[error("out of memory: the guest tried to grow its memory past the {limit_mb}MiB limit")]
    Memory {
        /// The configured limit in MiB.
        limit_mb: u64,
    },
    /// Too many invocations are queued; try again later.
    #[error("overloaded: all {concurrency} instances of this function are busy; retry after {}s", retry_after.as_secs())]
    Overloaded {
        /// The function's concurrency limit.
        concurrency: u32,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// A payload is larger than its quota.
    #[error("{what} of {size} bytes exceeds the {limit} byte limit ({quota})")]
    TooLarge {
        /// "request body", "response body", "event".
        what: &'static str,
        /// The size seen (at least).
        size: u64,
        /// The limit applied.
        limit: u64,
        /// The manifest key that sets it.
        quota: &'static str,
    },
    /// The event is malformed (host-side decoding or the guest's `invalid-event`).
    #[error("bad event: {0}")]
    BadEvent(String),
    /// The guest reported a failure (`error.failed`).
    #[error("function failed: {0}")]
    Guest(String),
    /// An HTTP guest returned without setting a response.
    #[error("the function returned without sending a response")]
    NoResponse,
    /// The payload does not fit the function's kind (an event sent to an HTTP-only function…).
    #[error("function `{function}` is an {kind} function and cannot take this payload")]
    WrongKind {
        /// The function.
        function: String,
        /// Its kind.
        kind: &'static str,
    },
    /// A host fault; never the guest's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BootError {
    /// Lambda-style `errorType` for `/init/error` and boot logs.
    pub fn error_type(&self) -> &'static str {
        match self {
            BootError::Manifest(_) => "Nimbus.Init.Manifest",
            BootError::Setting(_) => "Nimbus.Init.Setting",
            BootError::Engine(_) => "Nimbus.Init.Engine",
            BootError::Artifact { .. } => "Nimbus.Init.Artifact",
            BootError::Component { .. } => "Nimbus.Init.Component",
            BootError::Config { .. } => "Nimbus.Init.Config",
            BootError::Route { .. } => "Nimbus.Init.Route",
        }
    }
}

impl InvokeError {
    /// The `errorType` of [`InvokeError::Deadline`].
    pub const DEADLINE: &'static str = "Nimbus.Deadline";

    /// Lambda-style `errorType`, also logged with every failed invocation.
    pub fn error_type(&self) -> &'static str {
        match self {
            InvokeError::Trap(_) => "Nimbus.Trap",
            InvokeError::Deadline(_) => InvokeError::DEADLINE,
            InvokeError::Memory { .. } => "Nimbus.OutOfMemory",
            InvokeError::Overloaded { .. } => "Nimbus.Overloaded",
            InvokeError::TooLarge { .. } => "Nimbus.PayloadTooLarge",
            InvokeError::BadEvent(_) => "Function.BadEvent",
            InvokeError::Guest(_) => "Function.Failed",
            InvokeError::NoResponse => "Nimbus.NoResponse",
            InvokeError::WrongKind { .. } => "Nimbus.WrongKind",
            InvokeError::Internal(_) => "Nimbus.Internal",
        }
    }

    /// What the caller is told (`message` of a gateway's answer, `errorMessage` of a Lambda error). A
    /// trap's text carries the guest's wasm backtrace (function names, code offsets) and a host fault's
    /// carries host internals: the caller gets only a sentence saying what kind of failure it was, and
    /// finds the details in the invocation's log line by its request id. Every other error is about the
    /// request or a limit, and is told as it is.
    pub fn public_message(&self) -> Cow<'_, str> {
        match self {
            InvokeError::Trap(_) => Cow::Borrowed("the function trapped; the details are in its log"),
            InvokeError::Internal(_) => Cow::Borrowed("internal error; the details are in the log"),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// The HTTP status a gateway answers with.
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            InvokeError::Trap(_) | InvokeError::Memory { .. } | InvokeError::Guest(_) => S::INTERNAL_SERVER_ERROR,
            InvokeError::Deadline(_) => S::GATEWAY_TIMEOUT,
            InvokeError::Overloaded { .. } => S::SERVICE_UNAVAILABLE,
            // A response over its quota is the function's fault, as API Gateway sees it.
            InvokeError::TooLarge { what, .. } if what.starts_with("response") => S::BAD_GATEWAY,
            InvokeError::TooLarge { .. } => S::PAYLOAD_TOO_LARGE,
            InvokeError::BadEvent(_) => S::BAD_REQUEST,
            InvokeError::NoResponse => S::BAD_GATEWAY,
            InvokeError::WrongKind { .. } | InvokeError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }
}
