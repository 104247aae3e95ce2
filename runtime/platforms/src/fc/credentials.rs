//! The function role's temporary credentials, as Function Compute hands them to a custom runtime: with every
//! request, in `x-fc-access-key-id`, `x-fc-access-key-secret` and `x-fc-security-token` (STS credentials it
//! refreshes itself). The adapter keeps the latest here, for the host's own calls to Alibaba Cloud (the OOS
//! parameter store); the headers themselves never reach the guest ([`super::decode::strip_platform_headers`]).

use http::HeaderMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The header carrying the AccessKey ID.
pub const ACCESS_KEY_ID: &str = "x-fc-access-key-id";
/// The header carrying the AccessKey secret.
pub const ACCESS_KEY_SECRET: &str = "x-fc-access-key-secret";
/// The header carrying the STS security token.
pub const SECURITY_TOKEN: &str = "x-fc-security-token";

/// One set of temporary credentials. Its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct FcCredentials {
    /// The AccessKey ID (`STS.…`).
    pub access_key_id: String,
    /// The AccessKey secret.
    pub access_key_secret: String,
    /// The security token (absent for a long-term key, which Function Compute never sends).
    pub security_token: Option<String>,
}

impl fmt::Debug for FcCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("security_token", &self.security_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl FcCredentials {
    /// The credentials a request carries: both key headers present, text and not blank; else `None` (a
    /// function without a role gets none).
    pub fn from_headers(headers: &HeaderMap) -> Option<FcCredentials> {
        let text = |name: &str| {
            let v = headers.get(name)?.to_str().ok()?.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        Some(FcCredentials {
            access_key_id: text(ACCESS_KEY_ID)?,
            access_key_secret: text(ACCESS_KEY_SECRET)?,
            security_token: text(SECURITY_TOKEN),
        })
    }
}

/// The latest credentials Function Compute sent; cloneable, shared by the adapter and whatever signs the
/// host's requests.
#[derive(Clone, Default)]
pub struct LatestCredentials(Arc<Mutex<Option<FcCredentials>>>);

impl LatestCredentials {
    /// Keeps the credentials `headers` carry, if any (the previous ones otherwise: a request without them
    /// does not revoke them).
    pub fn update(&self, headers: &HeaderMap) {
        if let Some(c) = FcCredentials::from_headers(headers) {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if slot.as_ref() != Some(&c) {
                *slot = Some(c);
            }
        }
    }

    /// The latest credentials, if any were sent yet.
    pub fn get(&self) -> Option<FcCredentials> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        let latest = LatestCredentials::default();
        assert_eq!(latest.get(), None);
        latest.update(&headers("STS.one", "secret-one", Some("token-one")));
        latest.update(&HeaderMap::new());
        let c = latest.get().expect("kept across a request without credentials");
        assert_eq!(c.access_key_id, "STS.one");
        latest.update(&headers("STS.two", "secret-two", Some("token-two")));
        let c = latest.get().unwrap();
        assert_eq!(
            (c.access_key_secret.as_str(), c.security_token.as_deref()),
            ("secret-two", Some("token-two"))
        );
        let shown = format!("{c:?}");
        assert!(shown.contains("STS.two") && !shown.contains("secret-two") && !shown.contains("token-two"));
    }

    #[test]
    fn incomplete_credentials_are_ignored() {
        assert_eq!(FcCredentials::from_headers(&headers("STS.x", " ", None)), None);
        let mut only_id = HeaderMap::new();
        only_id.insert(ACCESS_KEY_ID, HeaderValue::from_static("STS.x"));
        assert_eq!(FcCredentials::from_headers(&only_id), None);
        let c = FcCredentials::from_headers(&headers("STS.x", "s", None)).unwrap();
        assert_eq!(c.security_token, None);
    }
}
