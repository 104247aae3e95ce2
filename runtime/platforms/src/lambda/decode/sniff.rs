//! Telling an event's source from its JSON, reading no more of it than that takes.

use super::Origin;
use nimbus_core::EventSource;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Just enough of an event to tell its source; everything else is skipped.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "requestContext")]
    request_context: Option<ProbeContext>,
    #[serde(rename = "httpMethod")]
    http_method: Option<IgnoredAny>,
    #[serde(rename = "multiValueHeaders")]
    multi_value_headers: Option<IgnoredAny>,
    #[serde(rename = "Records")]
    records: Option<ProbeRecords>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    source: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProbeContext {
    http: Option<IgnoredAny>,
    elb: Option<IgnoredAny>,
    #[serde(rename = "connectionId")]
    connection_id: Option<IgnoredAny>,
    #[serde(rename = "domainName")]
    domain_name: Option<String>,
}

/// The first record's `eventSource` (`EventSource` for SNS); the rest are skipped.
struct ProbeRecords(Option<String>);

impl<'de> Deserialize<'de> for ProbeRecords {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ProbeRecords;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ProbeRecords, A::Error> {
                #[derive(Deserialize)]
                struct First {
                    #[serde(rename = "eventSource", alias = "EventSource")]
                    event_source: Option<String>,
                }
                let first = seq.next_element::<First>().ok().flatten();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ProbeRecords(first.and_then(|f| f.event_source)))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Tells an event's origin. Anything that is not recognisably an AWS
/// source — including JSON that is not an object — is a direct invocation.
pub fn sniff(raw: &str) -> Origin {
    let Ok(p) = serde_json::from_str::<Probe>(raw) else {
        return Origin::Event(EventSource::Direct);
    };
    if let Some(ctx) = &p.request_context {
        if ctx.connection_id.is_some() {
            return Origin::WebSocket;
        }
        if ctx.elb.is_some() {
            return Origin::Alb {
                multi_value: p.multi_value_headers.is_some(),
            };
        }
        if ctx.http.is_some() {
            let url = ctx.domain_name.as_deref().is_some_and(|d| d.contains(".lambda-url."));
            return if url { Origin::FunctionUrl } else { Origin::ApiGatewayV2 };
        }
        if p.http_method.is_some() {
            return Origin::ApiGatewayV1;
        }
    }
    if let Some(ProbeRecords(Some(src))) = &p.records {
        let source = match src.as_str() {
            "aws:sqs" => EventSource::Sqs,
            "aws:sns" => EventSource::Sns,
            "aws:s3" => EventSource::S3,
            "aws:dynamodb" => EventSource::DynamoDb,
            "aws:kinesis" => EventSource::Kinesis,
            _ => EventSource::Other,
        };
        return Origin::Event(source);
    }
    if let (Some(dt), Some(_)) = (&p.detail_type, &p.source) {
        return Origin::Event(if dt == "Scheduled Event" {
            EventSource::Schedule
        } else {
            EventSource::EventBridge
        });
    }
    Origin::Event(EventSource::Direct)
}
