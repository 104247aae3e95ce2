//! Loops forever: the host must stop it at the deadline.

use nimbus_sdk::http::{Request, Response};

fn handle(_req: Request) -> Response {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

nimbus_sdk::http_function!(handle);

fn main() {}
