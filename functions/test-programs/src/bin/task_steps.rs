//! A task of `steps` deterministic steps, each also spinning `step_ms` of wall time, so a short timeout
//! forces many runs. Its result is a hash chain over the step indices the test recomputes natively.
//!
//! `ignore_yield`: never asks `should_yield` (saves after every step), so the host must stop it at the
//! deadline. `oversize`: first saves a state padded past any sane `max_checkpoint`, and fails with the error.
//! `fail`: returns an error value on every run.

use nimbus_sdk::task::{Context, Error, Step};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Deserialize)]
struct Input {
    steps: u64,
    #[serde(default)]
    step_ms: u64,
    #[serde(default)]
    ignore_yield: bool,
    #[serde(default)]
    oversize: Option<usize>,
    #[serde(default)]
    fail: bool,
}

#[derive(Serialize, Deserialize)]
struct State {
    next: u64,
    acc: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pad: String,
}

#[derive(Serialize)]
struct Output {
    steps: u64,
    acc: u64,
}

fn mix(acc: u64, i: u64) -> u64 {
    let mut z = (acc ^ i).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run(input: Input, cx: &mut Context<State>) -> Result<Step<Output>, Error> {
    if input.fail {
        return Err(Error::failed("task_steps was told to fail"));
    }
    let mut st = cx.resume_or(State {
        next: 0,
        acc: 0,
        pad: String::new(),
    })?;
    if let Some(size) = input.oversize {
        st.pad = "x".repeat(size);
        cx.save(&st)?;
    }
    while st.next < input.steps {
        let started = Instant::now();
        st.acc = mix(st.acc, st.next);
        st.next += 1;
        while started.elapsed() < Duration::from_millis(input.step_ms) {
            std::hint::spin_loop();
        }
        cx.save(&st)?;
        cx.set_progress(&format!("{}/{}", st.next, input.steps))?;
        if !input.ignore_yield && st.next < input.steps && cx.should_yield() {
            return Ok(Step::Yield);
        }
    }
    Ok(Step::Done(Output {
        steps: input.steps,
        acc: st.acc,
    }))
}

nimbus_sdk::task_function!(run);

fn main() {}
