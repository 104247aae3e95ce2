//! Fetches `?url=...` through `wasi:http/outgoing-handler` and reports the
//! status or the error code, to test the outbound allow-list. With
//! `?follow=N&url=...` it follows up to N redirects, as a client library would;
//! with `?read=1&url=...` it reads the body whole and reports it too.
//! `url` comes last and takes the rest of the query as it is.

use nimbus_sdk::http::{Request, Response, json};
use test_programs::{fetch, fetch_body, fetch_following, query};

fn handle(req: Request) -> Response {
    let q = req.uri().query();
    let url = q
        .and_then(|q| q.split_once("url=").map(|(_, url)| url))
        .unwrap_or("http://127.0.0.1:1/")
        .to_owned();
    if query(q, "read").is_some() {
        return match fetch_body(&url) {
            Ok((status, body)) => json(&serde_json::json!({ "status": status, "body": body })),
            Err(e) => json(&serde_json::json!({ "error": e })),
        };
    }
    let fetched = match query(q, "follow").and_then(|n| n.parse().ok()) {
        Some(hops) => fetch_following(&url, hops),
        None => fetch(&url),
    };
    match fetched {
        Ok(status) => json(&serde_json::json!({ "status": status })),
        Err(e) => json(&serde_json::json!({ "error": e })),
    }
}

nimbus_sdk::http_function!(handle);

fn main() {}
