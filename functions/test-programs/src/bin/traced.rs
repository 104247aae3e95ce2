//! Records guest spans (`nimbus_sdk::trace`): `order` with attributes of
//! every kind, a nested `price` span that fetches `?url=` (so the request is
//! its child), and a failed `validate` span. `?extra=N` adds N empty spans,
//! to test the per-invocation bound. Answers with the spans' traceparents.

use nimbus_sdk::http::{Request, Response, json};
use nimbus_sdk::trace::{Span, in_span};
use test_programs::{fetch, query};

fn handle(req: Request) -> Response {
    let q = req.uri().query();
    let url = query(q, "url").unwrap_or("http://127.0.0.1:1/").to_owned();
    let extra: u32 = query(q, "extra").and_then(|n| n.parse().ok()).unwrap_or(0);

    let order = Span::start("order");
    order
        .set("order.id", "o-42")
        .set("order.items", 3)
        .set("order.express", true)
        .set("order.weight", 1.5);
    order.set("order.items", 4); // the last value wins
    let (price_tp, status) = in_span("price", |price| {
        let status = fetch(&url);
        price.set("upstream.ok", status.is_ok());
        (price.traceparent(), status)
    });
    let validate = Span::start("validate");
    validate.error("card declined");
    validate.end();
    for i in 0..extra {
        Span::start("extra").set("i", i);
    }
    let order_tp = order.traceparent();
    order.end();
    json(&serde_json::json!({
        "order": order_tp,
        "price": price_tp,
        "status": status.ok(),
    }))
}

nimbus_sdk::http_function!(handle);

fn main() {}
