//! The Alibaba Cloud credentials OOS calls are signed with: the platform's temporary (STS) credentials.
//! Function Compute 3.0 puts them in the environment (`ALIBABA_CLOUD_ACCESS_KEY_ID`,
//! `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, `ALIBABA_CLOUD_SECURITY_TOKEN`, read by the settings) and sends fresh
//! ones with each request (`x-fc-access-key-id`, `-secret`, `x-fc-security-token`): the FC adapter hands
//! those to [`OosCredentials::set`], and the next fetch signs with them.

use std::fmt;
use std::sync::{Arc, RwLock};

/// An access key pair, with its security token when it is temporary. Its `Debug` shows the key id only:
/// the secret and the token are never printed or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The AccessKey id.
    pub id: String,
    /// The AccessKey secret.
    pub secret: String,
    /// The STS security token (`x-acs-security-token`), for temporary credentials.
    pub security_token: Option<String>,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"***")
            .field("security_token", &self.security_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The credentials a provider signs with, shared and replaceable: cheap to clone (every clone sees a
/// [`set`](OosCredentials::set)); read once at the start of each fetch.
#[derive(Clone, Default)]
pub struct OosCredentials(Arc<RwLock<Option<AccessKey>>>);

impl fmt::Debug for OosCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OosCredentials").field(&self.get()).finish()
    }
}

impl OosCredentials {
    /// Credentials starting with `key` (none: every fetch fails, saying so, until [`OosCredentials::set`]).
    pub fn new(key: Option<AccessKey>) -> OosCredentials {
        OosCredentials(Arc::new(RwLock::new(key)))
    }

    /// Replaces the key pair: later fetches sign with `key`.
    pub fn set(&self, key: AccessKey) {
        // A poisoned lock still holds a whole value (writers only assign): take it over.
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
    }

    /// The current key pair.
    pub fn get(&self) -> Option<AccessKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_or_the_token() {
        let key = AccessKey {
            id: "STS.id".into(),
            secret: "very-secret".into(),
            security_token: Some("token-value".into()),
        };
        let creds = OosCredentials::new(Some(key.clone()));
        for text in [format!("{key:?}"), format!("{creds:?}")] {
            assert!(text.contains("STS.id") && !text.contains("very-secret") && !text.contains("token-value"));
        }
        let clone = creds.clone();
        clone.set(AccessKey {
            id: "STS.next".into(),
            ..key
        });
        assert_eq!(
            creds.get().map(|k| k.id).as_deref(),
            Some("STS.next"),
            "clones share one key"
        );
    }
}
