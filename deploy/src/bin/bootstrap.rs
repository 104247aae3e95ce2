//! `bootstrap`: the custom runtime a FaaS platform starts (AWS Lambda's `provided.al2023` today).
//!
//! Declared in the CLI's package so that `cargo install --path deploy`
//! installs it beside `nimbus`, where `nimbus package` finds it. All of it
//! lives in [`nimbus_platforms::bootstrap`].

use clap::Parser;
use nimbus_core::settings::PlatformKind;

/// Serves the function packaged beside it on the platform that started it.
#[derive(Parser)]
#[command(name = "bootstrap", version)]
struct Args {
    /// The platform to serve (lambda, fc, knative, azure); default: the one whose variables are set
    /// (`NIMBUS_PLATFORM` also chooses).
    #[arg(long)]
    platform: Option<PlatformKind>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    nimbus_platforms::bootstrap::main(args.platform)
}
