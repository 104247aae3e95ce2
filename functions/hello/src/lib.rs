//! `hello`: the smallest useful HTTP function.

use nimbus_sdk::http::{Request, Response, header};

fn hello(req: Request) -> Response {
    let name = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
        .unwrap_or("world")
        .to_owned();
    println!("saying hello to {name}");
    let mut resp = Response::new(format!("Hello, {name}!\n").into_bytes());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().unwrap());
    resp
}

nimbus_sdk::http_function!(hello);
