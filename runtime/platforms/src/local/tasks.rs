//! The gateway's side of the task endpoints ([`crate::task_api`]): reads the request body within the
//! function's `max_request_body`, then serves the endpoint.

use super::encode;
use crate::task_api;
use http::Request;
use hyper::body::Incoming;
use nimbus_core::{Body, Tasks};

pub use task_api::task_path;

/// Serves a task endpoint; `Err` holds an error answer (4xx, 5xx).
pub async fn handle(
    tasks: &Tasks,
    limit: u64,
    req: Request<Incoming>,
    function: &str,
    id: Option<&str>,
) -> Result<http::Response<Body>, http::Response<Body>> {
    let (parts, body) = req.into_parts();
    let body = match super::body::read_limited(body, limit, "task input").await {
        Ok(b) => b,
        Err(err) => return Err(encode::error(&err)),
    };
    let reply = task_api::serve(tasks, &parts.method, &parts.headers, body, function, id).await;
    let failed = reply.status.is_client_error() || reply.status.is_server_error();
    let resp = encode::reply_response(reply);
    if failed { Err(resp) } else { Ok(resp) }
}
