//! From the requests a run made to its report: a timeline per second, phases cut at the fault windows, the
//! recovery time after the last window, and the SLA verdicts. Pure, so the arithmetic is unit-tested.

use super::experiment::Sla;
use super::report::{FaultWindow, Phase, Second, SlaCheck};

/// One request of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it completed, in seconds from the start of the load.
    pub done_s: f64,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// It got no response, or a 5xx.
    pub failed: bool,
}

/// The `q` quantile (0 to 1) of `sorted` (nearest rank); 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Requests, errors and latency quantiles of `samples`.
struct Stats {
    requests: u64,
    errors: u64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn stats<'a>(samples: impl Iterator<Item = &'a Sample>) -> Stats {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for s in samples {
        latencies.push(s.latency_ms);
        errors += u64::from(s.failed);
    }
    latencies.sort_by(f64::total_cmp);
    Stats {
        requests: latencies.len() as u64,
        errors,
        p50: quantile(&latencies, 0.50),
        p95: quantile(&latencies, 0.95),
        p99: quantile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or(0.0),
    }
}

fn rate(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    }
}

/// One entry per second of a run of `duration_s`.
pub fn timeline(samples: &[Sample], duration_s: f64) -> Vec<Second> {
    let seconds = duration_s.ceil().max(0.0) as usize;
    let mut by_second: Vec<Vec<Sample>> = vec![Vec::new(); seconds];
    for s in samples {
        let i = (s.done_s.max(0.0) as usize).min(seconds.saturating_sub(1));
        if let Some(bucket) = by_second.get_mut(i) {
            bucket.push(*s);
        }
    }
    by_second
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let st = stats(b.iter());
            Second {
                t_s: i as f64,
                requests: st.requests,
                errors: st.errors,
                p50_ms: st.p50,
                p95_ms: st.p95,
                p99_ms: st.p99,
            }
        })
        .collect()
}

/// The run cut at every fault window's start and end; each phase named by the windows active in it.
pub fn phases(samples: &[Sample], windows: &[FaultWindow], duration_s: f64) -> Vec<Phase> {
    let mut cuts = vec![0.0, duration_s];
    for w in windows {
        cuts.push(w.start_s.clamp(0.0, duration_s));
        cuts.push(w.end_s.unwrap_or(duration_s).clamp(0.0, duration_s));
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    let first_fault = windows.iter().map(|w| w.start_s).fold(f64::INFINITY, f64::min);
    let last_fault = windows
        .iter()
        .map(|w| w.end_s.unwrap_or(f64::INFINITY))
        .fold(f64::NEG_INFINITY, f64::max);
    cuts.windows(2)
        .map(|c| {
            let (start, end) = (c[0], c[1]);
            let mid = (start + end) / 2.0;
            let active: Vec<&str> = windows
                .iter()
                .filter(|w| w.start_s <= mid && mid < w.end_s.unwrap_or(f64::INFINITY))
                .map(|w| w.rule.as_str())
                .collect();
            let name = if !active.is_empty() {
                format!("during {}", active.join(" + "))
            } else if windows.is_empty() {
                "no faults".to_owned()
            } else if end <= first_fault {
                "before faults".to_owned()
            } else if start >= last_fault {
                "after faults".to_owned()
            } else {
                "between faults".to_owned()
            };
            let last = (end - duration_s).abs() < 1e-9;
            let st = stats(samples.iter().filter(|s| s.done_s >= start && (s.done_s < end || last)));
            Phase {
                name,
                start_s: start,
                end_s: end,
                requests: st.requests,
                errors: st.errors,
                error_rate: rate(st.errors, st.requests),
                p50_ms: st.p50,
                p95_ms: st.p95,
                p99_ms: st.p99,
                max_ms: st.max,
            }
        })
        .collect()
}

/// Whether one second of the run is within the targets (an error rate of at most `sla.error_rate`, or 1%
/// without one; a p99 of at most `sla.p99` if set). A second without requests is not.
fn healthy(s: &Second, sla: &Sla) -> bool {
    s.requests > 0
        && rate(s.errors, s.requests) <= sla.error_rate.unwrap_or(0.01)
        && sla.p99.is_none_or(|p| s.p99_ms <= p.as_secs_f64() * 1e3)
}

/// Seconds from the end of the last fault window that ended during the run until the service is within its
/// targets for the rest of the run; `None` when no window ended, or it never recovered.
pub fn recovery(timeline: &[Second], windows: &[FaultWindow], duration_s: f64, sla: &Sla) -> Option<f64> {
    let ended = windows
        .iter()
        .filter_map(|w| w.end_s)
        .filter(|&e| e < duration_s)
        .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))))?;
    // The first second from which every later one is healthy (trailing seconds without requests — a run cut
    // short, or a load that stopped — say nothing either way).
    let mut from = None;
    let answered = timeline.iter().rposition(|s| s.requests > 0).map_or(0, |i| i + 1);
    for s in timeline[..answered].iter().rev() {
        if s.t_s + 1.0 <= ended {
            break;
        }
        if healthy(s, sla) {
            from = Some(s.t_s);
        } else {
            break;
        }
    }
    from.map(|t| (t - ended).max(0.0))
}

/// The verdict on each target.
pub fn verdicts(samples: &[Sample], recovery_s: Option<f64>, windows_ended: bool, sla: &Sla) -> Vec<SlaCheck> {
    let all = stats(samples.iter());
    let mut checks = Vec::new();
    if let Some(p99) = sla.p99 {
        let target = p99.as_secs_f64() * 1e3;
        checks.push(SlaCheck {
            name: "p99".into(),
            target: format!("{target:.0}ms"),
            actual: format!("{:.1}ms", all.p99),
            passed: all.requests > 0 && all.p99 <= target,
        });
    }
    if let Some(max) = sla.error_rate {
        let actual = rate(all.errors, all.requests);
        checks.push(SlaCheck {
            name: "error_rate".into(),
            target: format!("{:.2}%", max * 100.0),
            actual: format!("{:.2}%", actual * 100.0),
            passed: all.requests > 0 && actual <= max,
        });
    }
    if let Some(max) = sla.recovery {
        let (actual, passed) = match (recovery_s, windows_ended) {
            (Some(r), _) => (format!("{r:.1}s"), r <= max.as_secs_f64()),
            (None, true) => ("never".to_owned(), false),
            (None, false) => ("no fault window ended during the run".to_owned(), false),
        };
        checks.push(SlaCheck {
            name: "recovery".into(),
            target: format!("{}s", max.as_secs_f64()),
            actual,
            passed,
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(done_s: f64, latency_ms: f64, failed: bool) -> Sample {
        Sample {
            done_s,
            latency_ms,
            failed,
        }
    }

    fn window(start_s: f64, end_s: Option<f64>) -> FaultWindow {
        FaultWindow {
            rule: "down".into(),
            target: "outbound".into(),
            kind: "error".into(),
            start_s,
            end_s,
        }
    }

    /// Ten requests a second for `seconds`; those completing in `[bad.0, bad.1)` fail and take 100 ms.
    fn run(seconds: usize, bad: (f64, f64)) -> Vec<Sample> {
        (0..seconds * 10)
            .map(|i| {
                let t = i as f64 / 10.0;
                let failing = t >= bad.0 && t < bad.1;
                sample(t, if failing { 100.0 } else { 5.0 }, failing)
            })
            .collect()
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_timeline_and_phases_split_the_run_at_the_fault_window() {
        let samples = run(10, (3.0, 6.0));
        let tl = timeline(&samples, 10.0);
        assert_eq!(tl.len(), 10);
        assert_eq!((tl[2].requests, tl[2].errors, tl[2].p99_ms), (10, 0, 5.0));
        assert_eq!((tl[4].errors, tl[4].p50_ms), (10, 100.0));
        let ph = phases(&samples, &[window(3.0, Some(6.0))], 10.0);
        let names: Vec<&str> = ph.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["before faults", "during down", "after faults"]);
        assert_eq!((ph[0].requests, ph[0].errors), (30, 0));
        assert_eq!((ph[1].requests, ph[1].errors, ph[1].error_rate), (30, 30, 1.0));
        assert_eq!((ph[2].requests, ph[2].max_ms), (40, 5.0));
        assert_eq!(phases(&samples, &[], 10.0)[0].name, "no faults");
        let two = [window(2.0, Some(3.0)), window(5.0, Some(6.0))];
        let names: Vec<String> = phases(&samples, &two, 10.0).into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "before faults",
                "during down",
                "between faults",
                "during down",
                "after faults"
            ]
        );
    }

    #[test]
    fn recovery_counts_from_the_end_of_the_last_window_to_lasting_health() {
        let sla = Sla {
            error_rate: Some(0.05),
            ..Sla::default()
        };
        // Failing until 8 s, the window ended at 6 s: recovered 2 s after.
        let samples = run(12, (3.0, 8.0));
        let tl = timeline(&samples, 12.0);
        let windows = [window(3.0, Some(6.0))];
        assert_eq!(recovery(&tl, &windows, 12.0, &sla), Some(2.0));
        // Healthy as soon as the window ends: 0.
        let tl = timeline(&run(12, (3.0, 6.0)), 12.0);
        assert_eq!(recovery(&tl, &windows, 12.0, &sla), Some(0.0));
        // Never healthy again, or no window ended: none.
        let tl = timeline(&run(12, (3.0, 99.0)), 12.0);
        assert_eq!(recovery(&tl, &windows, 12.0, &sla), None);
        assert_eq!(recovery(&tl, &[window(3.0, None)], 12.0, &sla), None);
        // Trailing seconds without requests say nothing.
        let mut tl = timeline(&run(12, (3.0, 6.0)), 14.0);
        assert_eq!(tl.len(), 14);
        tl[12].requests = 0;
        assert_eq!(recovery(&tl, &windows, 14.0, &sla), Some(0.0));
        // A p99 target counts too.
        let slow = Sla {
            p99: Some(Duration::from_millis(50)),
            ..sla
        };
        let tl = timeline(&run(12, (3.0, 9.0)), 12.0);
        assert_eq!(recovery(&tl, &windows, 12.0, &slow), Some(3.0));
    }

    #[test]
    fn verdicts_compare_the_run_with_each_target() {
        let samples = run(10, (3.0, 4.0));
        let sla = Sla {
            p99: Some(Duration::from_millis(50)),
            error_rate: Some(0.2),
            recovery: Some(Duration::from_secs(1)),
        };
        let v = verdicts(&samples, Some(0.0), true, &sla);
        let by: Vec<(&str, &str, bool)> = v
            .iter()
            .map(|c| (c.name.as_str(), c.actual.as_str(), c.passed))
            .collect();
        assert_eq!(
            by,
            [
                ("p99", "100.0ms", false),
                ("error_rate", "10.00%", true),
                ("recovery", "0.0s", true)
            ]
        );
        let none = verdicts(&samples, None, true, &sla);
        assert_eq!((none[2].actual.as_str(), none[2].passed), ("never", false));
        assert!(
            verdicts(&[], None, false, &sla).iter().all(|c| !c.passed),
            "no requests meets nothing"
        );
    }
}
