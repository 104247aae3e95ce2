//! AWS SDK settings shared by every capability that calls AWS (SSM config
//! today): one place decides the HTTP client, retries, timeouts, region and
//! endpoint, so all clients behave alike and tests can point them at moto.

use aws_config::SdkConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use std::time::Duration;

/// Attempts per AWS call, with the SDK's standard retry mode (exponential
/// backoff with jitter; throttling and transient errors are retried).
pub const MAX_ATTEMPTS: u32 = 5;

/// Region used when neither the settings nor `AWS_REGION` / `AWS_DEFAULT_REGION` give one.
pub const FALLBACK_REGION: &str = "us-east-1";

/// Explicit settings for AWS clients; anything unset comes from the standard
/// AWS environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`,
/// `AWS_REGION`, `AWS_DEFAULT_REGION`, the default credential chain).
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Endpoint URL, e.g. `http://127.0.0.1:5000` for moto.
    pub endpoint_url: Option<String>,
    /// Region; else the environment's, else `us-east-1`.
    pub region: Option<String>,
    /// Static credentials; else the default credential chain.
    pub credentials: Option<Credentials>,
}

/// How an SDK client retries and how long one attempt may take: the one knob that differs between the
/// clients Nimbus builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallPolicy {
    /// Attempts per call with the SDK's standard retry mode; `1`: the SDK does not retry.
    pub max_attempts: u32,
    /// Longest one attempt may take.
    pub attempt_timeout: Duration,
}

impl CallPolicy {
    /// Config and capability calls (SSM, DynamoDB key-value, API Gateway Management): [`MAX_ATTEMPTS`]
    /// with exponential backoff and jitter; throttling and transient errors are retried.
    pub const STANDARD: CallPolicy = CallPolicy {
        max_attempts: MAX_ATTEMPTS,
        attempt_timeout: Duration::from_secs(4),
    };
    /// The durable-task store: no SDK retries (its driver retries transient failures itself), and attempts
    /// long enough for a 20 s SQS long poll plus a large checkpoint upload.
    pub const SELF_RETRYING: CallPolicy = CallPolicy {
        max_attempts: 1,
        attempt_timeout: Duration::from_secs(30),
    };
}

/// The SDK configuration for these settings with [`CallPolicy::STANDARD`].
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    sdk_config_with(settings, CallPolicy::STANDARD).await
}

/// The SDK configuration for these settings and `policy`: bounded connect and attempt times, no
/// instance-metadata region lookup, and rustls (ring) over HTTPS or plain HTTP (local endpoints such as moto).
pub async fn sdk_config_with(settings: &AwsSettings, policy: CallPolicy) -> SdkConfig {
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_smithy_http_client::tls;

    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    // Not the SDK's default region chain: it would ask the instance metadata
    // service, which off EC2 only times out.
    let region = RegionProviderChain::first_try(settings.region.clone().map(Region::new))
        .or_else(aws_config::environment::EnvironmentVariableRegionProvider::new())
        .or_else(Region::from_static(FALLBACK_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(region)
        .retry_config(match policy.max_attempts {
            0 | 1 => RetryConfig::disabled(),
            n => RetryConfig::standard().with_max_attempts(n),
        })
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(policy.attempt_timeout)
                .build(),
        );
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(creds) = &settings.credentials {
        loader = loader.credentials_provider(creds.clone());
    }
    loader.load().await
}
