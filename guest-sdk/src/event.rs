//! Event functions: handle a JSON event and return a payload.
//!
//! ```no_run
//! use nimbus_sdk::event::{Event, Error};
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: u64, qty: u32 }
//!
//! fn handle(event: Event) -> Result<serde_json::Value, Error> {
//!     let order: Order = event.json()?;
//!     if order.qty == 0 {
//!         return Err(Error::failed("empty order"));
//!     }
//!     Ok(serde_json::json!({ "accepted": order.id }))
//! }
//!
//! nimbus_sdk::event_function!(handle);
//! # fn main() {}
//! ```

use crate::wit::nimbus::function::types as wit;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// Where an event came from.
pub use crate::wit::nimbus::function::types::EventSource as Source;

impl Source {
    /// The source's name as in WIT: `direct`, `sqs`, `s3`, …
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Direct => "direct",
            Source::Sqs => "sqs",
            Source::Sns => "sns",
            Source::S3 => "s3",
            Source::Eventbridge => "eventbridge",
            Source::Schedule => "schedule",
            Source::Dynamodb => "dynamodb",
            Source::Kinesis => "kinesis",
            Source::Other => "other",
        }
    }
}

/// One event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The kind of source that produced it.
    pub source: Source,
    /// The payload exactly as delivered (JSON for every AWS source).
    pub payload: Vec<u8>,
}

impl Event {
    /// Decodes the payload as JSON; a decoding error becomes [`Error::InvalidEvent`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| Error::InvalidEvent(format!("payload is not the expected JSON: {e}")))
    }

    /// The payload as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.payload).map_err(|e| Error::InvalidEvent(format!("payload is not UTF-8: {e}")))
    }
}

/// Why a handler produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The event is malformed; retrying it will not help (`Function.BadEvent`, HTTP 400).
    InvalidEvent(String),
    /// Processing failed (`Function.Failed`, HTTP 500).
    Failed(String),
}

impl Error {
    /// A processing failure with this message.
    pub fn failed(msg: impl fmt::Display) -> Self {
        Error::Failed(msg.to_string())
    }

    /// A malformed-event error with this message.
    pub fn invalid(msg: impl fmt::Display) -> Self {
        Error::InvalidEvent(msg.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidEvent(m) => write!(f, "invalid event: {m}"),
            Error::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::config::Error> for Error {
    fn from(e: crate::config::Error) -> Self {
        Error::Failed(e.to_string())
    }
}

/// A handler's successful result, turned into the output payload.
pub trait IntoOutput {
    /// The payload bytes.
    fn into_output(self) -> Result<Vec<u8>, Error>;
}

impl IntoOutput for Vec<u8> {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        Ok(self)
    }
}

impl IntoOutput for String {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        Ok(self.into_bytes())
    }
}

impl IntoOutput for &'static str {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        Ok(self.as_bytes().to_vec())
    }
}

impl IntoOutput for serde_json::Value {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&self).map_err(Error::failed)
    }
}

/// Wraps any `Serialize` value so it is returned as JSON.
pub struct Json<T>(pub T);

impl<T: Serialize> IntoOutput for Json<T> {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&self.0).map_err(Error::failed)
    }
}

#[doc(hidden)]
pub fn __handle<F, O>(event: wit::Event, handler: F) -> Result<Vec<u8>, wit::Error>
where
    F: FnOnce(Event) -> Result<O, Error>,
    O: IntoOutput,
{
    let event = Event {
        source: event.source,
        payload: event.payload,
    };
    handler(event).and_then(IntoOutput::into_output).map_err(|e| match e {
        Error::InvalidEvent(m) => wit::Error::InvalidEvent(m),
        Error::Failed(m) => wit::Error::Failed(m),
    })
}

/// Exports a function `fn(Event) -> Result<impl IntoOutput, Error>` as this
/// component's event handler (`nimbus:function/events`).
#[macro_export]
macro_rules! event_function {
    ($handler:path) => {
        struct __NimbusEventFunction;
        impl $crate::wit::exports::nimbus::function::events::Guest for __NimbusEventFunction {
            fn handle(
                event: $crate::wit::nimbus::function::types::Event,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, $crate::wit::nimbus::function::types::Error> {
                $crate::event::__handle(event, $handler)
            }
        }
        $crate::wit::export_event_function!(__NimbusEventFunction with_types_in $crate::wit);
    };
}
