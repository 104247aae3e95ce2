//! The deployment description `nimbus package` writes beside each function's zips (`<function>.json`).
//!
//! It is the manifest, read once by the same parser `serve` uses, restated as what a deployment needs:
//! the function's kind (from its component's exports), architecture, Lambda timeout and memory, API Gateway
//! route keys, WebSocket routes, and every AWS resource the function is declared to use (SSM parameters and
//! paths, key-value buckets, the task store). The Terraform modules in `terraform/modules` read it with
//! `jsondecode(file(...))`, so routes, environment and the IAM policy come from the manifest and are never
//! retyped; a parameter or bucket the manifest does not declare cannot reach the policy.

use anyhow::{Context as _, bail};
use base64::Engine as _;
use nimbus_core::Kind;
use nimbus_core::manifest::{ConfigSource, FunctionSpec, RouteSpec};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::path::Path;

/// The `format` value; bumped when a consumer would misread a newer description.
pub const FORMAT: &str = "nimbus.function/1";

/// Lambda's longest timeout (15 minutes).
const LAMBDA_MAX_TIMEOUT_SECS: u64 = 900;
/// Lambda's memory bounds, in MB.
const LAMBDA_MEMORY_MB: (u64, u64) = (128, 10_240);
/// Memory suggested above the sandbox's limit for the host itself (runtime, engine, code, buffers).
pub const HOST_HEADROOM_MB: u64 = 128;

/// One function's description; see `terraform/README.md` for each field.
#[derive(Debug, Serialize)]
pub struct Description {
    format: &'static str,
    app: String,
    function: String,
    kind: &'static str,
    architecture: &'static str,
    runtime: &'static str,
    handler: &'static str,
    timeout_seconds: u64,
    memory_mb: u64,
    instance_memory_mb: u64,
    reuse: bool,
    packages: Packages,
    routes: Vec<String>,
    websocket: Option<WebSocket>,
    task: Option<Task>,
    ssm_parameters: Vec<String>,
    ssm_paths: Vec<String>,
    env_vars: Vec<EnvVar>,
    keyvalue_buckets: Vec<String>,
    outbound_hosts: Vec<String>,
}

/// The zips beside the description, with the base64 SHA-256 Terraform's `filebase64sha256` gives.
#[derive(Debug, Serialize)]
pub struct Packages {
    zip: String,
    zip_sha256: String,
    code_zip: String,
    code_zip_sha256: String,
    layer_zip: String,
    layer_zip_sha256: String,
}

#[derive(Debug, Serialize)]
struct WebSocket {
    route_selection_expression: String,
    route_keys: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Task {
    max_checkpoint_bytes: u64,
    yield_margin_ms: u64,
    max_attempts: u32,
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct EnvVar {
    name: String,
    required: bool,
}

/// What the description needs besides the manifest.
pub struct Inputs<'a> {
    /// `app.name` of the manifest.
    pub app: &'a str,
    /// The function as the manifest declares it.
    pub function: &'a FunctionSpec,
    /// Read from the component's exports.
    pub kind: Kind,
    /// Lambda's name for the architecture (`x86_64`, `arm64`).
    pub architecture: &'static str,
    /// The self-contained zip.
    pub zip: &'a PackageFile,
    /// The zip without `bootstrap`, for use with the layer.
    pub code_zip: &'a PackageFile,
    /// The runtime layer (`bootstrap` only), shared by every function of a package run.
    pub layer_zip: &'a PackageFile,
}

/// A zip the description names: its file name and hash, read once (the layer serves every function).
#[derive(Debug, Clone)]
pub struct PackageFile {
    name: String,
    sha256: String,
}

impl PackageFile {
    /// Reads `path` to hash it.
    pub fn read(path: &Path) -> anyhow::Result<PackageFile> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| format!("{} has no file name", path.display()))?;
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(PackageFile {
            name,
            sha256: base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes)),
        })
    }
}

impl Description {
    /// Describes one packaged function; fails when it cannot run on Lambda as declared.
    pub fn new(i: &Inputs<'_>) -> anyhow::Result<Description> {
        let f = i.function;
        let timeout_seconds = super::package::timeout_secs(f);
        if timeout_seconds > LAMBDA_MAX_TIMEOUT_SECS {
            bail!(
                "{}: timeout {} s is longer than Lambda's {LAMBDA_MAX_TIMEOUT_SECS} s; a durable task (see the README) \
                 runs longer by spanning many invocations",
                f.name,
                timeout_seconds
            );
        }
        let instance_memory_mb = f.limits.memory.div_ceil(1 << 20);
        let memory_mb = super::package::suggested_memory_mb(f).max(LAMBDA_MEMORY_MB.0);
        if memory_mb > LAMBDA_MEMORY_MB.1 {
            bail!(
                "{}: memory {instance_memory_mb} MiB leaves no room for the host within Lambda's {} MB",
                f.name,
                LAMBDA_MEMORY_MB.1
            );
        }
        let mut routes: Vec<String> = f.routes.iter().map(route_key).collect();
        if i.kind == Kind::Task {
            routes.push(format!("POST /tasks/{}", f.name));
            routes.push(format!("GET /tasks/{}/{{id}}", f.name));
        }
        let websocket = (i.kind == Kind::WebSocket).then(|| {
            let spec = f.websocket.clone().unwrap_or_default();
            let mut route_keys: Vec<String> = ["$connect", "$disconnect", "$default"].map(String::from).into();
            route_keys.extend(
                spec.routes
                    .iter()
                    .filter(|r| !route_keys.contains(r))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            WebSocket {
                route_selection_expression: spec.route_selection.to_string(),
                route_keys,
            }
        });
        let task = (i.kind == Kind::Task).then(|| {
            let spec = f
                .task
                .unwrap_or_else(|| nimbus_core::manifest::TaskSpec::defaults(f.limits.timeout));
            Task {
                max_checkpoint_bytes: spec.max_checkpoint,
                yield_margin_ms: spec.yield_margin.as_millis() as u64,
                max_attempts: spec.max_attempts,
            }
        });
        let mut ssm_parameters = BTreeSet::new();
        let mut ssm_paths = BTreeSet::new();
        let mut env_vars = BTreeSet::new();
        for decl in f.config.values() {
            match &decl.source {
                ConfigSource::Ssm(name) => {
                    ssm_parameters.insert(parameter_name(name).with_context(|| f.name.clone())?);
                }
                ConfigSource::SsmPath(path) => {
                    ssm_paths.insert(path.clone());
                }
                ConfigSource::Env(name) => {
                    env_vars.insert(EnvVar {
                        name: name.clone(),
                        required: decl.required && decl.default.is_none(),
                    });
                }
                // OOS is Alibaba Cloud's: no AWS permission to describe.
                ConfigSource::Value(_) | ConfigSource::File(_) | ConfigSource::Oos(_) | ConfigSource::OosPath(_) => {}
            }
        }
        let mut keyvalue_buckets = f.keyvalue.clone();
        keyvalue_buckets.sort();
        keyvalue_buckets.dedup();
        Ok(Description {
            format: FORMAT,
            app: i.app.to_owned(),
            function: f.name.clone(),
            kind: i.kind.as_str(),
            architecture: i.architecture,
            runtime: "provided.al2023",
            handler: "bootstrap",
            timeout_seconds,
            memory_mb,
            instance_memory_mb,
            reuse: f.reuse != nimbus_core::manifest::Reuse::Fresh,
            packages: Packages {
                zip: i.zip.name.clone(),
                zip_sha256: i.zip.sha256.clone(),
                code_zip: i.code_zip.name.clone(),
                code_zip_sha256: i.code_zip.sha256.clone(),
                layer_zip: i.layer_zip.name.clone(),
                layer_zip_sha256: i.layer_zip.sha256.clone(),
            },
            routes,
            websocket,
            task,
            ssm_parameters: ssm_parameters.into_iter().collect(),
            ssm_paths: ssm_paths.into_iter().collect(),
            env_vars: env_vars.into_iter().collect(),
            keyvalue_buckets,
            outbound_hosts: f.allowed_outbound_hosts.iter().map(ToString::to_string).collect(),
        })
    }

    /// Writes the description as pretty JSON (temp file + rename, like the zips).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(self).context("cannot encode the description")?;
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The kind of a component, read from its top-level exports without compiling it.
pub fn component_kind(wasm: &[u8]) -> anyhow::Result<Option<Kind>> {
    let mut names = Vec::new();
    // Nested modules and components come with their own `Version` .. `End`; only depth 1 is the component's.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.context("not a valid WebAssembly component")? {
            wasmparser::Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    bail!("a core WebAssembly module, not a component (build for wasm32-wasip2)");
                }
                depth += 1;
            }
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports {
                    names.push(export.context("bad component export")?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(Kind::from_exports(names.iter().map(String::as_str)))
}

/// An HTTP API route key for a manifest route: `ANY` for any method, `{*rest}` as API Gateway's `{rest+}`.
fn route_key(r: &RouteSpec) -> String {
    let method = r.method.as_ref().map_or("ANY", |m| m.as_str());
    let path = match r.path.rfind("{*") {
        Some(at) if r.path.ends_with('}') => format!("{}{{{}+}}", &r.path[..at], &r.path[at + 2..r.path.len() - 1]),
        _ => r.path.clone(),
    };
    format!("{method} {path}")
}

/// An SSM parameter's name as IAM and `GetParameters` know it: without a `:version` / `:label` selector,
/// and reduced to its name when written as an ARN (`arn:aws:ssm:r:acct:parameter/a/b` is `/a/b`). An ARN that
/// names no parameter is refused: no policy could be written for it.
fn parameter_name(written: &str) -> anyhow::Result<String> {
    let Some(rest) = written.strip_prefix("arn:") else {
        return Ok(written.split(':').next().unwrap_or(written).to_owned());
    };
    // arn:partition:ssm:region:account:parameter/NAME[:selector]
    let name = rest
        .split_once(":parameter/")
        .filter(|(head, _)| head.split(':').nth(1) == Some("ssm"))
        .map(|(_, n)| n.split(':').next().unwrap_or(n))
        .filter(|n| !n.is_empty())
        .with_context(|| format!("SSM parameter {written:?} is an ARN that names no SSM parameter"))?;
    Ok(if name.contains('/') {
        format!("/{name}")
    } else {
        name.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Option<&str>, path: &str) -> RouteSpec {
        RouteSpec {
            method: method.map(|m| m.parse().unwrap()),
            path: path.into(),
            line: 1,
        }
    }

    #[test]
    fn routes_become_http_api_route_keys() {
        assert_eq!(route_key(&route(Some("GET"), "/hello")), "GET /hello");
        assert_eq!(route_key(&route(None, "/items/{id}")), "ANY /items/{id}");
        assert_eq!(route_key(&route(None, "/{*rest}")), "ANY /{rest+}");
        assert_eq!(route_key(&route(Some("POST"), "/a/{b}/{*tail}")), "POST /a/{b}/{tail+}");
    }

    #[test]
    fn parameter_names_drop_selectors_and_arns() {
        let name = |w: &str| parameter_name(w).unwrap();
        assert_eq!(name("/app/db/password"), "/app/db/password");
        assert_eq!(name("/app/key:3"), "/app/key");
        assert_eq!(name("/app/key:prod"), "/app/key");
        assert_eq!(name("flat"), "flat");
        assert_eq!(
            name("arn:aws:ssm:us-east-1:123456789012:parameter/app/key:2"),
            "/app/key"
        );
        assert_eq!(name("arn:aws:ssm:us-east-1:123456789012:parameter/flat"), "flat");
        for bad in [
            "arn:aws:ssm:us-east-1:123456789012:document/x",
            "arn:aws:s3:us-east-1:123456789012:parameter/x",
            "arn:aws:ssm:us-east-1:123456789012:parameter/",
            "arn:x",
        ] {
            assert!(parameter_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_core_module_is_not_a_component() {
        // The smallest core module: magic + version 1.
        let err = component_kind(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(err.to_string().contains("not a component"), "{err}");
        assert!(component_kind(b"not wasm").is_err());
    }
}
