//! Durable long tasks, host side: the checkpoint format, the storage the protocol needs, and the protocol.
//!
//! A guest task works in steps and checkpoints its state; the host commits each checkpoint with fencing, so a
//! stale run can never overwrite a newer one, and schedules continuations so a task can outlive any single
//! invocation. A run that dies is resumed from its last commit. See [`driver`] for the protocol,
//! [`store`] for the backend contract, [`embedded`] for the local backend and [`format`](mod@format) for the bytes.
//! With the `aws` feature, `aws::Aws` is the production backend (S3 + DynamoDB + SQS); the host picks a backend at
//! run time as an `Arc<dyn Backend>`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nimbus_checkpoint::{Begin, Durable, Settings};
//!
//! let durable = Durable::embedded("/var/lib/nimbus/tasks", Settings::default())?;
//! let started = durable.start("report", b"input".to_vec(), Some("report-2026-11")).await?;
//! while let Some(delivery) = durable.receive().await? {
//!     if let Begin::Run(mut run) = durable.begin(delivery).await? {
//!         let mut state = run.resumed().map(<[u8]>::to_vec).unwrap_or_default();
//!         state.push(1); // ... one step of work ...
//!         run.save(&state).await?;
//!         if state.len() < 10 { run.yielded().await? } else { run.done(state).await? }
//!     }
//! }
//! let record = durable.status(&started.task_id).await?;
//! # let _ = record;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
pub mod driver;
pub mod embedded;
pub mod format;
pub mod store;

#[cfg(feature = "aws")]
pub use aws::{Aws, AwsResources};
pub use clock::{Clock, ManualClock, SystemClock};
pub use driver::{Begin, Delivery, Durable, DurableError, Recovery, RetryPolicy, Run, SaveError, Settings, Started};
pub use embedded::Embedded;
pub use format::FormatError;
pub use store::{Backend, Condition, Continuation, Created, Lease, Received, StoreError, TaskRecord, TaskStatus};
