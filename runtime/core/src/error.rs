//! The two error types of the host and their one mapping to platform error
//! types and HTTP statuses.

use crate::exports::Kind;
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
    /// The fault plan's SSM parameter could not be fetched, or holds no valid plan.
    #[error("{0}")]
    Faults(String),
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
    /// A payload is larger than its quota. Build it with [`InvokeError::request_too_large`] or
    /// [`InvokeError::response_too_large`].
    #[error("{what} of {size} bytes exceeds the {limit} byte limit ({quota})")]
    TooLarge {
        /// Into the guest (the caller's fault) or out of it (the function's).
        direction: Direction,
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
    #[error("function `{function}` is {} function and cannot take {} payload", kind.with_article(), payload.with_article())]
    WrongKind {
        /// The function.
        function: String,
        /// Its kind.
        kind: Kind,
        /// The kind of payload it was given.
        payload: Kind,
    },
    /// A host fault; never the guest's fault. Build it with [`InvokeError::internal`].
    #[error("internal error: {what}{}", cause_suffix(source.as_deref()))]
    Internal {
        /// What the host was doing.
        what: String,
        /// The underlying failure, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The durable-task store failed ending a task run; the run is delivered again.
    #[error("task store: {0}")]
    Store(#[from] nimbus_checkpoint::DurableError),
    /// The function's degradation ladder refused the invocation before it ran ([`crate::degrade`]): load
    /// shed at level 2, or the whole function unavailable at level 4.
    #[error("unavailable ({}): {reason}; retry after {}s", crate::degrade::level_name(*level), retry_after.as_secs().max(1))]
    Degraded {
        /// The level (2 to 5).
        level: u8,
        /// What set it.
        reason: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// A fault rule on the invocation failed it before the guest ran ([`crate::faults`]).
    #[error("fault injected by rule `{rule}`: the invocation failed before the function ran")]
    Injected {
        /// The rule's name.
        rule: String,
    },
}

/// Which way a payload over its quota was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Into the guest: a request body, an event, a WebSocket message, a task input.
    In,
    /// Out of the guest: a response body, an event result, a WebSocket reply.
    Out,
}

/// `": cause"` for an internal error's message, so a log line that prints only the error keeps the cause.
fn cause_suffix(source: Option<&(dyn std::error::Error + Send + Sync)>) -> String {
    source.map(|s| format!(": {s}")).unwrap_or_default()
}

impl BootError {
    /// Lambda-style `errorType` for `/init/error` and boot logs.
    pub fn error_type(&self) -> &'static str {
        match self {
            BootError::Manifest(_) => "Nimbus.Init.Manifest",
            BootError::Setting(_) => "Nimbus.Init.Setting",
            BootError::Engine(_) => "Nimbus.Init.Engine",
            BootError::Faults(_) => "Nimbus.Init.Faults",
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
            InvokeError::Internal { .. } => "Nimbus.Internal",
            InvokeError::Store(_) => "Nimbus.Store",
            InvokeError::Injected { .. } => "Nimbus.FaultInjected",
            InvokeError::Degraded { .. } => "Nimbus.Degraded",
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
            InvokeError::Internal { .. } | InvokeError::Store(_) => {
                Cow::Borrowed("internal error; the details are in the log")
            }
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
            InvokeError::TooLarge {
                direction: Direction::Out,
                ..
            } => S::BAD_GATEWAY,
            InvokeError::TooLarge {
                direction: Direction::In,
                ..
            } => S::PAYLOAD_TOO_LARGE,
            InvokeError::BadEvent(_) => S::BAD_REQUEST,
            InvokeError::NoResponse => S::BAD_GATEWAY,
            InvokeError::WrongKind { .. } | InvokeError::Internal { .. } => S::INTERNAL_SERVER_ERROR,
            InvokeError::Store(_) => S::SERVICE_UNAVAILABLE,
            InvokeError::Injected { .. } => S::INTERNAL_SERVER_ERROR,
            InvokeError::Degraded { .. } => S::SERVICE_UNAVAILABLE,
        }
    }

    /// When the caller may try again (`Retry-After`), for the errors that say so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            InvokeError::Overloaded { retry_after, .. } | InvokeError::Degraded { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// An input (request body, event, message, task input) of `size` bytes over `max_request_body`.
    pub fn request_too_large(what: &'static str, size: u64, limit: u64) -> InvokeError {
        InvokeError::TooLarge {
            direction: Direction::In,
            what,
            size,
            limit,
            quota: "max_request_body",
        }
    }

    /// An output (response body, event result, reply) of `size` bytes over `max_response_body`.
    pub fn response_too_large(what: &'static str, size: u64, limit: u64) -> InvokeError {
        InvokeError::TooLarge {
            direction: Direction::Out,
            what,
            size,
            limit,
            quota: "max_response_body",
        }
    }

    /// A host fault with no underlying error (a host bug: an outcome of the wrong kind…).
    pub fn internal(what: impl Into<String>) -> InvokeError {
        InvokeError::Internal {
            what: what.into(),
            source: None,
        }
    }

    /// A host fault caused by `source`, which is kept as the error's source.
    pub fn internal_from(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> InvokeError {
        InvokeError::Internal {
            what: what.into(),
            source: Some(source.into()),
        }
    }
}
