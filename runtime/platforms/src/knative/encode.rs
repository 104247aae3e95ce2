//! Answers to Cloud Run / Knative: an event function's output, and a request that is not a CloudEvent the
//! adapter can deliver. Pure functions.
//!
//! An event function's output is answered `200` (Pub/Sub push acknowledges on any 2xx; Knative Eventing's
//! dispatchers count it delivered), typed `application/json` when it is JSON and
//! `application/octet-stream` otherwise. It is not a CloudEvent reply: it carries no `ce-*` headers, so a
//! Knative broker does not route it on. Failures are answered by [`crate::reply`] with a non-2xx status,
//! so that Pub/Sub and Eventarc retry.

use super::decode::DecodeError;
use crate::local::encode::{plain_error, reply_response};
use crate::reply;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use nimbus_core::Body;

/// The error type of a request that is not a CloudEvent the adapter can deliver.
pub const BAD_CLOUD_EVENT: &str = "Nimbus.BadCloudEvent";

/// The `200` answer carrying an event function's output.
pub fn event_output(output: Vec<u8>) -> Response<Body> {
    let json = serde_json::from_slice::<serde::de::IgnoredAny>(&output).is_ok();
    let mut r = reply_response(reply::Reply {
        status: StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: Bytes::from(output),
    });
    let ct = if json {
        "application/json"
    } else {
        "application/octet-stream"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// The `400` answer for a request that is not a CloudEvent the adapter can deliver:
/// `{"error": "Nimbus.BadCloudEvent", "message": "<what is wrong>"}`.
pub fn bad_event(e: &DecodeError) -> Response<Body> {
    plain_error(StatusCode::BAD_REQUEST, BAD_CLOUD_EVENT, &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(r: Response<Body>) -> (StatusCode, Option<String>, Bytes) {
        let status = r.status();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, body)
    }

    #[tokio::test]
    async fn output_is_200_typed_by_what_it_is() {
        let (status, ct, body) = parts(event_output(br#"{"doubled":42}"#.to_vec())).await;
        assert_eq!((status, ct.as_deref()), (StatusCode::OK, Some("application/json")));
        assert_eq!(&body[..], br#"{"doubled":42}"#);
        let (status, ct, body) = parts(event_output(vec![0xff, 0])).await;
        assert_eq!(
            (status, ct.as_deref()),
            (StatusCode::OK, Some("application/octet-stream"))
        );
        assert_eq!(&body[..], &[0xff, 0]);
        let (_, ct, body) = parts(event_output(Vec::new())).await;
        assert_eq!((ct.as_deref(), body.len()), (Some("application/octet-stream"), 0));
    }

    #[tokio::test]
    async fn a_bad_event_is_a_400_saying_what_is_wrong() {
        let (status, ct, body) = parts(bad_event(&DecodeError::Missing("id"))).await;
        assert_eq!(
            (status, ct.as_deref()),
            (StatusCode::BAD_REQUEST, Some("application/json"))
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], BAD_CLOUD_EVENT);
        assert!(v["message"].as_str().unwrap().contains("no id attribute"), "{v}");
    }
}
