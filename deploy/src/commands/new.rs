//! `nimbus new`: scaffold a function crate that builds and runs.

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// `nimbus new` options.
#[derive(clap::Args)]
pub struct Args {
    /// The function's name (kebab-case); also the directory created.
    name: String,
    /// Make an event function instead of an HTTP function.
    #[arg(long)]
    event: bool,
    /// Parent directory (default: the current one).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Path to the nimbus-sdk crate (it is not on crates.io yet) [default: this checkout's] [env:
    /// NIMBUS_SDK_PATH].
    #[arg(long)]
    sdk_path: Option<PathBuf>,
}

/// Writes `Cargo.toml`, `src/lib.rs`, `nimbus.toml` and `.gitignore`.
pub fn run(args: Args, settings: &nimbus_core::Settings) -> anyhow::Result<()> {
    let name = &args.name;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "function names are kebab-case: lowercase letters, digits and '-', starting with a letter (got {name:?})"
        );
    }
    let sdk = match args.sdk_path.as_ref().or(settings.local.sdk_path.as_ref()) {
        Some(p) => p.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "nimbus-sdk not found at {}; pass --sdk-path to the guest-sdk directory of a Nimbus checkout",
            sdk.display()
        )
    })?;
    let root = args.dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(root.join("src")).with_context(|| format!("cannot create {}", root.display()))?;
    let crate_name = name.replace('-', "_");
    let sdk_str = sdk.display().to_string().replace('\\', "/");

    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
nimbus-sdk = {{ path = "{sdk_str}" }}
serde_json = "1"

[profile.release]
strip = "debuginfo"

# A standalone crate, even when created inside another workspace.
[workspace]
"#
    );
    let (lib, manifest) = if args.event {
        (
            format!(
                r#"//! `{name}`: an event function.

use nimbus_sdk::event::{{Error, Event}};
use serde_json::{{Value, json}};

fn handle(event: Event) -> Result<Value, Error> {{
    let input: Value = event.json()?;
    let ctx = nimbus_sdk::invocation::current();
    println!("handling request {{}}", ctx.request_id);
    Ok(json!({{ "received": input }}))
}}

nimbus_sdk::event_function!(handle);
"#
            ),
            format!(
                r#"manifest_version = 1
app = {{ name = "{name}" }}

[function.{name}]
component = "target/wasm32-wasip2/release/{crate_name}.wasm"
timeout = "10s"
memory = "64MiB"
"#
            ),
        )
    } else {
        (
            format!(
                r#"//! `{name}`: an HTTP function.

use nimbus_sdk::http::{{Request, Response}};

fn handle(req: Request) -> Response {{
    let greeting = nimbus_sdk::config::get("greeting").ok().flatten().unwrap_or_else(|| "Hello".into());
    println!("{{}} {{}}", req.method(), req.uri().path());
    Response::new(format!("{{greeting}} from {name}!\n").into_bytes())
}}

nimbus_sdk::http_function!(handle);
"#
            ),
            format!(
                r#"manifest_version = 1
app = {{ name = "{name}" }}

[function.{name}]
component = "target/wasm32-wasip2/release/{crate_name}.wasm"
routes = ["GET /{name}"]
timeout = "10s"
memory = "64MiB"

[function.{name}.config]
greeting = {{ value = "Hello" }}
"#
            ),
        )
    };
    std::fs::write(root.join("Cargo.toml"), cargo)?;
    std::fs::write(root.join("src/lib.rs"), lib)?;
    std::fs::write(root.join("nimbus.toml"), manifest)?;
    std::fs::write(root.join(".gitignore"), "/target\n")?;
    let how = if args.event {
        format!("nimbus invoke {name} --data '{{\"hello\": 1}}'")
    } else {
        format!("nimbus serve   # then: curl http://127.0.0.1:3000/{name}")
    };
    println!(
        "created {}\n\nnext:\n  cd {}\n  nimbus build\n  {how}",
        root.display(),
        root.display()
    );
    Ok(())
}
