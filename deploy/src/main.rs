//! `nimbus`: develop, run and package Nimbus functions.

mod commands;
mod progress;

use clap::{Parser, Subcommand};

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
    /// Build deployment zips: `--target lambda` for AWS Lambda's custom runtime.
    Package(commands::package::Args),
    /// Start durable tasks and show their status (the embedded store of `nimbus serve`).
    #[command(subcommand)]
    Task(commands::task::Args),
}

/// When `main` started, for the boot-time figures in the logs.
pub static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn main() -> std::process::ExitCode {
    STARTED.get_or_init(std::time::Instant::now);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NIMBUS_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .compact()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(a) => commands::new::run(a),
        Command::Build(a) => commands::build::run(a),
        // The environment file is loaded while this is the only thread.
        Command::Serve(a) => commands::serve::load_env_file(&a)
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(commands::serve::run(a))),
        Command::Invoke(a) => commands::invoke::load_env_file(&a)
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(commands::invoke::run(a))),
        Command::Compile(a) => commands::compile::run(a),
        Command::Package(a) => commands::package::run(a),
        Command::Task(a) => runtime().and_then(|rt| rt.block_on(commands::task::run(a))),
    };
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
