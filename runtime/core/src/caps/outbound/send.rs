//! Sending one request the allow-list let through: look the host up once, check every address it has,
//! connect to a checked one, then TLS and HTTP/1.1 over that connection.
//!
//! This takes the place of `wasmtime_wasi_http::default_send_request`, which connects with
//! `TcpStream::connect("host:port")`: the system resolver runs inside the connect, so the address used
//! is never seen by the host and a second lookup could answer differently from any check made before.
//! Here the connection is made to the [`SocketAddr`] that was checked ([`Network::connect`] takes no
//! name). Everything else follows `default_send_request` of wasmtime-wasi-http 48: the same timeouts
//! (`connect-timeout` covering lookup and connect, then the HTTP handshake; `first-byte-timeout`;
//! `between-bytes-timeout`; 600 s each by default), the same TLS (rustls on ring, the webpki roots, the
//! host name for SNI and certificate checks, no ALPN) and the same errors, so guests see the same codes.
//! One addition: the TLS handshake is bounded by `connect-timeout` too.

use super::address::{AddressPolicy, Refusal};
use super::network::{Network, OutboundOptions};
use bytes::Bytes;
use http::Request;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions};

/// wasmtime-wasi-http's default for each of the three request timeouts.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a request connects to, as the allow-list judged it (computed before anything is sent).
#[derive(Debug, Clone)]
pub struct Target {
    /// The request's authority: its host is looked up and is the TLS server name.
    pub authority: http::uri::Authority,
    /// The port (the scheme's default when the URL has none).
    pub port: u16,
    /// `https`.
    pub tls: bool,
    /// The host as an IP literal (`127.0.0.1`, `[::1]`; no other spelling): it is not looked up.
    pub ip: Option<IpAddr>,
    /// That IP, when an allow-list rule that matched the request names it: the one address the policy
    /// lets this request reach even if it is internal.
    pub literal: Option<IpAddr>,
}

impl Target {
    /// The host without IPv6 brackets.
    pub fn host(&self) -> &str {
        let h = self.authority.host();
        h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h)
    }
}

/// Why no connection was made.
#[derive(Debug)]
pub enum ConnectError {
    /// The policy refused an address the host resolved to.
    Refused {
        /// The address.
        addr: SocketAddr,
        /// Why.
        refusal: Refusal,
    },
    /// Lookup, connect, TLS or timeout failure, as the guest sees it.
    Failed(HttpError),
}

/// The host's outbound connector: network, address policy and TLS settings, built once at boot.
pub struct Connector {
    network: Arc<dyn Network>,
    policy: AddressPolicy,
    tls: tokio_rustls::TlsConnector,
}

impl Connector {
    /// Builds the connector from the embedder's options.
    pub fn new(opts: &OutboundOptions) -> Result<Connector, rustls::Error> {
        let config = tls_client_config()?;
        Ok(Connector {
            network: opts.network.clone(),
            policy: AddressPolicy::new(opts.control_endpoints.iter().copied()),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The address policy (its control endpoints).
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Resolves `target` once, checks every address, and connects (with TLS for `https`) to the first
    /// checked address that answers. Nothing is connected to unless every address passed.
    pub async fn connect(&self, target: &Target, connect_timeout: Duration) -> Result<Box<dyn Stream>, ConnectError> {
        let failed = ConnectError::Failed;
        let tcp = tokio::time::timeout(connect_timeout, self.dial(target))
            .await
            .map_err(|_| failed(HttpError::ConnectionTimeout))??;
        if !target.tls {
            return Ok(Box::new(tcp));
        }
        let name = match target.ip {
            Some(ip) => rustls::pki_types::ServerName::from(ip),
            None => rustls::pki_types::ServerName::try_from(target.host().to_owned())
                .map_err(|e| failed(HttpError::InvalidDnsNameError(e)))?,
        };
        let tls = tokio::time::timeout(connect_timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| failed(HttpError::ConnectionTimeout))?
            .map_err(|e| failed(HttpError::Tls(e)))?;
        Ok(Box::new(tls))
    }

    async fn dial(&self, target: &Target) -> Result<tokio::net::TcpStream, ConnectError> {
        let resolved;
        let one;
        let addrs: &[SocketAddr] = match target.ip {
            Some(ip) => {
                one = [SocketAddr::new(ip, target.port)];
                &one
            }
            None => {
                // What `default_send_request`'s failed lookup becomes for the guest.
                let dns = || {
                    ConnectError::Failed(HttpError::DnsError {
                        rcode: Some("address not available".into()),
                        info_code: None,
                    })
                };
                resolved = self
                    .network
                    .resolve(target.host(), target.port)
                    .await
                    .map_err(|_| dns())?;
                if resolved.is_empty() {
                    return Err(dns());
                }
                &resolved
            }
        };
        for &addr in addrs {
            self.policy
                .check(addr, target.literal)
                .map_err(|refusal| ConnectError::Refused { addr, refusal })?;
        }
        let mut last = None;
        for &addr in addrs {
            match self.network.connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(ConnectError::Failed(HttpError::Connect(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
        }))))
    }
}

/// The host's TLS client settings: rustls on ring, the webpki roots, no client certificate. Guests'
/// outbound requests and the host's own calls (OOS config) use them.
pub fn tls_client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        })
        .with_no_client_auth())
}

/// A connection, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The connect timeout `options` set, or the default.
pub fn connect_timeout(options: Option<&RequestOptions>) -> Duration {
    options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT)
}

/// The first-byte timeout `options` set, or the default.
pub fn first_byte_timeout(options: Option<&RequestOptions>) -> Duration {
    options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_TIMEOUT)
}

/// The I/O of a request after its response head arrived; it ends with the response body.
pub type Io = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// Sends `req` over `stream` (HTTP/1.1) and waits for the response head. As in wasmtime-wasi-http.
pub async fn exchange(
    stream: Box<dyn Stream>,
    mut req: Request<wasmtime_wasi_http::WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<ResponseBody>, Io), HttpError> {
    let connect_timeout = connect_timeout(options.as_ref());
    let first_byte_timeout = first_byte_timeout(options.as_ref());
    let between_bytes_timeout = options.and_then(|o| o.between_bytes_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;

    // The request line carries the path only; `Host` is already a header.
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *req.uri_mut() = http::Uri::from(path);

    let send = async move {
        let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(HttpError::from)?;
        // `interval` panics on zero; 1 ns is as good as zero.
        let between_bytes_timeout = between_bytes_timeout.max(Duration::from_nanos(1));
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, HttpError>(res.map(|incoming| ResponseBody(Source::Network { incoming, timeout })))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response head while driving the connection's I/O.
    let res = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else {
                return Poll::Pending;
            };
            let res = ready!(Pin::new(fut).poll(cx));
            conn = None;
            match res {
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(HttpError::from(err))),
            }
        }
    })
    .await?;
    let io: Io = Box::new(async move {
        let Some(conn) = conn.take() else {
            return Ok(());
        };
        match conn.await {
            Err(err) if err.is_timeout() => Err(HttpError::HttpResponseTimeout),
            Err(err) => Err(err.into()),
            Ok(()) => Ok(()),
        }
    });
    Ok((res, io))
}

/// A response body: the upstream's, with `between-bytes-timeout` applied, or one the host answers with
/// itself (an injected fault's, a circuit breaker's fallback).
pub struct ResponseBody(Source);

enum Source {
    Network {
        incoming: hyper::body::Incoming,
        timeout: tokio::time::Interval,
    },
    Local(Option<Bytes>),
    /// Another body passed on while a copy of it is kept (up to a cap), handed over when it ends whole.
    Tee {
        inner: Box<ResponseBody>,
        copy: Option<bytes::BytesMut>,
        cap: usize,
        done: Option<Box<dyn FnOnce(Bytes) + Send>>,
    },
}

impl ResponseBody {
    /// A body the host answers with, whole.
    pub fn local(bytes: Bytes) -> ResponseBody {
        ResponseBody(Source::Local(Some(bytes).filter(|b| !b.is_empty())))
    }

    /// `inner`, passed on as it is, while a copy is kept: `done` gets it if the body ends whole within
    /// `cap` bytes (a breaker's last good response).
    pub fn tee(inner: ResponseBody, cap: usize, done: impl FnOnce(Bytes) + Send + 'static) -> ResponseBody {
        ResponseBody(Source::Tee {
            inner: Box::new(inner),
            copy: Some(bytes::BytesMut::new()),
            cap,
            done: Some(Box::new(done)),
        })
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        let (incoming, timeout) = match &mut self.0 {
            Source::Local(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b)))),
            Source::Tee { inner, copy, cap, done } => {
                let frame = ready!(Pin::new(&mut **inner).poll_frame(cx));
                match &frame {
                    Some(Ok(f)) => {
                        if let (Some(data), Some(buf)) = (f.data_ref(), copy.as_mut()) {
                            if buf.len() + data.len() > *cap {
                                *copy = None;
                            } else {
                                buf.extend_from_slice(data);
                            }
                        }
                    }
                    Some(Err(_)) => *copy = None,
                    None => {
                        if let (Some(buf), Some(done)) = (copy.take(), done.take()) {
                            done(buf.freeze());
                        }
                    }
                }
                return Poll::Ready(frame);
            }
            Source::Network { incoming, timeout } => (incoming, timeout),
        };
        match Pin::new(incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) if err.is_timeout() => Poll::Ready(Some(Err(HttpError::HttpResponseTimeout))),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(HttpError::from(err)))),
            Poll::Ready(Some(Ok(frame))) => {
                timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(timeout.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Local(bytes) => bytes.is_none(),
            // Polled to its end, so the copy is handed over.
            Source::Tee { .. } => false,
            Source::Network { incoming, .. } => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.0 {
            Source::Local(bytes) => http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Source::Tee { inner, .. } => inner.size_hint(),
            Source::Network { incoming, .. } => incoming.size_hint(),
        }
    }
}
