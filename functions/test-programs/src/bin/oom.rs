//! Allocates without bound: the host must fail this request only.

use nimbus_sdk::http::{Request, Response};

fn handle(_req: Request) -> Response {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![7u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

nimbus_sdk::http_function!(handle);

fn main() {}
