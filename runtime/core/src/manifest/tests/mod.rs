use super::*;

mod websocket;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new("nimbus.toml"), Path::new("/app"))
}

#[test]
fn full_manifest_parses_with_defaults_applied() {
    let m = parse(
        r#"
manifest_version = 1
app = { name = "shop" }
defaults = { memory = "64MiB", timeout = "5s" }

[function.hello]
component = "hello.wasm"
routes = ["GET /hello", "ANY /hello/{*rest}", "/x/{id}"]
memory = "32MiB"
allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:*"]

[function.hello.config]
greeting = { value = "hi" }
region = { env = "AWS_REGION", default = "us-east-1" }
token = { file = "secrets/token", secret = true, required = false }

[function.echo]
component = "echo.wasm"
precompiled = "echo.cwasm.lz4"
concurrency = 3
"#,
    )
    .unwrap();
    assert_eq!(m.app_name, "shop");
    let hello = m.function("hello").unwrap();
    assert_eq!(hello.component, Path::new("/app/hello.wasm"));
    assert_eq!(hello.limits.memory, 32 << 20);
    assert_eq!(hello.limits.timeout, Duration::from_secs(5));
    assert_eq!(hello.limits.concurrency, 64);
    assert_eq!(hello.routes.len(), 3);
    assert_eq!(hello.routes[0].method, Some(http::Method::GET));
    assert_eq!(hello.routes[1].method, None);
    assert_eq!(hello.routes[0].line, 8);
    assert_eq!(hello.config["greeting"].source, ConfigSource::Value("hi".into()));
    assert_eq!(hello.config["region"].default.as_deref(), Some("us-east-1"));
    assert_eq!(
        hello.config["token"].source,
        ConfigSource::File("/app/secrets/token".into())
    );
    assert!(hello.config["token"].secret && !hello.config["token"].required);
    assert_eq!(hello.allowed_outbound_hosts.len(), 2);
    let echo = m.function("echo").unwrap();
    assert_eq!(echo.limits.memory, 64 << 20);
    assert_eq!(echo.limits.concurrency, 3);
    assert_eq!(echo.precompiled.as_deref(), Some(Path::new("/app/echo.cwasm.lz4")));
}

/// Each bad manifest must fail with the line and key named and a helpful message.
#[test]
fn bad_manifests_name_file_line_and_key() {
    let cases: &[(&str, Option<usize>, Option<&str>, &str)] = &[
        (
            "manifest_version = 1\nbogus = 3\n",
            Some(2),
            Some("bogus"),
            "unknown field `bogus`",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nmemroy = \"1MiB\"\n",
            Some(4),
            Some("function.a.memroy"),
            "unknown field `memroy`",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nmemory = \"12 parsecs\"\n",
            Some(4),
            Some("function.a.memory"),
            "invalid size unit",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\ntimeout = \"soon\"\n",
            Some(4),
            Some("function.a.timeout"),
            "invalid duration",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\ntimeout = \"1h\"\n",
            Some(4),
            Some("function.a.timeout"),
            "out of range",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nreuse = 0\n",
            Some(4),
            Some("function.a.reuse"),
            "reuse = 0 is out of range",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nreuse = \"yes\"\n",
            Some(4),
            Some("function.a.reuse"),
            "true, false, or the number of invocations",
        ),
        (
            "manifest_version = 2\n",
            Some(1),
            Some("manifest_version"),
            "unsupported manifest_version 2",
        ),
        (
            "[function.a]\ncomponent = \"a.wasm\"\n",
            Some(1),
            None,
            "missing field `manifest_version`",
        ),
        (
            "manifest_version = 1\n[function.a]\nroutes = []\n",
            Some(2),
            Some("function.a"),
            "missing field `component`",
        ),
        (
            "manifest_version = 1\n[function.Bad_Name]\ncomponent = \"a.wasm\"\n",
            Some(2),
            Some("function.Bad_Name"),
            "kebab-case",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nroutes = [\"FETCH /x\"]\n",
            Some(4),
            Some("function.a.routes"),
            "unknown method",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nroutes = [\"GET x\"]\n",
            Some(4),
            Some("function.a.routes"),
            "must start with '/'",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { value = \"1\", env = \"X\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "exactly one source",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm = \"/p\", ssm_path = \"/q/\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "exactly one source",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm = \"/has space\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "invalid SSM parameter name",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm = \"\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "invalid SSM parameter name",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm_path = \"shop/db\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "invalid SSM path",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm_path = \"/shop/db/\", default = \"x\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "no single value to default",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm = \"/p\", oos = \"/p\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "2 sources (`ssm`, `oos`)",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { oos = \"/shop/db.url\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "invalid OOS parameter name \"/shop/db.url\"",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { oos = \"\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "invalid OOS parameter name",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { oos_path = \"shop/db\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "invalid OOS path",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { oos_path = \"/shop//db\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "invalid OOS path",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { oos_path = \"/shop/db/\", default = \"x\" }\n",
            Some(5),
            Some("function.a.config.k"),
            "an `oos_path` key has no single value to default",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm = \"/p\", decrypt = true }\n",
            Some(5),
            Some("function.a.config.k.decrypt"),
            "unknown field `decrypt`",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nconfig_refresh = \"soon\"\n",
            Some(4),
            Some("function.a.config_refresh"),
            "invalid duration",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nconfig_refresh = \"10ms\"\n",
            Some(4),
            Some("function.a.config_refresh"),
            "too short",
        ),
        (
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\nallowed_outbound_hosts = [\"ftp://x\"]\n",
            Some(4),
            Some("function.a.allowed_outbound_hosts"),
            "invalid outbound host",
        ),
        ("manifest_version = 1\n[function.a\n", Some(2), None, "unclosed table"),
        (
            "manifest_version = \"one\"\n",
            Some(1),
            Some("manifest_version"),
            "invalid type",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, line, key, needle) in cases {
        let e = parse(text).expect_err(text);
        let shown = e.to_string();
        if !shown.starts_with("nimbus.toml") || !shown.contains(needle) || e.line != *line || e.key.as_deref() != *key {
            wrong.push(format!("{text:?}\n  got line {:?} key {:?}: {shown}", e.line, e.key));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn outbound_rules_match_scheme_host_and_port() {
    let r = OutboundRule::parse("https://api.example.com").unwrap();
    assert!(r.matches("https", "api.example.com", 443));
    assert!(!r.matches("http", "api.example.com", 80));
    assert!(!r.matches("https", "api.example.com", 8443));
    let w = OutboundRule::parse("https://*.example.com").unwrap();
    assert!(w.matches("https", "a.example.com", 443));
    assert!(!w.matches("https", "example.com", 443));
    assert!(!w.matches("https", "evilexample.com", 443));
    let any_port = OutboundRule::parse("http://127.0.0.1:*").unwrap();
    assert!(any_port.matches("http", "127.0.0.1", 8123));
    assert!(OutboundRule::parse("https://").is_err());
    assert!(OutboundRule::parse("https://a.com/path").is_err());
}

#[test]
fn outbound_ip_rules_are_ip_literals_and_ipv6_is_bracketed() {
    let v6 = OutboundRule::parse("http://[::1]").unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("[::1]", Some(80)));
    assert_eq!(v6.ip, Some("::1".parse().unwrap()));
    assert!(v6.matches("http", "[::1]", 80));
    assert!(
        v6.matches("http", "[0:0:0:0:0:0:0:1]", 80),
        "the same IP in another standard form"
    );
    assert!(!v6.matches("http", "[::ffff:127.0.0.1]", 80));
    let any = OutboundRule::parse("http://[fd12::7]:*").unwrap();
    assert_eq!(any.port, None);
    assert!(any.matches("http", "[fd12::7]", 9000));
    assert_eq!(OutboundRule::parse("https://[::1]:8443").unwrap().port, Some(8443));
    assert_eq!(
        OutboundRule::parse("http://[::1]:*").unwrap().to_string(),
        "http://[::1]:*"
    );
    for bad in [
        "http://::1",
        "http://[::1",
        "http://[::1]x",
        "http://[zz]:80",
        "http://a:b:80",
        "http://a.com:",
    ] {
        assert!(OutboundRule::parse(bad).is_err(), "{bad}");
    }
    // Only the dotted quad is an IPv4 literal; other spellings are names the resolver sees.
    let v4 = OutboundRule::parse("http://127.0.0.1:8080").unwrap();
    assert_eq!(v4.ip, Some("127.0.0.1".parse().unwrap()));
    for other in ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"] {
        assert_eq!(crate::manifest::literal_ip(other), None, "{other}");
        assert!(!v4.matches("http", other, 8080), "{other}");
    }
    assert_eq!(OutboundRule::parse("http://api.example.com").unwrap().ip, None);
    // A wildcard suffix never matches an IP literal, even one ending like it.
    let w = OutboundRule::parse("http://*.0.0.1:*").unwrap();
    assert!(!w.matches("http", "127.0.0.1", 80));
    assert!(w.matches("http", "a.0.0.1", 80));
    assert!(
        OutboundRule::parse("http://*.Example.COM")
            .unwrap()
            .matches("http", "A.example.com", 80)
    );
}

#[test]
fn reuse_is_off_by_default_and_takes_a_flag_or_a_count() {
    let reuse = |line: &str| {
        parse(&format!(
            "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n{line}\n"
        ))
        .unwrap()
        .functions[0]
            .reuse
    };
    assert_eq!(reuse(""), Reuse::Fresh);
    assert_eq!(reuse("reuse = false"), Reuse::Fresh);
    assert_eq!(reuse("reuse = 1"), Reuse::Fresh);
    assert_eq!(reuse("reuse = true"), Reuse::Warm { max_uses: None });
    assert_eq!(reuse("reuse = 500"), Reuse::Warm { max_uses: Some(500) });
    assert!(Reuse::Warm { max_uses: Some(2) }.keeps(1));
    assert!(!Reuse::Warm { max_uses: Some(2) }.keeps(2));
    assert!(Reuse::Warm { max_uses: None }.keeps(u32::MAX - 1));
    assert!(!Reuse::Fresh.keeps(0));
}

#[test]
fn ssm_sources_and_config_refresh_parse() {
    let m = parse(
        r#"
manifest_version = 1

[function.a]
component = "a.wasm"
config_refresh = "300ms"

[function.a.config]
db_url = { ssm = "/shop/db-url", secret = true }
hosts = { ssm = "/shop/hosts", default = "localhost", required = false }
pinned = { ssm = "/shop/flag:3" }
db = { ssm_path = "/shop/db" }
extra = { ssm_path = "/shop/extra/", required = false }

[function.b]
component = "b.wasm"
config_refresh = "0s"

[function.c]
component = "c.wasm"
"#,
    )
    .unwrap();
    let a = m.function("a").unwrap();
    assert_eq!(a.config_refresh, Some(Duration::from_millis(300)));
    assert_eq!(a.config["db_url"].source, ConfigSource::Ssm("/shop/db-url".into()));
    assert!(a.config["db_url"].secret && a.config["db_url"].required);
    assert_eq!(a.config["hosts"].default.as_deref(), Some("localhost"));
    assert!(!a.config["hosts"].required);
    assert_eq!(a.config["pinned"].source, ConfigSource::Ssm("/shop/flag:3".into()));
    // Paths always end in '/', so `/shop/db` never matches `/shop/dbx/...`.
    assert_eq!(a.config["db"].source, ConfigSource::SsmPath("/shop/db/".into()));
    assert_eq!(a.config["extra"].source, ConfigSource::SsmPath("/shop/extra/".into()));
    assert_eq!(m.function("b").unwrap().config_refresh, None, "0s: never refresh");
    assert_eq!(m.function("c").unwrap().config_refresh, Some(DEFAULT_CONFIG_REFRESH));
    assert!(m.uses_ssm());
    let plain = parse("manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n").unwrap();
    assert!(!plain.uses_ssm());
}

#[test]
fn oos_sources_parse_beside_ssm_ones() {
    let m = parse(
        r#"
manifest_version = 1

[function.a]
component = "a.wasm"

[function.a.config]
token = { oos = "shop-token", secret = true }
url = { oos = "/shop/db-url", default = "postgres://localhost", required = false }
db = { oos_path = "/shop/db" }
region = { ssm = "/shop/region" }
"#,
    )
    .unwrap();
    let a = m.function("a").unwrap();
    assert_eq!(a.config["token"].source, ConfigSource::Oos("shop-token".into()));
    assert_eq!(a.config["url"].source, ConfigSource::Oos("/shop/db-url".into()));
    assert_eq!(a.config["url"].default.as_deref(), Some("postgres://localhost"));
    assert_eq!(a.config["db"].source, ConfigSource::OosPath("/shop/db/".into()));
    assert!(m.uses_oos() && m.uses_ssm());
    let ssm_only = parse(
        "manifest_version = 1\n[function.a]\ncomponent = \"a.wasm\"\n[function.a.config]\nk = { ssm = \"/k\" }\n",
    )
    .unwrap();
    assert!(!ssm_only.uses_oos());
}

#[test]
fn task_section_parses_sizes_and_durations_and_defaults_the_rest() {
    let m = parse(
        "manifest_version = 1\n[function.report]\ncomponent = \"r.wasm\"\ntimeout = \"2s\"\n\
         task = { max_checkpoint = \"8MiB\", yield_margin = \"500ms\", max_attempts = 5 }\n\
         [function.plain]\ncomponent = \"p.wasm\"\ntimeout = \"40s\"\n[function.short]\ncomponent = \"s.wasm\"\n\
         timeout = \"2s\"\ntask = { max_attempts = 1 }\n",
    )
    .unwrap();
    let t = m.function("report").unwrap().task.unwrap();
    assert_eq!(t.max_checkpoint, 8 << 20);
    assert_eq!(t.yield_margin, Duration::from_millis(500));
    assert_eq!(t.max_attempts, 5);
    assert_eq!(m.function("plain").unwrap().task, None);
    // The default margin is 20 s, or a quarter of a shorter timeout.
    let short = m.function("short").unwrap().task.unwrap();
    assert_eq!(short.yield_margin, Duration::from_millis(500));
    assert_eq!(short.max_checkpoint, DEFAULT_MAX_CHECKPOINT);
    assert_eq!(
        TaskSpec::defaults(Duration::from_secs(900)).yield_margin,
        DEFAULT_YIELD_MARGIN
    );
}

#[test]
fn task_section_rejects_unknown_keys_and_bad_values_with_line_and_key() {
    let base = "manifest_version = 1\n[function.report]\ncomponent = \"r.wasm\"\ntimeout = \"2s\"\n";
    let e = parse(&format!("{base}task = {{ max_checkpont = \"1MiB\" }}\n")).unwrap_err();
    assert!(e.message.contains("unknown field `max_checkpont`"), "{e}");
    assert_eq!(e.line, Some(5));
    let e = parse(&format!("{base}task = {{ yield_margin = \"2s\" }}\n")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("function.report.task.yield_margin"));
    assert!(e.message.contains("shorter than the function's timeout"), "{e}");
    let e = parse(&format!("{base}task = {{ max_checkpoint = \"12\" }}\n")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("function.report.task.max_checkpoint"));
    let e = parse(&format!("{base}task = {{ max_attempts = 0 }}\n")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("function.report.task.max_attempts"));
    let e = parse(&format!("{base}task = {{ yield_margin = \"soon\" }}\n")).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
}
