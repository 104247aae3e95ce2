//! A plain `wasi:http/proxy` hello built only with `wasip2` and Rust std — the
//! kind of component `wasmtime serve` runs. Used by the benchmark and to show
//! Nimbus runs such components unchanged.

use std::io::Write as _;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap();
        let resp = OutgoingResponse::new(headers);
        let body = resp.body().unwrap();
        ResponseOutparam::set(response_out, Ok(resp));
        let mut out = body.write().unwrap();
        out.write_all(b"Hello, world!\n").unwrap();
        drop(out);
        OutgoingBody::finish(body, None).unwrap();
    }
}

wasip2::http::proxy::export!(Hello);

fn main() {}
