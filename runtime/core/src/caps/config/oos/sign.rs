//! Alibaba Cloud's V3 request signature, `ACS3-HMAC-SHA256`, as "Request syntax and signature method V3"
//! (Alibaba Cloud SDK documentation, `sdk/product-overview/v3-request-structure-and-signature`) defines it:
//!
//! ```text
//! CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQueryString \n CanonicalHeaders \n SignedHeaders \n
//!                    HexEncode(SHA256(body))
//! StringToSign     = "ACS3-HMAC-SHA256" \n HexEncode(SHA256(CanonicalRequest))
//! Signature        = HexEncode(HMAC-SHA256(AccessKeySecret, StringToSign))
//! Authorization    = ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<SignedHeaders>,Signature=<Signature>
//! ```
//!
//! Names and values are percent-encoded by RFC 3986 (only `A-Z a-z 0-9 - _ . ~` stay as they are); the
//! signed headers are `host`, `content-type` and every `x-acs-*` header, lower-cased, values trimmed,
//! sorted. Nothing here does I/O, reads a clock or draws a nonce: the caller passes them in, so the
//! documentation's worked example is a unit test.

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha256::{Digest, Sha256};
use std::collections::BTreeMap;

/// The one algorithm V3 signs with.
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// What RFC 3986 leaves unencoded: letters, digits and `-_.~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `text` percent-encoded as V3 wants names and values (space is `%20`, `*` is `%2A`, `~` stays).
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The canonical query string: parameters sorted by name, each `name=value` encoded, joined with `&`.
/// It is also the query the request is sent with, so what is signed is what is sent.
pub fn canonical_query(params: &BTreeMap<String, String>) -> String {
    // A BTreeMap is sorted by name; names are ASCII, so their encoded order is the same.
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-case hex SHA-256 of `bytes` (`x-acs-content-sha256`, and the hash of the canonical request).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One request to sign.
pub struct Request<'a> {
    /// `POST`, `GET`, ...
    pub method: &'a str,
    /// The path (`/` for RPC-style APIs such as OOS).
    pub path: &'a str,
    /// The query parameters, unencoded.
    pub query: &'a BTreeMap<String, String>,
    /// Every header sent (names in any case); those that are signed are picked here.
    pub headers: &'a [(&'a str, &'a str)],
    /// `x-acs-content-sha256`: [`sha256_hex`] of the body.
    pub payload_hash: &'a str,
}

/// Whether V3 signs this header (lower-cased name).
fn signed(name: &str) -> bool {
    name == "host" || name == "content-type" || name.starts_with("x-acs-")
}

/// The canonical request and the signed header list (`host;x-acs-action;...`).
pub fn canonical_request(req: &Request<'_>) -> (String, String) {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers {
        let name = name.to_ascii_lowercase();
        if signed(&name) {
            headers.insert(name, value.trim().to_string());
        }
    }
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers.keys().map(String::as_str).collect::<Vec<_>>().join(";");
    let path = req.path.split('/').map(encode).collect::<Vec<_>>().join("/");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        req.payload_hash
    );
    (canonical, signed_headers)
}

/// The `Authorization` header of `req`, signed with this key pair.
pub fn authorization(req: &Request<'_>, access_key_id: &str, access_key_secret: &str) -> String {
    let (canonical, signed_headers) = canonical_request(req);
    let string_to_sign = format!("{ALGORITHM}\n{}", sha256_hex(canonical.as_bytes()));
    let signature = hmac_sha256_hex(access_key_secret.as_bytes(), string_to_sign.as_bytes());
    format!("{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}")
}

fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Alibaba Cloud's "Request syntax and signature method V3"
    /// (https://www.alibabacloud.com/help/en/sdk/product-overview/v3-request-structure-and-signature,
    /// section "Signature examples", "Fixed parameter values"): AccessKeyId `YourAccessKeyId`, AccessKey
    /// secret `YourAccessKeySecret`, `x-acs-signature-nonce` `3156853299f313e23d1673dc12e1703d`, `x-acs-date`
    /// `2023-10-26T10:22:32Z`, `x-acs-action` `RunInstances`, `x-acs-version` `2014-05-26`, host
    /// `ecs.cn-shanghai.aliyuncs.com`, `POST /` with `ImageId` and `RegionId` and no body. The canonical
    /// request, the hash in the string-to-sign (`7ea06492…`) and the signature (`06563a9e…`) below are the
    /// document's, byte for byte.
    #[test]
    fn reproduces_the_documented_v3_example() {
        let query = BTreeMap::from([
            ("RegionId".to_string(), "cn-shanghai".to_string()),
            (
                "ImageId".to_string(),
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd".to_string(),
            ),
        ]);
        let payload_hash = sha256_hex(b"");
        assert_eq!(
            payload_hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Unsorted and mixed case on purpose; `accept` and `user-agent` are sent but not signed.
        let headers = [
            ("x-acs-version", "2014-05-26"),
            ("Host", "ecs.cn-shanghai.aliyuncs.com"),
            ("accept", "application/json"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-content-sha256", payload_hash.as_str()),
            ("user-agent", "nimbus"),
        ];
        let req = Request {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: &payload_hash,
        };
        let (canonical, signed_headers) = canonical_request(&req);
        assert_eq!(
            canonical,
            "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
             host:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
             x-acs-version:2014-05-26\n\n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed_headers,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            authorization(&req, "YourAccessKeyId", "YourAccessKeySecret"),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;\
             x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn names_and_values_are_encoded_by_rfc_3986() {
        assert_eq!(encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(encode("a b*c+d/e=f&g:h"), "a%20b%2Ac%2Bd%2Fe%3Df%26g%3Ah");
        assert_eq!(encode("é"), "%C3%A9");
        let params = BTreeMap::from([
            ("Names".to_string(), r#"["/shop/a","b"]"#.to_string()),
            ("Action".to_string(), "x".to_string()),
        ]);
        assert_eq!(
            canonical_query(&params),
            "Action=x&Names=%5B%22%2Fshop%2Fa%22%2C%22b%22%5D"
        );
    }

    #[test]
    fn a_security_token_is_signed_and_any_change_changes_the_signature() {
        let query = BTreeMap::from([("Path".to_string(), "/shop".to_string())]);
        let hash = sha256_hex(b"");
        let sign = |headers: &[(&str, &str)], secret: &str| {
            authorization(
                &Request {
                    method: "POST",
                    path: "/",
                    query: &query,
                    headers,
                    payload_hash: &hash,
                },
                "id",
                secret,
            )
        };
        let base = [
            ("host", "oos.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "GetParametersByPath"),
        ];
        let with_token = [
            ("host", "oos.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "GetParametersByPath"),
            ("x-acs-security-token", "sts-token"),
        ];
        let a = sign(&base, "secret");
        let b = sign(&with_token, "secret");
        assert!(
            b.contains("SignedHeaders=host;x-acs-action;x-acs-security-token,"),
            "{b}"
        );
        assert_ne!(a, b);
        assert_ne!(a, sign(&base, "other secret"));
    }
}
