//! A fault-injecting HTTP proxy on 127.0.0.1 in front of a real server (moto): requests a rule matches are
//! answered with that rule's canned error the first `times` times; everything else is forwarded unchanged.
//! It exercises a client's real error handling — the AWS SDK parsing a throttling error, Nimbus classifying
//! and retrying it — which a mock backend cannot.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Which requests a fault applies to.
pub type Matcher = Box<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;

/// One canned failure.
pub struct Fault {
    matches: Matcher,
    status: StatusCode,
    content_type: &'static str,
    /// `x-amzn-ErrorType`, for REST-JSON services that name the error in a header.
    error_type: Option<&'static str>,
    body: String,
    /// Failures left (`u32::MAX`: forever).
    left: AtomicU32,
    /// Failures served so far.
    served: AtomicU32,
}

impl Fault {
    /// S3 `503 SlowDown` for object writes (`PUT /{bucket}/{key}`), `times` times.
    pub fn s3_put_slow_down(times: u32) -> Fault {
        Fault {
            matches: Box::new(|p| p.method == http::Method::PUT && p.uri.path().matches('/').count() >= 2),
            status: StatusCode::SERVICE_UNAVAILABLE,
            content_type: "application/xml",
            error_type: None,
            body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                   <Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>"
                .into(),
            left: AtomicU32::new(times),
            served: AtomicU32::new(0),
        }
    }

    /// DynamoDB `400 ProvisionedThroughputExceededException` for the operation `op` (e.g. `UpdateItem`),
    /// `times` times.
    pub fn dynamodb_throttled(op: &'static str, times: u32) -> Fault {
        let target = format!("DynamoDB_20120810.{op}");
        Fault {
            matches: Box::new(move |p| {
                p.headers
                    .get("x-amz-target")
                    .is_some_and(|v| v.as_bytes() == target.as_bytes())
            }),
            status: StatusCode::BAD_REQUEST,
            content_type: "application/x-amz-json-1.0",
            error_type: None,
            body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#.into(),
            left: AtomicU32::new(times),
            served: AtomicU32::new(0),
        }
    }

    /// Stops failing requests from now on.
    pub fn stop(&self) {
        self.left.store(0, Ordering::SeqCst);
    }

    /// API Gateway Management API `410 GoneException` for any request about `connection_id`, forever.
    pub fn gone_connection(connection_id: &str) -> Fault {
        let suffix = format!("/@connections/{connection_id}");
        Fault {
            matches: Box::new(move |p| p.uri.path().ends_with(&suffix)),
            status: StatusCode::GONE,
            content_type: "application/json",
            error_type: Some("GoneException"),
            body: r#"{"message":"Connection is gone"}"#.into(),
            left: AtomicU32::new(u32::MAX),
            served: AtomicU32::new(0),
        }
    }

    /// How many times this fault was served.
    pub fn served(&self) -> u32 {
        self.served.load(Ordering::SeqCst)
    }

    /// Whether it applies to this request, consuming one of its failures.
    fn take(&self, parts: &http::request::Parts) -> bool {
        if !(self.matches)(parts) {
            return false;
        }
        let took = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                0 => None,
                u32::MAX => Some(u32::MAX),
                n => Some(n - 1),
            })
            .is_ok();
        if took {
            self.served.fetch_add(1, Ordering::SeqCst);
        }
        took
    }
}

/// A request the proxy saw (forwarded or failed).
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its method.
    pub method: http::Method,
    /// Its path.
    pub path: String,
    /// Its body.
    pub body: Bytes,
    /// Whether a fault answered it.
    pub faulted: bool,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Vec<Arc<Fault>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) on a free loopback port.
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let upstream: http::Uri = upstream.parse().expect("upstream URL");
        let faults: Arc<Mutex<Vec<Arc<Fault>>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let shared = (faults.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (state, client, upstream) = (state.clone(), client.clone(), upstream.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(serve(req, &state.0, &state.1, &client, &upstream).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            addr,
            faults,
            seen,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`, the endpoint to give clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// Adds a fault (checked in the order added); keep the `Arc` to read [`Fault::served`].
    pub fn inject(&self, fault: Fault) -> Arc<Fault> {
        let fault = Arc::new(fault);
        self.faults.lock().expect("faults").push(fault.clone());
        fault
    }
}

async fn serve(
    req: Request<Incoming>,
    faults: &Mutex<Vec<Arc<Fault>>>,
    seen: &Mutex<Vec<Seen>>,
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &http::Uri,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let fault = faults.lock().expect("faults").iter().find(|f| f.take(&parts)).cloned();
    seen.lock().expect("seen").push(Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        body: body.clone(),
        faulted: fault.is_some(),
    });
    if let Some(f) = fault {
        let mut resp = Response::builder()
            .status(f.status)
            .header(http::header::CONTENT_TYPE, f.content_type);
        if let Some(t) = f.error_type {
            resp = resp.header("x-amzn-errortype", t);
        }
        return resp
            .body(Full::new(Bytes::from(f.body.clone())))
            .expect("fault response");
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{}", path.trim_start_matches('/'))
        .parse()
        .expect("upstream URI");
    match client.request(Request::from_parts(parts, Full::new(body))).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Full::new(Bytes::from(format!("upstream: {e}"))))
            .expect("502"),
    }
}
