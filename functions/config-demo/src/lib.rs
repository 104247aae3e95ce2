//! `config-demo`: reads the config keys declared for it in nimbus.toml.

use nimbus_sdk::http::{Request, Response, json};
use std::collections::BTreeMap;

fn handle(_req: Request) -> Result<Response, nimbus_sdk::config::Error> {
    let greeting = nimbus_sdk::config::get("greeting")?.unwrap_or_else(|| "hello".into());
    let all: BTreeMap<String, String> = nimbus_sdk::config::all()?.into_iter().collect();
    Ok(json(&summary(&greeting, &all)))
}

fn summary(greeting: &str, all: &BTreeMap<String, String>) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("greeting", greeting.to_owned());
    m.insert("keys", all.keys().cloned().collect::<Vec<_>>().join(","));
    m
}

nimbus_sdk::http_function!(handle);
