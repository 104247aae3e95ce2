//! What fault injection and circuit breakers cost when they do nothing (issue 18's performance targets):
//!
//! 1. `Host::invoke` of the HTTP hello and of a trivial event function, one at a time, with no fault plan,
//!    with ten rules for another function (the plan runs; this function draws nothing), and with ten rules
//!    that apply to this function but match none of its calls (outbound rules for a host it never calls: each
//!    invocation gets a share and runs inside it). Short blocks of each case alternate, in a rotating order,
//!    so drift hits every case alike; each round's time is compared with the same round's without a plan.
//!    Besides the end-to-end times (noisy: a hello invocation is ~130 µs, and 1% of it is within a run's
//!    drift), the seam's own cost is timed alone: drawing the invocation's share, running a future inside it
//!    and reading it as a host call would, per invocation, in ns; and with the ten rules, once more with an
//!    outbound call that none of them matches (the call that makes the invocation draw which rules apply).
//! 2. One breaker's bookkeeping per outbound call: admit and record under its mutex, on the real
//!    [`nimbus_core::breaker::Breaker`], closed (the common case) and with the window rolling over.
//!
//! Run with `cargo run --release -p nimbus-tests --example fault_cost`.

use nimbus_core::Host;
use nimbus_core::breaker::{Admit, Breaker, BreakerSettings, Outcome as CallOutcome};
use nimbus_core::faults::{Family, FaultPlan};
use nimbus_tests::bench::{event_once, http_once};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const N: usize = 100;
const ROUNDS: usize = 300;
const SEAM_CALLS: usize = 1_000_000;

/// Ten rules; `function` names whom they apply to.
fn ten_rules(function: &str) -> FaultPlan {
    let rules: String = (0..10)
        .map(|i| {
            format!(
                "[[rule]]\nfunction = \"{function}\"\ntarget = \"outbound\"\nhost = \"nowhere-{i}.example\"\nkind = \"error\"\n"
            )
        })
        .collect();
    FaultPlan::parse(&format!("seed = 1\n{rules}"), "bench", || 0).unwrap()
}

/// Mean µs per invocation of `once` over `N` serial calls.
async fn serial<F: AsyncFn(&Host)>(host: &Host, once: &F) -> f64 {
    let t = Instant::now();
    for _ in 0..N {
        once(host).await;
    }
    t.elapsed().as_secs_f64() * 1e6 / N as f64
}

/// Mean ns per invocation of the fault seam alone: the share drawn for a `function` invocation, a future run
/// inside it that reads it (as a host call does), and both dropped. With `call`, the future also asks, as an
/// outbound call to `api.example` does, whether a rule fires (the first such call draws which rules apply).
async fn seam_ns(host: &Host, function: &str, call: bool) -> f64 {
    let f = host.function(function).unwrap();
    let invs: Vec<_> = (0..1024)
        .map(|_| std::sync::Arc::new(host.new_invocation(f, None, nimbus_core::TraceContext::new_root())))
        .collect();
    let t = Instant::now();
    for i in 0..SEAM_CALLS {
        let share = host.faults().draw(&invs[i % invs.len()], host.log_sink());
        let seen = nimbus_core::faults::scope(share, async {
            let share = nimbus_core::faults::current();
            match share {
                Some(fx) if call => fx
                    .fire(Family::Outbound, |t| t.outbound_matches("api.example", "GET", "/"))
                    .is_some(),
                share => share.is_some(),
            }
        })
        .await;
        std::hint::black_box(seen);
    }
    t.elapsed().as_nanos() as f64 / SEAM_CALLS as f64
}

fn breaker_ns(calls: u64, spacing: Duration) -> f64 {
    let b = Mutex::new(Breaker::new(BreakerSettings::default()));
    let start = Instant::now();
    let took = Duration::from_millis(3);
    let t = Instant::now();
    for i in 0..calls {
        // Time passed in, as the layer does (`origin.elapsed()`), so the clock read is counted.
        let now = start.elapsed() + spacing * (i as u32);
        let admit = b.lock().unwrap().admit(now).0;
        if let Admit::Pass { probe } = admit {
            let outcome = CallOutcome {
                failed: i % 10 == 0,
                took,
            };
            std::hint::black_box(b.lock().unwrap().record(now, probe, outcome));
        }
    }
    t.elapsed().as_nanos() as f64 / calls as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let host = nimbus_tests::bench::boot().await;
    for _ in 0..2_000 {
        http_once(&host).await;
        event_once(&host).await;
    }
    let cases = [
        "no plan",
        "10 rules for another function",
        "10 rules, none matching a call",
    ];
    // The plan of case `i` for the function `f`.
    let plan = |i: usize, f: &str| match i {
        0 => None,
        1 => Some(ten_rules("nobody")),
        _ => Some(ten_rules(f)),
    };
    let mut http: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut event: Vec<Vec<f64>> = vec![Vec::new(); 3];
    // Each round runs every case in turn, starting one case later than the round before and alternating
    // whether HTTP or event goes first, so that no case always runs in the same place of a round.
    for round in 0..ROUNDS {
        for k in 0..cases.len() {
            let i = (round + k) % cases.len();
            for kind in [round % 2, 1 - round % 2] {
                host.faults().replace(None);
                if kind == 0 {
                    host.faults().replace(plan(i, "hello"));
                    http[i].push(serial(&host, &async |h: &Host| http_once(h).await).await);
                } else {
                    host.faults().replace(plan(i, "check"));
                    event[i].push(serial(&host, &async |h: &Host| event_once(h).await).await);
                }
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Each round's time against the same round's "no plan" time: drift between rounds cancels out.
    let ratios = |v: &[Vec<f64>], i: usize| -> Vec<f64> { v[i].iter().zip(&v[0]).map(|(c, base)| c / base).collect() };
    let quartiles = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 4], v[v.len() / 2], v[3 * v.len() / 4])
    };
    println!(
        "Host::invoke, serial, blocks of {N} calls x {ROUNDS} rounds alternating; median µs, then the median (quartiles)"
    );
    println!("of each round's change against the same round with no plan");
    println!("{:<34} {:>32} {:>32}", "plan", "HTTP hello", "event");
    for (i, name) in cases.iter().enumerate() {
        let cell = |v: &[Vec<f64>]| {
            let (q1, q2, q3) = quartiles(ratios(v, i));
            let pct = |r: f64| (r - 1.0) * 100.0;
            format!(
                "{:7.2}  {:+5.2}% ({:+.2}..{:+.2})",
                median(v[i].clone()),
                pct(q2),
                pct(q1),
                pct(q3)
            )
        };
        println!("{name:<34} {:>32} {:>32}", cell(&http), cell(&event));
    }

    println!("\nthe fault seam alone, per invocation ({SEAM_CALLS} draws), ns");
    for (i, name) in cases.iter().enumerate() {
        host.faults().replace(None);
        host.faults().replace(plan(i, "hello"));
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(seam_ns(&host, "hello", false).await);
        }
        println!("{name:<34} {:>8.1}", median(runs));
    }
    host.faults().replace(plan(2, "hello"));
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(seam_ns(&host, "hello", true).await);
    }
    println!(
        "{:<34} {:>8.1}",
        "10 rules, an outbound call matching none",
        median(runs)
    );
    host.faults().replace(None);

    println!("\nbreaker bookkeeping per outbound call (admit + record, each under the mutex), ns");
    for (name, spacing) in [
        ("calls 1 µs apart (one bucket)", Duration::from_micros(1)),
        ("calls 10 ms apart (the window rolls)", Duration::from_millis(10)),
    ] {
        let mut runs: Vec<f64> = (0..5).map(|_| breaker_ns(2_000_000, spacing)).collect();
        runs.sort_by(f64::total_cmp);
        println!("{name:<40} {:>6.1} (min {:.1}, max {:.1})", runs[2], runs[0], runs[4]);
    }
}
