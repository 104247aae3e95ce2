//! Declared configuration is visible to the guest; nothing else is.

use crate::{TOKEN, shared_gateway};
use nimbus_core::{BootError, BootOptions, Host};
use nimbus_tests::get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_config_is_visible_and_nothing_else() {
    let (gw, _) = shared_gateway().await;
    let v = get(gw.addr(), "/config?key=greeting").await.json();
    assert_eq!(v["value"], "hi from the manifest");
    let all: std::collections::BTreeMap<String, String> = v["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().into(), kv[1].as_str().unwrap().into()))
        .collect();
    let keys: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["greeting", "path", "region", "token"],
        "optional unset key must be absent"
    );
    assert_eq!(all["path"], std::env::var("PATH").unwrap());
    assert_eq!(all["region"], "eu-west-1");
    assert_eq!(all["token"], TOKEN, "file source, trailing newline removed");
    // The host's environment is not the guest's.
    assert_eq!(v["env"], serde_json::json!([]));
    // Undeclared keys do not exist, even if the host has such a variable.
    let v = get(gw.addr(), "/config?key=HOME").await.json();
    assert_eq!(v["value"], serde_json::Value::Null);
    let v = get(gw.addr(), "/config?key=optional").await.json();
    assert_eq!(v["value"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_required_config_fails_boot_naming_the_key() {
    let m = nimbus_tests::manifest(
        r#"
manifest_version = 1
[function.needs]
component = "{CONFIG_GET}"
[function.needs.config]
db_url = { env = "NIMBUS_TEST_SURELY_UNSET_DB_URL" }
"#,
    );
    let err = match Host::boot(m, BootOptions::default()).await {
        Err(e) => e,
        Ok(_) => panic!("boot must fail"),
    };
    assert!(matches!(err, BootError::Config { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("db_url") && msg.contains("NIMBUS_TEST_SURELY_UNSET_DB_URL") && msg.contains("`needs`"),
        "{msg}"
    );
}
