//! The gateway's side of the task endpoints ([`crate::task_api`]): reads the request body within the
//! function's `max_request_body`, then serves the endpoint.

use super::encode;
use crate::task_api;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use nimbus_core::{Body, InvokeError, Tasks};

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
    let body = match http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let err = if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                InvokeError::TooLarge {
                    what: "task input",
                    size: limit + 1,
                    limit,
                    quota: "max_request_body",
                }
            } else {
                InvokeError::BadEvent(format!("cannot read the request body: {e}"))
            };
            return Err(encode::error(&err));
        }
    };
    let reply = task_api::serve(tasks, &parts.method, &parts.headers, body, function, id).await;
    let failed = reply.status.is_client_error() || reply.status.is_server_error();
    let resp = encode::reply_response(reply);
    if failed { Err(resp) } else { Ok(resp) }
}
