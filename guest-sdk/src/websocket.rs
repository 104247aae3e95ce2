//! WebSocket functions: the lifecycle of each client of a WebSocket API.
//!
//! Implement [`Handler`] and export it with [`websocket_function!`](crate::websocket_function). Each callback
//! is one invocation in a fresh sandbox, so keep what must outlive it (who is in which room) outside the
//! instance, and reach other clients with [`crate::connections`].
//!
//! ```no_run
//! use nimbus_sdk::websocket::{ConnectRequest, Disconnect, Error, Handler, IncomingMessage, Message, Rejection};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_connect(req: ConnectRequest) -> Result<(), Rejection> {
//!         match req.query.iter().any(|(k, _)| k == "token") {
//!             true => Ok(()),
//!             false => Err(Rejection { status: 401, reason: "a token is required".into() }),
//!         }
//!     }
//!
//!     fn on_message(msg: IncomingMessage) -> Result<Option<Message>, Error> {
//!         Ok(Some(msg.message))                   // the reply goes back to the sender
//!     }
//!
//!     fn on_disconnect(info: Disconnect) {
//!         eprintln!("{} left: {}", info.connection_id, info.reason);
//!     }
//! }
//!
//! nimbus_sdk::websocket_function!(Echo);
//! # fn main() {}
//! ```

use crate::websocket_wit::exports::nimbus::function::websocket as wit;

/// A WebSocket message: text or binary.
pub use crate::connections::Message;
/// Why a message could not be handled (logged; the connection stays open).
pub use crate::event::Error;
/// A client asking to connect: its id, the upgrade request's path, headers and query, its IP.
pub use wit::ConnectRequest;
/// A connection that ended: its close code (if the client sent one) and why.
pub use wit::Disconnect;
/// A message from a client, with the route the API's route selection picked.
pub use wit::IncomingMessage;
/// Why a connect is refused: the HTTP status (4xx) and a reason.
pub use wit::Rejection;

/// What a WebSocket function does at each point of a connection's life.
pub trait Handler {
    /// A client asks to connect; `Err` refuses the upgrade with the rejection's status. Accepts by default.
    fn on_connect(request: ConnectRequest) -> Result<(), Rejection> {
        let _ = request;
        Ok(())
    }

    /// A client sent a message; the returned message, if any, goes back to the sender.
    fn on_message(message: IncomingMessage) -> Result<Option<Message>, Error>;

    /// A connection ended, however it ended. Does nothing by default.
    fn on_disconnect(info: Disconnect) {
        let _ = info;
    }
}

#[doc(hidden)]
pub fn __on_message<H: Handler>(
    message: IncomingMessage,
) -> Result<Option<Message>, crate::wit::nimbus::function::types::Error> {
    H::on_message(message).map_err(|e| match e {
        Error::InvalidEvent(m) => crate::wit::nimbus::function::types::Error::InvalidEvent(m),
        Error::Failed(m) => crate::wit::nimbus::function::types::Error::Failed(m),
    })
}

/// Exports a type implementing [`Handler`] as this component's `nimbus:function/websocket`.
#[macro_export]
macro_rules! websocket_function {
    ($handler:ty) => {
        struct __NimbusWebsocketFunction;
        impl $crate::websocket_wit::exports::nimbus::function::websocket::Guest for __NimbusWebsocketFunction {
            fn on_connect(
                request: $crate::websocket::ConnectRequest,
            ) -> ::core::result::Result<(), $crate::websocket::Rejection> {
                <$handler as $crate::websocket::Handler>::on_connect(request)
            }
            fn on_message(
                message: $crate::websocket::IncomingMessage,
            ) -> ::core::result::Result<
                ::core::option::Option<$crate::websocket::Message>,
                $crate::wit::nimbus::function::types::Error,
            > {
                $crate::websocket::__on_message::<$handler>(message)
            }
            fn on_disconnect(info: $crate::websocket::Disconnect) {
                <$handler as $crate::websocket::Handler>::on_disconnect(info)
            }
        }
        $crate::websocket_wit::export_websocket_function!(__NimbusWebsocketFunction with_types_in $crate::websocket_wit);
    };
}
