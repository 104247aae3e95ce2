//! `nimbus task`: start durable tasks and read their status from the embedded task store that
//! `nimbus serve` uses.

use anyhow::{Context as _, bail};
use nimbus_checkpoint::Durable;
use nimbus_core::Settings;
use nimbus_core::tasks::status_json;
use std::path::PathBuf;

/// `nimbus task` subcommands.
#[derive(clap::Subcommand)]
pub enum Args {
    /// Print a task's status as JSON (status, seq, attempts, progress, result, error).
    Status {
        /// The task id (from `POST /tasks/{function}` or `nimbus task start`).
        id: String,
        #[command(flatten)]
        store: Store,
    },
    /// Start a task of FUNCTION; a running `nimbus serve` on the same state directory runs it.
    Start {
        /// The task function.
        function: String,
        /// The task's input (JSON).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Returns the task started earlier with this key instead of starting another.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        store: Store,
    },
}

/// Where the task store is.
#[derive(clap::Args)]
pub struct Store {
    /// The manifest (the store defaults to `.nimbus/state` beside it) [default: nimbus.toml] [env:
    /// NIMBUS_MANIFEST].
    #[arg(long, short)]
    manifest: Option<PathBuf>,
    /// The task store directory, as given to `nimbus serve --state-dir` [env: NIMBUS_STATE_DIR].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl Store {
    /// The manifest: the flag's, else the setting's.
    fn manifest(&self, settings: &Settings) -> PathBuf {
        super::manifest_path(self.manifest.as_deref(), settings)
    }

    fn open(&self, settings: &Settings) -> anyhow::Result<Durable> {
        let flag = self.state_dir.as_deref().or(settings.local.state_dir.as_deref());
        let dir = super::serve::state_dir(&self.manifest(settings), flag);
        if !dir.is_dir() {
            bail!(
                "no task store at {} (start `nimbus serve` first, or pass --state-dir)",
                dir.display()
            );
        }
        Durable::embedded(&dir, nimbus_checkpoint::Settings::default())
            .with_context(|| format!("cannot open the task store in {}", dir.display()))
    }
}

/// Runs a `nimbus task` subcommand.
pub async fn run(args: Args, settings: &Settings) -> anyhow::Result<()> {
    match args {
        Args::Status { id, store } => {
            let durable = store.open(settings)?;
            let valid = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            let record = if valid { durable.status(&id).await? } else { None };
            let Some(record) = record else {
                bail!("no task {id:?} in this store");
            };
            println!("{}", serde_json::to_string_pretty(&status_json(&record))?);
        }
        Args::Start {
            function,
            input,
            idempotency_key,
            store,
        } => {
            let manifest_path = store.manifest(settings);
            let manifest = super::load_manifest(&manifest_path)?;
            if manifest.function(&function).is_none() {
                bail!("no function `{function}` in {}", manifest_path.display());
            }
            serde_json::from_str::<serde_json::Value>(&input).context("--input is not valid JSON")?;
            let durable = store.open(settings)?;
            let started = durable
                .start(&function, input.into_bytes(), idempotency_key.as_deref())
                .await?;
            let reply = serde_json::json!({
                "task_id": started.task_id,
                "created": started.created,
                "status_url": format!("/tasks/{function}/{}", started.task_id),
            });
            println!("{reply}");
        }
    }
    Ok(())
}
