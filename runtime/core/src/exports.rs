//! Which world a component targets, read from its exports.

use wasmtime::Engine;
use wasmtime::component::Component;

/// The kind of function a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exports `wasi:http/incoming-handler` (any `wasi:http/proxy` component).
    Http,
    /// Exports `nimbus:function/events`.
    Event,
    /// Exports `nimbus:function/task`: a durable long task.
    Task,
    /// Exports `nimbus:function/websocket`: the clients of a WebSocket API.
    WebSocket,
}

impl Kind {
    /// Reads the component's exports. A component exporting several is served as HTTP, else as an event function.
    pub fn detect(component: &Component, engine: &Engine) -> Option<Kind> {
        let ty = component.component_type();
        Kind::from_exports(ty.exports(engine).map(|(name, _)| name))
    }

    /// The kind for a component's top-level export names (`wasi:http/incoming-handler@0.2.6`, ...); what
    /// [`Kind::detect`] uses, and what packaging uses on the `.wasm` without compiling it.
    pub fn from_exports<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Kind> {
        let mut kind = None;
        for name in names {
            if name.starts_with("wasi:http/incoming-handler@0.2") {
                return Some(Kind::Http);
            }
            if name.starts_with("nimbus:function/events@0.1") {
                kind = Some(Kind::Event);
            }
            if name.starts_with("nimbus:function/task@0.1") && kind.is_none() {
                kind = Some(Kind::Task);
            }
            if name.starts_with("nimbus:function/websocket@0.1") && kind.is_none() {
                kind = Some(Kind::WebSocket);
            }
        }
        kind
    }

    /// `"HTTP"`, `"event"`, `"task"` or `"WebSocket"`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Http => "HTTP",
            Kind::Event => "event",
            Kind::Task => "task",
            Kind::WebSocket => "WebSocket",
        }
    }

    /// `"an HTTP"`, `"an event"`, `"a task"` or `"a WebSocket"`: "this is {} function".
    pub fn with_article(self) -> &'static str {
        match self {
            Kind::Http => "an HTTP",
            Kind::Event => "an event",
            Kind::Task => "a task",
            Kind::WebSocket => "a WebSocket",
        }
    }

    /// `"http"`, `"event"`, `"task"` or `"websocket"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Event => "event",
            Kind::Task => "task",
            Kind::WebSocket => "websocket",
        }
    }
}
