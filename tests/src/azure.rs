//! The Azure Functions host's side of a custom handler, as a test client plays it: invocation payloads.

use serde_json::{Value, json};

/// An HTTP trigger's payload in payload mode (`{Data: {req}, Metadata}`) for `function`, as the Functions host
/// serialises the request to `url` (`headers`: each name with an array of values).
pub fn http_payload(function: &str, method: &str, url: &str, body: &str, headers: Value) -> Value {
    json!({
        "Data": { "req": {
            "Url": url, "Method": method, "Query": "{}", "Headers": headers, "Params": {},
            "Identities": "[]", "Body": body,
        }},
        "Metadata": { "sys": { "MethodName": function, "UtcNow": "2026-01-01T00:00:00Z", "RandGuid": "x" } },
    })
}
