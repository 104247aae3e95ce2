//! `bootstrap`: the AWS Lambda custom runtime (`provided.al2023`).
//!
//! Declared in the CLI's package so that `cargo install --path deploy`
//! installs it beside `nimbus`, where `nimbus package` finds it. All of it
//! lives in [`nimbus_platforms::bootstrap`].

fn main() -> std::process::ExitCode {
    nimbus_platforms::bootstrap::main()
}
