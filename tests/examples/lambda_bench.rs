//! Lambda benchmark through the Runtime API emulator, side by side in one
//! run: warm invocations per second and init duration (process start to
//! its first `/next`) of custom runtimes, e.g. `bootstrap` + a WASM hello
//! against a native `lambda_runtime` hello. Not a test; see `bench/lambda`.
//!
//! Usage: `lambda_bench ROUNDS INVOCATIONS NAME=BOOTSTRAP[@TASK_ROOT]...`

use nimbus_tests::lambda_emulator::{InvokeOptions, LambdaEmulator, Outcome};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An API Gateway HTTP API (2.0) request, as the event for every runtime.
const EVENT: &str = r#"{"version":"2.0","routeKey":"$default","rawPath":"/","rawQueryString":"",
"headers":{"host":"bench.example.com","user-agent":"bench"},
"requestContext":{"http":{"method":"GET","path":"/","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"bench"},
"stage":"$default","domainName":"bench.example.com","requestId":"r","apiId":"a","accountId":"1","routeKey":"$default",
"time":"24/Nov/2026:10:00:00 +0000","timeEpoch":0},"isBase64Encoded":false}"#;

struct Contender {
    name: String,
    exe: PathBuf,
    task_root: Option<PathBuf>,
    rates: Vec<f64>,
    inits: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn round(c: &Contender, invocations: u32) -> (f64, f64) {
    let emu = LambdaEmulator::start().await;
    let mut cmd = Command::new(&c.exe);
    cmd.env("AWS_LAMBDA_RUNTIME_API", emu.runtime_api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("NIMBUS_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(t) = &c.task_root {
        cmd.env("LAMBDA_TASK_ROOT", t);
    }
    let spawned = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", c.exe.display()));
    while emu.first_next().is_none() {
        tokio::time::sleep(Duration::from_micros(200)).await;
        assert!(
            spawned.elapsed() < Duration::from_secs(30),
            "{} never asked for an event",
            c.name
        );
    }
    let init_ms = emu.first_next().unwrap().duration_since(spawned).as_secs_f64() * 1e3;
    // Warm up, and check the answer once.
    match emu.invoke_with(EVENT, InvokeOptions::default()).await {
        Outcome::Response(body) => assert!(
            String::from_utf8_lossy(&body).contains("Hello, world!"),
            "{}: unexpected response {}",
            c.name,
            String::from_utf8_lossy(&body)
        ),
        other => panic!("{}: {other:?}", c.name),
    }
    let t = Instant::now();
    for _ in 0..invocations {
        emu.invoke_with(EVENT, InvokeOptions::default()).await;
    }
    let rate = f64::from(invocations) / t.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    (rate, init_ms)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: lambda_bench ROUNDS INVOCATIONS NAME=BOOTSTRAP[@TASK_ROOT]...";
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let invocations: u32 = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let mut contenders: Vec<Contender> = args
        .map(|a| {
            let (name, rest) = a.split_once('=').expect(usage);
            let (exe, task_root) = match rest.split_once('@') {
                Some((e, t)) => (e, Some(PathBuf::from(t))),
                None => (rest, None),
            };
            Contender {
                name: name.into(),
                exe: exe.into(),
                task_root,
                rates: Vec::new(),
                inits: Vec::new(),
            }
        })
        .collect();
    assert!(!contenders.is_empty(), "{usage}");
    for r in 1..=rounds {
        for c in &mut contenders {
            let (rate, init) = round(c, invocations).await;
            eprintln!("round {r}: {:<40} {rate:>9.0} inv/s  init {init:>6.2} ms", c.name);
            c.rates.push(rate);
            c.inits.push(init);
        }
    }
    let base = median(&contenders[contenders.len() - 1].rates);
    println!("| runtime | warm invocations/s | vs last | init to first /next (median, min–max) |");
    println!("|---|---:|---:|---:|");
    for c in &contenders {
        let (lo, hi) = c
            .inits
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!(
            "| {} | {:.0} | {:.2} | {:.1} ms ({lo:.1}–{hi:.1}) |",
            c.name,
            median(&c.rates),
            median(&c.rates) / base,
            median(&c.inits)
        );
    }
}
