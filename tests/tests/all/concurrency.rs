//! Many requests at once.

use crate::shared_gateway;
use nimbus_tests::get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_all_succeed() {
    let (gw, _) = shared_gateway().await;
    let addr = gw.addr();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            tokio::spawn(async move {
                let path = if i % 2 == 0 {
                    format!("/hello?name=n{i}")
                } else {
                    "/proxy".to_string()
                };
                let r = get(addr, &path).await;
                (i, r.status, r.text())
            })
        })
        .collect();
    for t in tasks {
        let (i, status, text) = t.await.unwrap();
        assert_eq!(status, 200, "request {i}: {text}");
        if i % 2 == 0 {
            assert_eq!(text, format!("Hello, n{i}!\n"));
        }
    }
}
