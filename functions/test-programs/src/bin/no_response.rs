//! Misbehaving HTTP guest: returns without a response (default), or answers
//! with a `wasi:http` error code (`?mode=error`).

use wasip2::http::types::{ErrorCode, IncomingRequest, ResponseOutparam};

struct NoResponse;

impl wasip2::exports::http::incoming_handler::Guest for NoResponse {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        if request.path_with_query().unwrap_or_default().contains("mode=error") {
            ResponseOutparam::set(
                response_out,
                Err(ErrorCode::InternalError(Some("guest gave up".into()))),
            );
        }
        // Otherwise drop the outparam: no response at all.
    }
}

wasip2::http::proxy::export!(NoResponse);

fn main() {}
