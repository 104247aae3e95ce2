//! OOS Parameter Store config sources (`oos` / `oos_path`) end to end: Nimbus's own OOS client, signing
//! with Alibaba Cloud's V3 signature, against a stand-in OOS the tests start (`nimbus_tests::oos`) that
//! checks every signature with Alibaba Cloud's Python signer; the guest reads the values through
//! `wasi:config/store` (the `config_get` test program).

use super::config_remote::{boot, boot_error, config_manifest, guest_config, wait_for};
use nimbus_core::caps::config::{AccessKey, OosProvider};
use nimbus_core::settings::OosSettings;
use nimbus_core::{BootError, BootOptions};
use nimbus_tests::oos::{FakeOos, KEY_ID, KEY_SECRET, State, TOKEN};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Boot options reading OOS keys from `fake`, signing with `secret` (the fake's, unless a test says).
fn on(fake: &FakeOos, secret: &str) -> BootOptions {
    BootOptions {
        oos: OosProvider::new(&OosSettings {
            region: Some("cn-hangzhou".into()),
            endpoint: Some(fake.endpoint()),
            credentials: Some(AccessKey {
                id: KEY_ID.into(),
                secret: secret.into(),
                security_token: Some(TOKEN.into()),
            }),
        }),
        ..BootOptions::default()
    }
}

/// Plain and secret parameters of a small shop, a path of five plain and one secret parameter (three pages
/// of two), eleven plain names (two `GetParameters` batches) and a sibling outside the path.
fn shop() -> State {
    let mut plain = map(&[
        ("/shop/url", "postgres://db"),
        ("/shop/db/host", "db.internal"),
        ("/shop/db/port", "5432"),
        ("/shop/db/user", "app"),
        ("/shop/db/replica/host", "replica.internal"),
        ("/shop/db/replica/port", "5433"),
        ("/shop/dbx/host", "not under the path"),
    ]);
    for i in 0..11 {
        plain.insert(format!("/shop/many/n{i}"), format!("v{i}"));
    }
    State {
        plain,
        secret: map(&[("shop-token", "s3cr3t"), ("/shop/db/password", "pw")]),
        page_size: 2,
        ..State::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oos_plain_secret_and_path_values_reach_the_guest() {
    let fake = FakeOos::start(&shop());
    let mut keys = "url = { oos = \"/shop/url\" }\ntoken = { oos = \"shop-token\", secret = true }\n\
                    db = { oos_path = \"/shop/db\" }\ngreeting = { value = \"hi\" }\n"
        .to_string();
    for i in 0..11 {
        keys.push_str(&format!("n{i} = {{ oos = \"/shop/many/n{i}\" }}\n"));
    }
    let (_host, gw) = boot(config_manifest("0s", &keys), on(&fake, KEY_SECRET)).await;
    let mut want = map(&[
        ("url", "postgres://db"),
        ("token", "s3cr3t"),
        ("db.host", "db.internal"),
        ("db.port", "5432"),
        ("db.user", "app"),
        ("db.replica.host", "replica.internal"),
        ("db.replica.port", "5433"),
        ("db.password", "pw"),
        ("greeting", "hi"),
    ]);
    for i in 0..11 {
        want.insert(format!("n{i}"), format!("v{i}"));
    }
    assert_eq!(
        guest_config(gw.addr()).await,
        want,
        "exactly the declared keys, secrets decrypted"
    );

    let requests = fake.requests();
    let actions: Vec<&str> = requests.iter().filter_map(|r| r["action"].as_str()).collect();
    let count = |a: &str| actions.iter().filter(|x| **x == a).count();
    assert_eq!(count("GetParameters"), 2, "13 names in batches of 10: {actions:?}");
    assert_eq!(
        count("GetSecretParameters"),
        1,
        "only the batch with a secret name asks again: {actions:?}"
    );
    let secret_names: Vec<&str> = requests
        .iter()
        .filter(|r| r["action"] == "GetSecretParameters")
        .filter_map(|r| r["query"]["Names"].as_str())
        .collect();
    assert_eq!(
        secret_names,
        [r#"["shop-token"]"#],
        "only the names GetParameters did not return"
    );
    assert_eq!(
        count("GetParametersByPath"),
        3,
        "five plain parameters in pages of two: {actions:?}"
    );
    assert_eq!(count("GetSecretParametersByPath"), 1, "{actions:?}");
    assert!(
        requests
            .iter()
            .all(|r| r["token"] == true && r["query"]["RegionId"] == "cn-hangzhou"),
        "every request carries the security token and the region: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_required_oos_parameter_fails_boot_naming_key_and_parameter() {
    let fake = FakeOos::start(&shop());
    let keys = "url = { oos = \"/shop/url\" }\ndb_url = { oos = \"/shop/db-url\" }\n\
                opt = { oos = \"/shop/opt\", required = false }\nregion = { oos = \"/shop/region\", default = \"cn\" }";
    let err = boot_error(config_manifest("0s", keys), on(&fake, KEY_SECRET)).await;
    assert!(matches!(err, BootError::Config { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("`cfg`") && msg.contains("`db_url`") && msg.contains("OOS parameter /shop/db-url does not exist"),
        "{msg}"
    );
    // A path with nothing under it fails the same way; optional and defaulted keys do not.
    let err = boot_error(
        config_manifest("0s", "db = { oos_path = \"/shop/nothing\" }"),
        on(&fake, KEY_SECRET),
    )
    .await;
    assert!(
        err.to_string().contains("`db`") && err.to_string().contains("no OOS parameters under /shop/nothing/"),
        "{err}"
    );
    let keys = "opt = { oos = \"/shop/opt\", required = false }\nregion = { oos = \"/shop/region\", default = \"cn\" }\n\
                extra = { oos_path = \"/shop/extra\", required = false }";
    let (_host, gw) = boot(config_manifest("0s", keys), on(&fake, KEY_SECRET)).await;
    assert_eq!(guest_config(gw.addr()).await, map(&[("region", "cn")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oos_refresh_picks_up_changed_values_and_keeps_them_through_errors() {
    let mut state = shop();
    let fake = FakeOos::start(&state);
    let keys = "url = { oos = \"/shop/url\" }\ntoken = { oos = \"shop-token\" }\ndb = { oos_path = \"/shop/db\" }";
    let (_host, gw) = boot(config_manifest("300ms", keys), on(&fake, KEY_SECRET)).await;
    assert_eq!(guest_config(gw.addr()).await["token"], "s3cr3t");

    state.secret.insert("shop-token".into(), "rotated".into());
    state.plain.insert("/shop/db/schema".into(), "v2".into());
    fake.set(&state);
    let seen = wait_for(gw.addr(), "token", "rotated", Duration::from_secs(15)).await;
    assert_eq!(
        seen.as_deref(),
        Some("rotated"),
        "a changed secret shows up after a refresh"
    );
    let seen = wait_for(gw.addr(), "db.schema", "v2", Duration::from_secs(15)).await;
    assert_eq!(seen.as_deref(), Some("v2"), "a new parameter under the path shows up");

    // The token expires: refreshes fail, and the last good values stay.
    state.expired_tokens = vec![TOKEN.into()];
    state.plain.insert("/shop/url".into(), "postgres://unseen".into());
    fake.set(&state);
    let failing_since = fake.requests().len();
    let start = Instant::now();
    while fake.requests().len() < failing_since + 4 && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = guest_config(gw.addr()).await;
    assert_eq!(seen.get("url").map(String::as_str), Some("postgres://db"));
    assert_eq!(seen.get("token").map(String::as_str), Some("rotated"));
    assert_eq!(seen.get("db.schema").map(String::as_str), Some("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oos_signature_and_token_errors_fail_boot_clearly() {
    let mut state = shop();
    let fake = FakeOos::start(&state);
    let m = || config_manifest("0s", "url = { oos = \"/shop/url\" }");
    let err = boot_error(m(), on(&fake, "not-the-secret")).await.to_string();
    assert!(
        err.contains("`url`")
            && err.contains("cannot fetch OOS parameter /shop/url")
            && err.contains("GetParameters failed with HTTP 400: SignatureDoesNotMatch"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret") && !err.contains(TOKEN),
        "no credentials in errors: {err}"
    );

    state.expired_tokens = vec![TOKEN.into()];
    fake.set(&state);
    let err = boot_error(m(), on(&fake, KEY_SECRET)).await.to_string();
    assert!(
        err.contains("InvalidSecurityToken.Expired: Specified SecurityToken is expired."),
        "{err}"
    );

    // Without the security token, the fake refuses the temporary key: the header is what it checks.
    state.expired_tokens.clear();
    fake.set(&state);
    let opts = on(&fake, KEY_SECRET);
    if let Some(creds) = opts.oos.credentials() {
        creds.set(AccessKey {
            id: KEY_ID.into(),
            secret: KEY_SECRET.into(),
            security_token: None,
        });
    }
    let err = boot_error(m(), opts).await.to_string();
    assert!(err.contains("InvalidSecurityToken.MismatchWithAccessKey"), "{err}");
    let both = config_manifest("0s", "url = { oos = \"/shop/url\" }\ndb = { oos_path = \"/shop/db\" }");
    let (_host, gw) = boot(both, on(&fake, KEY_SECRET)).await;
    assert_eq!(guest_config(gw.addr()).await["url"], "postgres://db");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_file_answers_oos_keys_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("params.toml");
    std::fs::write(
        &file,
        "\"/shop/url\" = \"postgres://local\"\n\"shop-token\" = \"local-token\"\n\"/shop/db/host\" = \"localhost\"\n",
    )
    .unwrap();
    let keys = "url = { oos = \"/shop/url\" }\ntoken = { oos = \"shop-token\" }\ndb = { oos_path = \"/shop/db\" }";
    let opts = BootOptions {
        oos: OosProvider::overrides_file(&file).unwrap(),
        ..BootOptions::default()
    };
    let (_host, gw) = boot(config_manifest("0s", keys), opts).await;
    assert_eq!(
        guest_config(gw.addr()).await,
        map(&[
            ("url", "postgres://local"),
            ("token", "local-token"),
            ("db.host", "localhost")
        ])
    );
}
