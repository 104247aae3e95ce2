//! AWS Lambda events, as `bootstrap` reads them from the Runtime API's `/next` (`lambda/mod.rs`): the event
//! is sniffed for its origin (`decode::sniff`), then decoded as every HTTP origin (`decode::http_request`),
//! as a WebSocket API event (`decode::websocket_request`), as an event function's event (`decode::event`)
//! and as a task function's SQS batch and start key (`decode::task`). The same text is also given to the
//! Runtime API endpoint parser (`runtime_api::parse_endpoint`, `AWS_LAMBDA_RUNTIME_API`) and the deadline
//! header's judge (`DeadlineHeader::judge`).
#![no_main]

use http::header;
use libfuzzer_sys::fuzz_target;
use nimbus_core::EventSource;
use nimbus_platforms::lambda::decode::{self, Origin, task};
use nimbus_platforms::lambda::runtime_api::{DeadlineHeader, parse_endpoint};
use serde_json::value::RawValue;

const HTTP_ORIGINS: [Origin; 5] = [
    Origin::ApiGatewayV1,
    Origin::ApiGatewayV2,
    Origin::FunctionUrl,
    Origin::Alb { multi_value: false },
    Origin::Alb { multi_value: true },
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        // The Runtime API hands over bytes; `bootstrap` refuses what is not JSON text before decoding.
        let _ = serde_json::from_slice::<Box<RawValue>>(data);
        return;
    };
    let origin = decode::sniff(text);
    let _ = (origin.name(), origin.is_http());

    for o in HTTP_ORIGINS {
        if let Ok(req) = decode::http_request(o, text) {
            let len = req.headers().get(header::CONTENT_LENGTH).expect("a decoded request has a Content-Length");
            assert_eq!(len.to_str().unwrap(), req.body().len().to_string(), "Content-Length is the body's");
            assert!(matches!(req.uri().scheme_str(), Some("http" | "https")), "{}", req.uri());
            assert!(req.uri().authority().is_some(), "{}", req.uri());
        }
    }
    for o in [Origin::WebSocket, Origin::Event(EventSource::Sqs)] {
        assert!(decode::http_request(o, text).is_err(), "{} is no HTTP origin", o.name());
    }

    let _ = decode::websocket_request(text);

    if let Ok(raw) = serde_json::from_str::<Box<RawValue>>(text) {
        let verbatim = raw.get().as_bytes().to_vec();
        let event = decode::event(origin, raw);
        assert_eq!(event.payload, verbatim, "an event reaches the guest byte for byte");
    }

    if let Ok(batch) = task::sqs_batch(text, "nimbus-continuations") {
        assert!(batch.records.iter().all(|r| !r.message_id.is_empty()));
    }
    for source in [EventSource::EventBridge, EventSource::Sqs] {
        let key = task::start_key(source, text, "request-id");
        assert!(key.starts_with("eventbridge:") || key == "lambda:request-id", "{key}");
    }

    let _ = parse_endpoint(text);
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let _ = DeadlineHeader::judge(Some(&v), 1_800_000_000_000);
    }
});
