//! The native peer for the benchmarks: a hyper hello server doing the same
//! work as the `proxy_hello` guest, without a sandbox.
//! Usage: `native_hello 127.0.0.1:PORT`

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|_req| async {
                let resp = http::Response::builder()
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from_static(b"Hello, world!\n")))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(resp)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
