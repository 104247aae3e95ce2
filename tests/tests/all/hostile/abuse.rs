//! Resource abuse by a guest: each attack ends that one invocation (or is refused to the guest), the host's
//! own resources stay bounded, and the next request is served. Endless loops, memory bombs, huge bodies and
//! floods are in [`super::failures`]; slow-loris and malformed clients in [`super::listener`].

use super::{attack, hostile_gateway, still_serving};
use nimbus_tests::get;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads a request head from `s` (up to its blank line), or gives up when the peer closes.
async fn read_head(s: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// The error type in the host's "invocation failed" line for the request answered with `reply`.
fn failure_logged(logs: &nimbus_tests::Logs, reply: &nimbus_tests::Reply) -> String {
    let rid = reply.headers["x-nimbus-request-id"].to_str().unwrap();
    let failed = nimbus_tests::records(logs, "invocation failed");
    let line = failed
        .iter()
        .find(|l| l["request_id"] == rid)
        .unwrap_or_else(|| panic!("no failure line for {rid}: {failed:?}"));
    line["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_fails_only_that_request() {
    let (gw, logs) = hostile_gateway().await;
    // Frames of locals in linear memory run the guest's shadow stack below address 0: an out-of-bounds
    // access. Frames of plain values exhaust the wasm call stack, which wasmtime bounds.
    for (path, trap) in [
        ("/stack", "out of bounds memory access"),
        ("/stack?deep=1", "call stack exhausted"),
    ] {
        let r = get(gw.addr(), path).await;
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "Nimbus.Trap");
        let error = failure_logged(&logs, &r);
        assert!(
            error.contains(trap),
            "{path}: {}",
            &error[error.len().saturating_sub(300)..]
        );
        // The backtrace in the log is bounded, however deep the recursion went.
        assert!(error.len() < 8 << 10, "{path}: a {} byte log line", error.len());
        still_serving(&gw).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_allocation_is_refused_to_the_guest_or_ends_its_invocation() {
    let (gw, _) = hostile_gateway().await;
    // Asked politely (`try_reserve`), the guest learns that memory is not there: its limit is 64 MiB.
    let v = attack(&gw, "/alloc?mb=1024").await;
    assert!(v["reserve"]["err"].as_str().is_some(), "{v}");
    // Taken without asking, the allocation fails and the invocation ends; a small one still works.
    let r = get(gw.addr(), "/alloc?mb=1024&touch=1").await;
    assert_eq!(r.status, 500, "{}", r.text());
    let v = r.json();
    assert!(
        ["Nimbus.OutOfMemory", "Nimbus.Trap"].contains(&v["error"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!(attack(&gw, "/alloc?mb=8&touch=1").await["took"], 8 << 20);
    still_serving(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_hoarding_host_handles_stops_at_the_resource_table_cap() {
    let (gw, logs) = hostile_gateway().await;
    // Each `fields` handle lives in the host's memory: a million would be a gigabyte's worth of host entries
    // under wasmtime's default cap. Nimbus's cap (16384) ends the invocation long before.
    let r = get(gw.addr(), "/handles?n=1000000").await;
    // 500, not the deadline's 504: the cap stopped it, not the clock.
    assert_eq!(r.status, 500, "{}", r.text());
    let error = failure_logged(&logs, &r);
    assert!(error.contains("resource table has no free keys"), "{error}");
    // A handler's worth of handles is fine.
    assert_eq!(attack(&gw, "/handles?n=1000").await["kept"], 1000);
    still_serving(&gw).await;
}

/// A loopback server that answers each request after `hold` and counts the connections open at once.
struct Counting {
    port: u16,
    open: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

async fn counting(hold: Duration) -> Counting {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (open, most, total) = (Arc::default(), Arc::default(), Arc::default());
    let (o, m, t): (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) =
        (Arc::clone(&open), Arc::clone(&most), Arc::clone(&total));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            t.fetch_add(1, Ordering::SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                if read_head(&mut s).await {
                    tokio::time::sleep(hold).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                        .await;
                }
                let _ = s.shutdown().await;
                // Wait for the client's close, so "open" counts what the host holds.
                let mut rest = [0u8; 64];
                while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Counting {
        port,
        open,
        most,
        total,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_fork_bomb_holds_at_most_outbound_concurrency_connections() {
    let (gw, logs) = hostile_gateway().await;
    let up = counting(Duration::from_millis(300)).await;
    let n = 2000;
    let v = attack(&gw, &format!("/fanout?n={n}&url=http://127.0.0.1:{}/", up.port)).await;
    // 64 (the default `outbound_concurrency`) at once; the rest were refused to the guest at once.
    let most = up.most.load(Ordering::SeqCst);
    assert!(most <= 64, "{most} connections at once");
    let ok = v["ok"].as_u64().unwrap();
    let limited = v["errors"]["ConnectionLimitReached"].as_u64().unwrap_or(0);
    assert!(ok >= 1 && ok <= n, "{v}");
    assert_eq!(
        ok + v["errors"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>(),
        n,
        "{v}"
    );
    assert!(limited >= n / 2, "{v}");
    assert_eq!(up.total.load(Ordering::SeqCst) as u64, ok, "{v}");
    // One log line per invocation says why, not one per refused request.
    let refused: Vec<_> = nimbus_tests::records(&logs, "outbound request refused")
        .into_iter()
        .filter(|l| {
            l["reason"]
                .as_str()
                .is_some_and(|r| r.contains("outbound_concurrency (64)"))
        })
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    // When the invocation is over, its connections are closed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while up.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.open.load(Ordering::SeqCst), 0, "connections left open");
    still_serving(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_never_ends_is_cut_at_the_deadline_and_its_connection_closed() {
    let (gw, _) = hostile_gateway().await;
    // A chunked body, a kilobyte every 10 ms, for as long as someone reads it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed: Arc<Mutex<Option<Instant>>> = Arc::default();
    let c = closed.clone();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        if !read_head(&mut s).await {
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let chunk = [b"400\r\n".as_slice(), &[b'x'; 1024], b"\r\n"].concat();
        while s.write_all(&chunk).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        *c.lock().unwrap() = Some(Instant::now());
    });
    let r = get(gw.addr(), &format!("/slurp?url=http://127.0.0.1:{port}/")).await;
    let answered = Instant::now();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"], "Nimbus.Deadline");
    // The host let go of the upstream with the invocation: its next writes fail.
    let deadline = answered + Duration::from_secs(20);
    while closed.lock().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        closed.lock().unwrap().is_some(),
        "the upstream connection is still open"
    );
    still_serving(&gw).await;
}
