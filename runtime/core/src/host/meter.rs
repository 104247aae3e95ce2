//! Per-invocation metrics ([`MetricsFormat`]): started when an invocation is admitted, published when its
//! guest call ends, the same for every kind.

use super::{Function, Host};
use crate::error::InvokeError;
use crate::invocation::Invocation;
use crate::logs::LogSink;
use crate::metrics::{InvocationReport, MetricsFormat};
use crate::telemetry::{Measurement, Measuring, Trigger};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Host {
    /// Starts measuring one invocation of `f` for the configured metrics.
    pub(super) fn meter(&self, f: &Function, trigger: Trigger, cold: bool) -> Meter {
        Meter {
            started: Instant::now(),
            cold_start_init: cold.then_some(self.boot_time),
            publish: matches!(*self.metrics, MetricsFormat::Emf { .. })
                .then(|| (self.metrics.clone(), self.log_sink.clone())),
            otlp: f.metrics.as_ref().map(|m| m.start(trigger)),
        }
    }
}

/// Measures one invocation for [`MetricsFormat`]; publishes when the guest returns.
pub(super) struct Meter {
    started: Instant,
    cold_start_init: Option<Duration>,
    /// EMF only; `None` when metrics are off: nothing is cloned or formatted.
    publish: Option<(Arc<MetricsFormat>, LogSink)>,
    /// OTLP only: the function's recorder, for this invocation.
    otlp: Option<Measuring>,
}

impl Meter {
    /// Publishes the invocation's measures (the faults injected into it are counted from the fault plan's
    /// share of the task it runs in).
    pub(super) fn finish(self, inv: &Invocation, peak_memory: u64, error: Option<&InvokeError>) {
        if self.publish.is_none() && self.otlp.is_none() {
            return;
        }
        let report = InvocationReport {
            inv,
            duration: self.started.elapsed(),
            peak_memory,
            cold_start_init: self.cold_start_init,
            error_type: error.map(InvokeError::error_type),
            faults_injected: crate::faults::current().map_or(0, |f| f.count() as u64),
        };
        if let Some((format, sink)) = &self.publish {
            format.publish(sink, &report);
        }
        if let Some(m) = self.otlp {
            m.record(&Measurement {
                duration: report.duration,
                peak_memory,
                cold_start_init: report.cold_start_init,
                error_type: report.error_type,
                timed_out: matches!(error, Some(InvokeError::Deadline(_))),
                faults_injected: report.faults_injected,
            });
        }
    }
}
