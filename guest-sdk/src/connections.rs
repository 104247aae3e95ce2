//! Sending to WebSocket clients, from any function.
//!
//! A connection id is what a [`crate::websocket::Handler`] was given on connect; keep the ids you need (for
//! example a room's members in a key-value store) and send to them from any invocation of any function of
//! the app. Sends to one client arrive in order and never interleave.
//!
//! ```no_run
//! use nimbus_sdk::connections::{self, Message};
//!
//! fn broadcast(members: &[String], text: &str) {
//!     for id in members {
//!         match connections::send(id, &Message::Text(text.into())) {
//!             Ok(()) => {}
//!             Err(connections::Error::Gone) => { /* the client left: forget `id` */ }
//!             Err(e) => eprintln!("send to {id} failed: {e}"),
//!         }
//!     }
//! }
//! # fn main() {}
//! ```

use crate::wit::nimbus::function::connections as wit;

/// A WebSocket message: text or binary.
pub use wit::Message;

/// Why a send or close did not happen (`Display` and `std::error::Error` come with it).
pub use wit::ConnectionError as Error;

/// Sends `message` to the client `connection_id`.
pub fn send(connection_id: &str, message: &Message) -> Result<(), Error> {
    wit::send(connection_id, message)
}

/// Sends a text message to the client `connection_id`.
pub fn send_text(connection_id: &str, text: &str) -> Result<(), Error> {
    wit::send(connection_id, &Message::Text(text.to_owned()))
}

/// Closes the connection (code 1000); its `on_disconnect` follows.
pub fn close(connection_id: &str) -> Result<(), Error> {
    wit::close(connection_id)
}
