//! Unit tests of the decoders on hand-written events; [`fixtures`] decodes every sample event.

mod fixtures;

use super::*;
use nimbus_core::websocket::{Message, WsEvent};

#[test]
fn websocket_events_decode_with_their_api_endpoint() {
    let connect = r#"{"requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "abc=", "connectedAt": 1, "requestTimeEpoch": 1,
        "domainName": "id.execute-api.eu-west-1.amazonaws.com", "stage": "dev",
        "identity": {"sourceIp": "198.51.100.7"}},
        "headers": {"Origin": "https://app.example"},
        "multiValueQueryStringParameters": {"room": ["a", "b"]}}"#;
    let req = websocket_request(connect).unwrap();
    assert_eq!(
        req.endpoint.as_deref(),
        Some("https://id.execute-api.eu-west-1.amazonaws.com/dev")
    );
    let WsEvent::Connect(c) = req.event else {
        panic!("not a connect")
    };
    assert_eq!(c.connection_id, "abc=");
    assert_eq!(c.source_ip.as_deref(), Some("198.51.100.7"));
    assert!(
        c.headers.contains(&("origin".into(), "https://app.example".into())),
        "{:?}",
        c.headers
    );
    assert_eq!(c.query.iter().filter(|(k, _)| k == "room").count(), 2);

    let bad = r#"{"requestContext": {"routeKey": "send", "connectionId": "x", "connectedAt": 1, "requestTimeEpoch": 1}, "body": "%%", "isBase64Encoded": true}"#;
    assert!(websocket_request(bad).unwrap_err().contains("base64"));
    let anonymous =
        r#"{"requestContext": {"routeKey": "send", "connectedAt": 1, "requestTimeEpoch": 1}, "body": "hi"}"#;
    assert!(websocket_request(anonymous).unwrap_err().contains("connectionId"));
    let message = r#"{"requestContext": {"routeKey": "send", "connectionId": "x", "connectedAt": 1, "requestTimeEpoch": 1}, "body": "hi"}"#;
    let req = websocket_request(message).unwrap();
    assert_eq!(req.endpoint, None);
    assert!(
        matches!(req.event, WsEvent::Message(m) if m.route_key == "send" && matches!(&m.message, Message::Text(t) if t == "hi"))
    );
}

#[test]
fn stage_is_stripped_only_as_a_whole_segment() {
    assert_eq!(strip_stage("/prod/hello", Some("prod")), "/hello");
    assert_eq!(strip_stage("/prod", Some("prod")), "/");
    assert_eq!(strip_stage("/production/x", Some("prod")), "/production/x");
    assert_eq!(strip_stage("/hello", Some("$default")), "/hello");
    assert_eq!(strip_stage("/hello", None), "/hello");
}

#[test]
fn non_objects_and_unknown_shapes_are_direct() {
    for raw in [
        "42",
        "\"hi\"",
        "[1,2]",
        "{}",
        "{\"Records\": [1, 2]}",
        "{\"requestContext\": 5}",
        "null",
    ] {
        assert_eq!(sniff(raw), Origin::Event(EventSource::Direct), "{raw}");
    }
    assert_eq!(
        sniff(r#"{"Records":[{"eventSource":"aws:custom"}]}"#),
        Origin::Event(EventSource::Other)
    );
}

#[test]
fn bad_host_header_and_odd_paths_do_not_panic() {
    let raw = r#"{"httpMethod":"GET","path":"/a b/<x>","headers":{"Host":"bad host"},
        "queryStringParameters":{"q":"a b&c"},"requestContext":{"httpMethod":"GET","domainName":"ok.example"}}"#;
    assert_eq!(sniff(raw), Origin::ApiGatewayV1);
    let req = http_request(Origin::ApiGatewayV1, raw).unwrap();
    assert_eq!(req.uri().to_string(), "https://ok.example/a%20b/%3Cx%3E?q=a%20b%26c");
    assert_eq!(
        req.headers()["host"],
        "bad host",
        "the Host header is passed on as given"
    );
}

#[test]
fn a_host_that_is_no_authority_is_kept_beside_a_valid_one() {
    // AWS's sample API Gateway console event, with no domainName: the URI falls back to localhost.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/events/aws_lambda_events/example-apigw-console-request.json"
    );
    let raw = std::fs::read_to_string(fixture).unwrap();
    let req = http_request(sniff(&raw), &raw).unwrap();
    assert_eq!(req.uri().authority().map(|a| a.as_str()), Some("localhost"));
    assert_eq!(req.headers()["host"], "1234567890.execute-api.{dns_suffix}");
    // HTTP API (v2): a valid requestContext.domainName is the authority; headers.host stays as given.
    let raw = r#"{"version":"2.0","rawPath":"/","headers":{"host":"id.execute-api.{dns_suffix}"},
        "requestContext":{"http":{"method":"GET"},"domainName":"id.execute-api.us-east-1.amazonaws.com"}}"#;
    let req = http_request(Origin::ApiGatewayV2, raw).unwrap();
    assert_eq!(req.uri().to_string(), "https://id.execute-api.us-east-1.amazonaws.com/");
    assert_eq!(req.headers()["host"], "id.execute-api.{dns_suffix}");
    // Without any Host header, the authority becomes one.
    let raw = r#"{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"GET"},"domainName":"d.example"}}"#;
    let req = http_request(Origin::ApiGatewayV2, raw).unwrap();
    assert_eq!(req.headers()["host"], "d.example");
}

#[test]
fn bad_base64_is_a_bad_event() {
    let raw = r#"{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"POST"}},
        "body":"***","isBase64Encoded":true}"#;
    let err = http_request(Origin::ApiGatewayV2, raw).unwrap_err();
    assert!(err.contains("base64"), "{err}");
}

#[test]
fn sqs_records_without_a_message_id_never_share_a_task_key() {
    // Two records without an id (one missing, one empty) and distinct bodies, beside one with an id.
    let raw = r#"{"Records": [
        {"messageId": "m1", "body": "one", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:orders"},
        {"body": "two", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:orders"},
        {"messageId": "", "body": "three", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:orders"}]}"#;
    let batch = task::sqs_batch(raw, "continuations").unwrap();
    let keys: Vec<&str> = batch
        .records
        .iter()
        .filter_map(|r| match &r.work {
            task::SqsWork::Start { key, .. } => Some(key.as_str()),
            task::SqsWork::Continue { .. } => None,
        })
        .collect();
    assert_eq!(keys, ["sqs:m1"], "only a record with an id starts a task");
    assert_eq!(batch.unidentified, [1, 2], "the records without one are set apart");
    // The same holds on the continuation queue: a run without an id could not be reported either.
    let batch = task::sqs_batch(&raw.replace(":orders", ":continuations"), "continuations").unwrap();
    assert_eq!(batch.records.len(), 1, "{batch:?}");
    assert_eq!(batch.records[0].message_id, "m1");
    assert_eq!(batch.unidentified, [1, 2]);
}

#[test]
fn an_eventbridge_event_with_an_empty_id_is_keyed_by_its_request() {
    let start = |raw: &str, request: &str| task::start_key(EventSource::EventBridge, raw, request);
    assert_eq!(start(r#"{"id": "ev-1"}"#, "r1"), "eventbridge:ev-1");
    // Two events without a usable id are two tasks, not one.
    assert_eq!(start(r#"{"id": ""}"#, "r1"), "lambda:r1");
    assert_eq!(start(r#"{"id": ""}"#, "r2"), "lambda:r2");
    assert_eq!(start(r#"{"detail": {}}"#, "r3"), "lambda:r3");
}
