//! SSM Parameter Store config sources, against a real `moto_server` the tests
//! start themselves (`nimbus_tests::moto`), read by the guest through
//! `wasi:config/store` (the `config_get` test program).

use super::config_remote::{boot, boot_error, config_manifest, guest_config, wait_for};
use aws_sdk_ssm::types::ParameterType;
use nimbus_core::caps::config::SsmProvider;
use nimbus_core::{BootError, BootOptions};
use nimbus_tests::moto::{self, Moto, put_parameter};
use nimbus_tests::{get, manifest};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A parameter prefix no other test (or earlier run against the same server) uses.
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("/nimbus-test/{test}-{nanos}")
}

/// Boot options reading SSM keys from `moto`.
fn on(moto: &Moto) -> BootOptions {
    BootOptions {
        ssm: SsmProvider::aws(moto.settings()),
        ..BootOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_parameters_of_every_kind_reach_the_guest() {
    let moto = moto::shared();
    let ssm = moto.ssm().await;
    let p = prefix("kinds");
    put_parameter(&ssm, &format!("{p}/url"), "postgres://db", ParameterType::String).await;
    put_parameter(
        &ssm,
        &format!("{p}/hosts"),
        "a.example,b.example",
        ParameterType::StringList,
    )
    .await;
    put_parameter(&ssm, &format!("{p}/token"), "s3cr3t", ParameterType::SecureString).await;
    put_parameter(&ssm, &format!("{p}/db/host"), "db.internal", ParameterType::String).await;
    put_parameter(&ssm, &format!("{p}/db/replica/port"), "5433", ParameterType::String).await;
    put_parameter(&ssm, &format!("{p}/db/password"), "pw", ParameterType::SecureString).await;
    // A sibling that shares the path's text but is not under it.
    put_parameter(&ssm, &format!("{p}/dbx/host"), "no", ParameterType::String).await;
    // 12 single parameters: GetParameters takes 10 names per call.
    let mut keys = format!(
        "url = {{ ssm = \"{p}/url\" }}\nhosts = {{ ssm = \"{p}/hosts\" }}\n\
         token = {{ ssm = \"{p}/token\", secret = true }}\ndb = {{ ssm_path = \"{p}/db\" }}\n\
         greeting = {{ value = \"hi\" }}\n"
    );
    for i in 0..12 {
        put_parameter(&ssm, &format!("{p}/many/n{i}"), &format!("v{i}"), ParameterType::String).await;
        keys.push_str(&format!("n{i} = {{ ssm = \"{p}/many/n{i}\" }}\n"));
    }
    let (_host, gw) = boot(config_manifest("0s", &keys), on(moto)).await;
    let seen = guest_config(gw.addr()).await;
    let mut want: BTreeMap<String, String> = [
        ("url", "postgres://db"),
        ("hosts", "a.example,b.example"),
        ("token", "s3cr3t"),
        ("db.host", "db.internal"),
        ("db.replica.port", "5433"),
        ("db.password", "pw"),
        ("greeting", "hi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for i in 0..12 {
        want.insert(format!("n{i}"), format!("v{i}"));
    }
    assert_eq!(seen, want, "exactly the declared keys, SecureStrings decrypted");
    // Undeclared parameters are not visible, not even by their SSM name.
    let v = get(gw.addr(), &format!("/config?key={p}/dbx/host")).await.json();
    assert_eq!(v["value"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_required_ssm_parameter_fails_boot_naming_key_and_parameter() {
    let moto = moto::shared();
    let p = prefix("missing");
    let m = config_manifest("0s", &format!("db_url = {{ ssm = \"{p}/db-url\" }}"));
    let err = boot_error(m, on(moto)).await;
    assert!(matches!(err, BootError::Config { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("`cfg`") && msg.contains("`db_url`") && msg.contains(&format!("{p}/db-url")),
        "{msg}"
    );
    // A path with nothing under it fails the same way.
    let m = config_manifest("0s", &format!("db = {{ ssm_path = \"{p}/db\" }}"));
    let msg = boot_error(m, on(moto)).await.to_string();
    assert!(msg.contains("`db`") && msg.contains(&format!("{p}/db/")), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_optional_and_defaulted_ssm_keys() {
    let moto = moto::shared();
    let p = prefix("optional");
    let keys = format!(
        "opt = {{ ssm = \"{p}/opt\", required = false }}\n\
         region = {{ ssm = \"{p}/region\", default = \"eu-west-1\" }}\n\
         extra = {{ ssm_path = \"{p}/extra\", required = false }}\n"
    );
    let (_host, gw) = boot(config_manifest("0s", &keys), on(moto)).await;
    let seen = guest_config(gw.addr()).await;
    assert_eq!(seen, BTreeMap::from([("region".to_string(), "eu-west-1".to_string())]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_refresh_shows_overwrites_and_keeps_values_that_disappear() {
    let moto = moto::shared();
    let ssm = moto.ssm().await;
    let p = prefix("refresh");
    put_parameter(&ssm, &format!("{p}/flag"), "v1", ParameterType::String).await;
    put_parameter(&ssm, &format!("{p}/db/host"), "h1", ParameterType::String).await;
    let keys = format!("flag = {{ ssm = \"{p}/flag\" }}\ndb = {{ ssm_path = \"{p}/db\" }}\n");
    let (host, gw) = boot(config_manifest("300ms", &keys), on(moto)).await;
    assert_eq!(guest_config(gw.addr()).await["flag"], "v1");
    let version = || host.function("cfg").unwrap().config_version().version;
    assert_eq!(version(), 1);

    put_parameter(&ssm, &format!("{p}/flag"), "v2", ParameterType::String).await;
    put_parameter(&ssm, &format!("{p}/db/port"), "5432", ParameterType::String).await;
    let seen = wait_for(gw.addr(), "flag", "v2", Duration::from_secs(15)).await;
    assert_eq!(
        seen.as_deref(),
        Some("v2"),
        "an overwrite shows up after the refresh interval"
    );
    let seen = wait_for(gw.addr(), "db.port", "5432", Duration::from_secs(15)).await;
    assert_eq!(seen.as_deref(), Some("5432"), "a new parameter under the path shows up");
    // Each refresh that changed a value is a new version (the two changes may land in one refresh).
    let changed = version();
    assert!((2..=3).contains(&changed), "version {changed}");

    // Deleted parameters keep their last good values through several refreshes.
    ssm.delete_parameter().name(format!("{p}/flag")).send().await.unwrap();
    ssm.delete_parameter()
        .name(format!("{p}/db/host"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = guest_config(gw.addr()).await;
    assert_eq!(seen.get("flag").map(String::as_str), Some("v2"));
    assert_eq!(seen.get("db.host").map(String::as_str), Some("h1"));
    assert_eq!(seen.get("db.port").map(String::as_str), Some("5432"));
    // Refreshes that changed nothing left the version as it was.
    assert_eq!(version(), changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_refresh_keeps_last_good_values_when_ssm_is_down() {
    // A private server, so stopping it affects no other test.
    let moto = Moto::start();
    let ssm = moto.ssm().await;
    let p = prefix("down");
    put_parameter(&ssm, &format!("{p}/flag"), "good", ParameterType::SecureString).await;
    let m = config_manifest("300ms", &format!("flag = {{ ssm = \"{p}/flag\" }}"));
    let (_host, gw) = boot(m, on(&moto)).await;
    assert_eq!(guest_config(gw.addr()).await["flag"], "good");
    drop(moto);
    // Several failed refreshes later (each retried, then given up), the value is still there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            guest_config(gw.addr()).await.get("flag").map(String::as_str),
            Some("good")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_overrides_file_stands_in_for_ssm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssm.toml");
    std::fs::write(
        &file,
        "\"/shop/db-url\" = \"postgres://local\"\n\"/shop/hosts\" = [\"a\", \"b\"]\n\
         \"/shop/db/host\" = \"localhost\"\n\"/shop/db/replica/port\" = \"6543\"\n",
    )
    .unwrap();
    let m = manifest(
        "manifest_version = 1\n[function.cfg]\ncomponent = \"{CONFIG_GET}\"\nroutes = [\"GET /config\"]\n\
         config_refresh = \"300ms\"\n[function.cfg.config]\nurl = { ssm = \"/shop/db-url\" }\n\
         hosts = { ssm = \"/shop/hosts\" }\ndb = { ssm_path = \"/shop/db\" }\n\
         missing = { ssm = \"/shop/nope\", default = \"d\" }\n",
    );
    let opts = BootOptions {
        ssm: SsmProvider::overrides_file(&file).unwrap(),
        ..BootOptions::default()
    };
    let (_host, gw) = boot(m, opts).await;
    let seen = guest_config(gw.addr()).await;
    let want: BTreeMap<String, String> = [
        ("url", "postgres://local"),
        ("hosts", "a,b"),
        ("db.host", "localhost"),
        ("db.replica.port", "6543"),
        ("missing", "d"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(seen, want);
    // The file is read again at each refresh.
    std::fs::write(
        &file,
        "\"/shop/db-url\" = \"postgres://edited\"\n\"/shop/hosts\" = \"a\"\n\"/shop/db/host\" = \"localhost\"\n",
    )
    .unwrap();
    let seen = wait_for(gw.addr(), "url", "postgres://edited", Duration::from_secs(15)).await;
    assert_eq!(seen.as_deref(), Some("postgres://edited"));
}
