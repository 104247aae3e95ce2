//! `connections` on AWS: the API Gateway Management API (`PostToConnection`, `DeleteConnection`) of a
//! WebSocket API, as a [`ConnectionSender`].
//!
//! A WebSocket event names its API (`https://{domainName}/{stage}`), so invocations it starts send there.
//! Any function (HTTP, event, task) sends to the API named by `NIMBUS_WEBSOCKET_ENDPOINT`
//! ([`nimbus_core::settings::LambdaSettings::websocket_endpoint`]), which also
//! overrides the event's endpoint (custom domains, tests). The function's role needs
//! `execute-api:ManageConnections` on the API's `@connections` resources.

use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use nimbus_core::aws::{AwsSettings, sdk_config};
use nimbus_core::websocket::{BoxFuture, ConnectionError, ConnectionSender, Message, Sender};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The largest message API Gateway delivers (128 KB).
pub const MAX_MESSAGE: u64 = 128 * 1024;

/// Sends through one API's Management API.
pub struct ManagementApi {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ManagementApi {
    /// A sender for the API at `endpoint` (`https://{id}.execute-api.{region}.amazonaws.com/{stage}`).
    pub async fn new(endpoint: &str) -> ManagementApi {
        let sdk = sdk_config(&AwsSettings::default()).await;
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build();
        ManagementApi {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(conf),
        }
    }
}

/// Maps a Management API failure to what the guest sees.
fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> ConnectionError {
    match e.code() {
        Some("GoneException") => ConnectionError::Gone,
        Some("PayloadTooLargeException") => ConnectionError::TooLarge(MAX_MESSAGE),
        Some("LimitExceededException" | "TooManyRequestsException") => ConnectionError::Throttled,
        Some("ForbiddenException") => ConnectionError::Failed(format!(
            "the API Gateway Management API refused (the function's role needs execute-api:ManageConnections): {}",
            DisplayErrorContext(&e)
        )),
        _ => ConnectionError::Failed(format!("API Gateway Management API: {}", DisplayErrorContext(&e))),
    }
}

impl ConnectionSender for ManagementApi {
    fn send<'a>(&'a self, connection_id: &'a str, message: Message) -> BoxFuture<'a, Result<(), ConnectionError>> {
        Box::pin(async move {
            let data = match message {
                Message::Text(t) => t.into_bytes(),
                Message::Binary(b) => b,
            };
            if data.len() as u64 > MAX_MESSAGE {
                return Err(ConnectionError::TooLarge(MAX_MESSAGE));
            }
            self.client
                .post_to_connection()
                .connection_id(connection_id)
                .data(Blob::new(data))
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        })
    }

    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), ConnectionError>> {
        Box::pin(async move {
            self.client
                .delete_connection()
                .connection_id(connection_id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        })
    }
}

/// One sender per API endpoint, built on first use (an environment usually serves one API).
#[derive(Default)]
pub struct Senders {
    by_endpoint: Mutex<HashMap<String, Sender>>,
}

impl Senders {
    /// The sender for `endpoint`.
    pub async fn get(&self, endpoint: &str) -> Sender {
        if let Some(s) = self.by_endpoint.lock().ok().and_then(|m| m.get(endpoint).cloned()) {
            return s;
        }
        let sender: Sender = Arc::new(ManagementApi::new(endpoint).await);
        if let Ok(mut m) = self.by_endpoint.lock() {
            m.entry(endpoint.to_owned()).or_insert_with(|| sender.clone());
        }
        sender
    }
}
