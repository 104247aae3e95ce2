//! Azure Functions custom-handler invocation payloads (`azure/mod.rs`): the input is the body the Functions
//! host POSTs, read as an HTTP function's request (`azure::decode::http_request`) and as an event function's
//! payload (`azure::decode::invocation_request`, then `azure::decode::event`, which calls `source_kind`).
#![no_main]

use http::header;
use libfuzzer_sys::fuzz_target;
use nimbus_platforms::azure::decode;

/// An HTTP function's `max_request_body` for the fuzz runs; small, so that the limit is reached.
const MAX_BODY: u64 = 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::http_request(data, MAX_BODY) {
        assert!(req.body().len() as u64 <= MAX_BODY);
        let len = req.headers().get(header::CONTENT_LENGTH).expect("Content-Length is set");
        assert_eq!(len.to_str().unwrap(), req.body().len().to_string());
        assert!(!req.headers().contains_key(header::TRANSFER_ENCODING));
        assert!(!req.headers().contains_key(decode::FUNCTION_KEY), "the function key reaches the guest");
    }
    if let Ok(inv) = decode::invocation_request(data) {
        let _ = decode::event(&inv);
    }
});
