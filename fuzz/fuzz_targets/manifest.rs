//! `nimbus.toml` (`nimbus_core::Manifest::parse`: TOML, then every section resolved and validated) and fault
//! plans (`nimbus_core::faults::FaultPlan::parse`: `NIMBUS_FAULTS` and `[faults]`, TOML or JSON). Neither
//! may panic on any text; both may refuse it. Nothing touches the file system: `parse` only resolves paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nimbus_core::Manifest;
use nimbus_core::faults::FaultPlan;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Manifest::parse(text, Path::new("fuzz/nimbus.toml"), Path::new("fuzz")) {
        Ok(m) => {
            let _ = (m.uses_ssm(), m.uses_oos());
            for f in &m.functions {
                assert!(m.function(&f.name).is_some());
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match FaultPlan::parse(text, "fuzz", || 0) {
        Ok(plan) => {
            let _ = plan.rules_for("fuzz").count();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
