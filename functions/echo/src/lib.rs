//! `echo`: an event function that returns the event it got, with its context.

use nimbus_sdk::event::{Error, Event};
use serde_json::{Value, json};

fn echo(event: Event) -> Result<Value, Error> {
    let payload: Value = event.json()?;
    let ctx = nimbus_sdk::invocation::current();
    Ok(json!({
        "echo": payload,
        "source": event.source.as_str(),
        "request_id": ctx.request_id,
        "function": ctx.function_name,
    }))
}

nimbus_sdk::event_function!(echo);
