//! Outbound HTTP: denied unless the manifest allows the origin.

use nimbus_tests::{boot, gateway, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_are_denied_by_default_and_allowed_by_the_list() {
    // A real upstream on loopback for the allowed case.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = upstream.accept().await {
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder().status(207).body(String::from("up")).unwrap(),
                )
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(s), svc),
            );
        }
    });
    let (host, logs) = boot(&format!(
        r#"
manifest_version = 1
[function.denied]
component = "{{OUTBOUND}}"
routes = ["GET /denied"]
[function.allowed]
component = "{{OUTBOUND}}"
routes = ["GET /allowed"]
allowed_outbound_hosts = ["http://127.0.0.1:{}", "http://169.254.169.254"]
"#,
        up_addr.port()
    ))
    .await;
    let gw = gateway(host, logs).await;
    let url = format!("http://127.0.0.1:{}/x", up_addr.port());
    let v = get(gw.addr(), &format!("/denied?url={url}")).await.json();
    assert!(
        v["error"].as_str().unwrap_or_default().contains("HttpRequestDenied"),
        "{v}"
    );
    let v = get(gw.addr(), &format!("/allowed?url={url}")).await.json();
    assert_eq!(v["status"], 207, "{v}");
    // Another port on the same host is not allowed.
    let v = get(gw.addr(), "/allowed?url=http://127.0.0.1:1/x").await.json();
    assert!(
        v["error"].as_str().unwrap_or_default().contains("HttpRequestDenied"),
        "{v}"
    );
    // The metadata endpoint stays denied even when listed.
    let v = get(gw.addr(), "/allowed?url=http://169.254.169.254/latest/meta-data/")
        .await
        .json();
    assert!(
        v["error"].as_str().unwrap_or_default().contains("HttpRequestDenied"),
        "{v}"
    );
}
