//! The network outbound requests go through: one name lookup, then TCP connections to addresses the
//! policy has checked.
//!
//! This is the seam of the `outbound` call family: the host uses [`SystemNetwork`]; tests give
//! [`crate::BootOptions::outbound`] a network of their own to play DNS (an answer that changes between
//! lookups, a name that resolves to a metadata address) without touching the machine's resolver.
//! `connect` takes a [`SocketAddr`], never a name, so the address checked is the address connected to.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// (`futures`' own) A boxed, sendable future.
pub use futures_util::future::BoxFuture;

/// Name lookup and TCP connect for outbound requests.
pub trait Network: Send + Sync + 'static {
    /// Every address `host` has, with `port`. Called once per request (never for an IP literal); the host
    /// checks every address returned before it connects to any.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;

    /// A TCP connection to `addr`, an address the policy has allowed.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>>;
}

/// The machine's own resolver (`getaddrinfo`, so `/etc/hosts` and every numeric spelling
/// `inet_aton` accepts) and plain TCP connects.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemNetwork;

impl Network for SystemNetwork {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        Box::pin(TcpStream::connect(addr))
    }
}

/// How outbound requests reach the network: set by the embedder at boot, never by the manifest.
#[derive(Clone)]
pub struct OutboundOptions {
    /// Name lookup and connect ([`SystemNetwork`] by default).
    pub network: Arc<dyn Network>,
    /// The platform's own endpoints, refused even when an allow-list entry names them: the Lambda Runtime
    /// API (which also serves the Extensions and Telemetry APIs), a platform agent's port, …
    pub control_endpoints: Vec<SocketAddr>,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        OutboundOptions {
            network: Arc::new(SystemNetwork),
            control_endpoints: Vec::new(),
        }
    }
}

impl std::fmt::Debug for OutboundOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundOptions")
            .field("control_endpoints", &self.control_endpoints)
            .finish_non_exhaustive()
    }
}
