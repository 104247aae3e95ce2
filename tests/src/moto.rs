//! A real `moto_server` (AWS service mock) on 127.0.0.1, started by the tests
//! themselves: SSM today, S3 / DynamoDB / SQS for whatever needs them next.
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
