//! Fetches `?url=...` through `wasi:http/outgoing-handler` and reports the
//! status or the error code, to test the outbound allow-list.

use nimbus_sdk::http::{Request, Response, json};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

fn fetch(url: &str) -> Result<u16, String> {
    let uri: nimbus_sdk::http::Uri = url.parse().map_err(|e| format!("bad url: {e}"))?;
    let req = OutgoingRequest::new(Fields::new());
    let scheme = if uri.scheme_str() == Some("https") { Scheme::Https } else { Scheme::Http };
    req.set_scheme(Some(&scheme)).map_err(|_| "scheme")?;
    req.set_authority(uri.authority().map(|a| a.as_str())).map_err(|_| "authority")?;
    req.set_path_with_query(Some(uri.path())).map_err(|_| "path")?;
    let fut = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    fut.subscribe().block();
    let resp = fut.get().ok_or("no response")?.map_err(|_| "taken")?.map_err(|e| format!("{e:?}"))?;
    Ok(resp.status())
}

fn handle(req: Request) -> Response {
    let url = req.uri().query().and_then(|q| q.strip_prefix("url=")).unwrap_or("http://127.0.0.1:1/").to_owned();
    match fetch(&url) {
        Ok(status) => json(&serde_json::json!({ "status": status })),
        Err(e) => json(&serde_json::json!({ "error": e })),
    }
}

nimbus_sdk::http_function!(handle);

fn main() {}
