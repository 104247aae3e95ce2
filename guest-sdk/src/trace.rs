//! Spans of your own, inside the invocation's trace (`nimbus:function/tracing`).
//!
//! A [`Span`] times a piece of work from [`Span::start`] until it is ended
//! or dropped. The host exports it with the invocation's spans (when
//! OpenTelemetry export is on): its parent is the innermost span still open,
//! or the invocation span, and outgoing HTTP requests made while it is open
//! are its children. Nothing to configure, no context to pass around.
//!
//! ```no_run
//! use nimbus_sdk::trace::{Span, in_span};
//!
//! let span = Span::start("load-order");
//! span.set("order.id", "o-42").set("order.items", 3).set("order.express", true);
//! let total = in_span("price", |price| {
//!     price.set("currency", "EUR");
//!     12.5
//! });
//! span.set("order.total", total);
//! // Dropping `span` ends it; `span.end()` does so explicitly.
//! ```
//!
//! One invocation records at most 256 spans of 64 attributes each; past
//! that, extra spans and attributes are dropped (the host logs it once).

use crate::wit::nimbus::function::tracing as wit;

/// A span attribute's value: text, a flag, an integer or a float.
pub use wit::AttributeValue as Value;

/// A timed piece of work in the invocation's trace; ends when dropped.
pub struct Span(wit::Span);

impl Span {
    /// Starts a span named `name`, child of the innermost span still open.
    pub fn start(name: &str) -> Span {
        Span(wit::Span::new(name))
    }

    /// Sets an attribute (the last value for a key wins); chainable.
    pub fn set(&self, key: &str, value: impl Into<Value>) -> &Span {
        self.0.set_attribute(key, &value.into());
        self
    }

    /// Marks the span as failed with a short description of the error.
    pub fn error(&self, message: &str) {
        self.0.set_error(message);
    }

    /// The W3C `traceparent` naming this span as the parent: put it in a
    /// message so whoever handles the message continues this trace.
    pub fn traceparent(&self) -> String {
        self.0.traceparent()
    }

    /// Ends the span now (the same as dropping it).
    pub fn end(self) {
        self.0.end();
    }
}

/// Runs `f` inside a new span named `name`, ending the span when `f` returns.
pub fn in_span<T>(name: &str, f: impl FnOnce(&Span) -> T) -> T {
    let span = Span::start(name);
    f(&span)
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Flag(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

macro_rules! integer_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Integer(i64::from(v))
            }
        }
    )*};
}
integer_values!(i8, i16, i32, i64, u8, u16, u32);
