//! `nimbus`: develop, run and package Nimbus functions.

mod commands;
mod progress;

use clap::{Parser, Subcommand};
use nimbus_core::Settings;

/// Nimbus: serverless functions in a WebAssembly sandbox.
#[derive(Parser)]
#[command(name = "nimbus", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new function crate that builds and runs.
    New(commands::new::Args),
    /// Compile a function crate to a wasm32-wasip2 component.
    Build(commands::build::Args),
    /// Serve the manifest's functions locally behind an API-gateway-like HTTP server.
    Serve(commands::serve::Args),
    /// Invoke one function once with an event or request, and print the result.
    Invoke(commands::invoke::Args),
    /// Precompile components to lz4-compressed artifacts for fast cold starts.
    Compile(commands::compile::Args),
    /// Build deployment packages: `--target lambda`, `fc` (Function Compute), `container` (Cloud Run /
    /// Knative) or `azure` (Azure Functions).
    Package(commands::package::Args),
    /// Start durable tasks and show their status (the embedded store of `nimbus serve`).
    #[command(subcommand)]
    Task(commands::task::Args),
    /// Run a chaos experiment (load, faults, SLA targets) and report how the service held up; exits 1 when a
    /// target is missed.
    Chaos(commands::chaos::Args),
}

/// When `main` started, for the boot-time figures in the logs.
pub static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn main() -> std::process::ExitCode {
    STARTED.get_or_init(std::time::Instant::now);
    let cli = Cli::parse();
    // The environment file first, while this is the only thread, so that it may set settings too; then the
    // settings, once. A bad one is reported below, after logging is set up with the default filter.
    let env_file = match &cli.command {
        Command::Serve(a) => commands::serve::load_env_file(a),
        Command::Invoke(a) => commands::invoke::load_env_file(a),
        _ => Ok(None),
    };
    let settings = Settings::from_env();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            settings
                .as_ref()
                .map_or_else(|_| Settings::default().log_filter(), Settings::log_filter),
        )
        .compact()
        .init();
    let result = env_file.and_then(|file| {
        if let Some(file) = file {
            tracing::debug!(file = %file.display(), "environment file loaded");
        }
        let settings = settings?;
        match cli.command {
            Command::New(a) => commands::new::run(a, &settings),
            Command::Build(a) => commands::build::run(a),
            Command::Serve(a) => runtime().and_then(|rt| rt.block_on(commands::serve::run(a, &settings))),
            Command::Invoke(a) => runtime().and_then(|rt| rt.block_on(commands::invoke::run(a, &settings))),
            Command::Compile(a) => commands::compile::run(a, &settings),
            Command::Package(a) => commands::package::run(a, &settings),
            Command::Task(a) => runtime().and_then(|rt| rt.block_on(commands::task::run(a, &settings))),
            Command::Chaos(a) => runtime().and_then(|rt| rt.block_on(commands::chaos::run(a, &settings))),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(nimbus_platforms::runtime::builder(false).build()?)
}
