//! Panics on every request: the host must answer 500 and keep serving.

use nimbus_sdk::http::{Request, Response};

fn handle(req: Request) -> Response {
    panic!("test-programs/trap: deliberate panic for {}", req.uri().path());
}

nimbus_sdk::http_function!(handle);

fn main() {}
