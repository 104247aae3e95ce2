//! Sending encoded span batches to the collector over OTLP/HTTP: a POST of
//! `application/x-protobuf` on a blocking `reqwest` client (one kept-alive
//! connection), with the headers, timeout and retries opentelemetry-otlp's
//! HTTP exporter has, so the switch kept every setting that worked before,
//! and gzip compression as `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION` asks
//! ([`OtlpHttpSettings`], read by nimbus-core's settings parser).

use crate::settings::OtlpHttpSettings;
use bytes::Bytes;
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use std::time::{Duration, Instant};

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

/// `body` gzip-compressed, at the fast level: the export thread shares the
/// cores with invocations.
fn gzipped(body: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
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
    pub(super) fn new(url: reqwest::Url, settings: &OtlpHttpSettings) -> Result<OtlpHttp, reqwest::Error> {
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
