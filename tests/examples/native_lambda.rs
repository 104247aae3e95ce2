//! The native peer for the Lambda benchmark: a `lambda_runtime` handler
//! doing the same work as the `proxy_hello` guest behind API Gateway
//! (HTTP API, payload 2.0), without a sandbox. Run it like a custom
//! runtime: it reads `AWS_LAMBDA_RUNTIME_API` and friends.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use lambda_runtime::{Error, LambdaEvent, service_fn};

async fn hello(_event: LambdaEvent<ApiGatewayV2httpRequest>) -> Result<ApiGatewayV2httpResponse, Error> {
    let mut resp = ApiGatewayV2httpResponse::default();
    resp.status_code = 200;
    resp.headers
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp.body = Some(Body::Text("Hello, world!\n".into()));
    Ok(resp)
}

fn main() -> Result<(), Error> {
    // The same single-threaded runtime `bootstrap` uses.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(lambda_runtime::run(service_fn(hello)))
}
