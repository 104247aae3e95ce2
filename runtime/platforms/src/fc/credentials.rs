//! The function role's temporary credentials, as Function Compute hands them to a custom runtime: with every
//! request, in `x-fc-access-key-id`, `x-fc-access-key-secret` and `x-fc-security-token` (STS credentials it
//! refreshes itself). The adapter puts the latest into the OOS provider's [`OosCredentials`], so the next
//! config fetch signs with them; the headers themselves never reach the guest
//! ([`super::decode::strip_platform_headers`]).

use http::HeaderMap;
use nimbus_core::caps::config::{AccessKey, OosCredentials};

/// The header carrying the AccessKey ID.
pub const ACCESS_KEY_ID: &str = "x-fc-access-key-id";
/// The header carrying the AccessKey secret.
pub const ACCESS_KEY_SECRET: &str = "x-fc-access-key-secret";
/// The header carrying the STS security token.
pub const SECURITY_TOKEN: &str = "x-fc-security-token";

/// The credentials a request carries: both key headers present, text and not blank; else `None` (a
/// function without a role gets none).
pub fn from_headers(headers: &HeaderMap) -> Option<AccessKey> {
    let text = |name: &str| {
        let v = headers.get(name)?.to_str().ok()?.trim();
        (!v.is_empty()).then(|| v.to_owned())
    };
    Some(AccessKey {
        id: text(ACCESS_KEY_ID)?,
        secret: text(ACCESS_KEY_SECRET)?,
        security_token: text(SECURITY_TOKEN),
    })
}

/// Keeps the credentials `headers` carry in `latest`, if any (the previous ones otherwise: a request without
/// them does not revoke them).
pub fn update(latest: &OosCredentials, headers: &HeaderMap) {
    if let Some(key) = from_headers(headers)
        && latest.get().as_ref() != Some(&key)
    {
        latest.set(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(id: &str, secret: &str, token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCESS_KEY_ID, HeaderValue::from_str(id).unwrap());
        h.insert(ACCESS_KEY_SECRET, HeaderValue::from_str(secret).unwrap());
        if let Some(t) = token {
            h.insert(SECURITY_TOKEN, HeaderValue::from_str(t).unwrap());
        }
        h
    }

    #[test]
    fn the_latest_credentials_are_kept_and_never_printed() {
        let latest = OosCredentials::default();
        assert_eq!(latest.get(), None);
        update(&latest, &headers("STS.one", "secret-one", Some("token-one")));
        update(&latest, &HeaderMap::new());
        let c = latest.get().expect("kept across a request without credentials");
        assert_eq!(c.id, "STS.one");
        update(&latest, &headers("STS.two", "secret-two", Some("token-two")));
        let c = latest.get().unwrap();
        assert_eq!(
            (c.secret.as_str(), c.security_token.as_deref()),
            ("secret-two", Some("token-two"))
        );
        let shown = format!("{c:?}");
        assert!(shown.contains("STS.two") && !shown.contains("secret-two") && !shown.contains("token-two"));
    }

    #[test]
    fn incomplete_credentials_are_ignored() {
        assert_eq!(from_headers(&headers("STS.x", " ", None)), None);
        let mut only_id = HeaderMap::new();
        only_id.insert(ACCESS_KEY_ID, HeaderValue::from_static("STS.x"));
        assert_eq!(from_headers(&only_id), None);
        let c = from_headers(&headers("STS.x", "s", None)).unwrap();
        assert_eq!(c.security_token, None);
    }
}
