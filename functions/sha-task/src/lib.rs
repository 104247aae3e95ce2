//! A long task: hashes `mib` MiB of a generated stream, one 1 MiB chunk at a time, across as many
//! invocations as it takes.
//!
//! SHA-256's running state cannot be serialised with the `sha2` crate, so the task hashes a *chain*:
//! `digest(0) = 32 zero bytes`, `digest(i + 1) = SHA-256(digest(i) || chunk(i))`. The checkpoint is just
//! `{next chunk, digest}`, 40-odd bytes of JSON. Chunk `i` is the little-endian `u64` words
//! `splitmix64(seed + k)` for the word indices `k` of that chunk, so anyone can recompute the result natively
//! (the tests do) and compare it with what the task returned after being cut off many times.
//!
//! Start it with `curl -X POST localhost:3000/tasks/sha-task -d '{"mib": 256, "seed": 7}'` (optional
//! `"save_every": N` chunks between checkpoints, default 4).

use nimbus_sdk::task::{Context, Error, Step};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes per chunk: the unit of work between `should_yield` checks.
const CHUNK: usize = 1 << 20;
/// Chunks between checkpoints by default: a killed run redoes at most this much work.
const SAVE_EVERY: u64 = 4;

#[derive(Deserialize)]
struct Input {
    /// Stream length in MiB.
    mib: u64,
    /// Seed of the generated stream.
    #[serde(default)]
    seed: u64,
    /// Chunks between checkpoints (default 4); a yield always saves first.
    #[serde(default = "default_save_every")]
    save_every: u64,
}

fn default_save_every() -> u64 {
    SAVE_EVERY
}

#[derive(Serialize, Deserialize)]
struct State {
    /// The next chunk to hash.
    next: u64,
    /// The chain digest so far, hex.
    digest: String,
}

#[derive(Serialize)]
struct Output {
    mib: u64,
    seed: u64,
    sha256: String,
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill_chunk(buf: &mut [u8], seed: u64, index: u64) {
    let first_word = index * (CHUNK as u64 / 8);
    for (k, word) in buf.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&splitmix64(seed.wrapping_add(first_word + k as u64)).to_le_bytes());
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return Err(Error::failed("saved digest is not 64 hex digits"));
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(Error::failed)?;
    }
    Ok(out)
}

fn sha_chain(input: Input, cx: &mut Context<State>) -> Result<Step<Output>, Error> {
    let mut st = cx.resume_or(State {
        next: 0,
        digest: hex(&[0u8; 32]),
    })?;
    let mut digest = unhex(&st.digest)?;
    let mut buf = vec![0u8; CHUNK];
    while st.next < input.mib {
        fill_chunk(&mut buf, input.seed, st.next);
        let mut h = Sha256::new();
        h.update(digest);
        h.update(&buf);
        digest = h.finalize().into();
        st.next += 1;
        let yield_now = cx.should_yield();
        if st.next % input.save_every.max(1) == 0 || yield_now {
            st.digest = hex(&digest);
            cx.save(&st)?;
            cx.set_progress(&format!("{}/{} MiB", st.next, input.mib))?;
        }
        if yield_now && st.next < input.mib {
            return Ok(Step::Yield);
        }
    }
    Ok(Step::Done(Output {
        mib: input.mib,
        seed: input.seed,
        sha256: hex(&digest),
    }))
}

nimbus_sdk::task_function!(sha_chain);
