//! Sending encoded span batches to the collector over OTLP/HTTP: a POST of
//! `application/x-protobuf` on a blocking `reqwest` client (one kept-alive
//! connection), with the headers, timeout and retries opentelemetry-otlp's
//! HTTP exporter has, so the switch kept every setting that worked before,
//! and gzip compression as `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION` asks.

use bytes::Bytes;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use std::time::{Duration, Instant};

/// The longest one export may take, retries included (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT` overrides it).
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries after the first attempt, as opentelemetry-otlp's recommended policy.
const RETRIES: u32 = 3;
/// The first backoff, doubling on each retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
/// Random time added to each backoff, so many hosts do not retry in step.
const MAX_JITTER_MS: u64 = 100;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum PostError {
    /// No HTTP answer: refused, reset, timed out.
    #[error("cannot reach the collector: {0}")]
    Unreachable(String),
    /// The collector answered with an error status.
    #[error("the collector answered HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
        /// How long its `Retry-After` (seconds, on a 429 or 503) asked to wait.
        retry_after: Option<Duration>,
    },
}

impl PostError {
    /// Whether OTLP/HTTP says to try again, and after how long at least.
    fn retry(&self) -> Option<Duration> {
        match self {
            PostError::Unreachable(_) | PostError::Status { status: 502 | 504, .. } => Some(Duration::ZERO),
            PostError::Status {
                status: 429 | 503,
                retry_after,
            } => Some(retry_after.unwrap_or_default()),
            PostError::Status { .. } => None,
        }
    }
}

/// The traces exporter's HTTP settings, as the `OTEL_EXPORTER_OTLP_*` variables give them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HttpSettings {
    /// See [`DEFAULT_TIMEOUT`].
    pub(super) timeout: Duration,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`).
    pub(super) headers: Vec<(String, String)>,
    /// Whether bodies are gzip-compressed ([`gzip_asked`]; `read` leaves it off:
    /// it comes with the [`super::TelemetryConfig`]).
    pub(super) gzip: bool,
}

impl HttpSettings {
    /// The settings the variables `env` reads give; as opentelemetry-otlp,
    /// a bad timeout or header entry is ignored, not an error.
    pub(super) fn read(env: &dyn Fn(&str) -> Option<String>) -> HttpSettings {
        let millis = |name: &str| env(name).and_then(|v| v.trim().parse::<u64>().ok());
        let timeout = millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| millis("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let headers = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|list| parse_headers(&list))
            .unwrap_or_default();
        HttpSettings {
            timeout,
            headers,
            gzip: false,
        }
    }
}

/// Whether the compression variables ask for gzip. As opentelemetry-otlp
/// does, a value it cannot honour (`zstd` here, or a typo) is warned about
/// and ignored, falling back to the general variable, then to none.
pub(super) fn gzip_asked(env: &dyn Fn(&str) -> Option<String>) -> bool {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ] {
        let Some(value) = env(name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "gzip" => return true,
            "none" => return false,
            _ => tracing::warn!("{name}={value:?} is ignored: span export supports \"gzip\" and \"none\""),
        }
    }
    false
}

/// `body` gzip-compressed, at the fast level: the export thread shares the
/// cores with invocations.
fn gzipped(body: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// `key1=value1,key2=value2`, values percent-decoded (kept as written if
/// that fails); entries without a key or a value are left out.
fn parse_headers(list: &str) -> Vec<(String, String)> {
    list.split_terminator(',')
        .filter_map(|entry| {
            let (key, value) = entry.trim().split_once('=')?;
            let (key, value) = (key.trim(), value.trim());
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_or_else(|_| value.to_owned(), |v| v.into_owned());
            (!key.is_empty() && !value.is_empty()).then(|| (key.to_owned(), value))
        })
        .collect()
}

/// A blocking OTLP/HTTP client for one traces URL.
#[derive(Debug)]
pub(super) struct OtlpHttp {
    client: Client,
    url: reqwest::Url,
    timeout: Duration,
    gzip: bool,
}

impl OtlpHttp {
    /// A client POSTing to `url`. Blocks while the client starts its own
    /// runtime thread: call it outside any async runtime (the export thread).
    pub(super) fn new(url: reqwest::Url, settings: &HttpSettings) -> Result<OtlpHttp, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("nimbus/", env!("CARGO_PKG_VERSION"))),
        );
        for (k, v) in &settings.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
                headers.insert(k, v);
            }
        }
        let client = Client::builder()
            .timeout(settings.timeout)
            .default_headers(headers)
            .build()?;
        Ok(OtlpHttp {
            client,
            url,
            timeout: settings.timeout,
            gzip: settings.gzip,
        })
    }

    /// POSTs one encoded request, retrying what OTLP/HTTP says may be
    /// retried (no answer; 429, 502, 503, 504) with backoff, within the timeout.
    pub(super) fn post(&self, body: Bytes) -> Result<(), PostError> {
        let started = Instant::now();
        let body = if self.gzip { gzipped(&body) } else { body };
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let error = match self.post_once(body.clone()) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let Some(at_least) = error.retry().filter(|_| retries < RETRIES) else {
                return Err(error);
            };
            retries += 1;
            backoff = backoff.max(at_least.min(MAX_RETRY_AFTER));
            let wait =
                (backoff + Duration::from_millis(fastrand::u64(0..=MAX_JITTER_MS))).min(MAX_BACKOFF.max(at_least));
            if wait >= self.timeout.saturating_sub(started.elapsed()) {
                return Err(error);
            }
            std::thread::sleep(wait);
            backoff = (backoff * 2).min(MAX_BACKOFF.max(at_least));
        }
    }

    fn post_once(&self, body: Bytes) -> Result<(), PostError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-protobuf");
        if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let mut response = request.body(body).send().map_err(unreachable)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read to the end, so the connection is kept for the next batch.
        // (A partial success is a collector's own business to log.)
        let _ = response.copy_to(&mut std::io::sink());
        if status.is_success() {
            Ok(())
        } else {
            Err(PostError::Status {
                status: status.as_u16(),
                retry_after,
            })
        }
    }
}

/// A failed request as an [`PostError`], with its causes (the URL is left
/// out: the warning names the endpoint already).
fn unreachable(e: reqwest::Error) -> PostError {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    PostError::Unreachable(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_otlp_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            HttpSettings::read(&vars(&[])),
            HttpSettings {
                timeout: DEFAULT_TIMEOUT,
                headers: Vec::new(),
                gzip: false,
            }
        );
        let s = HttpSettings::read(&vars(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "ignored=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                " api-key = s%20cret ,novalue=, =nokey,x-tenant=a=b,bad=%zz,",
            ),
        ]));
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert_eq!(
            s.headers,
            [("api-key", "s cret"), ("x-tenant", "a=b"), ("bad", "%zz")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let s = HttpSettings::read(&vars(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=v"),
        ]));
        assert_eq!(s.timeout, Duration::from_millis(250));
        assert_eq!(s.headers, [("k".to_owned(), "v".to_owned())]);
        let bad = HttpSettings::read(&vars(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]));
        assert_eq!(bad.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn compression_follows_the_otlp_variables() {
        let gzip_with = |pairs: &'static [(&'static str, &'static str)]| {
            gzip_asked(&move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        };
        assert!(!gzip_with(&[]));
        assert!(gzip_with(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]));
        assert!(gzip_with(&[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", " GZIP ")]));
        assert!(!gzip_with(&[
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]));
        // Not supported: ignored, the general variable decides.
        assert!(gzip_with(&[
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]));
        assert!(!gzip_with(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")]));
    }

    #[test]
    fn what_is_retried() {
        let status = |status, retry_after| PostError::Status { status, retry_after };
        assert_eq!(PostError::Unreachable("refused".into()).retry(), Some(Duration::ZERO));
        assert_eq!(status(502, None).retry(), Some(Duration::ZERO));
        assert_eq!(status(503, None).retry(), Some(Duration::ZERO));
        assert_eq!(
            status(429, Some(Duration::from_secs(2))).retry(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(status(400, None).retry(), None);
        assert_eq!(status(500, None).retry(), None);
    }
}
