//! The checkpoint wire format (`nimbus_checkpoint::format`), read back from storage that may hold anything.
//! The first byte picks what the rest is:
//!
//! - `0`: a stored object for `format::decode` / `decode_with_limit`, with the expected task and sequence
//!   taken from the input's own header when it has one (so the decoder gets past them), else from the next
//!   bytes; the text is also read as a continuation message (`Delivery::from_message`);
//! - `1`: an lz4 frame, wrapped in a well-formed header with the right checksum and a state length from the
//!   input, so the frame decoder itself is fuzzed behind `decode_with_limit`;
//! - `2`: a state to round-trip: `encode` then `decode` gives it back; the encoding cut short, or with any one
//!   bit flipped (chosen by the input), is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_checkpoint::Delivery;
use nimbus_checkpoint::format::{self, MAGIC, VERSION};

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The task id and sequence a stored object's header names, if it is long enough to name them.
fn header_ids(b: &[u8]) -> Option<(String, u64)> {
    let id_len = u16::from_le_bytes(b.get(9..11)?.try_into().ok()?) as usize;
    let id = std::str::from_utf8(b.get(11..11 + id_len)?).ok()?;
    Some((id.to_owned(), u64_at(b, 11 + id_len)?))
}

/// A task id and sequence from the input's first bytes, and the rest.
fn ids(data: &[u8]) -> (String, u64, &[u8]) {
    let n = (data.first().copied().unwrap_or(0) % 40) as usize;
    let id_end = (1 + n).min(data.len());
    let task = String::from_utf8_lossy(&data[1.min(data.len())..id_end]).into_owned();
    let seq = u64_at(data, id_end).unwrap_or(0);
    (task, seq, &data[(id_end + 8).min(data.len())..])
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let (task, seq) = header_ids(data).unwrap_or_else(|| {
                let (t, s, _) = ids(data);
                (t, s)
            });
            if let Ok(state) = format::decode(data, &task, seq) {
                assert!(state.len() <= format::DEFAULT_MAX_CHECKPOINT);
            }
            let limit = data.len() % 4096;
            if let Ok(state) = format::decode_with_limit(data, &task, seq, limit) {
                assert!(state.len() <= limit);
            }
            let _ = format::decode(data, "other-task", seq.wrapping_add(1));
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = Delivery::from_message(text, "receipt");
            }
        }
        1 => {
            let (task, seq, rest) = ids(data);
            let announced = u64_at(rest, 0).unwrap_or(0) % (1 << 20);
            let frame = rest.get(8..).unwrap_or(&[]);
            let mut stored = Vec::with_capacity(31 + task.len() + frame.len());
            stored.extend_from_slice(MAGIC);
            stored.extend_from_slice(&VERSION.to_le_bytes());
            stored.extend_from_slice(&(task.len() as u16).to_le_bytes());
            stored.extend_from_slice(task.as_bytes());
            stored.extend_from_slice(&seq.to_le_bytes());
            stored.extend_from_slice(&announced.to_le_bytes());
            stored.extend_from_slice(&crc32fast::hash(frame).to_le_bytes());
            stored.extend_from_slice(frame);
            if let Ok(state) = format::decode_with_limit(&stored, &task, seq, 1 << 20) {
                assert_eq!(state.len() as u64, announced);
            }
        }
        _ => {
            let (task, seq, state) = ids(data);
            let encoded = format::encode(&task, seq, state);
            let limit = state.len().max(1);
            assert_eq!(format::decode_with_limit(&encoded, &task, seq, limit).as_deref(), Ok(state));
            assert!(format::decode(&encoded, &task, seq.wrapping_add(1)).is_err());
            let header = 31 + task.len();
            let cut = (seq as usize) % header;
            assert!(format::decode(&encoded[..cut], &task, seq).is_err(), "cut at {cut}");
            let bit = (seq as usize) % (encoded.len() * 8);
            let mut flipped = encoded.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                format::decode_with_limit(&flipped, &task, seq, limit).is_err(),
                "bit {bit} flipped in {encoded:02x?}"
            );
        }
    }
});
