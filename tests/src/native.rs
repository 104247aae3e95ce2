//! Native, uninterrupted versions of the task guests' computations: what a task cut into many runs must
//! return.

use sha2::{Digest, Sha256};

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `functions/sha-task`: the SHA-256 chain over `mib` 1 MiB chunks of the splitmix64 stream from `seed`, hex.
pub fn sha_chain(mib: u64, seed: u64) -> String {
    const CHUNK: usize = 1 << 20;
    let mut digest = [0u8; 32];
    let mut buf = vec![0u8; CHUNK];
    for index in 0..mib {
        let first_word = index * (CHUNK as u64 / 8);
        for (k, word) in buf.chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&splitmix64(seed.wrapping_add(first_word + k as u64)).to_le_bytes());
        }
        let mut h = Sha256::new();
        h.update(digest);
        h.update(&buf);
        digest = h.finalize().into();
    }
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `test-programs/task_steps`: the accumulator after `steps` steps.
pub fn steps_acc(steps: u64) -> u64 {
    (0..steps).fold(0u64, |acc, i| splitmix64(acc ^ i))
}
