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
    /// A platform other than Lambda that starts `bootstrap` (Function Compute, Cloud Run / Knative, Azure
    /// Functions): `cloud.*` and `faas.*` from that platform's variables.
    Hosted {
        /// Which one.
        cloud: Cloud,
        /// The function served (default `service.name` when the platform does not name it).
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

/// A FaaS platform other than Lambda, with the variables it names its function, region and instance by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Alibaba Cloud Function Compute 3.0.
    FunctionCompute,
    /// Google Cloud Run, or Knative Serving anywhere.
    Knative,
    /// An Azure Functions custom handler.
    Azure,
}

impl Cloud {
    /// `cloud.provider` and `cloud.platform`, as the semantic conventions spell them.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Cloud::FunctionCompute => ("alibaba_cloud", "alibaba_cloud_fc"),
            Cloud::Knative => ("gcp", "gcp_cloud_run"),
            Cloud::Azure => ("azure", "azure_functions"),
        }
    }

    /// The variables that carry `faas.name`, `cloud.region`, `faas.version`, `faas.instance` and the memory
    /// size in MiB (`faas.max_memory`), where the platform sets one.
    fn variables(self) -> [Option<&'static str>; 5] {
        match self {
            Cloud::FunctionCompute => [
                Some("FC_FUNCTION_NAME"),
                Some("FC_REGION"),
                Some("FC_FUNCTION_VERSION"),
                Some("FC_INSTANCE_ID"),
                Some("FC_FUNCTION_MEMORY_SIZE"),
            ],
            Cloud::Knative => [Some("K_SERVICE"), None, Some("K_REVISION"), None, None],
            Cloud::Azure => [None, Some("REGION_NAME"), None, Some("WEBSITE_INSTANCE_ID"), None],
        }
    }
}

impl Platform {
    /// The resource attributes: `service.name` is `service_name` (`OTEL_SERVICE_NAME`) or the platform's,
    /// `service.namespace` the app; `env` reads one of Lambda's (non-empty) environment variables.
    pub(super) fn resource(&self, service_name: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Vec<KeyValue> {
        let (default_name, app) = match self {
            Platform::Lambda { function, app } => {
                (env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| function.clone()), app)
            }
            Platform::Hosted { cloud, function, app } => {
                let named = cloud.variables()[0].and_then(env);
                (named.unwrap_or_else(|| function.clone()), app)
            }
            Platform::Local { service, app } => (service.clone(), app),
        };
        let mut attrs = vec![
            KeyValue::new(semconv::SERVICE_NAME, service_name.map_or(default_name, str::to_owned)),
            KeyValue::new(semconv::SERVICE_NAMESPACE, app.clone()),
        ];
        let (provider, platform, vars, function) = match self {
            Platform::Lambda { function, .. } => (
                "aws",
                "aws_lambda",
                [
                    Some("AWS_LAMBDA_FUNCTION_NAME"),
                    Some("AWS_REGION"),
                    Some("AWS_LAMBDA_FUNCTION_VERSION"),
                    Some("AWS_LAMBDA_LOG_STREAM_NAME"),
                    Some("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
                ],
                function,
            ),
            Platform::Hosted { cloud, function, .. } => {
                let (provider, platform) = cloud.names();
                (provider, platform, cloud.variables(), function)
            }
            Platform::Local { .. } => return attrs,
        };
        let [name, region, version, instance, memory] = vars.map(|v| v.and_then(env));
        attrs.push(KeyValue::new(semconv::CLOUD_PROVIDER, provider));
        attrs.push(KeyValue::new(semconv::CLOUD_PLATFORM, platform));
        attrs.push(KeyValue::new(
            semconv::FAAS_NAME,
            name.unwrap_or_else(|| function.clone()),
        ));
        for (key, value) in [
            (semconv::CLOUD_REGION, region),
            (semconv::FAAS_VERSION, version),
            (semconv::FAAS_INSTANCE, instance),
        ] {
            if let Some(v) = value {
                attrs.push(KeyValue::new(key, v));
            }
        }
        if let Some(mb) = memory.and_then(|m| m.trim().parse::<i64>().ok()) {
            attrs.push(KeyValue::new(semconv::FAAS_MAX_MEMORY, mb.saturating_mul(1 << 20)));
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

    #[test]
    fn hosted_platforms_name_their_cloud_and_read_their_own_variables() {
        let vars = [
            ("FC_FUNCTION_NAME", "orders-fc"),
            ("FC_REGION", "cn-hangzhou"),
            ("FC_FUNCTION_MEMORY_SIZE", "512"),
            ("K_SERVICE", "orders-run"),
            ("K_REVISION", "orders-run-00002"),
            ("REGION_NAME", "West Europe"),
            // Another platform's variables are never read.
            ("AWS_LAMBDA_FUNCTION_NAME", "not-this"),
        ];
        let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let attrs = |cloud| {
            Platform::Hosted {
                cloud,
                function: "f".into(),
                app: "shop".into(),
            }
            .resource(None, &env)
            .into_iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
        };
        let fc = attrs(Cloud::FunctionCompute);
        assert_eq!(fc["cloud.provider"], "alibaba_cloud");
        assert_eq!(fc["cloud.platform"], "alibaba_cloud_fc");
        assert_eq!(fc["faas.name"], "orders-fc");
        assert_eq!(fc["service.name"], "orders-fc");
        assert_eq!(fc["cloud.region"], "cn-hangzhou");
        assert_eq!(fc["faas.max_memory"], "536870912");
        let run = attrs(Cloud::Knative);
        assert_eq!(run["cloud.platform"], "gcp_cloud_run");
        assert_eq!(run["faas.name"], "orders-run");
        assert_eq!(run["faas.version"], "orders-run-00002");
        assert!(!run.contains_key("cloud.region"), "{run:?}");
        let azure = attrs(Cloud::Azure);
        assert_eq!(azure["cloud.provider"], "azure");
        assert_eq!(
            azure["faas.name"], "f",
            "Azure does not name the function in the environment"
        );
        assert_eq!(azure["cloud.region"], "West Europe");
        assert_eq!(azure["service.namespace"], "shop");
    }
}
