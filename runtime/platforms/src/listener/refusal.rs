//! The early, cheap refusal of a connection over a bound.
//!
//! A refused connection is accepted (the only way to answer it), sent a whole HTTP/1.1 answer prepared
//! once at start — `503` for the global bound, `429` for the per-address one, each with `Retry-After: 1`
//! and a JSON body naming the bound — and closed at once. Nothing is read or parsed, no task is spawned
//! and the descriptor is given back before the next accept, so a flood of connections costs the server
//! one accept, one write and one close each. Accepting and closing without a word would be cheaper still
//! by one small write, but then a client could not tell an overloaded server from a broken one: backoff
//! needs a status and a `Retry-After`, as for an overloaded function.
//!
//! The answer is written before the request arrives. A client that sends its request after the close
//! gets a reset for it, but Linux keeps the bytes already received readable, so the client still reads
//! the answer (checked by the tests, which send first and then read).

use crate::reply;
use http::StatusCode;
use std::io::Write as _;
use tokio::net::TcpStream;

/// The two answers, rendered once.
pub(super) struct Refusals {
    /// The global bound (`max_connections`) is reached: 503.
    pub(super) busy: Box<[u8]>,
    /// The client's address has its bound (`max_connections_per_ip`): 429; `None` without that bound.
    pub(super) per_ip: Option<Box<[u8]>>,
}

impl Refusals {
    /// The answers for these bounds.
    pub(super) fn new(max_connections: u32, max_connections_per_ip: Option<u32>) -> Refusals {
        let busy = format!(
            "the server has {max_connections} open connections (max_connections = {max_connections}); retry later"
        );
        let per_ip = max_connections_per_ip.map(|max| {
            let message =
                format!("this client address already has {max} open connections (max_connections_per_ip = {max})");
            render(StatusCode::TOO_MANY_REQUESTS, &message)
        });
        Refusals {
            busy: render(StatusCode::SERVICE_UNAVAILABLE, &busy),
            per_ip,
        }
    }
}

/// A whole `connection: close` HTTP/1.1 answer with the gateways' JSON error body.
fn render(status: StatusCode, message: &str) -> Box<[u8]> {
    let r = reply::plain(status, "TooManyConnections", message);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        r.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&r.body);
    out.into_boxed_slice()
}

/// Sends `answer` and closes. The write does not wait: a new connection's send buffer is empty, so the
/// few hundred bytes fit at once; if they do not, the client gets the close alone. It goes straight to
/// the socket (tokio's `try_write` would decline until the reactor has seen the new socket writable).
pub(super) fn refuse(stream: TcpStream, answer: &[u8]) {
    if let Ok(mut socket) = stream.into_std() {
        let _ = socket.write(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_whole_http_responses_naming_the_bound() {
        let r = Refusals::new(1024, Some(256));
        let busy = String::from_utf8(r.busy.to_vec()).unwrap();
        let (head, body) = busy.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("\r\nretry-after: 1\r\n") && head.contains("\r\nconnection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "TooManyConnections");
        assert!(v["message"].as_str().unwrap().contains("max_connections = 1024"), "{v}");
        let per_ip = String::from_utf8(r.per_ip.unwrap().to_vec()).unwrap();
        assert!(per_ip.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{per_ip}");
        assert!(per_ip.contains("max_connections_per_ip = 256"), "{per_ip}");
        assert!(Refusals::new(8, None).per_ip.is_none());
    }
}
