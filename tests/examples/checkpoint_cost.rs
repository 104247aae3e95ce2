//! What durable tasks cost, in one run:
//!
//! 1. **Checkpoint encoding**: `nimbus_checkpoint::format::encode`/`decode` (header, CRC-32, lz4 frame) on
//!    incompressible and on JSON-like state, against plain `lz4_flex` frame compression as the peer.
//! 2. **Save + commit latency** against state size (1 KiB to 64 MiB): `Run::save` (encode, write the object,
//!    conditional commit of the record) on the embedded store and on the AWS store (moto on 127.0.0.1),
//!    each beside its peer: a bare temp-file write + fsync + rename, and a bare S3 `PutObject` of the same
//!    bytes.
//! 3. **Overhead of a checkpointing, yielding task**: the `sha-task` example hashing a generated stream
//!    uninterrupted (one run, no checkpoint) versus cut into runs of about one second, each saving about once
//!    a second and yielding, on both stores.
//!
//! Run with `cargo run --release -p nimbus-tests --example checkpoint_cost` (needs `moto_server`:
//! `scripts/setup`). `CHECKPOINT_COST_QUICK=1` runs a smaller version.

use nimbus_checkpoint::{Aws, Backend, Begin, Durable, Embedded, Settings, TaskStatus, format};
use nimbus_core::{Handled, Host, Tasks};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn quick() -> bool {
    std::env::var_os("CHECKPOINT_COST_QUICK").is_some()
}

/// Pseudo-random bytes (lz4 cannot shrink them): the worst case for the codec.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// JSON-like state: records with repeated keys and varying numbers, as a typical serde state is.
fn json_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut i = 0u64;
    while out.len() < len {
        let _ = write!(
            out,
            r#"{{"id":{i},"name":"item-{}","score":{},"tags":["a","b"]}},"#,
            i % 977,
            (i * 2_654_435_761) % 100_000
        );
        i += 1;
    }
    out.truncate(len);
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Median seconds of `f` over `n` runs.
fn time_n(n: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn codec() {
    println!("## 1. Checkpoint encoding (median of runs, MB/s of state)\n");
    println!("| state | size | encode | decode | ratio | peer: lz4_flex frame compress | peer: decompress |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let size = if quick() { 8 * MIB } else { 64 * MIB };
    for (name, state) in [("random", random_bytes(size, 1)), ("JSON-like", json_bytes(size))] {
        let n = if quick() { 3 } else { 5 };
        let mut encoded = Vec::new();
        let enc = time_n(n, || encoded = format::encode("bench-task", 7, &state));
        let dec = time_n(n, || {
            let back = format::decode_with_limit(&encoded, "bench-task", 7, 128 * MIB).expect("decode");
            assert_eq!(back.len(), state.len());
        });
        let mut frame = Vec::new();
        let peer_enc = time_n(n, || {
            let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
            w.write_all(&state).unwrap();
            frame = w.finish().unwrap();
        });
        let peer_dec = time_n(n, || {
            let mut r = lz4_flex::frame::FrameDecoder::new(&frame[..]);
            let mut out = Vec::with_capacity(state.len());
            std::io::copy(&mut r, &mut out).unwrap();
        });
        println!(
            "| {name} | {} MiB | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |",
            size / MIB,
            mb_per_s(size, enc),
            mb_per_s(size, dec),
            encoded.len() as f64 / size as f64,
            mb_per_s(size, peer_enc),
            mb_per_s(size, peer_dec),
        );
    }
    println!();
}

fn settings() -> Settings {
    Settings {
        max_checkpoint: 128 * MIB,
        lease_ttl: Duration::from_secs(600),
        visibility_timeout: Duration::from_secs(600),
        ..Settings::default()
    }
}

/// Median and 90th percentile milliseconds of `n` saves of `state` in one run.
async fn saves(durable: &Durable, state: &[u8], n: usize) -> (f64, f64) {
    let started = durable.start("bench", Vec::new(), None).await.expect("start");
    let delivery = loop {
        if let Some(d) = durable.receive().await.expect("receive")
            && d.task_id == started.task_id
        {
            break d;
        }
    };
    let Begin::Run(mut run) = durable.begin(delivery).await.expect("begin") else {
        panic!("no run")
    };
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        run.save(state).await.expect("save");
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    run.done(Vec::new()).await.expect("done");
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[(ms.len() * 9 / 10).min(ms.len() - 1)])
}

/// The peer of an embedded save: write the same bytes to a temp file, fsync, rename.
fn bare_file_write(dir: &std::path::Path, bytes: &[u8], n: usize) -> f64 {
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let tmp = dir.join(format!("peer-{i}.tmp"));
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(bytes).unwrap();
        f.sync_all().unwrap();
        std::fs::rename(&tmp, dir.join(format!("peer-{i}"))).unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(ms)
}

/// The peer of an AWS save: a bare S3 PutObject of the same bytes.
async fn bare_put(s3: &aws_sdk_s3::Client, bucket: &str, bytes: &[u8], n: usize) -> f64 {
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        s3.put_object()
            .bucket(bucket)
            .key(format!("peer/{i}"))
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .expect("PutObject");
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(ms)
}

async fn aws_sdk() -> aws_config::SdkConfig {
    let moto = nimbus_tests::moto::shared();
    nimbus_core::aws::sdk_config_with(&moto.settings(), nimbus_core::aws::CallPolicy::SELF_RETRYING).await
}

async fn save_latency() {
    println!("## 2. Save + commit latency (ms; median, p90 for saves; median for peers)\n");
    println!("Random (incompressible) state. Embedded: temp file + fsync + rename for the object, the same for");
    println!("the record. AWS: moto on 127.0.0.1 (a Python server: its own cost dominates).\n");
    println!("| state | embedded save | peer: file write+fsync+rename | AWS (moto) save | peer: S3 PutObject |");
    println!("|---:|---:|---:|---:|---:|");
    let dir = tempfile::tempdir().unwrap();
    let embedded = Durable::new(Arc::new(Embedded::open(dir.path().join("store")).unwrap()), settings());
    let store = nimbus_tests::moto::shared().task_store("bench").await;
    let sdk = aws_sdk().await;
    let aws = Durable::new(Arc::new(Aws::new(&sdk, store.resources())), settings());
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let sizes: &[(usize, &str)] = if quick() {
        &[(1024, "1 KiB"), (MIB, "1 MiB"), (8 * MIB, "8 MiB")]
    } else {
        &[
            (1024, "1 KiB"),
            (64 * 1024, "64 KiB"),
            (MIB, "1 MiB"),
            (8 * MIB, "8 MiB"),
            (64 * MIB, "64 MiB"),
        ]
    };
    for &(size, label) in sizes {
        let n = match size {
            s if s <= 64 * 1024 => 40,
            s if s <= MIB => 20,
            s if s <= 8 * MIB => 8,
            _ => 4,
        };
        let state = random_bytes(size, size as u64);
        let (e_med, e_p90) = saves(&embedded, &state, n).await;
        let peer_dir = dir.path().join(format!("peer-{size}"));
        std::fs::create_dir_all(&peer_dir).unwrap();
        let e_peer = bare_file_write(&peer_dir, &state, n);
        let (a_med, a_p90) = saves(&aws, &state, n).await;
        let a_peer = bare_put(&s3, &store.bucket, &state, n).await;
        println!("| {label} | {e_med:.2} ({e_p90:.2}) | {e_peer:.2} | {a_med:.1} ({a_p90:.1}) | {a_peer:.1} |");
    }
    println!();
}

const TASK_MANIFEST: &str = r#"
manifest_version = 1

[function.plain]
component = "{SHA_TASK}"
timeout = "600s"

[function.chunked]
component = "{SHA_TASK}"
timeout = "1300ms"
task = { yield_margin = "300ms" }
"#;

/// Runs one task of `function` to the end on `tasks`, one delivery at a time; its wall time and run count.
async fn run_task(tasks: &Tasks, function: &str, input: &str) -> (f64, u64) {
    let t = Instant::now();
    let started = tasks
        .start(function, input.as_bytes().to_vec(), None)
        .await
        .expect("start");
    loop {
        match tasks.receive().await.expect("receive") {
            Some(d) => {
                if let Handled::Ran { end, .. } = tasks.handle(d).await.expect("handle") {
                    warn_unexpected(function, &end);
                }
            }
            None => {
                let record = tasks.status(&started.task_id).await.unwrap().unwrap();
                if record.status.is_terminal() {
                    assert_eq!(record.status, TaskStatus::Done, "{record:?}");
                    return (t.elapsed().as_secs_f64(), record.runs);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

fn warn_unexpected(function: &str, end: &nimbus_core::RunEnd) {
    if !matches!(end, nimbus_core::RunEnd::Done | nimbus_core::RunEnd::Yielded) {
        eprintln!("{function}: unexpected run end {end:?}");
    }
}

async fn overhead(host: Arc<Host>) {
    println!("## 3. A checkpointing, yielding task versus the same work uninterrupted\n");
    let dir = tempfile::tempdir().unwrap();
    let embedded = Tasks::embedded(host.clone(), dir.path()).unwrap();
    let store = nimbus_tests::moto::shared().task_store("overhead").await;
    let backend: Arc<dyn Backend> = Arc::new(Aws::new(&aws_sdk().await, store.resources()));
    let aws = Tasks::new(host, backend);

    // Calibrate: MiB hashed per second, so a run of about one second saves about once.
    let (secs, _) = run_task(&embedded, "plain", r#"{"mib": 64, "seed": 1, "save_every": 100000}"#).await;
    let per_sec = (64.0 / secs).round().max(1.0) as u64;
    let mib = if quick() { per_sec * 5 } else { per_sec * 15 };
    println!("sha-task over {mib} MiB ({per_sec} MiB/s here); chunked: `timeout = 1300ms`, `yield_margin = 300ms`");
    println!("(a run works ~1 s, then saves and yields), `save_every = {per_sec}` (about one save a second).");
    println!("Rounds alternate plain and chunked; figures are medians.\n");
    println!("| store | uninterrupted (s) | checkpointing (s) | runs | saves/s | overhead |");
    println!("|---|---:|---:|---:|---:|---:|");
    let plain_input = format!(r#"{{"mib": {mib}, "seed": 3, "save_every": 1000000}}"#);
    let chunked_input = format!(r#"{{"mib": {mib}, "seed": 3, "save_every": {per_sec}}}"#);
    let rounds = if quick() { 1 } else { 3 };
    for (name, tasks) in [("embedded", &embedded), ("AWS (moto)", &aws)] {
        let (mut plain, mut chunked, mut runs) = (Vec::new(), Vec::new(), 0);
        for _ in 0..rounds {
            plain.push(run_task(tasks, "plain", &plain_input).await.0);
            let (t, r) = run_task(tasks, "chunked", &chunked_input).await;
            chunked.push(t);
            runs = r;
        }
        let (p, c) = (median(plain), median(chunked));
        // Saves: one every `per_sec` MiB, plus the one before each yield.
        let saves = mib / per_sec + runs.saturating_sub(1);
        println!(
            "| {name} | {p:.2} | {c:.2} | {runs} | {:.2} | {:+.1}% |",
            saves as f64 / c,
            (c / p - 1.0) * 100.0
        );
    }
    println!();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("# checkpoint_cost ({})\n", if quick() { "quick" } else { "full" });
        codec();
        save_latency().await;
        let (host, _logs) = nimbus_tests::boot(TASK_MANIFEST).await;
        overhead(host).await;
    });
}
