//! The interception seam: every call a guest makes that leaves the sandbox goes through one small trait
//! per call family, and [`Intercept`] may wrap each of them once, when it is built — the place fault
//! injection, circuit breakers and recording plug in. The default wraps nothing, so the seam costs one
//! dynamic call per host call and nothing per invocation (BENCHMARKS.md, "The interception seam").
//!
//! | family | trait | wrapped |
//! |---|---|---|
//! | outbound HTTP | [`OutboundHttp`] | once, at boot |
//! | `wasi:config` | [`ConfigStore`] | per invocation, around the snapshot it reads (`Arc` clone when unwrapped) |
//! | `wasi:keyvalue` | [`KvStore`] | once, at boot |
//! | checkpoint store | [`Backend`] | where the platform builds its task driver ([`Intercept::checkpoint`]) |
//! | WebSocket sends | [`ConnectionSender`] | the boot's sender once; a WebSocket event's own sender per invocation |

use super::config::ConfigStore;
use super::outbound::OutboundHttp;
use crate::websocket::ConnectionSender;
use nimbus_checkpoint::Backend;
use nimbus_kv::KvStore;
use std::sync::Arc;

/// Wraps the host-call families; each method gets the implementation the host would use and returns the
/// one it will use. Every method defaults to the identity.
pub trait Intercept: Send + Sync + 'static {
    /// Outbound HTTP (after the allow-list, with the trace headers set).
    fn outbound(&self, inner: Arc<dyn OutboundHttp>) -> Arc<dyn OutboundHttp> {
        inner
    }

    /// One invocation's view of a function's configuration.
    fn config(&self, function: &str, inner: Arc<dyn ConfigStore>) -> Arc<dyn ConfigStore> {
        let _ = function;
        inner
    }

    /// The key-value store.
    fn keyvalue(&self, inner: Arc<dyn KvStore>) -> Arc<dyn KvStore> {
        inner
    }

    /// The checkpoint store a task driver commits to.
    fn checkpoint(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        inner
    }

    /// A WebSocket sender (the boot's default, or an event's own).
    fn connections(&self, inner: Arc<dyn ConnectionSender>) -> Arc<dyn ConnectionSender> {
        inner
    }
}

/// Two interceptors in layers: `inner` wraps the host's implementation first, then `outer` wraps that (the
/// host puts its fault layer innermost, so a breaker an embedder installs sees the injected faults as the
/// upstream's).
pub struct Layered {
    /// Applied first, closest to the host's implementation.
    pub inner: Arc<dyn Intercept>,
    /// Applied over `inner`.
    pub outer: Arc<dyn Intercept>,
}

impl Intercept for Layered {
    fn outbound(&self, inner: Arc<dyn OutboundHttp>) -> Arc<dyn OutboundHttp> {
        self.outer.outbound(self.inner.outbound(inner))
    }

    fn config(&self, function: &str, inner: Arc<dyn ConfigStore>) -> Arc<dyn ConfigStore> {
        self.outer.config(function, self.inner.config(function, inner))
    }

    fn keyvalue(&self, inner: Arc<dyn KvStore>) -> Arc<dyn KvStore> {
        self.outer.keyvalue(self.inner.keyvalue(inner))
    }

    fn checkpoint(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        self.outer.checkpoint(self.inner.checkpoint(inner))
    }

    fn connections(&self, inner: Arc<dyn ConnectionSender>) -> Arc<dyn ConnectionSender> {
        self.outer.connections(self.inner.connections(inner))
    }
}

/// The interceptor that wraps nothing: what runs unless a platform installs another.
pub struct NoIntercept;

impl Intercept for NoIntercept {}

/// The interceptor a host boots with: [`NoIntercept`] unless one is given.
#[derive(Clone)]
pub struct Interceptor(pub Arc<dyn Intercept>);

impl Default for Interceptor {
    fn default() -> Interceptor {
        Interceptor(Arc::new(NoIntercept))
    }
}

impl std::ops::Deref for Interceptor {
    type Target = dyn Intercept;

    fn deref(&self) -> &dyn Intercept {
        &*self.0
    }
}
