//! `connections`: sending to WebSocket clients from any function (`nimbus:function/connections`).
//!
//! The sender comes from the platform: a default one given at boot ([`crate::BootOptions::connections`]:
//! the local gateway, or the API Gateway Management API endpoint Lambda was configured with), replaced for
//! one invocation when the platform knows better (a WebSocket event names its own API's endpoint). Without
//! a sender, `send` and `close` return `failed` with what to configure: a guest gets an answer, not a trap.

use super::{Boot, Capability};
use crate::bindings::connections as wit;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use crate::websocket::Sender;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// The `connections` capability.
pub struct Connections;

impl Capability for Connections {
    const NAME: &'static str = "connections";
    /// The boot's default sender.
    type Shared = Option<Sender>;
    /// This invocation's sender.
    type State = Option<Sender>;

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
    }

    async fn configure(_spec: &FunctionSpec, boot: &Boot) -> Result<Option<Sender>, BootError> {
        Ok(boot.connections.clone())
    }

    fn prepare(shared: &Option<Sender>, _inv: &Arc<Invocation>) -> Option<Sender> {
        shared.clone()
    }
}

fn no_sender() -> wit::ConnectionError {
    wit::ConnectionError::Failed(
        "no WebSocket API is known to this function: it runs outside a WebSocket invocation and no \
         NIMBUS_WEBSOCKET_ENDPOINT is set"
            .into(),
    )
}

impl wit::Host for HostState {
    async fn send(
        &mut self,
        connection_id: String,
        message: wit::Message,
    ) -> wasmtime::Result<Result<(), wit::ConnectionError>> {
        Ok(match &self.connections {
            Some(sender) => sender.send(&connection_id, message).await,
            None => Err(no_sender()),
        })
    }

    async fn close(&mut self, connection_id: String) -> wasmtime::Result<Result<(), wit::ConnectionError>> {
        Ok(match &self.connections {
            Some(sender) => sender.close(&connection_id).await,
            None => Err(no_sender()),
        })
    }
}
