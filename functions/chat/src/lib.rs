//! A WebSocket chat room server: every callback is one invocation in a fresh sandbox, so the rooms live in
//! a key-value bucket (`rooms`), and messages reach the other members through `connections`.
//!
//! Messages are JSON with an `action` (the API's route selection expression is `$request.body.action`):
//! - `{"action": "join", "room": "lobby", "name": "ann"}` → the room gets `{"event": "joined", "name": "ann"}`,
//!   the sender the reply `{"joined": "lobby", "members": N}`;
//! - `{"action": "send", "text": "hi"}` → every member of the sender's room gets
//!   `{"event": "message", "from": "ann", "text": "hi"}`;
//! - `{"action": "leave"}`, or the connection ending → the room gets `{"event": "left", "name": "ann"}`.
//!
//! Keys: `member/{room}/{connection}` = name, `conn/{connection}` = room. A member whose connection is gone
//! is removed when a broadcast finds out.

use nimbus_sdk::connections::{self, Message};
use nimbus_sdk::kv::Bucket;
use nimbus_sdk::websocket::{Disconnect, Error, Handler, IncomingMessage};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

fn kv_err(e: nimbus_sdk::kv::Error) -> Error {
    Error::failed(format!("rooms store: {e:?}"))
}

fn rooms() -> Result<Bucket, Error> {
    Bucket::open("rooms").map_err(kv_err)
}

/// Sends `event` to every member of `room`, forgetting members whose connection is gone. The count reached.
fn broadcast(rooms: &Bucket, room: &str, event: &serde_json::Value) -> Result<usize, Error> {
    let text = event.to_string();
    let prefix = format!("member/{room}/");
    let mut reached = 0;
    for key in rooms.keys_with_prefix(&prefix).map_err(kv_err)? {
        let id = &key[prefix.len()..];
        match connections::send(id, &Message::Text(text.clone())) {
            Ok(()) => reached += 1,
            Err(connections::Error::Gone) => {
                rooms.delete(&key).map_err(kv_err)?;
                rooms.delete(&format!("conn/{id}")).map_err(kv_err)?;
            }
            Err(e) => eprintln!("send to {id} failed: {e:?}"),
        }
    }
    Ok(reached)
}

/// Removes `id` from its room and tells the room; nothing if it was in none.
fn leave(rooms: &Bucket, id: &str) -> Result<(), Error> {
    let Some(room) = rooms.get(&format!("conn/{id}")).map_err(kv_err)? else {
        return Ok(());
    };
    let room = String::from_utf8_lossy(&room).into_owned();
    let member = format!("member/{room}/{id}");
    let name = rooms
        .get(&member)
        .map_err(kv_err)?
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .unwrap_or_default();
    rooms.delete(&member).map_err(kv_err)?;
    rooms.delete(&format!("conn/{id}")).map_err(kv_err)?;
    broadcast(rooms, &room, &json!({"event": "left", "name": name}))?;
    Ok(())
}

struct Chat;

impl Handler for Chat {
    fn on_message(msg: IncomingMessage) -> Result<Option<Message>, Error> {
        let Message::Text(text) = &msg.message else {
            return Err(Error::invalid("send JSON text"));
        };
        let req: Request = serde_json::from_str(text).map_err(|e| Error::invalid(format!("not a chat request: {e}")))?;
        let rooms = rooms()?;
        let id = msg.connection_id.as_str();
        let reply = match msg.route_key.as_str() {
            "join" => {
                let room = req.room.ok_or_else(|| Error::invalid("join needs a room"))?;
                let name = req.name.unwrap_or_else(|| id.to_owned());
                leave(&rooms, id)?;
                rooms.set(&format!("member/{room}/{id}"), name.as_bytes()).map_err(kv_err)?;
                rooms.set(&format!("conn/{id}"), room.as_bytes()).map_err(kv_err)?;
                let members = broadcast(&rooms, &room, &json!({"event": "joined", "name": name}))?;
                json!({"joined": room, "members": members})
            }
            "send" => {
                let text = req.text.ok_or_else(|| Error::invalid("send needs a text"))?;
                let room = rooms
                    .get(&format!("conn/{id}"))
                    .map_err(kv_err)?
                    .ok_or_else(|| Error::invalid("join a room first"))?;
                let room = String::from_utf8_lossy(&room).into_owned();
                let from = rooms
                    .get(&format!("member/{room}/{id}"))
                    .map_err(kv_err)?
                    .map(|n| String::from_utf8_lossy(&n).into_owned())
                    .unwrap_or_default();
                let reached = broadcast(&rooms, &room, &json!({"event": "message", "from": from, "text": text}))?;
                json!({"sent": reached})
            }
            "leave" => {
                leave(&rooms, id)?;
                json!({"left": true})
            }
            other => json!({"error": format!("unknown action (route {other}); use join, send or leave")}),
        };
        Ok(Some(Message::Text(reply.to_string())))
    }

    fn on_disconnect(info: Disconnect) {
        if let Err(e) = rooms().and_then(|r| leave(&r, &info.connection_id)) {
            eprintln!("leaving on disconnect failed: {e}");
        }
    }
}

nimbus_sdk::websocket_function!(Chat);
