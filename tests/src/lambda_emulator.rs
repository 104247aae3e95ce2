//! A Lambda Runtime API emulator: the real protocol over HTTP on 127.0.0.1,
//! for running `bootstrap` (or any custom runtime) as a child process.
//!
//! - `GET  /2018-06-01/runtime/invocation/next` blocks until [`LambdaEmulator::invoke`]
//!   queues an event, then answers it with the `Lambda-Runtime-*` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `…/{id}/error`
//!   complete that invocation (`202`); an unknown id is a `400`, a response
//!   over the payload quota a `413`, as Lambda answers;
//! - `POST /2018-06-01/runtime/init/error` records the init failure.
//!
//! Quirks other Runtime API implementations have, each switched on by a test: a path prefix before
//! `/2018-06-01` with `AWS_LAMBDA_RUNTIME_API` as a URL (`cargo lambda watch` serves under
//! `http://127.0.0.1:9001/.rt/fn`; [`LambdaEmulator::start_at`]), a deadline header that is not an epoch time
//! or none ([`DeadlineHeader`]), an event without its request id ([`InvokeOptions::request_id_header`]), and
//! a `/next` answered with an error status ([`LambdaEmulator::fail_next`]).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `/response` with this body.
    Response(Bytes),
    /// `/error` with the `Lambda-Runtime-Function-Error-Type` header and the JSON body.
    Error {
        /// The header's value, if sent.
        header_type: Option<String>,
        /// The body (`errorType`, `errorMessage`, …).
        body: serde_json::Value,
    },
}

impl Outcome {
    /// The response body as JSON (panics on an error outcome).
    pub fn json(&self) -> serde_json::Value {
        match self {
            Outcome::Response(b) => serde_json::from_slice(b)
                .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", String::from_utf8_lossy(b))),
            Outcome::Error { body, .. } => panic!("expected a response, got an error: {body}"),
        }
    }

    /// `(errorType, errorMessage)` of an error outcome (panics on a response).
    pub fn error(&self) -> (String, String) {
        match self {
            Outcome::Error { body, .. } => (
                body["errorType"].as_str().unwrap_or_default().to_owned(),
                body["errorMessage"].as_str().unwrap_or_default().to_owned(),
            ),
            Outcome::Response(b) => panic!("expected an error, got a response: {}", String::from_utf8_lossy(b)),
        }
    }
}

/// What `/next` sends as `Lambda-Runtime-Deadline-Ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeadlineHeader {
    /// Now + [`InvokeOptions::timeout`] in milliseconds since the Unix epoch, as Lambda sends it.
    #[default]
    FromTimeout,
    /// This text instead (another emulator sent `600000`, a timeout rather than a time).
    Raw(String),
    /// No header at all.
    Missing,
}

/// How to invoke.
#[derive(Debug, Clone)]
pub struct InvokeOptions {
    /// Lambda's timeout for this invocation: `Lambda-Runtime-Deadline-Ms` is now + this.
    pub timeout: Duration,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: Option<String>,
    /// How long to wait for the runtime's answer before giving up.
    pub wait: Duration,
    /// The deadline header `/next` sends.
    pub deadline_header: DeadlineHeader,
    /// Whether `/next` sends `Lambda-Runtime-Aws-Request-Id` (without it the event cannot be answered).
    pub request_id_header: bool,
}

impl Default for InvokeOptions {
    fn default() -> Self {
        InvokeOptions {
            timeout: Duration::from_secs(10),
            trace_id: Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into()),
            wait: Duration::from_secs(30),
            deadline_header: DeadlineHeader::FromTimeout,
            request_id_header: true,
        }
    }
}

struct Pending {
    id: String,
    event: Bytes,
    deadline: Option<String>,
    request_id_header: bool,
    trace_id: Option<String>,
    done: oneshot::Sender<Outcome>,
}

/// What the next `/next` call gets.
enum Next {
    /// An event.
    Event(Pending),
    /// This error status and body.
    Fail(StatusCode, serde_json::Value),
}

#[derive(Default)]
struct State {
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<Outcome>,
    first_next: Option<Instant>,
    next_calls: u64,
    seq: u64,
}

/// A running emulator; stops when dropped.
pub struct LambdaEmulator {
    addr: SocketAddr,
    /// The path the Runtime API is served under (empty, or `/.rt/fn`).
    base_path: String,
    queue: mpsc::UnboundedSender<Next>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The largest response Lambda accepts from a synchronous invocation.
pub const MAX_RESPONSE: usize = 6 * 1024 * 1024;

impl LambdaEmulator {
    /// Starts on a free loopback port.
    pub async fn start() -> LambdaEmulator {
        LambdaEmulator::start_at("").await
    }

    /// Starts on a free loopback port, serving the Runtime API under `base_path` (`/.rt/fn`, as
    /// `cargo lambda watch` does); requests outside it are answered 404.
    pub async fn start_at(base_path: &str) -> LambdaEmulator {
        let base_path = base_path.trim_end_matches('/').to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind emulator");
        let addr = listener.local_addr().expect("emulator address");
        let (queue, rx) = mpsc::unbounded_channel::<Next>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let base = base_path.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (rx, st, base) = (rx.clone(), st.clone(), base.clone());
                let svc = hyper::service::service_fn(move |req| {
                    let (rx, st, base) = (rx.clone(), st.clone(), base.clone());
                    async move { Ok::<_, std::convert::Infallible>(serve(req, &base, rx, st).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        LambdaEmulator {
            addr,
            base_path,
            queue,
            state,
            task,
        }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`: `127.0.0.1:port` as Lambda sets it, or
    /// `http://127.0.0.1:port/base/path` when started with [`Self::start_at`].
    pub fn runtime_api(&self) -> String {
        if self.base_path.is_empty() {
            self.addr.to_string()
        } else {
            format!("http://{}{}", self.addr, self.base_path)
        }
    }

    /// `AWS_LAMBDA_RUNTIME_API` as a URL, `http://127.0.0.1:port` (plus the base path, if any).
    pub fn runtime_api_url(&self) -> String {
        format!("http://{}{}", self.addr, self.base_path)
    }

    /// Answers the next `/next` call with `status` (Lambda documents a 500 there as an unrecoverable
    /// state, after which the runtime should exit).
    pub fn fail_next(&self, status: StatusCode) {
        let body = serde_json::json!({"errorType": "Runtime.Unknown", "errorMessage": "emulated failure"});
        let _ = self.queue.send(Next::Fail(status, body));
    }

    /// Invokes with default options (10 s timeout, an X-Ray trace id).
    pub async fn invoke(&self, event: impl Into<Bytes>) -> Outcome {
        self.invoke_with(event, InvokeOptions::default()).await
    }

    /// Queues one invocation and waits for the runtime's answer.
    pub async fn invoke_with(&self, event: impl Into<Bytes>, opts: InvokeOptions) -> Outcome {
        self.try_invoke(event, opts)
            .await
            .expect("the runtime did not answer in time")
    }

    /// Like [`Self::invoke_with`], but `None` if no answer came within `opts.wait`.
    pub async fn try_invoke(&self, event: impl Into<Bytes>, opts: InvokeOptions) -> Option<Outcome> {
        let id = {
            let mut st = self.state.lock().unwrap();
            st.seq += 1;
            request_id(st.seq)
        };
        let (done, answer) = oneshot::channel();
        let deadline = match opts.deadline_header {
            DeadlineHeader::FromTimeout => Some((unix_ms() + opts.timeout.as_millis() as u64).to_string()),
            DeadlineHeader::Raw(text) => Some(text),
            DeadlineHeader::Missing => None,
        };
        let pending = Pending {
            id,
            event: event.into(),
            deadline,
            request_id_header: opts.request_id_header,
            trace_id: opts.trace_id,
            done,
        };
        self.queue.send(Next::Event(pending)).ok()?;
        tokio::time::timeout(opts.wait, answer).await.ok()?.ok()
    }

    /// Waits up to `wait` for an `/init/error` report.
    pub async fn init_error(&self, wait: Duration) -> Option<Outcome> {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if let Some(e) = self.state.lock().unwrap().init_error.clone() {
                return Some(e);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// When the runtime first asked for an event (the end of its init).
    pub fn first_next(&self) -> Option<Instant> {
        self.state.lock().unwrap().first_next
    }

    /// The request id of the latest invocation queued (`None` before the first).
    pub fn last_request_id(&self) -> Option<String> {
        let seq = self.state.lock().unwrap().seq;
        (seq > 0).then(|| request_id(seq))
    }

    /// How many times the runtime asked for an event.
    pub fn next_calls(&self) -> u64 {
        self.state.lock().unwrap().next_calls
    }
}

/// The request id of the `seq`th invocation (UUID-shaped, as Lambda's).
fn request_id(seq: u64) -> String {
    format!("8476a536-e9f4-11e8-9739-{seq:012x}")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn accepted() -> Response<Full<Bytes>> {
    reply(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
}

async fn serve(
    req: Request<Incoming>,
    base_path: &str,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Next>>>,
    state: Arc<Mutex<State>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(base_path).and_then(|p| p.strip_prefix(PREFIX)) else {
        return reply(StatusCode::NOT_FOUND, serde_json::json!({"errorType": "NotFound"}));
    };
    match (req.method().clone(), rest) {
        (Method::GET, "/invocation/next") => {
            {
                let mut st = state.lock().unwrap();
                st.next_calls += 1;
                st.first_next.get_or_insert_with(Instant::now);
            }
            let p = match queue.lock().await.recv().await {
                Some(Next::Event(p)) => p,
                Some(Next::Fail(status, body)) => return reply(status, body),
                None => return reply(StatusCode::GONE, serde_json::json!({"errorType": "Shutdown"})),
            };
            state.lock().unwrap().waiting.insert(p.id.clone(), p.done);
            let mut r = Response::new(Full::new(p.event));
            let h = r.headers_mut();
            let mut set = |k: &'static str, v: &str| {
                if let Ok(v) = http::HeaderValue::from_str(v) {
                    h.insert(k, v);
                }
            };
            if p.request_id_header {
                set("lambda-runtime-aws-request-id", &p.id);
            }
            if let Some(deadline) = &p.deadline {
                set("lambda-runtime-deadline-ms", deadline);
            }
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:nimbus-test",
            );
            if let Some(t) = &p.trace_id {
                set("lambda-runtime-trace-id", t);
            }
            r
        }
        (Method::POST, "/init/error") => {
            let outcome = error_outcome(req).await;
            state.lock().unwrap().init_error = Some(outcome);
            accepted()
        }
        (Method::POST, rest) if rest.starts_with("/invocation/") => {
            let tail = &rest["/invocation/".len()..];
            let Some((id, kind)) = tail.split_once('/') else {
                return reply(StatusCode::NOT_FOUND, serde_json::json!({"errorType": "NotFound"}));
            };
            let (id, kind) = (id.to_owned(), kind.to_owned());
            if !state.lock().unwrap().waiting.contains_key(&id) {
                return reply(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"}),
                );
            }
            let outcome = match kind.as_str() {
                "response" => {
                    let body = match req.into_body().collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(_) => Bytes::new(),
                    };
                    if body.len() > MAX_RESPONSE {
                        return reply(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            serde_json::json!({"errorType": "RequestEntityTooLarge",
                                "errorMessage": format!("response of {} bytes exceeds {MAX_RESPONSE}", body.len())}),
                        );
                    }
                    Outcome::Response(body)
                }
                "error" => error_outcome(req).await,
                _ => return reply(StatusCode::NOT_FOUND, serde_json::json!({"errorType": "NotFound"})),
            };
            if let Some(done) = state.lock().unwrap().waiting.remove(&id) {
                let _ = done.send(outcome);
            }
            accepted()
        }
        _ => reply(StatusCode::NOT_FOUND, serde_json::json!({"errorType": "NotFound"})),
    }
}

async fn error_outcome(req: Request<Incoming>) -> Outcome {
    let header_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    Outcome::Error { header_type, body }
}
