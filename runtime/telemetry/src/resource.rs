//! Resource attributes: who emits the spans (OpenTelemetry FaaS and cloud conventions).

use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

/// Where the host runs, which decides the resource attributes.
///
/// `app` (the manifest's `[app] name`) is the `service.namespace` in both cases: the semantic conventions'
/// group of services that `service.name` is unique in, which is what an app of functions is.
/// `OTEL_SERVICE_NAME` replaces the default `service.name` only; the namespace stays the app's.
#[derive(Debug, Clone)]
pub enum Platform {
    /// AWS Lambda (`bootstrap`): `cloud.*` and `faas.*` from Lambda's variables.
    Lambda {
        /// The function served (default `service.name`).
        function: String,
        /// The app it belongs to (`service.namespace`).
        app: String,
    },
    /// `nimbus serve` or another local host, serving an app of several functions.
    Local {
        /// The default `service.name` (`nimbus serve`: the manifest's directory).
        service: String,
        /// The app served (`service.namespace`).
        app: String,
    },
}

impl Platform {
    /// The resource attributes: `service.name` is `service_name` (`OTEL_SERVICE_NAME`) or the platform's,
    /// `service.namespace` the app; `env` reads one of Lambda's (non-empty) environment variables.
    pub(super) fn resource(&self, service_name: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Vec<KeyValue> {
        let (default_name, app) = match self {
            Platform::Lambda { function, app } => {
                (env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| function.clone()), app)
            }
            Platform::Local { service, app } => (service.clone(), app),
        };
        let mut attrs = vec![
            KeyValue::new(semconv::SERVICE_NAME, service_name.map_or(default_name, str::to_owned)),
            KeyValue::new(semconv::SERVICE_NAMESPACE, app.clone()),
        ];
        if let Platform::Lambda { function, .. } = self {
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
        let attrs = Platform::Lambda {
            function: "f".into(),
            app: "shop".into(),
        }
        .resource(None, &env);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("orders"));
        assert_eq!(get("service.namespace").as_deref(), Some("shop"));
        assert_eq!(get("cloud.provider").as_deref(), Some("aws"));
        assert_eq!(get("cloud.platform").as_deref(), Some("aws_lambda"));
        assert_eq!(get("cloud.region").as_deref(), Some("eu-west-1"));
        assert_eq!(get("faas.name").as_deref(), Some("orders"));
        assert_eq!(get("faas.version").as_deref(), Some("7"));
        assert_eq!(get("faas.instance").as_deref(), Some("2026/11/25/[7]abc"));
        assert_eq!(get("faas.max_memory").as_deref(), Some("134217728"));

        let local = Platform::Local {
            service: "dir".into(),
            app: "shop".into(),
        };
        let named = local.resource(Some("svc"), &|_| None);
        let pairs = |attrs: Vec<KeyValue>| -> Vec<(String, String)> {
            attrs
                .into_iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        };
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            pairs(named),
            [pair("service.name", "svc"), pair("service.namespace", "shop")],
            "OTEL_SERVICE_NAME names the service, never the app"
        );
        assert_eq!(
            pairs(local.resource(None, &|_| None)),
            [pair("service.name", "dir"), pair("service.namespace", "shop")]
        );
    }
}
