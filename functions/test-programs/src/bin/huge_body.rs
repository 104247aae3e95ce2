//! Streams a response body of `?mib=N` MiB (default 64) without a
//! content-length, or declares it with `?declare=1`: the host must bound it.

use std::io::Write as _;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Huge;

fn param(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

impl wasip2::exports::http::incoming_handler::Guest for Huge {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let pq = request.path_with_query().unwrap_or_default();
        let query = pq.split_once('?').map(|(_, q)| q).unwrap_or("");
        let mib = param(query, "mib").unwrap_or(64);
        let mut headers = vec![("content-type".to_string(), b"application/octet-stream".to_vec())];
        if param(query, "declare") == Some(1) {
            headers.push(("content-length".to_string(), (mib << 20).to_string().into_bytes()));
        }
        let resp = OutgoingResponse::new(Fields::from_list(&headers).unwrap());
        let body = resp.body().unwrap();
        ResponseOutparam::set(response_out, Ok(resp));
        let mut out = body.write().unwrap();
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..(mib * 16) {
            if out.write_all(&chunk).is_err() {
                // The host closed the stream (limit reached or client gone).
                return;
            }
        }
        drop(out);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Huge);

fn main() {}
