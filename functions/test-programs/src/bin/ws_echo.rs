//! A WebSocket test function.
//!
//! Connect: refused with 401 when the query has `deny`, with the status of an `x-reject-status` header when
//! present; accepted otherwise. Messages (text): `echo:TEXT` replies `TEXT`; `send:ID,ID,...:TEXT` sends
//! `TEXT` to each id through `connections` and replies with a summary (`ok=N gone=N other=...`); `close:ID`
//! closes a connection; `whoami` replies the sender's connection id; `fail` returns an error; `spin` loops
//! until the deadline; `noreply` returns nothing; anything else is echoed as `ROUTE|TEXT`; binary messages
//! are echoed reversed. Disconnect: logs the code and reason.

use nimbus_sdk::connections::{self, Message};
use nimbus_sdk::websocket::{ConnectRequest, Disconnect, Error, Handler, IncomingMessage, Rejection};

struct WsEcho;

impl Handler for WsEcho {
    fn on_connect(req: ConnectRequest) -> Result<(), Rejection> {
        if req.query.iter().any(|(k, _)| k == "deny") {
            return Err(Rejection {
                status: 401,
                reason: "denied by query".into(),
            });
        }
        if let Some((_, v)) = req.headers.iter().find(|(k, _)| k == "x-reject-status") {
            return Err(Rejection {
                status: v.parse().unwrap_or(500),
                reason: "denied by header".into(),
            });
        }
        println!("connect {} path={} ip={:?}", req.connection_id, req.path, req.source_ip);
        Ok(())
    }

    fn on_message(msg: IncomingMessage) -> Result<Option<Message>, Error> {
        let text = match msg.message {
            Message::Binary(mut b) => {
                b.reverse();
                return Ok(Some(Message::Binary(b)));
            }
            Message::Text(t) => t,
        };
        if let Some(rest) = text.strip_prefix("echo:") {
            return Ok(Some(Message::Text(format!("{}|{}", msg.route_key, rest))));
        }
        if let Some(rest) = text.strip_prefix("send:") {
            let (ids, body) = rest.split_once(':').ok_or_else(|| Error::invalid("send:IDS:TEXT"))?;
            let (mut ok, mut gone, mut other) = (0, 0, Vec::new());
            for id in ids.split(',').filter(|s| !s.is_empty()) {
                match connections::send_text(id, body) {
                    Ok(()) => ok += 1,
                    Err(connections::Error::Gone) => gone += 1,
                    Err(e) => other.push(e.to_string()),
                }
            }
            return Ok(Some(Message::Text(format!("ok={ok} gone={gone} other={}", other.join(";")))));
        }
        if let Some(id) = text.strip_prefix("close:") {
            let r = connections::close(id);
            return Ok(Some(Message::Text(format!("close={}", r.map_or_else(|e| e.to_string(), |()| "ok".into())))));
        }
        match text.as_str() {
            "whoami" => Ok(Some(Message::Text(msg.connection_id))),
            "fail" => Err(Error::failed("told to fail")),
            "noreply" => Ok(None),
            "spin" => loop {
                std::hint::spin_loop();
            },
            _ => Ok(Some(Message::Text(format!("{}|{}", msg.route_key, text)))),
        }
    }

    fn on_disconnect(info: Disconnect) {
        println!("disconnect {} code={:?} reason={}", info.connection_id, info.status_code, info.reason);
    }
}

nimbus_sdk::websocket_function!(WsEcho);

fn main() {}
