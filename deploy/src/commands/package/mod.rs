//! `nimbus package`: deployment packages for each platform `bootstrap` serves.
//!
//! Every target packages the same things — `bootstrap`, and per function its component, the component's
//! precompiled artifact for the architecture, files read by `file = ...` config keys, and a `nimbus.toml`
//! holding just that function — so the bytes are the same on every platform of one architecture. Only the
//! layout and the platform's deployment files differ, one small module per target:
//! - [`lambda`]: `<out>/lambda-<arch>/` zips, a runtime layer and Terraform descriptions;
//! - [`fc`]: `<out>/fc-x86_64/<function>.zip` for Alibaba Cloud Function Compute and an `s.yaml`;
//! - [`container`]: `<out>/container-<arch>/<function>/`, an OCI image layout, and a Knative Service;
//! - [`azure`]: `<out>/azure-x86_64/<function>/`, an Azure Functions custom-handler app, and its zip.
//!
//! One package per function: `bootstrap` serves one function per process. The manifest sits beside
//! `bootstrap` in every layout (`bootstrap` looks there off Lambda). A run writes into a staging directory
//! under `<out>` and moves its results into place only once everything succeeded, so a failed run leaves
//! the previous output as it was.

mod azure;
mod bootstrap;
mod bundle;
mod container;
mod fc;
mod files;
mod lambda;
mod oci;

use super::compile::parse_arch;
use super::human_size;
use anyhow::{Context as _, bail};
use files::{Entry, Staging};
use nimbus_core::artifact::Target;
use nimbus_core::{Kind, Settings};
use std::path::PathBuf;

/// Where a package runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// AWS Lambda, custom runtime `provided.al2023`.
    Lambda,
    /// Alibaba Cloud Function Compute 3.0, custom runtime.
    Fc,
    /// An OCI image for Cloud Run or Knative Serving.
    Container,
    /// An Azure Functions custom-handler app.
    Azure,
}

impl Platform {
    /// The prefix of the output directory (`<out>/<prefix>-<arch>/`).
    fn dir_name(self) -> &'static str {
        match self {
            Platform::Lambda => "lambda",
            Platform::Fc => "fc",
            Platform::Container => "container",
            Platform::Azure => "azure",
        }
    }

    /// Refuses an architecture the platform does not run.
    fn check_arch(self, arch: Target) -> anyhow::Result<()> {
        match (self, arch) {
            (Platform::Fc, Target::Aarch64) => {
                bail!("Alibaba Cloud Function Compute runs custom runtimes on x86_64 only: package with --arch x86_64")
            }
            (Platform::Azure, Target::Aarch64) => {
                bail!("Azure Functions runs custom handlers on x86_64 Linux only: package with --arch x86_64")
            }
            _ => Ok(()),
        }
    }

    /// Refuses a function kind the platform's adapter does not serve.
    fn check_kind(self, function: &str, kind: Kind) -> anyhow::Result<()> {
        if self == Platform::Lambda {
            return Ok(());
        }
        match kind {
            Kind::Http | Kind::Event => Ok(()),
            Kind::Task => bail!(
                "{function} is a durable task function; its checkpoint store runs on AWS only, so it is packaged \
                 for --target lambda only (name the other functions to package them)"
            ),
            Kind::WebSocket => bail!(
                "{function} is a WebSocket function; they run on API Gateway (--target lambda) and under \
                 `nimbus serve` only (name the other functions to package them)"
            ),
        }
    }
}

/// `nimbus package` options.
#[derive(clap::Args)]
pub struct Args {
    /// Functions to package (default: all in the manifest).
    functions: Vec<String>,
    /// Where the package runs.
    #[arg(long, value_enum, default_value = "lambda")]
    target: Platform,
    /// The architecture: `x86_64` or `arm64` (Function Compute and Azure: x86_64 only).
    #[arg(long, default_value = "x86_64", value_parser = parse_arch)]
    arch: Target,
    /// The manifest [default: nimbus.toml] [env: NIMBUS_MANIFEST].
    #[arg(long, short)]
    manifest: Option<PathBuf>,
    /// Output directory; packages go to `<out>/<target>-<arch>/`.
    #[arg(long, short, default_value = "dist")]
    out: PathBuf,
    /// The `bootstrap` executable to package (default: this checkout's
    /// `target/<triple>/release/bootstrap` from `scripts/build-bootstrap`,
    /// else, for this machine's architecture, the one beside `nimbus`).
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// `--target container`: the base image, an OCI image layout `DIR[:TAG]` (e.g. made with
    /// `skopeo copy docker://gcr.io/distroless/cc-debian12 oci:base:cc`), whose layers go below the
    /// package's. Needed when `bootstrap` is linked against glibc.
    #[arg(long, value_name = "DIR[:TAG]")]
    base: Option<String>,
}

/// What every target packages: the app's name, the architecture and `bootstrap`.
pub struct Package {
    /// `app.name` of the manifest.
    app: String,
    arch: Target,
    /// `bootstrap`, executable.
    bootstrap: Entry,
}

/// Builds the packages.
pub fn run(args: Args, settings: &Settings) -> anyhow::Result<()> {
    args.target.check_arch(args.arch)?;
    if args.base.is_some() && args.target != Platform::Container {
        bail!("--base is an image base: it applies to --target container only");
    }
    let manifest_path = super::manifest_path(args.manifest.as_deref(), settings);
    let manifest = super::load_manifest(&manifest_path)?;
    for name in &args.functions {
        if manifest.function(name).is_none() {
            bail!("no function `{name}` in {}", manifest_path.display());
        }
    }
    let bootstrap_path = bootstrap::find(args.arch, args.bootstrap.as_deref())?;
    let bytes = std::fs::read(&bootstrap_path)
        .with_context(|| format!("cannot read bootstrap {}", bootstrap_path.display()))?;
    bootstrap::check(&bytes, args.arch, args.target, &bootstrap_path)?;
    let base = match (args.target, &args.base) {
        (Platform::Container, Some(spec)) => Some(oci::Base::open(spec, args.arch)?),
        (Platform::Container, None) if bootstrap::is_dynamic(&bytes) => bail!(
            "{} is dynamically linked (against glibc), so an image without a base could not start it: pull a \
             base with glibc into a layout, e.g. `skopeo copy docker://gcr.io/distroless/cc-debian12 \
             oci:dist/base:cc`, and pass --base dist/base:cc (or pass a statically linked --bootstrap)",
            bootstrap_path.display()
        ),
        _ => None,
    };
    let package = Package {
        app: manifest.app_name.clone(),
        arch: args.arch,
        bootstrap: Entry::executable("bootstrap", bytes),
    };

    let dir_name = format!("{}-{}", args.target.dir_name(), args.arch.lambda_name());
    let staging = Staging::new(&args.out, &dir_name)?;
    let bundles = bundle::collect(
        &manifest,
        &manifest_path,
        &args.functions,
        args.target,
        &package,
        &staging,
    )?;
    match args.target {
        Platform::Lambda => lambda::write(&package, &bundles, &staging)?,
        Platform::Fc => fc::write(&package, &bundles, &staging)?,
        Platform::Container => container::write(&package, &bundles, base.as_ref(), &staging)?,
        Platform::Azure => azure::write(&package, &bundles, &staging)?,
    }
    let made = staging.commit()?;

    eprintln!("packaged for {} ({}):", title(args.target), args.arch.lambda_name());
    for path in &made {
        let size = files::size(path);
        println!("{:>10}  {}", human_size(size), path.display());
    }
    Ok(())
}

/// The platform's name in messages.
fn title(target: Platform) -> &'static str {
    match target {
        Platform::Lambda => "Lambda provided.al2023",
        Platform::Fc => "Function Compute 3.0",
        Platform::Container => "Cloud Run / Knative",
        Platform::Azure => "Azure Functions",
    }
}

/// Memory suggested for a function: its instance's limit plus room for the host itself, in MB.
pub fn suggested_memory_mb(f: &nimbus_core::manifest::FunctionSpec) -> u64 {
    f.limits.memory.div_ceil(1 << 20) + super::description::HOST_HEADROOM_MB
}

/// The manifest timeout in whole seconds (at least 1).
pub fn timeout_secs(f: &nimbus_core::manifest::FunctionSpec) -> u64 {
    f.limits.timeout.as_millis().div_ceil(1000).max(1) as u64
}

/// A YAML scalar for any string: a JSON string is a valid double-quoted YAML scalar.
pub fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The methods of a function's routes, sorted and deduplicated; `None` when a route takes any method or
/// there is no route.
pub fn route_methods(f: &nimbus_core::manifest::FunctionSpec) -> Option<Vec<String>> {
    let mut methods = f
        .routes
        .iter()
        .map(|r| r.method.as_ref().map(|m| m.as_str().to_owned()))
        .collect::<Option<Vec<String>>>()?;
    if methods.is_empty() {
        return None;
    }
    methods.sort();
    methods.dedup();
    Some(methods)
}
