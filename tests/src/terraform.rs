//! The Terraform examples applied for real against a `moto_server`, for the deployment tests.
//!
//! [`Example::on_moto`] copies `terraform/` (modules and examples) to a scratch directory, drops
//! `terraform/testing/moto_override.tf.template` into the example as `moto_override.tf` with the server's
//! endpoint, and runs `scripts/tf` (the checkout's offline-first terraform wrapper) there, so the
//! checkout's own directories never get state or `.terraform/`.
//! [`available`] says whether terraform and the AWS provider can be had at all; the tests skip, loudly,
//! only when they cannot.

use crate::moto::Moto;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The checkout's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `Ok` when `terraform` runs and the `hashicorp/aws` provider installs (from a mirror or the registry);
/// else why not. Probed once per process.
pub fn available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            std::fs::write(
                dir.path().join("main.tf"),
                "terraform {\n  required_providers {\n    aws = { source = \"hashicorp/aws\", version = \"~> 5.0\" }\n  }\n}\n",
            )
            .map_err(|e| e.to_string())?;
            let out = tf(dir.path(), &["init", "-backend=false", "-input=false", "-no-color"])
                .output()
                .map_err(|e| format!("cannot run scripts/tf: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "terraform or the hashicorp/aws provider is not available: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .clone()
}

/// `scripts/tf -chdir=DIR ARGS...`.
fn tf(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(root().join("scripts/tf"));
    cmd.arg(format!("-chdir={}", dir.display()))
        .args(args)
        .env("TF_IN_AUTOMATION", "1");
    cmd
}

/// One example, copied to a scratch directory and pointed at a moto server.
pub struct Example {
    /// The example's directory in the scratch copy.
    pub dir: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Example {
    /// Copies `terraform/` and points example `name` at `moto`.
    pub fn on_moto(name: &str, moto: &Moto) -> Example {
        let scratch = tempfile::tempdir().expect("scratch dir");
        copy_tree(&root().join("terraform"), &scratch.path().join("terraform"));
        let dir = scratch.path().join("terraform/examples").join(name);
        assert!(dir.is_dir(), "no example {name}");
        let template = std::fs::read_to_string(root().join("terraform/testing/moto_override.tf.template"))
            .expect("terraform/testing/moto_override.tf.template");
        std::fs::write(
            dir.join("moto_override.tf"),
            template.replace("@ENDPOINT@", &moto.endpoint()),
        )
        .expect("write moto_override.tf");
        Example { dir, _scratch: scratch }
    }

    /// Runs terraform here; panics with its output unless it succeeds. Returns stdout and how long it took.
    pub fn run(&self, args: &[&str]) -> (String, Duration) {
        let started = Instant::now();
        let out = tf(&self.dir, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run terraform {args:?}: {e}"));
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "terraform {args:?} failed in {}:\n{stdout}\n{}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        (stdout, took)
    }

    /// Runs terraform here and returns whether it succeeded, with stdout + stderr (for expected failures).
    pub fn try_run(&self, args: &[&str]) -> (bool, String) {
        let out = tf(&self.dir, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run terraform {args:?}: {e}"));
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `init`, offline-first.
    pub fn init(&self) -> Duration {
        self.run(&["init", "-backend=false", "-input=false", "-no-color"]).1
    }

    /// `apply -auto-approve` with the example's `moto.tfvars` and `vars`.
    pub fn apply(&self, vars: &[(&str, &str)]) -> Duration {
        let args = self.var_args("apply", vars);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).1
    }

    /// `plan` with the example's `moto.tfvars` and `vars`: whether it succeeded, and its output.
    pub fn plan(&self, vars: &[(&str, &str)]) -> (bool, String) {
        let args = self.var_args("plan", vars);
        self.try_run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `destroy -auto-approve` with the same variables as the apply.
    pub fn destroy(&self, vars: &[(&str, &str)]) -> Duration {
        let args = self.var_args("destroy", vars);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).1
    }

    /// The resources in the state (`terraform state list`).
    pub fn state_list(&self) -> Vec<String> {
        self.run(&["state", "list", "-no-color"])
            .0
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `terraform output -json`, as `{name: value}`.
    pub fn outputs(&self) -> Value {
        let (text, _) = self.run(&["output", "-json", "-no-color"]);
        let all: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("output -json: {e}: {text}"));
        let map = all
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v["value"].clone())).collect())
            .unwrap_or_default();
        Value::Object(map)
    }

    fn var_args(&self, command: &str, vars: &[(&str, &str)]) -> Vec<String> {
        let mut args = vec![
            command.to_owned(),
            "-input=false".into(),
            "-no-color".into(),
            "-var-file=moto.tfvars".into(),
        ];
        if command != "plan" {
            args.push("-auto-approve".into());
        }
        for (k, v) in vars {
            args.push(format!("-var={k}={v}"));
        }
        args
    }
}

/// Copies a directory tree, leaving out what `terraform` leaves behind in a checkout.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str == ".terraform"
            || name_str.ends_with(".tfstate")
            || name_str.contains(".tfstate.")
            || name_str == ".terraform.lock.hcl"
            || name_str == "moto_override.tf"
        {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}
