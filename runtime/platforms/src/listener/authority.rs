//! The authority (host and port) of a request, which a `wasi:http` guest is given with every request.
//!
//! HTTP/1.1 requires a `Host` header, and a server must answer 400 to a request without one, or with
//! several, or with one that is not a valid host (RFC 9112, section 3.2); HTTP/2 carries the authority in
//! `:authority` (or `Host`). HTTP/1.0 predates `Host`: such a request is served as addressed to the
//! address the client connected to, as a reverse proxy would. An authority in the request target
//! (absolute form) wins over `Host`, as the RFC says.

use crate::reply::{self, Reply};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, StatusCode, Version, header};
use std::net::SocketAddr;

/// Why a request names no usable authority: each is answered 400.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// `Host` appears more than once.
    #[error("a request must not have more than one Host header")]
    SeveralHosts,
    /// `Host` is not a host (and optional port).
    #[error("the Host header {0:?} is not a valid host")]
    InvalidHost(String),
    /// An HTTP/1.1 request without `Host`.
    #[error("an HTTP/1.1 request must have a Host header (RFC 9112, section 3.2)")]
    MissingHost,
    /// An HTTP/2 request with neither `:authority` nor `Host`.
    #[error("an HTTP/2 request must have an :authority or a Host header")]
    MissingAuthority,
}

impl AuthorityError {
    /// The 400 answer, in the gateways' JSON error shape.
    pub fn reply(&self) -> Reply {
        reply::plain(StatusCode::BAD_REQUEST, "BadRequest", &self.to_string())
    }
}

/// Checks that `req` names its authority, giving an HTTP/1.0 request without `Host` the address it
/// arrived on (`local`) in its URI (its headers stay as sent).
pub fn resolve<B>(req: &mut Request<B>, local: SocketAddr) -> Result<(), AuthorityError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::SeveralHosts);
    }
    if let Some(host) = host
        && Authority::try_from(host.as_bytes()).is_err()
    {
        return Err(AuthorityError::InvalidHost(
            String::from_utf8_lossy(host.as_bytes()).into_owned(),
        ));
    }
    let named = req.uri().authority().is_some() || host.is_some();
    match req.version() {
        Version::HTTP_09 | Version::HTTP_10 if !named => {
            let mut parts = req.uri().clone().into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Authority::try_from(local.to_string()).ok();
            parts.path_and_query = parts.path_and_query.or(Some(PathAndQuery::from_static("/")));
            // A socket address always makes an authority, and scheme, authority and path a URI.
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            Ok(())
        }
        Version::HTTP_11 if host.is_none() => Err(AuthorityError::MissingHost),
        Version::HTTP_2 | Version::HTTP_3 if !named => Err(AuthorityError::MissingAuthority),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:3000".parse().unwrap()
    }

    fn req(version: Version, host: &[&[u8]]) -> Request<()> {
        let mut b = Request::builder().uri("/p?q=1").version(version);
        for h in host {
            b = b.header(header::HOST, *h);
        }
        b.body(()).unwrap()
    }

    fn message(e: AuthorityError) -> String {
        let r = e.reply();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "BadRequest");
        v["message"].as_str().unwrap().to_owned()
    }

    #[test]
    fn http10_without_host_is_addressed_to_the_listener() {
        let mut r = req(Version::HTTP_10, &[]);
        resolve(&mut r, local()).unwrap();
        assert_eq!(r.uri().authority().unwrap().as_str(), "127.0.0.1:3000");
        assert_eq!(r.uri().path_and_query().unwrap().as_str(), "/p?q=1");
        assert!(r.headers().get(header::HOST).is_none(), "the headers stay as sent");
    }

    #[test]
    fn http11_without_host_is_a_400() {
        let mut r = req(Version::HTTP_11, &[]);
        assert!(message(resolve(&mut r, local()).unwrap_err()).contains("must have a Host header"));
    }

    #[test]
    fn several_or_invalid_hosts_are_a_400_and_a_valid_one_passes() {
        let mut r = req(Version::HTTP_11, &[b"a.example", b"b.example"]);
        assert!(message(resolve(&mut r, local()).unwrap_err()).contains("more than one"));
        let mut r = req(Version::HTTP_11, &[b"bad host\xff"]);
        assert!(message(resolve(&mut r, local()).unwrap_err()).contains("not a valid host"));
        let mut r = req(Version::HTTP_11, &[b"example.com:8080"]);
        resolve(&mut r, local()).unwrap();
        assert_eq!(r.uri().authority(), None, "left as it came");
    }

    #[test]
    fn an_authority_in_the_target_stands_for_host_except_in_http11() {
        let mut r = Request::builder()
            .uri("http://example.com/p")
            .version(Version::HTTP_11)
            .body(())
            .unwrap();
        assert!(resolve(&mut r, local()).is_err(), "HTTP/1.1 needs Host even then");
        let mut r = Request::builder()
            .uri("http://example.com/p")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        resolve(&mut r, local()).unwrap();
        let mut r = Request::builder().uri("/p").version(Version::HTTP_2).body(()).unwrap();
        assert!(message(resolve(&mut r, local()).unwrap_err()).contains(":authority"));
    }
}
