//! A guest that attacks its sandbox, for the hostile-input suite (`tests/tests/all/hostile/`). Each path is
//! one attempt, and the answer reports what the guest got, so the tests can check that every attempt was
//! denied (or, for the resource abuses, that only this invocation failed):
//!
//! - `/files`: reads, lists and writes host paths (`/etc/passwd`, `/proc/self/environ`, `/`, `..`, ...);
//! - `/env`: the environment, arguments and working directory it was given;
//! - `/sockets?port=P`: a TCP connect and a UDP send to 127.0.0.1:P, a listener, a DNS lookup;
//! - `/config?key=K`: a config key (declared or not) and every key it can list;
//! - `/kv?bucket=B`: opens a key-value bucket and writes to it;
//! - `/stack[?deep=1]`: recurses until the stack runs out (frames in linear memory, or on the wasm stack);
//! - `/alloc?mb=N[&touch=1]`: asks for N MiB (`try_reserve`: a refusal is an answer), or takes it (a trap);
//! - `/fanout?n=N&url=U`: sends N requests to U at once, then waits for them all (an outbound fork-bomb);
//! - `/handles?n=N`: creates N host resources and keeps them;
//! - `/slurp?url=U`: reads U's response body until it ends (a response that never ends).

use nimbus_sdk::http::{Request, Response, json};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use test_programs::{fetch_body, query};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

fn handle(req: Request) -> Response {
    let q = req.uri().query();
    let num = |name: &str, default: u64| query(q, name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let url = || {
        q.and_then(|q| q.split_once("url=").map(|(_, url)| url))
            .unwrap_or("http://127.0.0.1:1/")
            .to_owned()
    };
    let report = match req.uri().path() {
        "/files" => files(),
        "/env" => json!({
            "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "args": std::env::args().collect::<Vec<_>>(),
            "cwd": outcome(std::env::current_dir().map(|d| d.display().to_string())),
        }),
        "/sockets" => sockets(num("port", 1) as u16),
        "/config" => {
            let key = query(q, "key").unwrap_or("");
            json!({
                "value": outcome(nimbus_sdk::config::get(key).map(|v| json!(v))),
                "all": outcome(nimbus_sdk::config::all().map(|all| all.into_iter().map(|(k, _)| k).collect::<Vec<_>>())),
            })
        }
        "/kv" => {
            let bucket = query(q, "bucket").unwrap_or("");
            json!({ "open": outcome(nimbus_sdk::kv::Bucket::open(bucket).and_then(|b| b.set("k", b"v"))) })
        }
        "/stack" if query(q, "deep").is_some() => json!({ "depth": deep(0) }),
        "/stack" => json!({ "depth": recurse(0, [0u8; 256]) }),
        "/alloc" => {
            let bytes = (num("mb", 1024) << 20) as usize;
            if query(q, "touch").is_some() {
                let hoard = vec![1u8; bytes];
                json!({ "took": std::hint::black_box(hoard).len() })
            } else {
                let mut v: Vec<u8> = Vec::new();
                json!({ "reserve": outcome(v.try_reserve_exact(bytes).map(|_| v.capacity())) })
            }
        }
        "/fanout" => fanout(num("n", 1000), &url()),
        "/handles" => {
            let kept: Vec<Fields> = (0..num("n", 1_000_000)).map(|_| Fields::new()).collect();
            json!({ "kept": kept.len() })
        }
        "/slurp" => json!({ "read": outcome(fetch_body(&url()).map(|(status, body)| json!([status, body.len()]))) }),
        other => json!({ "error": format!("no attack at {other}") }),
    };
    json(&report)
}

/// `{"ok": value}` or `{"err": the error}`.
fn outcome<T: serde::Serialize, E: std::fmt::Debug>(r: Result<T, E>) -> Value {
    match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "err": format!("{e:?}") }),
    }
}

fn files() -> Value {
    let mut got = BTreeMap::new();
    for path in [
        "/etc/passwd",
        "/proc/self/environ",
        "/proc/self/maps",
        "/proc/1/cmdline",
        "../../etc/hosts",
    ] {
        got.insert(format!("read {path}"), outcome(std::fs::read(path).map(|b| b.len())));
    }
    for dir in ["/", ".", "..", "/proc", "/sys/class/net", "/tmp"] {
        let listed = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().display().to_string()));
        got.insert(format!("list {dir}"), outcome(listed.map(|l| l.collect::<Vec<_>>())));
    }
    got.insert(
        "write /tmp/nimbus-escape".into(),
        outcome(std::fs::write("/tmp/nimbus-escape", b"x")),
    );
    json!(got)
}

fn sockets(port: u16) -> Value {
    use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
    json!({
        "tcp connect": outcome(TcpStream::connect(("127.0.0.1", port)).map(|_| ())),
        "tcp listen": outcome(TcpListener::bind("0.0.0.0:0").map(|l| l.local_addr().map(|a| a.to_string()).ok())),
        "udp send": outcome(UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"x", ("127.0.0.1", port)))),
        "dns": outcome(("localhost", 80).to_socket_addrs().map(|a| a.map(|a| a.to_string()).collect::<Vec<_>>())),
    })
}

/// Recurses without end (the frames are kept: `black_box` stops the call from becoming a loop).
fn recurse(depth: u64, frame: [u8; 256]) -> u64 {
    let frame = std::hint::black_box(frame);
    recurse(depth + 1, frame) + frame[(depth % 256) as usize] as u64
}

/// Recurses without end on the wasm call stack (no locals in linear memory; the counter's updates around the
/// call keep it from becoming a loop).
fn deep(n: u64) -> u64 {
    DEPTH.fetch_add(1, Ordering::Relaxed);
    let below = deep(n + 1);
    DEPTH.fetch_sub(1, Ordering::Relaxed);
    below ^ n
}

static DEPTH: AtomicU64 = AtomicU64::new(0);

/// Sends `n` GETs to `url` at once, then waits for each: how many got a response, and the errors by kind.
fn fanout(n: u64, url: &str) -> Value {
    let uri: nimbus_sdk::http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return json!({ "error": format!("bad url: {e}") }),
    };
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut pending = Vec::new();
    for _ in 0..n {
        let req = OutgoingRequest::new(Fields::new());
        let _ = req.set_scheme(Some(&Scheme::Http));
        let _ = req.set_authority(uri.authority().map(|a| a.as_str()));
        let _ = req.set_path_with_query(Some(uri.path_and_query().map_or("/", |p| p.as_str())));
        match outgoing_handler::handle(req, None) {
            Ok(f) => pending.push(f),
            Err(e) => *errors.entry(kind(&format!("{e:?}"))).or_default() += 1,
        }
    }
    let mut ok = 0;
    for f in pending {
        f.subscribe().block();
        match f.get() {
            Some(Ok(Ok(_))) => ok += 1,
            Some(Ok(Err(e))) => *errors.entry(kind(&format!("{e:?}"))).or_default() += 1,
            _ => *errors.entry("no response".into()).or_default() += 1,
        }
    }
    json!({ "ok": ok, "errors": errors })
}

/// An error code's variant name (`ConnectionLimitReached`, `ConnectionRefused`, ...).
fn kind(debug: &str) -> String {
    let name = debug.split(['(', ' ', '{']).next().unwrap_or(debug);
    name.strip_prefix("ErrorCode::").unwrap_or(name).to_owned()
}

nimbus_sdk::http_function!(handle);

fn main() {}
