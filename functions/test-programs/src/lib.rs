//! Helpers the test programs share.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingResponse, OutgoingRequest, Scheme};

/// GETs `url` through `wasi:http/outgoing-handler`: the status, or the error code.
pub fn fetch(url: &str) -> Result<u16, String> {
    get(url).map(|resp| resp.status())
}

/// GETs `url` and reads its body whole: the status and the body (lossy UTF-8), or the error code.
pub fn fetch_body(url: &str) -> Result<(u16, String), String> {
    let resp = get(url)?;
    let status = resp.status();
    let body = resp.consume().map_err(|_| "body taken")?;
    let stream = body.stream().map_err(|_| "stream taken")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the body: {e:?}")),
        }
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// GETs `url`, following up to `hops` redirects (absolute `Location`s) the way an HTTP client library
/// would: the final status, or the first error code.
pub fn fetch_following(url: &str, hops: u32) -> Result<u16, String> {
    let mut url = url.to_owned();
    for _ in 0..=hops {
        let resp = get(&url)?;
        let status = resp.status();
        let location = resp.headers().get("location").into_iter().next();
        match location {
            Some(next) if (300..400).contains(&status) => {
                url = String::from_utf8(next).map_err(|_| "location is not UTF-8")?;
            }
            _ => return Ok(status),
        }
    }
    Err(format!("more than {hops} redirects"))
}

fn get(url: &str) -> Result<IncomingResponse, String> {
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
    req.set_path_with_query(Some(uri.path_and_query().map_or("/", |p| p.as_str())))
        .map_err(|_| "path")?;
    let fut = outgoing_handler::handle(req, None).map_err(|e| describe(&e))?;
    fut.subscribe().block();
    fut.get()
        .ok_or("no response")?
        .map_err(|_| "taken")?
        .map_err(|e| describe(&e))
}

/// An error code as the tests read it: a circuit breaker's refusal through the SDK's reading of it, others
/// as their debug form.
fn describe(e: &wasip2::http::types::ErrorCode) -> String {
    match nimbus_sdk::http::circuit_open(e) {
        Some(open) => format!("CircuitOpen {} retry_after_ms={}", open.host, open.retry_after_ms),
        None => format!("{e:?}"),
    }
}

/// The value of `name` in a query string (no decoding).
pub fn query<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}
