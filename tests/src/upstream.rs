//! A loopback HTTP/1.1 server for outbound tests: it answers every request with what its `respond`
//! function returns and keeps what it saw, including connections that never sent a request, so a test
//! can prove that nothing reached it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Makes the answer to one request from its head.
pub type Respond = Arc<dyn Fn(&http::request::Parts) -> http::Response<String> + Send + Sync>;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request line's path and query.
    pub path: String,
    /// Its headers.
    pub headers: http::HeaderMap,
}

/// A running server on `127.0.0.1` (stopped when the test's runtime ends).
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every connection's peer address, in the order they were accepted.
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    /// The peer addresses of [`Upstream::connections`]' own probes.
    probes: Mutex<Vec<SocketAddr>>,
    requests: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// Starts a server answering every request with `status` and an empty body.
    pub async fn status(status: u16) -> Upstream {
        Upstream::start(Arc::new(move |_| {
            http::Response::builder()
                .status(status)
                .body(String::new())
                .expect("a valid response")
        }))
        .await
    }

    /// Starts a server answering with `respond`.
    pub async fn start(respond: Respond) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let peers = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (p, r) = (peers.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((s, peer)) = listener.accept().await {
                p.lock().unwrap().push(peer);
                let (r, respond) = (r.clone(), respond.clone());
                let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (parts, _) = req.into_parts();
                    r.lock().unwrap().push(Seen {
                        path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
                        headers: parts.headers.clone(),
                    });
                    let answer = respond(&parts);
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(s), svc),
                );
            }
        });
        Upstream {
            addr,
            peers,
            probes: Mutex::default(),
            requests,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }

    /// How many connections were made to it before this call, once all of them have been accepted. A
    /// probe connection of its own goes to the back of the listen queue; connections are accepted in
    /// order, so once the probe is in, every earlier one is counted (probes are not).
    pub async fn connections(&self) -> usize {
        let probe = tokio::net::TcpStream::connect(self.addr).await.expect("probe connect");
        let me = probe.local_addr().expect("probe addr");
        for _ in 0..1000 {
            {
                let peers = self.peers.lock().unwrap();
                if let Some(i) = peers.iter().position(|p| *p == me) {
                    let mut probes = self.probes.lock().unwrap();
                    let earlier = peers[..i].iter().filter(|p| !probes.contains(p)).count();
                    probes.push(me);
                    return earlier;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the probe connection to {} was never accepted", self.addr);
    }
}
