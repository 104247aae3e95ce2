//! The HTTP side of OOS: where its endpoint is, one connection per fetch (HTTP/1.1, keep-alive, over the
//! TLS the host's outbound requests use: rustls on ring with the webpki roots), each call signed
//! ([`super::sign`]) with the credentials current when the fetch started.

use super::api::{Answer, Call, ErrorBody, VERSION};
use super::credentials::{AccessKey, OosCredentials};
use super::sign;
use crate::settings::OosSettings;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use std::sync::Arc;
use std::time::SystemTime;
use tokio_rustls::rustls;
use wasmtime_wasi_http::io::TokioIo;

/// The largest answer read (OOS pages hold at most 10 parameters of at most 64 KiB each).
const MAX_ANSWER: usize = 4 << 20;

/// Why an OOS call failed. Credentials never appear in it.
#[derive(Debug, thiserror::Error)]
pub enum OosError {
    /// No key pair to sign with.
    #[error(
        "no Alibaba Cloud credentials: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET are not set \
         (Function Compute sets them when the function has a role)"
    )]
    NoCredentials,
    /// No region and no endpoint.
    #[error("no OOS endpoint: set FC_REGION or ALIBABA_CLOUD_REGION_ID (or NIMBUS_OOS_ENDPOINT)")]
    NoEndpoint,
    /// `NIMBUS_OOS_ENDPOINT` cannot be used.
    #[error("OOS endpoint {0}: not an http:// or https:// URL with a host")]
    BadEndpoint(String),
    /// Connecting (TCP or TLS) failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("{action}: HTTP exchange with {endpoint} failed: {message}")]
    Http {
        /// The call.
        action: &'static str,
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// OOS answered with an error.
    #[error("{action} failed with HTTP {status}: {code}: {message} (request id {request_id})")]
    Api {
        /// The call.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// OOS's error code, e.g. `SignatureDoesNotMatch`.
        code: String,
        /// OOS's message.
        message: String,
        /// The request id OOS gave.
        request_id: String,
    },
    /// A success answer that is not the JSON expected.
    #[error("{action}: unexpected answer: {message}")]
    Answer {
        /// The call.
        action: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Where OOS is.
#[derive(Debug, Clone)]
struct Endpoint {
    https: bool,
    /// The host as connected to (no IPv6 brackets).
    host: String,
    port: u16,
    /// The `Host` header (and the signed `host`): the host, with the port when it is not the default.
    authority: String,
    /// The URL, for messages.
    url: String,
}

impl Endpoint {
    fn parse(text: &str) -> Result<Endpoint, NoEndpoint> {
        let bad = || NoEndpoint::Bad(text.to_string());
        let url = url::Url::parse(text.trim()).map_err(|_| bad())?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let port = url.port_or_known_default().ok_or_else(bad)?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(Endpoint {
            https,
            host,
            port,
            authority,
            url: text.trim().trim_end_matches('/').to_string(),
        })
    }
}

/// Why a client has no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NoEndpoint {
    /// Neither a region nor `NIMBUS_OOS_ENDPOINT`.
    Unset,
    /// This URL cannot be used.
    Bad(String),
}

impl From<NoEndpoint> for OosError {
    fn from(e: NoEndpoint) -> OosError {
        match e {
            NoEndpoint::Unset => OosError::NoEndpoint,
            NoEndpoint::Bad(url) => OosError::BadEndpoint(url),
        }
    }
}

/// An OOS client: endpoint, region and credentials. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    /// The endpoint, or why there is none (said at each fetch).
    endpoint: Result<Endpoint, NoEndpoint>,
    region: Option<String>,
    credentials: OosCredentials,
}

impl Client {
    /// A client for these settings (the credentials in them start `credentials`).
    pub fn new(settings: &OosSettings) -> Client {
        let endpoint = match (&settings.endpoint, &settings.region) {
            (Some(url), _) => Endpoint::parse(url),
            (None, Some(region)) => Endpoint::parse(&format!("https://oos.{region}.aliyuncs.com")),
            (None, None) => Err(NoEndpoint::Unset),
        };
        Client {
            endpoint,
            region: settings.region.clone(),
            credentials: OosCredentials::new(settings.credentials.clone()),
        }
    }

    /// The credentials every call is signed with.
    pub fn credentials(&self) -> &OosCredentials {
        &self.credentials
    }

    /// The endpoint, for messages.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Ok(e) => e.url.clone(),
            Err(_) => "no endpoint".into(),
        }
    }

    /// Connects, with the credentials current now.
    pub async fn session(&self) -> Result<Session, OosError> {
        let endpoint = self.endpoint.clone()?;
        let key = self.credentials.get().ok_or(OosError::NoCredentials)?;
        let connect_error = |source| OosError::Connect {
            endpoint: endpoint.url.clone(),
            source,
        };
        let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        let http_error = |message: String| OosError::Http {
            action: "connect",
            endpoint: endpoint.url.clone(),
            message,
        };
        let sender = if endpoint.https {
            let config = crate::caps::outbound::send::tls_client_config()
                .map_err(|e| connect_error(std::io::Error::other(e)))?;
            let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                .map_err(|e| connect_error(std::io::Error::other(e)))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(connect_error)?;
            handshake(TokioIo::new(tls)).await.map_err(http_error)?
        } else {
            handshake(TokioIo::new(tcp)).await.map_err(http_error)?
        };
        Ok(Session {
            sender,
            endpoint,
            region: self.region.clone(),
            key,
        })
    }
}

async fn handshake<I>(io: I) -> Result<SendRequest<Empty<Bytes>>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // The connection ends with the session (or the server); its error, if any, fails the call.
        let _ = conn.await;
    });
    Ok(sender)
}

/// One connection to OOS and the key pair of one fetch.
pub struct Session {
    sender: SendRequest<Empty<Bytes>>,
    endpoint: Endpoint,
    region: Option<String>,
    key: AccessKey,
}

impl Session {
    /// Makes one call.
    pub async fn call(&mut self, call: &Call<'_>) -> Result<Answer, OosError> {
        let action = call.action();
        let http_error = |message: String| OosError::Http {
            action,
            endpoint: self.endpoint.url.clone(),
            message,
        };
        let query = call.query(self.region.as_deref());
        let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let nonce = format!("{:032x}", fastrand::u128(..));
        let payload_hash = sign::sha256_hex(b"");
        let mut headers = vec![
            ("host", self.endpoint.authority.as_str()),
            ("x-acs-action", action),
            ("x-acs-version", VERSION),
            ("x-acs-date", date.as_str()),
            ("x-acs-signature-nonce", nonce.as_str()),
            ("x-acs-content-sha256", payload_hash.as_str()),
            ("accept", "application/json"),
        ];
        if let Some(token) = &self.key.security_token {
            headers.push(("x-acs-security-token", token.as_str()));
        }
        let authorization = sign::authorization(
            &sign::Request {
                method: "POST",
                path: "/",
                query: &query,
                headers: &headers,
                payload_hash: &payload_hash,
            },
            &self.key.id,
            &self.key.secret,
        );
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("/?{}", sign::canonical_query(&query)));
        for (name, value) in &headers {
            req = req.header(*name, *value);
        }
        let req = req
            .header(http::header::AUTHORIZATION, authorization)
            .body(Empty::new())
            .map_err(|e| http_error(e.to_string()))?;
        self.sender.ready().await.map_err(|e| http_error(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| http_error(e.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| http_error(format!("reading the answer: {e}")))?
            .to_bytes();
        answer(action, status.as_u16(), &body)
    }
}

/// What an answer of `action` with this status and body means.
fn answer(action: &'static str, status: u16, body: &[u8]) -> Result<Answer, OosError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|e| OosError::Answer {
            action,
            message: e.to_string(),
        });
    }
    let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let text = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    Err(OosError::Api {
        action,
        status,
        code: e.code.unwrap_or_else(|| "unknown error".into()),
        message: e.message.unwrap_or_else(text),
        request_id: e.request_id.unwrap_or_else(|| "unknown".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_the_setting_or_the_region() {
        let c = Client::new(&OosSettings {
            region: Some("cn-hangzhou".into()),
            ..OosSettings::default()
        });
        assert_eq!(c.describe(), "https://oos.cn-hangzhou.aliyuncs.com");
        let e = c.endpoint.as_ref().unwrap();
        assert!(e.https && e.port == 443 && e.authority == "oos.cn-hangzhou.aliyuncs.com");
        let c = Client::new(&OosSettings {
            region: Some("cn-hangzhou".into()),
            endpoint: Some("http://127.0.0.1:9001/".into()),
            ..OosSettings::default()
        });
        let e = c.endpoint.as_ref().unwrap();
        assert!(!e.https && e.host == "127.0.0.1" && e.port == 9001 && e.authority == "127.0.0.1:9001");
        assert_eq!(
            Client::new(&OosSettings::default()).endpoint.err(),
            Some(NoEndpoint::Unset)
        );
    }

    #[tokio::test]
    async fn a_session_needs_credentials_and_an_endpoint() {
        let no_key = Client::new(&OosSettings {
            region: Some("cn-hangzhou".into()),
            ..OosSettings::default()
        });
        let e = no_key.session().await.err().unwrap().to_string();
        assert!(e.contains("ALIBABA_CLOUD_ACCESS_KEY_ID"), "{e}");
        let e = Client::new(&OosSettings::default())
            .session()
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("FC_REGION"), "{e}");
    }

    #[test]
    fn error_answers_name_code_message_and_request_id() {
        let body = br#"{"RequestId":"R-1","HostId":"oos.cn-hangzhou.aliyuncs.com","Code":"InvalidSecurityToken.Expired","Message":"Specified SecurityToken is expired."}"#;
        let e = answer("GetParameters", 400, body).unwrap_err().to_string();
        assert_eq!(
            e,
            "GetParameters failed with HTTP 400: InvalidSecurityToken.Expired: Specified SecurityToken is expired. \
             (request id R-1)"
        );
        let e = answer("GetParameters", 502, b"<html>bad gateway</html>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HTTP 502") && e.contains("bad gateway"), "{e}");
        let e = answer("GetParameters", 200, b"not json").unwrap_err().to_string();
        assert!(e.contains("unexpected answer"), "{e}");
    }
}
