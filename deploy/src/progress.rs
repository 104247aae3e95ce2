//! Progress for long steps: a spinner on a terminal, plain lines otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

/// A step that may take a while.
pub struct Step {
    bar: Option<ProgressBar>,
}

impl Step {
    /// Starts a step with `msg`.
    pub fn start(msg: impl Into<String>) -> Step {
        let msg = msg.into();
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(msg);
            Step { bar: Some(bar) }
        } else {
            eprintln!("{msg}");
            Step { bar: None }
        }
    }

    /// Updates the message.
    pub fn set(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.bar {
            Some(b) => b.set_message(msg),
            None => eprintln!("{msg}"),
        }
    }

    /// Ends the step with a final line.
    pub fn finish(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.bar {
            Some(b) => b.finish_with_message(msg),
            None => eprintln!("{msg}"),
        }
    }
}

/// A boot progress callback that reports each function as it loads.
pub fn boot_progress(step: Arc<Step>) -> nimbus_core::host::BootProgress {
    Arc::new(move |name, i, total| step.set(format!("loading {name} ({}/{total})", i + 1)))
}
