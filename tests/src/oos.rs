//! A stand-in for Alibaba Cloud's OOS Parameter Store on 127.0.0.1: `fake_oos.py` beside this file, which
//! checks every request's V3 signature with Alibaba Cloud's own Python signer (`alibabacloud_openapi_util`,
//! installed by `scripts/setup` in `target/moto-venv`) and answers like OOS. Its parameters, credentials
//! and page size live in a JSON state file the tests rewrite between refreshes; every request it gets is
//! logged ([`FakeOos::requests`]).

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// The access key pair the tests' fake knows: a temporary one, with its security token.
pub const KEY_ID: &str = "STS.NimbusTestKey";
/// Its secret.
pub const KEY_SECRET: &str = "nimbus-test-secret";
/// Its security token.
pub const TOKEN: &str = "nimbus-test-token";

/// A second key pair the fake knows, standing for the fresher credentials a platform hands over later
/// (Function Compute's per-request `x-fc-access-key-*` headers).
pub const FRESH_KEY_ID: &str = "STS.NimbusFreshKey";
/// Its secret.
pub const FRESH_KEY_SECRET: &str = "nimbus-fresh-secret";
/// Its security token.
pub const FRESH_TOKEN: &str = "nimbus-fresh-token";

/// What the fake holds.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Plain parameters, name to value.
    pub plain: BTreeMap<String, String>,
    /// Secret parameters, name to (decrypted) value.
    pub secret: BTreeMap<String, String>,
    /// Security tokens the fake answers `InvalidSecurityToken.Expired` for.
    pub expired_tokens: Vec<String>,
    /// The largest page of a by-path answer.
    pub page_size: usize,
}

/// A running fake, stopped on drop.
pub struct FakeOos {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: tempfile::TempDir,
}

/// A Python that can import Alibaba Cloud's signer: the venv `scripts/setup` makes (under the shared
/// target directory or this checkout's), else `python3` on PATH.
fn python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("moto-venv/bin/python"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/moto-venv/bin/python"));
    candidates.push("python3".into());
    candidates
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import alibabacloud_openapi_util.client"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "no Python with the `alibabacloud-openapi-util` package (looked in target/moto-venv and on PATH): \
                 run scripts/setup"
            )
        })
}

impl FakeOos {
    /// Starts the fake with `state`, and waits until it listens.
    pub fn start(state: &State) -> FakeOos {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fake_oos.py");
        let state_file = dir.path().join("state.json");
        let log = dir.path().join("requests.jsonl");
        write_state(&state_file, state);
        let mut child = Command::new(python())
            .arg(&script)
            .arg(&state_file)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line).ok();
        }
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("fake_oos.py did not print its port (printed {line:?})"));
        FakeOos {
            child,
            stdin,
            port,
            dir,
        }
    }

    /// `http://127.0.0.1:<port>`, for `NIMBUS_OOS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces what the fake holds (read again at its next request).
    pub fn set(&self, state: &State) {
        write_state(&self.dir.path().join("state.json"), state);
    }

    /// Every request so far: `{"action", "query", "token"}` (whether `x-acs-security-token` was sent).
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Writes the state file whole (a new file renamed over the old: the fake never reads half of one).
fn write_state(file: &Path, state: &State) {
    let json = json!({
        "keys": {
            KEY_ID: {"secret": KEY_SECRET, "token": TOKEN},
            FRESH_KEY_ID: {"secret": FRESH_KEY_SECRET, "token": FRESH_TOKEN},
        },
        "expired_tokens": state.expired_tokens,
        "plain": state.plain,
        "secret": state.secret,
        "page_size": if state.page_size == 0 { 10 } else { state.page_size },
    });
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, json.to_string()).expect("write the fake's state");
    std::fs::rename(&tmp, file).expect("replace the fake's state");
}

impl Drop for FakeOos {
    fn drop(&mut self) {
        // Closing stdin stops the server; kill it too in case it is stuck.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
