//! The Terraform examples deployed for real against `moto_server`, then proven to wire what the runtime needs:
//! each example's stack is applied from a scratch copy of `terraform/`, the deployed function's configuration
//! (environment, role, code hash, runtime) is read back from moto's Lambda API, and the packaged `bootstrap`
//! runs under the Lambda Runtime API emulator with exactly that environment, against the tables, bucket and
//! queue Terraform created (moto cannot run the function itself, so the emulator plays Lambda). Every stack is
//! destroyed at the end. The packages are the repository's `nimbus.toml`, as shipped.
//!
//! Skipped, with a loud message, only when terraform or the AWS provider cannot be had at all.

use super::{Runtime, http_json, nimbus, unzip};
use nimbus_tests::lambda_emulator::{InvokeOptions, LambdaEmulator};
use nimbus_tests::moto::{Moto, TaskStore};
use nimbus_tests::terraform::{Example, available};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shipped manifest's functions, packaged once per test binary with this build's `bootstrap`.
struct Shipped {
    /// `dist/lambda-x86_64`.
    dir: PathBuf,
    /// Each function's `<name>.zip`, unpacked.
    unpacked: PathBuf,
    /// How long `nimbus package` took.
    took: Duration,
}

fn shipped() -> &'static Shipped {
    static S: OnceLock<Shipped> = OnceLock::new();
    S.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("terraform-packages");
        let _ = std::fs::remove_dir_all(&out);
        let started = Instant::now();
        let run = nimbus()
            .args(["package", "--target", "lambda", "--arch", "x86_64", "--manifest"])
            .arg(root.join("nimbus.toml"))
            .args(["--bootstrap", env!("CARGO_BIN_EXE_bootstrap")])
            .arg("--out")
            .arg(out.join("dist"))
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            run.status.success(),
            "nimbus package failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let dir = out.join("dist/lambda-x86_64");
        let unpacked = out.join("unpacked");
        for f in ["hello", "chat", "sha-task"] {
            unzip(&dir.join(format!("{f}.zip")), &unpacked.join(f));
        }
        Shipped { dir, unpacked, took }
    })
}

/// Whether the deployment tests can run here; prints why not, loudly, when they cannot.
fn terraform_or_skip(test: &str) -> bool {
    match available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!(
                "\n!!!!! SKIPPED {test}: {why}\n!!!!! install terraform and the hashicorp/aws provider to run it\n"
            );
            false
        }
    }
}

fn description(function: &str) -> Value {
    let text = std::fs::read_to_string(shipped().dir.join(format!("{function}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The deployed function's environment, after checking the rest of its configuration matches the package.
async fn deployed_environment(moto: &Moto, function: &str, package: &str) -> Vec<(String, String)> {
    let config = moto.lambda_configuration(function).await;
    let d = description(package);
    assert_eq!(config["Runtime"], "provided.al2023", "{config}");
    assert_eq!(config["Handler"], "bootstrap", "{config}");
    assert_eq!(config["Architectures"], json!([d["architecture"]]), "{config}");
    assert_eq!(config["Timeout"], d["timeout_seconds"], "{config}");
    assert_eq!(config["MemorySize"], d["memory_mb"], "{config}");
    assert_eq!(
        config["CodeSha256"], d["packages"]["zip_sha256"],
        "the deployed code is the package: {config}"
    );
    assert_eq!(config["TracingConfig"]["Mode"], "Active", "{config}");
    assert!(
        config["Role"]
            .as_str()
            .is_some_and(|r| r.starts_with("arn:aws:iam::123456789012:role/")),
        "{config}"
    );
    config["Environment"]["Variables"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The AWS settings a process outside AWS needs to reach moto (Lambda gives the real ones).
fn aws_env(moto: &Moto) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Starts the unpacked shipped function under a fresh emulator with `env`.
async fn run_deployed(package: &str, env: &[(String, String)]) -> Runtime {
    let task = shipped().unpacked.join(package);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Runtime::start_with(LambdaEmulator::start().await, &task.join("bootstrap"), &task, &env).await
}

/// An HTTP API (payload 2.0) event for `route_key` as API Gateway sends it through a `$default` stage.
fn api_event(api_id: &str, route_key: &str, method: &str, path: &str, query: &str, body: &str) -> Value {
    let mut ev = super::http_api(method, path, json!({"content-type": "application/json"}), body);
    ev["routeKey"] = json!(route_key);
    ev["requestContext"]["routeKey"] = json!(route_key);
    ev["requestContext"]["apiId"] = json!(api_id);
    ev["requestContext"]["domainName"] = json!(format!("{api_id}.execute-api.us-east-1.amazonaws.com"));
    ev["rawQueryString"] = json!(query);
    ev
}

/// The route keys moto holds for an HTTP or WebSocket API.
async fn route_keys(moto: &Moto, api_id: &str) -> Vec<String> {
    let reply = moto
        .api("apigateway", "GET", &format!("/v2/apis/{api_id}/routes"), None)
        .await;
    assert_eq!(reply.status, 200, "GetRoutes: {}", reply.text());
    let mut keys: Vec<String> = reply.json()["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|r| r["routeKey"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The role's inline policies, as applied (moto's IAM `GetRolePolicy`), joined into one JSON array.
async fn role_policies(moto: &Moto, role_arn: &str) -> Value {
    let role = role_arn.rsplit('/').next().unwrap();
    let list = moto
        .api(
            "iam",
            "POST",
            "/",
            Some(format!("Action=ListRolePolicies&Version=2010-05-08&RoleName={role}").as_bytes()),
        )
        .await;
    assert_eq!(list.status, 200, "ListRolePolicies: {}", list.text());
    let text = list.text();
    let names: Vec<&str> = text
        .split("<member>")
        .skip(1)
        .filter_map(|m| m.split("</member>").next())
        .collect();
    let mut documents = Vec::new();
    for name in names {
        let got = moto
            .api(
                "iam",
                "POST",
                "/",
                Some(format!("Action=GetRolePolicy&Version=2010-05-08&RoleName={role}&PolicyName={name}").as_bytes()),
            )
            .await;
        let text = got.text();
        let doc = text
            .split("<PolicyDocument>")
            .nth(1)
            .and_then(|d| d.split("</PolicyDocument>").next())
            .unwrap_or_else(|| panic!("no policy document: {text}"));
        let decoded = decode_xml_text(doc);
        let json = percent_decode(&decoded);
        documents.push(serde_json::from_str::<Value>(&json).unwrap_or_else(|e| panic!("{e}: {json}")));
    }
    Value::Array(documents)
}

fn decode_xml_text(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// IAM returns policy documents URL-encoded (RFC 3986: `%XX` only).
fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s.as_bytes()[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(s.as_bytes()[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `(action, resource)` pair the policies grant.
fn grants(policies: &Value) -> Vec<(String, String)> {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => vec![],
        }
    };
    let mut out = Vec::new();
    for doc in policies.as_array().into_iter().flatten() {
        for st in doc["Statement"].as_array().into_iter().flatten() {
            assert_eq!(st["Effect"], "Allow", "{st}");
            for action in list(&st["Action"]) {
                for resource in list(&st["Resource"]) {
                    out.push((action.clone(), resource));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn hello_http_example_deploys_on_moto_and_answers_through_its_http_api() {
    if !terraform_or_skip("hello_http_example_deploys_on_moto_and_answers_through_its_http_api") {
        return;
    }
    let moto = nimbus_tests::moto::shared();
    let dist = shipped().dir.display().to_string();
    let vars = [("package_dir", dist.as_str()), ("name", "tf-hello")];
    let stack = Example::on_moto("hello-http", moto);
    stack.init();

    // A route the manifest does not declare fails at plan, before anything exists.
    let (ok, out) = stack.plan(&[
        ("package_dir", dist.as_str()),
        ("name", "tf-hello"),
        ("routes", r#"["GET /nope"]"#),
    ]);
    assert!(!ok, "an undeclared route must fail the plan:\n{out}");
    assert!(out.contains("GET /nope"), "the error names the route:\n{out}");

    let took = stack.apply(&vars);
    eprintln!(
        "hello-http: nimbus package {:?}, terraform apply {took:?}",
        shipped().took
    );
    let outputs = stack.outputs();
    let function = outputs["function_name"].as_str().unwrap().to_owned();
    let api_id = outputs["api_id"].as_str().unwrap().to_owned();
    assert_eq!(route_keys(moto, &api_id).await, ["GET /hello"]);

    let env = deployed_environment(moto, &function, "hello").await;
    let config = moto.lambda_configuration(&function).await;
    let policies = role_policies(moto, config["Role"].as_str().unwrap()).await;
    for (action, resource) in grants(&policies) {
        assert!(
            action.starts_with("logs:") || action.starts_with("xray:"),
            "hello declares nothing else, yet the role grants {action} on {resource}"
        );
        assert!(resource != "*" || action.starts_with("xray:"), "{action} on *");
    }

    let mut run_env = env.clone();
    run_env.extend(aws_env(moto));
    let rt = run_deployed("hello", &run_env).await;
    let answer = rt
        .invoke(api_event(&api_id, "GET /hello", "GET", "/hello", "name=terraform", ""))
        .await
        .json();
    assert_eq!(answer["statusCode"], 200, "{answer}; host: {:?}", rt.host_logs());
    assert!(
        answer["body"].as_str().is_some_and(|b| b.contains("terraform")),
        "{answer}"
    );
    drop(rt);

    let took = stack.destroy(&vars);
    eprintln!("hello-http: terraform destroy {took:?}");
    assert_eq!(stack.state_list(), Vec::<String>::new());
}

#[tokio::test]
async fn chat_websocket_example_deploys_on_moto_and_broadcasts_through_the_management_api() {
    use nimbus_tests::fault_proxy::FaultProxy;
    if !terraform_or_skip("chat_websocket_example_deploys_on_moto_and_broadcasts_through_the_management_api") {
        return;
    }
    let moto = nimbus_tests::moto::shared();
    let dist = shipped().dir.display().to_string();
    let vars = [("package_dir", dist.as_str()), ("name", "tf-chat")];
    let stack = Example::on_moto("chat-websocket", moto);
    stack.init();
    let took = stack.apply(&vars);
    eprintln!("chat-websocket: terraform apply {took:?}");
    let outputs = stack.outputs();
    let function = outputs["function_name"].as_str().unwrap().to_owned();
    let api_id = outputs["api_id"].as_str().unwrap().to_owned();
    let table = outputs["table_name"].as_str().unwrap().to_owned();
    let mut expected_keys: Vec<String> = description("chat")["websocket"]["route_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    expected_keys.sort();
    assert_eq!(route_keys(moto, &api_id).await, expected_keys);

    let env = deployed_environment(moto, &function, "chat").await;
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("NIMBUS_KV_TABLE"), Some(table.clone()), "{env:?}");
    assert_eq!(
        get("NIMBUS_WEBSOCKET_ENDPOINT"),
        Some(format!("https://{api_id}.execute-api.us-east-1.amazonaws.com/live")),
        "{env:?}"
    );
    let config = moto.lambda_configuration(&function).await;
    let granted = grants(&role_policies(moto, config["Role"].as_str().unwrap()).await);
    let manage: Vec<&String> = granted
        .iter()
        .filter(|(a, _)| a == "execute-api:ManageConnections")
        .map(|(_, r)| r)
        .collect();
    assert!(!manage.is_empty(), "{granted:?}");
    for r in &manage {
        assert!(
            r.starts_with(&format!("arn:aws:execute-api:us-east-1:123456789012:{api_id}/live/")),
            "ManageConnections beyond this API's stage: {r}"
        );
    }
    assert!(
        granted
            .iter()
            .all(|(a, r)| !a.starts_with("dynamodb:") || r.contains(&table)),
        "{granted:?}"
    );

    // The Management API the function sends to is moto's, behind a recording proxy standing in for the
    // deployed endpoint (moto does not serve execute-api host names).
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let mut run_env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k != "NIMBUS_WEBSOCKET_ENDPOINT")
        .collect();
    run_env.push(("NIMBUS_WEBSOCKET_ENDPOINT".into(), proxy.endpoint()));
    run_env.extend(aws_env(moto));
    let rt = run_deployed("chat", &run_env).await;
    super::chat_conversation(&rt, &proxy, &api_id).await;
    drop(rt);

    let took = stack.destroy(&vars);
    eprintln!("chat-websocket: terraform destroy {took:?}");
    assert_eq!(stack.state_list(), Vec::<String>::new());
}

#[tokio::test]
async fn long_task_example_deploys_on_moto_and_runs_a_task_to_the_exact_result() {
    if !terraform_or_skip("long_task_example_deploys_on_moto_and_runs_a_task_to_the_exact_result") {
        return;
    }
    let moto = nimbus_tests::moto::shared();
    let dist = shipped().dir.display().to_string();
    let vars = [("package_dir", dist.as_str()), ("name", "tf-long-task")];
    let stack = Example::on_moto("long-task", moto);
    stack.init();
    let took = stack.apply(&vars);
    eprintln!("long-task: terraform apply {took:?}");
    let outputs = stack.outputs();
    let function = outputs["function_name"].as_str().unwrap().to_owned();
    let api_id = outputs["api_id"].as_str().unwrap().to_owned();
    let out = |k: &str| outputs[k].as_str().unwrap_or_else(|| panic!("output {k}")).to_owned();
    let store = TaskStore::existing(
        &out("bucket_name"),
        &out("table_name"),
        &out("queue_url"),
        &out("queue_arn"),
    );
    assert_eq!(
        route_keys(moto, &api_id).await,
        ["GET /tasks/sha-task/{id}", "POST /tasks/sha-task"]
    );

    let env = deployed_environment(moto, &function, "sha-task").await;
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("NIMBUS_STATE_BUCKET"), Some(store.bucket.clone()), "{env:?}");
    assert_eq!(get("NIMBUS_TASK_TABLE"), Some(store.table.clone()), "{env:?}");
    assert_eq!(get("NIMBUS_TASK_QUEUE_URL"), Some(store.queue_url.clone()), "{env:?}");

    // The event source mapping: the continuation queue, one record per batch, partial batch failures.
    let config = moto.lambda_configuration(&function).await;
    let arn = config["FunctionArn"].as_str().unwrap();
    let mappings = moto
        .api(
            "lambda",
            "GET",
            &format!("/2015-03-31/event-source-mappings/?FunctionName={arn}"),
            None,
        )
        .await
        .json();
    let esm = &mappings["EventSourceMappings"][0];
    assert_eq!(esm["EventSourceArn"], store.queue_arn, "{mappings}");
    assert_eq!(esm["BatchSize"], 1, "{mappings}");
    assert_eq!(
        esm["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"]),
        "{mappings}"
    );

    let mut run_env = env.clone();
    run_env.extend(aws_env(moto));
    let rt = run_deployed("sha-task", &run_env).await;
    let timeout = Duration::from_secs(description("sha-task")["timeout_seconds"].as_u64().unwrap());
    let lambda = InvokeOptions {
        timeout,
        ..InvokeOptions::default()
    };
    let start = api_event(
        &api_id,
        "POST /tasks/sha-task",
        "POST",
        "/tasks/sha-task",
        "",
        r#"{"mib": 24, "seed": 9}"#,
    );
    let (status, started) = http_json(&rt.invoke(start).await.json());
    assert_eq!(status, 202, "{started}; host: {:?}", rt.host_logs());
    let id = started["task_id"].as_str().unwrap().to_owned();
    let status_of = || {
        api_event(
            &api_id,
            "GET /tasks/sha-task/{id}",
            "GET",
            &format!("/tasks/sha-task/{id}"),
            "",
            "",
        )
    };

    // Play the event source mapping Terraform created, on the queue Terraform created.
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < until, "task not done; host logs: {:?}", rt.host_logs());
        let Some(batch) = store.esm_receive(moto, 1, timeout + Duration::from_secs(3)).await else {
            let (_, record) = http_json(&rt.invoke(status_of()).await.json());
            if record["status"] == "done" || record["status"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let resp = rt.emu.invoke_with(batch.event.to_string(), lambda.clone()).await.json();
        let failures: Vec<String> = resp["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("not a batch response: {resp}"))
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned())
            .collect();
        store.esm_complete(moto, &batch, &failures).await;
    }
    let (status, record) = http_json(&rt.invoke(status_of()).await.json());
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(
        record["result"]["sha256"],
        nimbus_tests::native::sha_chain(24, 9),
        "{record}"
    );
    drop(rt);

    // moto cannot destroy a versioned bucket holding delete markers (see terraform/README.md): empty it
    // first, every version and marker, as a user of moto would.
    purge_versions(moto, &store.bucket).await;
    let took = stack.destroy(&vars);
    eprintln!("long-task: terraform destroy {took:?}");
    assert_eq!(stack.state_list(), Vec::<String>::new());
}

/// Deletes every object version and delete marker of a bucket.
async fn purge_versions(moto: &Moto, bucket: &str) {
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let listed = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListObjectVersions: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    let versions = listed.versions().iter().map(|v| {
        (
            v.key().unwrap_or_default().to_owned(),
            v.version_id().map(str::to_owned),
        )
    });
    let markers = listed.delete_markers().iter().map(|m| {
        (
            m.key().unwrap_or_default().to_owned(),
            m.version_id().map(str::to_owned),
        )
    });
    for (key, version) in versions.chain(markers).collect::<Vec<_>>() {
        s3.delete_object()
            .bucket(bucket)
            .key(&key)
            .set_version_id(version)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteObject {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    }
}
