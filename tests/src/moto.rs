//! A real `moto_server` (AWS service mock) on 127.0.0.1, started by the tests
//! themselves: SSM for config, S3 / DynamoDB / SQS for the durable task store
//! ([`Moto::task_store`]).
//!
//! [`shared`] starts one server per test binary; [`Moto::start`] starts a
//! private one (e.g. to stop it mid-test). The server runs under a small shell
//! watchdog reading our pipe, so it dies with the test process even though a
//! static is never dropped. Credentials are fake and passed explicitly
//! ([`Moto::settings`]); the process environment is never touched.

use nimbus_core::aws::AwsSettings;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The region every moto client uses.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`, stopped on drop.
pub struct Moto {
    child: Child,
    /// Closing it tells the watchdog to stop the server.
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

/// The one server of this test binary, started on first use.
pub fn shared() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

/// Where `moto_server` is: `PATH`, then `~/.local/bin` (`pip install --user`),
/// then the venv `scripts/setup` makes under `target/moto-venv`.
fn find_moto_server() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/bin"));
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/moto-venv/bin"));
    dirs.into_iter().map(|d| d.join("moto_server")).find(|p| p.is_file())
}

impl Moto {
    /// Starts a private server on a free port and waits until it accepts
    /// connections. Panics with what to do if `moto_server` is not installed.
    pub fn start() -> Moto {
        let Some(bin) = find_moto_server() else {
            panic!(
                "moto_server is not installed (looked on PATH, in ~/.local/bin and in target/moto-venv/bin): \
                 run scripts/setup"
            );
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::env::temp_dir().join(format!("nimbus-moto-{}-{port}.log", std::process::id()));
        // The watchdog: the server lives until our end of the pipe closes
        // (drop, or this process exiting for any reason).
        let script = r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
read -r _ignored || true"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&bin)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!(
                    "moto_server did not start on {addr} within 60s; its log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, stdin, addr }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Settings for Nimbus's AWS clients (and the tests' own): this endpoint,
    /// [`REGION`], fake static credentials.
    pub fn settings(&self) -> AwsSettings {
        AwsSettings {
            endpoint_url: Some(self.endpoint()),
            region: Some(REGION.into()),
            credentials: Some(aws_sdk_ssm::config::Credentials::new(
                "test", "test", None, None, "moto",
            )),
        }
    }

    /// An SDK configuration for this server, for any AWS service client.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        nimbus_core::aws::sdk_config(&self.settings()).await
    }

    /// An SSM client for this server.
    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config().await)
    }

    /// A raw call to one of moto's service APIs (`lambda`, `apigateway`, `iam`, ...), for the few reads
    /// the tests have no SDK client for. The request is unsigned but names `service` in a SigV4-shaped
    /// `Authorization` header, which is how moto's single endpoint tells its services apart.
    pub async fn api(&self, service: &str, method: &str, path: &str, body: Option<&[u8]>) -> crate::Reply {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, \
             Signature=00"
        );
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        crate::request(self.addr, method, path, body, &headers).await
    }

    /// A Lambda function's configuration as `GetFunctionConfiguration` returns it.
    pub async fn lambda_configuration(&self, function: &str) -> serde_json::Value {
        let reply = self
            .api(
                "lambda",
                "GET",
                &format!("/2015-03-31/functions/{function}/configuration"),
                None,
            )
            .await;
        assert_eq!(
            reply.status,
            200,
            "GetFunctionConfiguration {function}: {}",
            reply.text()
        );
        reply.json()
    }
}

/// A durable task store on moto: a bucket, a table and a queue ([`Moto::task_store`] makes them, or
/// [`TaskStore::existing`] names ones made otherwise, e.g. by Terraform).
#[derive(Debug, Clone)]
pub struct TaskStore {
    /// The S3 bucket of checkpoints.
    pub bucket: String,
    /// The DynamoDB table of task records.
    pub table: String,
    /// The continuation queue's URL.
    pub queue_url: String,
    /// The continuation queue's ARN, as Lambda's SQS event records carry it.
    pub queue_arn: String,
}

impl TaskStore {
    /// A store on resources that already exist.
    pub fn existing(bucket: &str, table: &str, queue_url: &str, queue_arn: &str) -> TaskStore {
        TaskStore {
            bucket: bucket.into(),
            table: table.into(),
            queue_url: queue_url.into(),
            queue_arn: queue_arn.into(),
        }
    }

    /// The resources for [`nimbus_checkpoint::Aws`] (path-style S3, no long polling).
    pub fn resources(&self) -> nimbus_checkpoint::AwsResources {
        nimbus_checkpoint::AwsResources {
            bucket: self.bucket.clone(),
            table: self.table.clone(),
            queue_url: self.queue_url.clone(),
            receive_wait_secs: 0,
            force_path_style: true,
        }
    }

    /// The environment a `bootstrap` serving a task function needs to use this store on `moto`.
    pub fn env(&self, moto: &Moto) -> Vec<(String, String)> {
        [
            ("NIMBUS_STATE_BUCKET", self.bucket.clone()),
            ("NIMBUS_TASK_TABLE", self.table.clone()),
            ("NIMBUS_TASK_QUEUE_URL", self.queue_url.clone()),
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// One batch received from the continuation queue the way Lambda's SQS event source mapping receives it.
pub struct EsmBatch {
    /// The Lambda SQS event (`Records` with `messageId`, `receiptHandle`, `body`, `eventSourceARN`, …).
    pub event: serde_json::Value,
    /// `(messageId, receiptHandle)` of each record.
    pub receipts: Vec<(String, String)>,
}

impl TaskStore {
    /// Plays the event source mapping: receives up to `max` messages, hiding them for `visibility`, as a
    /// Lambda SQS event; `None` when the queue has nothing visible.
    pub async fn esm_receive(&self, moto: &Moto, max: i32, visibility: Duration) -> Option<EsmBatch> {
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
        let out = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .visibility_timeout(visibility.as_secs().max(1) as i32)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)));
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return None;
        }
        let mut records = Vec::new();
        let mut receipts = Vec::new();
        for m in messages {
            let id = m.message_id.unwrap_or_default();
            let receipt = m.receipt_handle.unwrap_or_default();
            records.push(serde_json::json!({
                "messageId": id, "receiptHandle": receipt, "body": m.body.unwrap_or_default(),
                "attributes": {}, "messageAttributes": {}, "md5OfBody": m.md5_of_body.unwrap_or_default(),
                "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": REGION,
            }));
            receipts.push((id, receipt));
        }
        Some(EsmBatch {
            event: serde_json::json!({ "Records": records }),
            receipts,
        })
    }

    /// Plays the event source mapping after a batch: deletes every message not in `failures` (the
    /// response's `batchItemFailures[].itemIdentifier`). A message the runtime already deleted is fine.
    pub async fn esm_complete(&self, moto: &Moto, batch: &EsmBatch, failures: &[String]) {
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
        for (id, receipt) in &batch.receipts {
            if !failures.contains(id) {
                let _ = sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await;
            }
        }
    }
}

impl Moto {
    /// Creates a fresh bucket, table (partition key `task_id`) and queue named `{prefix}-{unique}`.
    pub async fn task_store(&self, prefix: &str) -> TaskStore {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let name = format!("{prefix}-{stamp}-{}-{n}", std::process::id());
        let sdk = self.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        s3.create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {name}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
        self.create_table(&name, "task_id", None).await;
        let queue = aws_sdk_sqs::Client::new(&sdk)
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateQueue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)));
        TaskStore {
            queue_arn: format!("arn:aws:sqs:{REGION}:123456789012:{name}"),
            bucket: name.clone(),
            table: name,
            queue_url: queue.queue_url.expect("queue url"),
        }
    }
}

impl Moto {
    /// Creates a fresh `wasi:keyvalue` table (partition key `bucket`, sort key `key`) named `{prefix}-{unique}`.
    pub async fn kv_table(&self, prefix: &str) -> String {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        self.create_table(&name, "bucket", Some("key")).await;
        name
    }
}

impl Moto {
    /// Creates an on-demand DynamoDB table keyed by the string attributes `hash` (and `range`).
    async fn create_table(&self, name: &str, hash: &str, range: Option<&str>) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let mut create = aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attr, kind) in std::iter::once((hash, KeyType::Hash)).chain(range.map(|r| (r, KeyType::Range))) {
            create = create
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attr)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("attribute definition"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attr)
                        .key_type(kind)
                        .build()
                        .expect("key schema"),
                );
        }
        create.send().await.unwrap_or_else(|e| {
            panic!(
                "CreateTable {name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        });
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes (or overwrites) an SSM parameter.
pub async fn put_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
    kind: aws_sdk_ssm::types::ParameterType,
) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutParameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(&e)));
}
