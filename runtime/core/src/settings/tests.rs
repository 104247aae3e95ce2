use super::telemetry::{BatchSettings, DEFAULT_EXPORT_TIMEOUT, OtlpHttpSettings, RefusedEndpoint};
use super::*;
use std::os::unix::ffi::OsStringExt as _;
use std::time::Duration;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::from_vars(vars.iter().copied())
}

/// A variable set to bytes that are not UTF-8.
fn not_utf8(name: &str) -> Result<Settings, SettingsError> {
    Settings::from_vars([(OsString::from(name), OsString::from_vec(b"4\xff".to_vec()))])
}

/// One strict setting: with `with` also set, `good` gives what `check` looks for (the default does not),
/// and `bad` (if any) is an error naming the variable and quoting the value.
struct Case {
    name: &'static str,
    with: &'static [(&'static str, &'static str)],
    good: &'static str,
    check: fn(&Settings) -> bool,
    bad: Option<&'static str>,
}

const fn case(name: &'static str, good: &'static str, check: fn(&Settings) -> bool, bad: Option<&'static str>) -> Case {
    Case {
        name,
        with: &[],
        good,
        check,
        bad,
    }
}

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

const CASES: &[Case] = &[
    case(
        "NIMBUS_LOG",
        "warn,nimbus_core=debug",
        |s| s.log.as_deref() == Some("warn,nimbus_core=debug"),
        Some("nimbus_core=loud"),
    ),
    case(
        "NIMBUS_POOL_INSTANCES",
        "100",
        |s| s.engine.pool_instances == Some(100),
        Some("-3"),
    ),
    case(
        "NIMBUS_EPOCH_TICK_MS",
        "5",
        |s| s.engine.epoch_tick == ms(5),
        Some("soon"),
    ),
    case(
        "NIMBUS_KEEP_RESIDENT",
        " 65536 ",
        |s| s.engine.keep_resident == Some(65536),
        Some("4MiB"),
    ),
    case("NIMBUS_POOLING", "0", |s| s.engine.pooling == Some(false), Some("off")),
    case(
        "NIMBUS_MEMORY_COW",
        "1",
        |s| s.engine.memory_cow == Some(true),
        Some("yes"),
    ),
    case(
        "FC_CUSTOM_LISTEN_PORT",
        " 9001 ",
        |s| s.fc.listen_port == Some(9001) && s.fc.port() == 9001,
        Some("70000"),
    ),
    case(
        "FC_FUNCTION_NAME",
        "my-function",
        |s| s.fc.function_name.as_deref() == Some("my-function"),
        None,
    ),
    case(
        "NIMBUS_PLATFORM",
        " FC ",
        |s| s.platform.asked == Some(PlatformKind::FunctionCompute),
        Some("gcp"),
    ),
    case(
        "NIMBUS_PAGEMAP_SCAN",
        "0",
        |s| s.engine.pagemap_scan == Some(false),
        Some("no"),
    ),
    case(
        "NIMBUS_METRICS",
        " emf ",
        |s| {
            s.telemetry.metrics
                == MetricsSetting::Emf {
                    namespace: "Nimbus".into(),
                }
        },
        Some("prometheus"),
    ),
    Case {
        name: "NIMBUS_METRICS_NAMESPACE",
        with: &[("NIMBUS_METRICS", "emf")],
        good: "Shop",
        check: |s| {
            s.telemetry.metrics
                == MetricsSetting::Emf {
                    namespace: "Shop".into(),
                }
        },
        bad: Some(" "),
    },
    case(
        "NIMBUS_OTEL_FLUSH_TIMEOUT_MS",
        "50",
        |s| s.telemetry.flush_timeout == Duration::from_millis(50),
        Some("1s"),
    ),
    case(
        "NIMBUS_DEADLINE_MARGIN_MS",
        "400",
        |s| s.lambda.deadline_margin == ms(400),
        Some("0.1s"),
    ),
    case(
        "NIMBUS_WEBSOCKET_ENDPOINT",
        "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
        |s| s.lambda.websocket_endpoint.as_deref() == Some("https://abc.execute-api.eu-west-1.amazonaws.com/prod"),
        Some("abc.execute-api.eu-west-1.amazonaws.com/prod"),
    ),
    case(
        "NIMBUS_KV_TABLE",
        "rooms",
        |s| s.lambda.kv_table.as_deref() == Some("rooms"),
        None,
    ),
    case(
        "NIMBUS_STATE_BUCKET",
        "shop-state",
        |s| s.lambda.task_store.state_bucket.as_deref() == Some("shop-state"),
        None,
    ),
    case(
        "NIMBUS_TASK_TABLE",
        "shop-tasks",
        |s| s.lambda.task_store.task_table.as_deref() == Some("shop-tasks"),
        None,
    ),
    case(
        "NIMBUS_TASK_QUEUE_URL",
        "https://sqs.eu-west-1.amazonaws.com/123456789012/shop-tasks",
        |s| {
            s.lambda.task_store.task_queue_url.as_deref()
                == Some("https://sqs.eu-west-1.amazonaws.com/123456789012/shop-tasks")
        },
        Some("https://sqs.eu-west-1.amazonaws.com/"),
    ),
    case(
        "NIMBUS_FUNCTION",
        "orders",
        |s| s.lambda.function.as_deref() == Some("orders"),
        None,
    ),
    case(
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        " 7072 ",
        |s| s.azure.port == Some(7072),
        Some("0"),
    ),
    case(
        "NIMBUS_LISTEN",
        "0.0.0.0:8080",
        |s| s.local.listen == Some(([0, 0, 0, 0], 8080).into()),
        Some("localhost"),
    ),
    case(
        "NIMBUS_HEADER_READ_TIMEOUT",
        "5s",
        |s| s.listener.header_read_timeout == Some(Duration::from_secs(5)),
        Some("forever"),
    ),
    case(
        "NIMBUS_KEEP_ALIVE_IDLE",
        "30s",
        |s| s.listener.keep_alive_idle == Some(Duration::from_secs(30)),
        Some("2h"),
    ),
    case(
        "NIMBUS_MAX_CONNECTIONS",
        "64",
        |s| s.listener.max_connections == Some(64),
        Some("0"),
    ),
    case(
        "NIMBUS_MAX_CONNECTIONS_PER_IP",
        "0",
        |s| s.listener.max_connections_per_ip == Some(0),
        Some("2000000"),
    ),
    case("PORT", " 8081 ", |s| s.knative.port == Some(8081), Some("http")),
    case("PORT", "65535", |s| s.knative.port() == 65535, Some("0")),
    case("PORT", "1", |s| s.knative.port == Some(1), Some("65536")),
    case(
        "K_SERVICE",
        "hello",
        |s| s.knative.service.as_deref() == Some("hello"),
        None,
    ),
    case(
        "K_REVISION",
        "hello-00001-abc",
        |s| s.knative.revision.as_deref() == Some("hello-00001-abc"),
        None,
    ),
    case(
        "K_CONFIGURATION",
        "hello",
        |s| s.knative.configuration.as_deref() == Some("hello"),
        None,
    ),
    case(
        "NIMBUS_OOS_ENDPOINT",
        "http://127.0.0.1:9100",
        |s| s.oos.endpoint.as_deref() == Some("http://127.0.0.1:9100"),
        Some("oos.cn-hangzhou.aliyuncs.com"),
    ),
    case(
        "FC_REGION",
        "cn-hangzhou",
        |s| s.oos.region.as_deref() == Some("cn-hangzhou"),
        Some("cn hangzhou"),
    ),
    case(
        "ALIBABA_CLOUD_REGION_ID",
        "ap-southeast-1",
        |s| s.oos.region.as_deref() == Some("ap-southeast-1"),
        Some("Singapore!"),
    ),
    case(
        "OTEL_SERVICE_NAME",
        "svc",
        |s| s.telemetry.service_name.as_deref() == Some("svc"),
        None,
    ),
    case(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "http://t:4318/v1/traces",
        |s| {
            s.telemetry.traces
                == Endpoint::Http {
                    url: "http://t:4318/v1/traces".into(),
                    variable: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                }
        },
        None,
    ),
];

#[test]
fn every_setting_has_a_default_takes_a_good_value_and_refuses_a_bad_one_by_name() {
    let defaults = settings(&[]).unwrap();
    for c in CASES {
        assert!(!(c.check)(&defaults), "{} unset is not {:?}", c.name, c.good);
        let mut vars = c.with.to_vec();
        vars.push((c.name, c.good));
        let s = settings(&vars).unwrap_or_else(|e| panic!("{}={:?}: {e}", c.name, c.good));
        assert!((c.check)(&s), "{}={:?}: {s:?}", c.name, c.good);
        if let Some(bad) = c.bad {
            vars.pop();
            vars.push((c.name, bad));
            let e = settings(&vars).unwrap_err();
            let text = e.to_string();
            assert_eq!(e.name(), c.name, "{text}");
            assert!(
                text.contains(c.name) && text.contains(&format!("{bad:?}")) && text.contains("expected"),
                "{text}"
            );
        }
        let e = not_utf8(c.name).unwrap_err();
        assert!(
            matches!(e, SettingsError::NotUnicode { name, .. } if name == c.name),
            "{e}"
        );
        assert!(
            e.to_string().contains("not valid UTF-8") && e.to_string().contains(c.name),
            "{e}"
        );
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.log, None);
    assert_eq!(s.manifest, None);
    assert_eq!(s.engine, EngineSettings::default());
    assert_eq!(
        s.engine.apply(crate::engine::EngineOptions::default()).pool_instances,
        16
    );
    assert_eq!(s.telemetry, TelemetrySettings::default());
    assert_eq!(s.telemetry.traces, Endpoint::Unset);
    assert_eq!(s.telemetry.metrics, MetricsSetting::Off);
    assert_eq!(s.telemetry.flush_timeout, Duration::from_millis(200));
    assert_eq!(s.listener, ListenerSettings::default());
    assert_eq!(s.lambda, LambdaSettings::default());
    assert_eq!(s.local, LocalSettings::default());
    assert_eq!(s.oos, OosSettings::default());
    assert_eq!(s.knative, KnativeSettings::default());
    assert_eq!(s.knative.port(), 8080);
    assert_eq!(s.azure, AzureSettings::default());
    assert_eq!(s.unknown(None).count(), 0);
}

#[test]
fn engine_settings_keep_their_floors() {
    let s = settings(&[
        ("NIMBUS_POOL_INSTANCES", "0"),
        ("NIMBUS_EPOCH_TICK_MS", "0"),
        ("NIMBUS_POOLING", "2"),
    ])
    .unwrap();
    assert_eq!(s.engine.pool_instances, Some(1));
    assert_eq!(s.engine.epoch_tick, ms(1));
    assert_eq!(s.engine.pooling, Some(true), "any number but 0 keeps the pool");
    let opts = s.engine.apply(crate::engine::EngineOptions::default());
    assert_eq!(
        (opts.pool_instances, opts.epoch_tick, opts.pooling),
        (1, Duration::from_millis(1), true)
    );
}

#[test]
fn paths_take_any_bytes_and_empty_is_unset() {
    let s = Settings::from_vars([
        (
            OsString::from("NIMBUS_MANIFEST"),
            OsString::from_vec(b"/app/\xffnimbus.toml".to_vec()),
        ),
        (OsString::from("NIMBUS_STATE_DIR"), OsString::from("/var/state")),
        (OsString::from("NIMBUS_SSM_OVERRIDES"), OsString::new()),
        (OsString::from("NIMBUS_SDK_PATH"), OsString::from("../guest-sdk")),
    ])
    .unwrap();
    assert_eq!(
        s.manifest,
        Some(PathBuf::from(OsString::from_vec(b"/app/\xffnimbus.toml".to_vec())))
    );
    assert_eq!(s.local.state_dir, Some(PathBuf::from("/var/state")));
    assert_eq!(s.local.ssm_overrides, None);
    assert_eq!(s.local.sdk_path, Some(PathBuf::from("../guest-sdk")));
}

#[test]
fn blank_aws_resources_are_unset() {
    let s = settings(&[
        ("NIMBUS_WEBSOCKET_ENDPOINT", " "),
        ("NIMBUS_KV_TABLE", ""),
        ("NIMBUS_STATE_BUCKET", "  "),
        ("NIMBUS_TASK_QUEUE_URL", ""),
    ])
    .unwrap();
    assert_eq!(s.lambda, LambdaSettings::default());
    assert_eq!(
        lambda::queue_name("http://127.0.0.1:5000/123456789012/tasks/").as_deref(),
        Some("tasks")
    );
}

#[test]
fn blank_knative_variables_are_unset() {
    let s = settings(&[
        ("PORT", " "),
        ("K_SERVICE", ""),
        ("K_REVISION", "  "),
        ("K_CONFIGURATION", ""),
    ])
    .unwrap();
    assert_eq!(s.knative, KnativeSettings::default());
    assert_eq!(s.knative.port(), knative::DEFAULT_PORT);
}

/// Moved from `metrics.rs` (`NIMBUS_METRICS` was read there).
#[test]
fn nimbus_metrics_selects_the_format() {
    let format = |vars: &[(&str, &str)]| settings(vars).map(|s| s.telemetry.metrics);
    assert!(matches!(format(&[]), Ok(MetricsSetting::Off)));
    assert!(matches!(
        format(&[("NIMBUS_METRICS", " off ")]),
        Ok(MetricsSetting::Off)
    ));
    let Ok(MetricsSetting::Emf { namespace }) = format(&[("NIMBUS_METRICS", "emf")]) else {
        panic!("emf")
    };
    assert_eq!(namespace, "Nimbus");
    let bad = format(&[("NIMBUS_METRICS", "prometheus")]).unwrap_err().to_string();
    assert!(bad.contains("`off`, `emf` or `otlp`"), "{bad}");
    // OTLP needs a collector, and says which variables name one.
    let none = format(&[
        ("NIMBUS_METRICS", "otlp"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        none.contains("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") && none.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{none}"
    );
    let bad_timeout = format(&[
        ("NIMBUS_METRICS", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ("NIMBUS_OTEL_FLUSH_TIMEOUT_MS", "soon"),
    ])
    .unwrap_err()
    .to_string();
    assert!(bad_timeout.contains("NIMBUS_OTEL_FLUSH_TIMEOUT_MS"), "{bad_timeout}");
}

/// Moved from `telemetry/metrics.rs` (`MetricsConfig::from_vars` read the endpoints there).
#[test]
fn metrics_endpoints_follow_the_otlp_variables() {
    let otlp = |vars: &[(&str, &str)]| {
        let mut vars = vars.to_vec();
        vars.push(("NIMBUS_METRICS", "otlp"));
        settings(&vars).map(|s| (s.telemetry.metrics, s.telemetry.flush_timeout))
    };
    let (metrics, flush_timeout) = otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap();
    assert_eq!(
        metrics,
        MetricsSetting::Otlp {
            url: "http://c:4318/v1/metrics".into(),
            variable: "OTEL_EXPORTER_OTLP_ENDPOINT"
        }
    );
    assert_eq!(flush_timeout, telemetry::DEFAULT_FLUSH_TIMEOUT);
    let (metrics, flush_timeout) = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9000/in"),
        ("NIMBUS_OTEL_FLUSH_TIMEOUT_MS", "50"),
    ])
    .unwrap();
    assert_eq!(
        metrics,
        MetricsSetting::Otlp {
            url: "http://m:9000/in".into(),
            variable: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
        }
    );
    assert_eq!(flush_timeout, Duration::from_millis(50));
    // The traces URL is not the metrics one.
    assert!(otlp(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/v1/traces")]).is_err());
    // Plain HTTP only: TLS and scheme-less endpoints are refused, naming the variable.
    for (name, value) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.example.com"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "localhost:4318/v1/metrics"),
    ] {
        let e = otlp(&[(name, value)]).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(value) && e.contains("plain HTTP"), "{e}");
    }
}

/// A span endpoint the exporter cannot use is no error: span export stays off, with a warning that names
/// the variable (README: "Any other URL turns span export off with a warning naming the variable").
#[test]
fn a_span_endpoint_that_is_not_plain_http_is_refused_not_fatal() {
    let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example.com/")]).unwrap();
    let Endpoint::Refused(refused) = &s.telemetry.traces else {
        panic!("{:?}", s.telemetry.traces)
    };
    assert_eq!(refused.url, "https://collector.example.com/v1/traces");
    assert!(
        refused
            .reason()
            .starts_with("OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// URL"),
        "{}",
        refused.reason()
    );
    let s = settings(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://exa mple:4318")]).unwrap();
    assert!(
        matches!(&s.telemetry.traces, Endpoint::Refused(RefusedEndpoint { variable, .. })
            if *variable == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        "{:?}",
        s.telemetry.traces
    );
    let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap();
    assert_eq!(s.telemetry.traces, Endpoint::Unset, "empty counts as unset");
}

/// Moved from `telemetry/otlp_http.rs` (`HttpSettings::read` read them there).
#[test]
fn settings_follow_the_otlp_variables() {
    let http = |vars: &[(&str, &str)]| settings(vars).unwrap().telemetry.http;
    assert_eq!(
        http(&[]),
        OtlpHttpSettings {
            timeout: DEFAULT_EXPORT_TIMEOUT,
            headers: Vec::new(),
            gzip: false,
        }
    );
    let s = http(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "ignored=1"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            " api-key = s%20cret ,novalue=, =nokey,x-tenant=a=b,bad=%zz,",
        ),
    ]);
    assert_eq!(s.timeout, Duration::from_secs(3));
    assert_eq!(
        s.headers,
        [("api-key", "s cret"), ("x-tenant", "a=b"), ("bad", "%zz")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let s = http(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "k=v"),
    ]);
    assert_eq!(s.timeout, Duration::from_millis(250));
    assert_eq!(s.headers, [("k".to_owned(), "v".to_owned())]);
    let bad = http(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]);
    assert_eq!(bad.timeout, DEFAULT_EXPORT_TIMEOUT);
}

/// Moved from `telemetry/otlp_http.rs` (`gzip_asked` read them there).
#[test]
fn compression_follows_the_otlp_variables() {
    let gzip_with = |vars: &[(&str, &str)]| settings(vars).unwrap().telemetry.http.gzip;
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

/// Moved from `telemetry/export.rs` (`BatchSettings::read` read them there).
#[test]
fn batch_settings_follow_the_bsp_variables() {
    let batch = |vars: &[(&str, &str)]| settings(vars).unwrap().telemetry.batch;
    assert_eq!(
        batch(&[]),
        BatchSettings {
            max_queue: 16_384,
            max_batch: 512,
            delay: Duration::from_secs(5)
        }
    );
    assert_eq!(
        batch(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ]),
        BatchSettings {
            max_queue: 100,
            max_batch: 100,
            delay: Duration::from_secs(60)
        },
        "a batch is never larger than the queue"
    );
    assert_eq!(
        batch(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "lots"),
            ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ]),
        BatchSettings {
            max_queue: 1,
            max_batch: 1,
            delay: Duration::from_millis(1)
        }
    );
}

/// The OpenTelemetry SDK's variables keep its leniency, but what is ignored is said (once each), and a value
/// that is not UTF-8 is still an error.
#[test]
fn ignored_opentelemetry_values_are_reported() {
    let s = settings(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "lots"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "k=v,novalue="),
    ])
    .unwrap();
    assert_eq!(s.ignored.len(), 4, "{:?}", s.ignored);
    for (needle, ignored) in [
        "OTEL_EXPORTER_OTLP_TIMEOUT=\"soon\"",
        "\"novalue=\"",
        "OTEL_EXPORTER_OTLP_COMPRESSION=\"zstd\"",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=\"lots\"",
    ]
    .iter()
    .zip(&s.ignored)
    {
        assert!(ignored.contains(needle) && ignored.contains("ignored"), "{ignored}");
    }
    assert!(settings(&[]).unwrap().ignored.is_empty());
    let e = not_utf8("OTEL_BSP_MAX_QUEUE_SIZE").unwrap_err();
    assert_eq!(e.name(), "OTEL_BSP_MAX_QUEUE_SIZE");
}

/// Unknown `NIMBUS_*` variables are found, with the setting they resemble; others' variables and the ones a
/// manifest reads as config values are not.
#[test]
fn unknown_nimbus_variables_are_found_with_a_hint() {
    let s = settings(&[
        ("NIMBUS_KEEP_RESIDNET", "1"),
        ("NIMBUS_TEST_REGION", "eu-west-1"),
        ("NIMBUS_POOL_INSTANCES", "8"),
        ("AWS_REGION", "eu-west-1"),
        ("OTEL_SOMETHING_NEW", "1"),
    ])
    .unwrap();
    let unknown: Vec<_> = s.unknown_with_hints(None).collect();
    assert_eq!(
        unknown,
        [
            ("NIMBUS_KEEP_RESIDNET", Some("NIMBUS_KEEP_RESIDENT")),
            ("NIMBUS_TEST_REGION", None)
        ]
    );
    let manifest = Manifest::parse(
        "manifest_version = 1\n[function.f]\ncomponent = \"f.wasm\"\n\
         [function.f.config]\nregion = { env = \"NIMBUS_TEST_REGION\" }\n",
        std::path::Path::new("nimbus.toml"),
        std::path::Path::new("/app"),
    )
    .unwrap();
    assert_eq!(s.unknown(Some(&manifest)).collect::<Vec<_>>(), ["NIMBUS_KEEP_RESIDNET"]);
}

#[test]
fn the_log_filter_is_nimbus_log_or_the_default() {
    let default = settings(&[]).unwrap().log_filter().to_string();
    assert_eq!(
        default,
        tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER).to_string()
    );
    let debug = settings(&[("NIMBUS_LOG", "debug")]).unwrap().log_filter().to_string();
    assert_eq!(debug, "debug");
}

/// Each platform is recognised by its own variable, blank ones count as unset, the flag beats
/// `NIMBUS_PLATFORM`, which beats the environment, and an environment with several platforms' variables
/// names them all in the reason.
#[test]
fn the_platform_comes_from_the_flag_the_setting_or_the_environment() {
    let choose = |vars: &[(&str, &str)], flag: Option<PlatformKind>| settings(vars).unwrap().platform.choose(flag);
    for (var, value, kind) in [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001", PlatformKind::Lambda),
        ("FC_FUNCTION_NAME", "hello", PlatformKind::FunctionCompute),
        ("FC_CUSTOM_LISTEN_PORT", "9000", PlatformKind::FunctionCompute),
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "40123", PlatformKind::Azure),
        ("K_SERVICE", "hello", PlatformKind::Knative),
    ] {
        let chosen = choose(&[(var, value)], None).unwrap();
        assert_eq!(chosen.kind, kind, "{var}");
        assert_eq!(chosen.reason, format!("{var} is set"));
    }
    // A blank NIMBUS_PLATFORM is unset.
    assert_eq!(settings(&[("NIMBUS_PLATFORM", " ")]).unwrap().platform.asked, None);
    // PORT alone names no platform; a blank marker is unset.
    assert_eq!(choose(&[("PORT", "8080")], None), Err(NoPlatform));
    assert_eq!(choose(&[("K_SERVICE", "  ")], None), Err(NoPlatform));
    assert!(NoPlatform.to_string().contains("not running on AWS Lambda"));
    assert!(NoPlatform.to_string().contains("nimbus serve"));

    let both = [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"), ("K_SERVICE", "hello")];
    let chosen = choose(&both, None).unwrap();
    assert_eq!(chosen.kind, PlatformKind::Lambda);
    assert!(
        chosen.reason.contains("K_SERVICE") && chosen.reason.contains("--platform"),
        "{}",
        chosen.reason
    );

    let asked = [
        ("NIMBUS_PLATFORM", "azure"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
    ];
    let chosen = choose(&asked, None).unwrap();
    assert_eq!(
        (chosen.kind, chosen.reason.as_str()),
        (PlatformKind::Azure, "NIMBUS_PLATFORM=azure")
    );
    let chosen = choose(&asked, Some(PlatformKind::Knative)).unwrap();
    assert_eq!(
        (chosen.kind, chosen.reason.as_str()),
        (PlatformKind::Knative, "--platform knative")
    );

    assert_eq!("Lambda".parse::<PlatformKind>(), Ok(PlatformKind::Lambda));
    assert_eq!(
        "aws".parse::<PlatformKind>().unwrap_err().to_string(),
        "unknown platform \"aws\": expected lambda, fc, knative or azure"
    );
    // The platform variables are not Nimbus settings: never warned about.
    let s = settings(&[("K_SERVICE", "hello"), ("FC_FUNCTION_NAME", "x")]).unwrap();
    assert_eq!(s.unknown(None).count(), 0);
}

/// Function Compute's port defaults to 9000; `0` and blanks are no port.
#[test]
fn function_compute_listens_on_its_port_or_9000() {
    assert_eq!(settings(&[]).unwrap().fc.port(), 9000);
    assert_eq!(settings(&[("FC_CUSTOM_LISTEN_PORT", " ")]).unwrap().fc.port(), 9000);
    let e = settings(&[("FC_CUSTOM_LISTEN_PORT", "0")]).unwrap_err();
    assert_eq!(e.name(), "FC_CUSTOM_LISTEN_PORT");
    assert!(e.to_string().contains("a TCP port"), "{e}");
}

#[test]
fn oos_credentials_come_as_a_pair_and_are_never_printed() {
    let s = settings(&[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.key"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "the-secret"),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", "the-token"),
        ("FC_REGION", "cn-shanghai"),
        ("ALIBABA_CLOUD_REGION_ID", "cn-hangzhou"),
    ])
    .unwrap();
    let key = s.oos.credentials.clone().unwrap();
    assert_eq!(
        (key.id.as_str(), key.secret.as_str(), key.security_token.as_deref()),
        ("STS.key", "the-secret", Some("the-token"))
    );
    assert_eq!(s.oos.region.as_deref(), Some("cn-shanghai"), "FC_REGION wins");
    let shown = format!("{s:?}");
    assert!(shown.contains("STS.key") && !shown.contains("the-secret") && !shown.contains("the-token"));
    // A key id without its secret is no credentials.
    let half = settings(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.key")]).unwrap();
    assert_eq!(half.oos.credentials, None);
    assert_eq!(half.unknown(None).count(), 0);
}

#[test]
fn the_custom_handler_port_is_a_port_and_blank_is_unset() {
    assert_eq!(
        settings(&[("FUNCTIONS_CUSTOMHANDLER_PORT", " ")]).unwrap().azure.port,
        None
    );
    for bad in ["70000", "http", "-1"] {
        let e = settings(&[("FUNCTIONS_CUSTOMHANDLER_PORT", bad)]).unwrap_err();
        assert_eq!(e.name(), "FUNCTIONS_CUSTOMHANDLER_PORT", "{e}");
        assert!(e.to_string().contains("a TCP port from 1 to 65535"), "{e}");
    }
}
