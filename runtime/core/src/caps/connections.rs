//! `connections`: sending to WebSocket clients from any function (`nimbus:function/connections`).
//!
//! The sender comes from the platform: a default one given at boot ([`crate::BootOptions::connections`]:
//! the local gateway, or the API Gateway Management API endpoint Lambda was configured with), replaced for
//! one invocation when the platform knows better (a WebSocket event names its own API's endpoint). Without
//! a sender, `send` and `close` return `failed` with what to configure: a guest gets an answer, not a trap.
//!
//! Every sender is a [`crate::websocket::ConnectionSender`], the seam [`super::Intercept::connections`]
//! wraps: the boot's once, an event's own when the invocation is prepared.

use super::intercept::Interceptor;
use super::{Boot, Capability, Grants, View, ViewFn, ViewOf};
use crate::bindings::connections as wit;
use crate::error::BootError;
use crate::invocation::Invocation;
use crate::manifest::FunctionSpec;
use crate::state::HostState;
use crate::websocket::Sender;
use std::sync::Arc;
use wasmtime::component::Linker;

/// The `connections` capability.
pub struct Connections;

/// The boot's default sender (already wrapped), and what wraps an event's own.
pub struct ConnectionsShared {
    default: Option<Sender>,
    intercept: Interceptor,
}

/// This invocation's sender, if any.
pub struct ConnectionsCtx(Option<Sender>);

impl Capability for Connections {
    const NAME: &'static str = "connections";
    type Shared = ConnectionsShared;
    type Ctx = ConnectionsCtx;

    fn link(linker: &mut Linker<HostState>, view: ViewFn<ConnectionsCtx>) -> wasmtime::Result<()> {
        wit::add_to_linker::<HostState, ViewOf<ConnectionsCtx>>(linker, view)
    }

    async fn configure(_spec: &FunctionSpec, boot: &Boot) -> Result<ConnectionsShared, BootError> {
        Ok(ConnectionsShared {
            default: boot.connections.clone(),
            intercept: boot.intercept.clone(),
        })
    }

    /// A WebSocket event's own sender (the API that delivered it) replaces the default.
    fn prepare(shared: &ConnectionsShared, _inv: &Arc<Invocation>, grants: &mut Grants) -> ConnectionsCtx {
        ConnectionsCtx(match grants.connections.take() {
            Some(own) => Some(shared.intercept.connections(own)),
            None => shared.default.clone(),
        })
    }
}

fn no_sender() -> wit::ConnectionError {
    wit::ConnectionError::Failed(
        "no WebSocket API is known to this function: it runs outside a WebSocket invocation and no \
         NIMBUS_WEBSOCKET_ENDPOINT is set"
            .into(),
    )
}

impl wit::Host for View<'_, ConnectionsCtx> {
    async fn send(
        &mut self,
        connection_id: String,
        message: wit::Message,
    ) -> wasmtime::Result<Result<(), wit::ConnectionError>> {
        Ok(match &self.ctx.0 {
            Some(sender) => sender.send(&connection_id, message).await,
            None => Err(no_sender()),
        })
    }

    async fn close(&mut self, connection_id: String) -> wasmtime::Result<Result<(), wit::ConnectionError>> {
        Ok(match &self.ctx.0 {
            Some(sender) => sender.close(&connection_id).await,
            None => Err(no_sender()),
        })
    }
}
