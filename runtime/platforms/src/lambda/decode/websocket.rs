//! API Gateway WebSocket events → the lifecycle events of `nimbus:function/websocket`.

use super::merge_headers;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use base64::Engine as _;
use nimbus_core::websocket::{ConnectRequest, Disconnect, IncomingMessage, Message, WsEvent};

/// An API Gateway WebSocket event, decoded: the lifecycle event for the guest and the API it came from.
#[derive(Debug)]
pub struct WebSocketRequest {
    /// What the guest is invoked for.
    pub event: WsEvent,
    /// `https://{domainName}/{stage}`: the API's Management API endpoint (`@connections`).
    pub endpoint: Option<String>,
}

/// Decodes an API Gateway WebSocket event (`$connect`, `$disconnect`, or a message's route key).
pub fn websocket_request(raw: &str) -> Result<WebSocketRequest, String> {
    let ev: ApiGatewayWebsocketProxyRequest =
        serde_json::from_str(raw).map_err(|e| format!("malformed API Gateway WebSocket event: {e}"))?;
    let ctx = ev.request_context;
    let connection_id = ctx
        .connection_id
        .ok_or("the WebSocket event has no requestContext.connectionId")?;
    let endpoint = match (&ctx.domain_name, &ctx.stage) {
        (Some(domain), Some(stage)) => Some(format!("https://{domain}/{stage}")),
        _ => None,
    };
    let route_key = ctx.route_key.unwrap_or_else(|| "$default".into());
    let event = match (route_key.as_str(), ctx.event_type.as_deref()) {
        ("$connect", _) | (_, Some("CONNECT")) => {
            let headers = merge_headers(ev.multi_value_headers, ev.headers)
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let params = if ev.multi_value_query_string_parameters.is_empty() {
                &ev.query_string_parameters
            } else {
                &ev.multi_value_query_string_parameters
            };
            let query = params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            WsEvent::Connect(ConnectRequest {
                connection_id,
                path: ev.path.or(ctx.resource_path).unwrap_or_else(|| "/".into()),
                headers,
                query,
                source_ip: ctx.identity.source_ip,
            })
        }
        ("$disconnect", _) | (_, Some("DISCONNECT")) => WsEvent::Disconnect(Disconnect {
            connection_id,
            status_code: ctx.disconnect_status_code.and_then(|c| u16::try_from(c).ok()),
            reason: ctx.disconnect_reason.unwrap_or_default(),
        }),
        _ => {
            let body = ev.body.unwrap_or_default();
            let message = if ev.is_base64_encoded {
                Message::Binary(
                    base64::engine::general_purpose::STANDARD
                        .decode(body.as_bytes())
                        .map_err(|e| format!("the WebSocket message is not valid base64: {e}"))?,
                )
            } else {
                Message::Text(body)
            };
            WsEvent::Message(IncomingMessage {
                connection_id,
                route_key,
                message,
            })
        }
    };
    Ok(WebSocketRequest { event, endpoint })
}
