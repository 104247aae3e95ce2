//! Cloud Run / Knative Serving: the container contract, served by [`crate::serving`].
//!
//! - **Listening**: `0.0.0.0:$PORT` (default 8080), HTTP/1.1 and HTTP/2 cleartext (h2c with prior
//!   knowledge, as Cloud Run's `--use-http2` sends it) on the shared hardened listener.
//! - **Shutdown**: on SIGTERM the listener stops accepting, in-flight requests finish (at most
//!   [`serving::DEFAULT_DRAIN`]), telemetry is flushed, and `bootstrap` exits 0, inside the platform's 10 s
//!   grace period.
//! - **Requests**: an HTTP function gets each request as it arrived (method, URI, headers, body). An event
//!   function gets the event [`decode`] makes of the request (CloudEvents in binary, structured or batched
//!   mode, Pub/Sub push bodies, plain bodies) and its output is answered 200 ([`encode`]); a failed
//!   invocation is answered with its error status (non-2xx, so Pub/Sub and Eventarc retry), a request that
//!   is not a CloudEvent the adapter can deliver with 400 `Nimbus.BadCloudEvent`.
//! - **Trace**: `traceparent`, else the legacy `X-Cloud-Trace-Context`, bridged to W3C
//!   ([`nimbus_core::TraceContext::from_headers`]).
//!
//! Every answer names the invocation in `x-nimbus-request-id`; a failed invocation's details go to its
//! log line, not to the caller.

pub mod decode;
pub mod encode;

use crate::listener::{self, ListenerLimits, Peer};
use crate::local::{body::read_limited, encode::reply_response, failed};
use crate::serving::{self, ServeError, Serving};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use nimbus_core::logs::{LogSink, format_record};
use nimbus_core::{Body, Host, Kind, Outcome, Payload, Settings, TraceContext};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Serves the host's one function on `0.0.0.0:$PORT` (default 8080) until SIGTERM, then drains and
/// flushes ([`serving::serve`]).
pub async fn serve(host: Arc<Host>, settings: &Settings) -> Result<(), ServeError> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, settings.knative.port()));
    let serving = Serving::new(addr, ListenerLimits::from_settings(&settings.listener));
    let adapter = Arc::new(Adapter {
        host: host.clone(),
        sink: LogSink::Stdout,
    });
    serving::serve(&host, serving, move |req, peer| {
        let adapter = adapter.clone();
        async move { adapter.handle(req, peer).await }
    })
    .await
}

/// The request handler: the host and its one function.
struct Adapter {
    host: Arc<Host>,
    sink: LogSink,
}

impl Adapter {
    /// Serves one request with the host's one function.
    async fn handle(&self, mut req: Request<Incoming>, peer: Peer) -> Response<Body> {
        // An HTTP/1.1 request without a usable `Host` is refused before it is invoked.
        if let Err(bad) = listener::authority::resolve(&mut req, peer.local) {
            return reply_response(bad.reply());
        }
        let host = &self.host;
        let f = &host.functions()[0];
        // `traceparent`, X-Ray, Function Compute's or `X-Cloud-Trace-Context`: bridged to W3C.
        let trace = TraceContext::from_headers(|name| req.headers().get_all(name).into_iter().map(|v| v.as_bytes()));
        let inv = host.new_invocation(f, None, trace);
        let rid = inv.request_id.clone();
        let fail = |e| failed(&self.sink, host.app(), &f.name, &rid, &e);
        let mut resp = match f.kind {
            Kind::Http => {
                let req = req.map(|b| b.map_err(nimbus_core::HttpError::Hyper).boxed_unsync());
                match host
                    .invoke(f, inv, Payload::Http(req))
                    .await
                    .and_then(Outcome::into_http)
                {
                    Ok(r) => r,
                    Err(e) => fail(e),
                }
            }
            _ => {
                let (parts, body) = req.into_parts();
                match read_limited(body, f.limits.max_request_body, "event").await {
                    Err(e) => fail(e),
                    Ok(body) => match decode::decode(&parts.headers, &body) {
                        Err(bad) => {
                            self.refused(&f.name, &rid, &bad);
                            encode::bad_event(&bad)
                        }
                        Ok(decoded) => match host
                            .invoke(f, inv, Payload::Event(decoded.event))
                            .await
                            .and_then(Outcome::into_event)
                        {
                            Ok(out) => encode::event_output(out),
                            Err(e) => fail(e),
                        },
                    },
                }
            }
        };
        if let Ok(v) = http::HeaderValue::from_str(&rid) {
            resp.headers_mut().insert("x-nimbus-request-id", v);
        }
        resp
    }

    /// Logs a request refused as not a deliverable CloudEvent (a misconfigured trigger shows up here).
    fn refused(&self, function: &str, request_id: &str, e: &decode::DecodeError) {
        let fields = [
            ("app", self.host.app().to_string().into()),
            ("function", function.into()),
            ("request_id", request_id.into()),
            ("error_type", encode::BAD_CLOUD_EVENT.into()),
            ("error", e.to_string().into()),
        ];
        self.sink
            .write_line(&format_record("WARN", "request refused", None, &fields));
    }
}
