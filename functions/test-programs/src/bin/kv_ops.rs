//! Runs the key-value operations its event lists on the bucket `kv` and answers one result per operation,
//! so tests can drive `wasi:keyvalue` with any key:
//! `{"ops": [{"op": "set", "key": "k", "value": "v"}, {"op": "get", "key": "k"}, {"op": "exists", "key": "k"},
//! {"op": "delete", "key": "k"}, {"op": "increment", "key": "n", "delta": 2}, {"op": "keys"}]}` →
//! `[{"ok": <value>} | {"err": "<the store error as the guest sees it>"}, …]`. Values are UTF-8 text.

use nimbus_sdk::event::{Error, Event};
use nimbus_sdk::kv::Bucket;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Ops {
    ops: Vec<Op>,
}

#[derive(Deserialize)]
struct Op {
    op: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    delta: u64,
}

fn apply(bucket: &Bucket, op: &Op) -> Result<Value, nimbus_sdk::kv::Error> {
    Ok(match op.op.as_str() {
        "set" => bucket.set(&op.key, op.value.as_bytes()).map(|()| Value::Null)?,
        "get" => json!(bucket.get(&op.key)?.map(|v| String::from_utf8_lossy(&v).into_owned())),
        "exists" => json!(bucket.exists(&op.key)?),
        "delete" => bucket.delete(&op.key).map(|()| Value::Null)?,
        "increment" => json!(bucket.increment(&op.key, op.delta)?),
        "keys" => json!(bucket.keys()?),
        other => json!({ "unknown op": other }),
    })
}

fn handle(event: Event) -> Result<Value, Error> {
    let ops: Ops = event.json()?;
    let bucket = Bucket::open("kv").map_err(|e| Error::failed(format!("open: {e:?}")))?;
    let results: Vec<Value> = ops
        .ops
        .iter()
        .map(|op| match apply(&bucket, op) {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "err": format!("{e:?}") }),
        })
        .collect();
    Ok(Value::Array(results))
}

nimbus_sdk::event_function!(handle);

fn main() {}
