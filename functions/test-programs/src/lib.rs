//! Helpers the test programs share.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

/// GETs `url` through `wasi:http/outgoing-handler`: the status, or the error code.
pub fn fetch(url: &str) -> Result<u16, String> {
    let uri: nimbus_sdk::http::Uri = url.parse().map_err(|e| format!("bad url: {e}"))?;
    let req = OutgoingRequest::new(Fields::new());
    let scheme = if uri.scheme_str() == Some("https") {
        Scheme::Https
    } else {
        Scheme::Http
    };
    req.set_scheme(Some(&scheme)).map_err(|_| "scheme")?;
    req.set_authority(uri.authority().map(|a| a.as_str()))
        .map_err(|_| "authority")?;
    req.set_path_with_query(Some(uri.path())).map_err(|_| "path")?;
    let fut = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    fut.subscribe().block();
    let resp = fut
        .get()
        .ok_or("no response")?
        .map_err(|_| "taken")?
        .map_err(|e| format!("{e:?}"))?;
    Ok(resp.status())
}

/// The value of `name` in a query string (no decoding).
pub fn query<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}
