//! `--target lambda`: deployment zips for AWS Lambda's custom runtime (`provided.al2023`).
//!
//! In `<out>/lambda-<arch>/`, for each function:
//! - `<function>.zip`: self-contained — `bootstrap`, `nimbus.toml`, the component and its artifact;
//! - `<function>-code.zip`: the same without `bootstrap`, for use with
//! - `nimbus-runtime.zip`: a runtime layer holding only `bootstrap` (Lambda runs `/opt/bootstrap` when the
//!   function package has none);
//! - `<function>.json`: the function's deployment description ([`crate::commands::description`]), which the
//!   Terraform modules read.

use super::Package;
use super::bundle::Bundle;
use super::files::{Staging, write_zip};
use crate::commands::description::{self, Description, PackageFile};

/// Writes the layer, and each function's zips and description.
pub fn write(package: &Package, bundles: &[Bundle<'_>], staging: &Staging) -> anyhow::Result<()> {
    let layer = staging.path("nimbus-runtime.zip");
    write_zip(&layer, std::slice::from_ref(&package.bootstrap))?;
    let layer_file = PackageFile::read(&layer)?;
    for b in bundles {
        let thin = staging.path(&format!("{}-code.zip", b.name()));
        write_zip(&thin, &b.files)?;
        let full = staging.path(&format!("{}.zip", b.name()));
        write_zip(&full, &b.with_bootstrap(package))?;
        Description::new(&description::Inputs {
            app: &package.app,
            function: b.spec,
            kind: b.kind,
            architecture: package.arch.lambda_name(),
            zip: &PackageFile::read(&full)?,
            code_zip: &PackageFile::read(&thin)?,
            layer_zip: &layer_file,
        })?
        .write(&staging.path(&format!("{}.json", b.name())))?;
    }
    Ok(())
}
