//! `nimbus chaos`: runs an experiment file ([`experiment`]) — a load, a fault schedule and SLA targets —
//! against a manifest it serves in-process (faults injected inside the host, its circuit breakers watched) or
//! against any URL, shows the run's progress, prints a report ([`report`]), writes it as JSON and as an HTML
//! page ([`html`]), and fails when a target is missed, so a CI job can gate on it.

pub mod analyze;
pub mod experiment;
pub mod html;
pub mod load;
pub mod report;

use anyhow::Context as _;
use experiment::{Experiment, Target};
use nimbus_core::faults::{Fault, FaultPlan, Latency};
use nimbus_core::logs::LogSink;
use nimbus_core::telemetry::Platform;
use nimbus_core::{Host, Settings};
use nimbus_platforms::local::{Gateway, GatewayOptions};
use report::{BreakerEvent, FaultWindow, Load, Report};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// `nimbus chaos` options.
#[derive(clap::Args)]
pub struct Args {
    /// The experiment file (examples/chaos/*.toml).
    experiment: PathBuf,
    /// Where the report (report.json, report.html) and the host's log (host.log) go [default:
    /// .nimbus/chaos/<experiment name> beside the experiment].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The fault plan's seed, replacing the experiment's (the same seed and load inject the same faults).
    #[arg(long)]
    seed: Option<u64>,
}

/// A host served in-process for the run.
struct Served {
    host: Arc<Host>,
    gateway: Gateway,
    logs: Arc<Mutex<Vec<String>>>,
    /// The key-value store's directory, removed after the run.
    _state: tempfile::TempDir,
}

/// Runs the experiment; an error when it cannot run, or when it ran and missed a target (after the report
/// is written).
pub async fn run(args: Args, settings: &Settings) -> anyhow::Result<()> {
    let exp = Experiment::load(&args.experiment, args.seed)?;
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.experiment));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let dependency = match &exp.dependency {
        Some(d) => Some(load::serve_dependency(d).await?),
        None => None,
    };
    let served = match &exp.target {
        Target::Manifest(path) => Some(serve(path, settings).await?),
        Target::Url(_) => None,
    };
    let base = match (&exp.target, &served) {
        (_, Some(s)) => format!("http://{}", s.gateway.addr()),
        (Target::Url(u), None) => u.clone(),
        (Target::Manifest(_), None) => unreachable!("a manifest target is served"),
    };
    eprintln!(
        "chaos: {} — {} {}{} at {}/s for {:?}{}",
        exp.name,
        exp.method,
        base,
        exp.path,
        exp.load.rate,
        exp.load.duration,
        exp.faults
            .as_ref()
            .map(|p| format!(", {} fault rules, seed {}", p.rules.len(), p.seed))
            .unwrap_or_default()
    );

    let started_at = SystemTime::now();
    let rec = load::Recorder::start();
    if let (Some(s), Some(plan)) = (&served, &exp.faults) {
        // The plan's clock starts with the load.
        s.host.faults().replace(None);
        s.host.faults().replace(Some(plan.clone()));
    }
    let progress = tokio::spawn(show_progress(
        rec.clone(),
        exp.load.duration,
        served.as_ref().map(|s| s.host.clone()),
    ));
    load::drive(&base, &exp, rec.clone()).await?;
    progress.abort();
    // Requests still in flight when the load stopped count in its last second.
    let duration_s = exp.load.duration.as_secs_f64();

    let report = build_report(&exp, &base, started_at, duration_s, &rec, served.as_ref());
    if let Some(s) = served {
        s.host.faults().replace(None);
        s.gateway.shutdown().await;
        let log = out.join("host.log");
        let lines = s.logs.lock().map(|l| l.join("\n")).unwrap_or_default();
        std::fs::write(&log, lines + "\n").with_context(|| format!("cannot write {}", log.display()))?;
    }
    if let Some((_, task)) = dependency {
        task.abort();
    }
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let page = out.join("report.html");
    std::fs::write(&page, html::render(&report)).with_context(|| format!("cannot write {}", page.display()))?;
    print_summary(&report, rec.skipped());
    eprintln!("report: {} and {}", json.display(), page.display());
    if report.passed {
        Ok(())
    } else {
        let missed: Vec<String> = report
            .sla
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} {} (target {})", c.name, c.actual, c.target))
            .collect();
        anyhow::bail!("SLA missed: {}", missed.join(", "))
    }
}

/// `.nimbus/chaos/<stem>` beside the experiment.
fn default_out(experiment: &Path) -> PathBuf {
    let stem = experiment
        .file_stem()
        .map_or("experiment".into(), |s| s.to_string_lossy().into_owned());
    experiment
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".nimbus/chaos")
        .join(stem)
}

/// Boots `manifest` with the environment's settings, its log captured, behind a gateway on a free loopback
/// port.
async fn serve(manifest_path: &Path, settings: &Settings) -> anyhow::Result<Served> {
    let manifest = super::load_manifest(manifest_path)?;
    let platform = Platform::Local {
        service: super::service_name(manifest_path),
        app: manifest.app_name.clone(),
    };
    let logs = Arc::new(Mutex::new(Vec::new()));
    let mut opts = settings.boot_options(&platform)?;
    opts.log_sink = LogSink::Capture(logs.clone());
    // The experiment's plan is the one that runs; the manifest's own starts with the load, too.
    opts.faults = None;
    let state = tempfile::tempdir()?;
    if manifest.functions.iter().any(|f| !f.keyvalue.is_empty()) {
        let kv = nimbus_kv::Embedded::open(state.path().join("kv"))
            .map_err(|e| anyhow::anyhow!("cannot open a key-value store for the run: {e}"))?;
        opts.keyvalue = Some(Arc::new(kv));
    }
    eprintln!("chaos: booting {}", manifest_path.display());
    let host = Host::boot(manifest, opts).await?;
    host.faults().replace(None);
    let gateway = Gateway::start(
        host.clone(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        GatewayOptions {
            access_log: false,
            ..GatewayOptions::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot listen on loopback: {e}"))?;
    Ok(Served {
        host,
        gateway,
        logs,
        _state: state,
    })
}

/// A progress bar with the last second's throughput, errors and p99, and the breakers open now.
async fn show_progress(rec: Arc<load::Recorder>, duration: Duration, host: Option<Arc<Host>>) {
    let bar = indicatif::ProgressBar::new(duration.as_secs().max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rec.start.elapsed().as_secs_f64();
        let recent: Vec<analyze::Sample> = rec.samples().into_iter().filter(|s| s.done_s >= now - 1.0).collect();
        let mut latencies: Vec<f64> = recent.iter().map(|s| s.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let errors = recent.iter().filter(|s| s.failed).count();
        let open = host.as_ref().map_or(0, |h| {
            h.breakers()
                .states()
                .iter()
                .filter(|(_, _, s)| *s != nimbus_core::breaker::State::Closed)
                .count()
        });
        bar.set_position(now as u64);
        bar.set_message(format!(
            "{} req/s, {errors} errors, p99 {:.0} ms, {} in flight, breakers not closed: {open}",
            recent.len(),
            analyze::quantile(&latencies, 0.99),
            rec.in_flight()
        ));
    }
}

fn build_report(
    exp: &Experiment,
    base: &str,
    started_at: SystemTime,
    duration_s: f64,
    rec: &load::Recorder,
    served: Option<&Served>,
) -> Report {
    let samples = rec.samples();
    let faults = exp.faults.as_ref().map(windows).unwrap_or_default();
    let timeline = analyze::timeline(&samples, duration_s);
    let phases = analyze::phases(&samples, &faults, duration_s);
    let recovery_s = analyze::recovery(&timeline, &faults, duration_s, &exp.sla);
    let ended = faults.iter().any(|w| w.end_s.is_some_and(|e| e < duration_s));
    let sla = analyze::verdicts(&samples, recovery_s, ended, &exp.sla);
    let breakers = served
        .map(|s| breaker_events(&s.logs.lock().map(|l| l.clone()).unwrap_or_default(), started_at))
        .unwrap_or_default();
    Report {
        name: exp.name.clone(),
        target: format!("{base}{}", exp.path),
        started_at: humantime::format_rfc3339_millis(started_at).to_string(),
        duration_s,
        load: Load {
            rate: exp.load.rate,
            concurrency: exp.load.concurrency,
            duration_s: exp.load.duration.as_secs_f64(),
            request: format!("{} {}", exp.method, exp.path),
        },
        seed: exp.faults.as_ref().map(|p| p.seed),
        faults,
        timeline,
        phases,
        breakers,
        recovery_s,
        passed: sla.iter().all(|c| c.passed),
        sla,
    }
}

/// When each rule of `plan` is active, from the start of the load.
fn windows(plan: &FaultPlan) -> Vec<FaultWindow> {
    plan.rules
        .iter()
        .map(|r| {
            let target = match &r.target {
                nimbus_core::faults::Target::Outbound { host, .. } => {
                    format!("outbound {}", host.as_deref().unwrap_or("*"))
                }
                nimbus_core::faults::Target::Checkpoint(op) => format!("checkpoint {op:?}").to_lowercase(),
                other => format!("{other:?}").to_lowercase(),
            };
            let detail = match &r.fault {
                Fault::Latency(Latency::Fixed(d)) => format!(" {d:?}"),
                Fault::Latency(Latency::Uniform { min, max }) => format!(" {min:?}–{max:?}"),
                Fault::Error { status } if target.starts_with("outbound") => format!(" {status}"),
                _ => String::new(),
            };
            FaultWindow {
                rule: r.name.clone(),
                target,
                kind: format!(
                    "{}{detail}, p={}, {}% of invocations",
                    r.fault.kind(),
                    r.probability,
                    r.invocations * 100.0
                ),
                start_s: r.start_after.as_secs_f64(),
                end_s: r.duration.map(|d| (r.start_after + d).as_secs_f64()),
            }
        })
        .collect()
}

/// The breaker transitions the host logged, timed from `started_at`.
fn breaker_events(lines: &[String], started_at: SystemTime) -> Vec<BreakerEvent> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "circuit breaker transition")
        .filter_map(|v| {
            let at = humantime::parse_rfc3339(v["ts"].as_str()?).ok()?;
            let t_s = at.duration_since(started_at).map_or(0.0, |d| d.as_secs_f64());
            Some(BreakerEvent {
                t_s,
                function: v["function"].as_str()?.to_owned(),
                host: v["host"].as_str()?.to_owned(),
                from: v["from"].as_str()?.to_owned(),
                to: v["to"].as_str()?.to_owned(),
            })
        })
        .collect()
}

/// The report on the terminal: phases, breaker transitions, recovery, verdicts.
fn print_summary(r: &Report, skipped: u64) {
    println!("\n{} — {}", r.name, if r.passed { "PASSED" } else { "FAILED" });
    println!(
        "{:<34} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "phase", "seconds", "requests", "errors", "p50 ms", "p95 ms", "p99 ms"
    );
    for p in &r.phases {
        println!(
            "{:<34} {:>4.0}–{:<4.0} {:>8} {:>7.1}% {:>9.1} {:>9.1} {:>9.1}",
            truncate(&p.name, 34),
            p.start_s,
            p.end_s,
            p.requests,
            p.error_rate * 100.0,
            p.p50_ms,
            p.p95_ms,
            p.p99_ms
        );
    }
    if skipped > 0 {
        println!(
            "{skipped} requests not sent: every one of the {} slots was busy",
            r.load.concurrency
        );
    }
    for b in &r.breakers {
        println!(
            "breaker {:>7.2}s  {} → {}: {} {}",
            b.t_s, b.from, b.to, b.function, b.host
        );
    }
    match r.recovery_s {
        Some(s) => println!("recovered {s:.1}s after the last fault ended"),
        None if r.faults.iter().any(|w| w.end_s.is_some()) => println!("did not recover before the run ended"),
        None => {}
    }
    for c in &r.sla {
        println!(
            "{} {:<10} {:>10} (target {})",
            if c.passed { "ok  " } else { "MISS" },
            c.name,
            c.actual,
            c.target
        );
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}
