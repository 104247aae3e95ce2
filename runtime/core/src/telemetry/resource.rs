//! Resource attributes: who emits the spans (OpenTelemetry FaaS and cloud conventions).

use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

/// Where the host runs, which decides the resource attributes.
#[derive(Debug, Clone)]
pub enum Platform {
    /// AWS Lambda (`bootstrap`): `cloud.*` and `faas.*` from Lambda's variables.
    Lambda {
        /// The function served (default `service.name`).
        function: String,
    },
    /// `nimbus serve` or another local host, serving an app of several functions.
    Local {
        /// The app's name (default `service.name`).
        app: String,
    },
}

impl Platform {
    /// The resource attributes: `service.name` is `service_name` (`OTEL_SERVICE_NAME`) or the platform's;
    /// `env` reads one of Lambda's (non-empty) environment variables.
    pub(super) fn resource(&self, service_name: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Vec<KeyValue> {
        let default_name = match self {
            Platform::Lambda { function } => env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| function.clone()),
            Platform::Local { app } => app.clone(),
        };
        let mut attrs = vec![KeyValue::new(
            semconv::SERVICE_NAME,
            service_name.map_or(default_name, str::to_owned),
        )];
        if let Platform::Lambda { function } = self {
            attrs.push(KeyValue::new(semconv::CLOUD_PROVIDER, "aws"));
            attrs.push(KeyValue::new(semconv::CLOUD_PLATFORM, "aws_lambda"));
            attrs.push(KeyValue::new(
                semconv::FAAS_NAME,
                env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| function.clone()),
            ));
            let from_env = [
                (semconv::CLOUD_REGION, "AWS_REGION"),
                (semconv::FAAS_VERSION, "AWS_LAMBDA_FUNCTION_VERSION"),
                (semconv::FAAS_INSTANCE, "AWS_LAMBDA_LOG_STREAM_NAME"),
            ];
            for (key, var) in from_env {
                if let Some(v) = env(var) {
                    attrs.push(KeyValue::new(key, v));
                }
            }
            if let Some(mb) = env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|m| m.trim().parse::<i64>().ok()) {
                attrs.push(KeyValue::new(semconv::FAAS_MAX_MEMORY, mb.saturating_mul(1 << 20)));
            }
        }
        attrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_resource_follows_the_faas_conventions() {
        let vars = [
            ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[7]abc"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ];
        let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let attrs = Platform::Lambda { function: "f".into() }.resource(None, &env);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("orders"));
        assert_eq!(get("cloud.provider").as_deref(), Some("aws"));
        assert_eq!(get("cloud.platform").as_deref(), Some("aws_lambda"));
        assert_eq!(get("cloud.region").as_deref(), Some("eu-west-1"));
        assert_eq!(get("faas.name").as_deref(), Some("orders"));
        assert_eq!(get("faas.version").as_deref(), Some("7"));
        assert_eq!(get("faas.instance").as_deref(), Some("2026/11/25/[7]abc"));
        assert_eq!(get("faas.max_memory").as_deref(), Some("134217728"));

        let local = Platform::Local { app: "shop".into() }.resource(Some("svc"), &|_| None);
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].value.to_string(), "svc");
    }
}
