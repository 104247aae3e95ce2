//! Cloud Run / Knative requests for an event function (`knative/mod.rs`): the input is an HTTP head and
//! body (see `nimbus_fuzz::split_http`, the shape of `tests/fixtures/knative/*.http`), decoded by
//! `knative::decode::decode` (CloudEvents structured, binary and batch modes, Pub/Sub push, plain bodies).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_platforms::knative::decode::{self, Mode};

fuzz_target!(|data: &[u8]| {
    let (lines, body) = nimbus_fuzz::split_http(data);
    let headers = nimbus_fuzz::header_map(&lines);
    let Ok(decoded) = decode::decode(&headers, body) else {
        return;
    };
    match decoded.mode {
        Mode::Structured | Mode::Batch | Mode::PubSubPush | Mode::Plain => {
            assert_eq!(decoded.event.payload, body, "{:?} bodies reach the guest verbatim", decoded.mode);
        }
        Mode::Binary => {
            // A binary-mode event reaches the guest as the envelope structured mode would have carried:
            // that envelope decodes as a structured CloudEvent, of the same source kind.
            let mut structured = http::HeaderMap::new();
            structured.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(decode::STRUCTURED));
            let again = decode::decode(&structured, &decoded.event.payload).unwrap_or_else(|e| {
                panic!(
                    "the binary-mode envelope {} is no structured CloudEvent: {e}",
                    String::from_utf8_lossy(&decoded.event.payload)
                )
            });
            assert_eq!(again.mode, Mode::Structured);
            assert_eq!(again.event.source, decoded.event.source);
        }
    }
});
