//! Where `ssm` / `ssm_path` config keys come from: AWS SSM Parameter Store
//! through `aws-sdk-ssm`, or a local overrides file standing in for it.
//!
//! One [`SsmProvider`] serves every function of a manifest, so at most one
//! SDK client is built, and only when some function has an SSM key.

use super::fetched::Fetched;
use super::overrides;
use crate::aws::{AwsSettings, sdk_config};
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::DisplayErrorContext;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// GetParameters takes at most this many names per call.
const BATCH: usize = 10;

/// Where a manifest's `ssm` and `ssm_path` keys are read from. Cheap to clone.
#[derive(Clone, Default)]
pub struct SsmProvider(Arc<Backend>);

enum Backend {
    Aws {
        settings: AwsSettings,
        /// Built on first use: a manifest without SSM keys never builds one.
        client: OnceCell<Client>,
    },
    Overrides(PathBuf),
}

impl Default for Backend {
    fn default() -> Self {
        Backend::Aws {
            settings: AwsSettings::default(),
            client: OnceCell::new(),
        }
    }
}

impl fmt::Debug for SsmProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SsmProvider {
    /// AWS SSM with these settings (the default provider uses none).
    pub fn aws(settings: AwsSettings) -> SsmProvider {
        SsmProvider(Arc::new(Backend::Aws {
            settings,
            client: OnceCell::new(),
        }))
    }

    /// A local overrides file (TOML or JSON map of parameter name to value)
    /// instead of SSM: no AWS client is built. The file is checked now and
    /// read again at each refresh, so edits show up without a restart.
    pub fn overrides_file(path: impl Into<PathBuf>) -> Result<SsmProvider, overrides::OverridesError> {
        let path = path.into();
        overrides::load(&path)?;
        Ok(SsmProvider(Arc::new(Backend::Overrides(path))))
    }

    /// Where values come from, for messages.
    pub fn describe(&self) -> String {
        match &*self.0 {
            Backend::Aws { .. } => "SSM Parameter Store".into(),
            Backend::Overrides(p) => format!("the SSM overrides file {}", p.display()),
        }
    }

    /// Fetches parameters by name and every parameter under each path, bounded by [`Fetched::bounded`].
    /// Never fails as a whole: failures are reported per batch or path in [`Fetched::failed`].
    pub(super) async fn fetch(&self, names: &[String], paths: &[String]) -> Fetched {
        Fetched::bounded(names, paths, self.fetch_unbounded(names, paths)).await
    }

    /// One parameter's value (decrypted): `Ok(None)` when it does not exist, `Err` saying why the fetch
    /// failed. The fault plan's parameter (`NIMBUS_FAULTS_PARAMETER`) is read this way.
    pub async fn parameter(&self, name: &str) -> Result<Option<String>, String> {
        use super::fetched::Lookup;
        let fetched = self.fetch(&[name.to_owned()], &[]).await;
        match fetched.name(name) {
            Lookup::Found(v) => Ok(Some(v.to_owned())),
            Lookup::Missing => Ok(None),
            Lookup::Failed(e) => Err(e.to_owned()),
        }
    }

    async fn fetch_unbounded(&self, names: &[String], paths: &[String]) -> Fetched {
        match &*self.0 {
            Backend::Overrides(file) => Fetched::from_overrides(file, names, paths),
            Backend::Aws { settings, client } => {
                let client = client
                    .get_or_init(|| async { Client::new(&sdk_config(settings).await) })
                    .await;
                let mut out = Fetched::default();
                for batch in names.chunks(BATCH) {
                    get_parameters(client, batch, &mut out).await;
                }
                for path in paths {
                    get_parameters_by_path(client, path, &mut out).await;
                }
                out
            }
        }
    }

    #[cfg(test)]
    pub(super) fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

async fn get_parameters(client: &Client, batch: &[String], out: &mut Fetched) {
    let result = client
        .get_parameters()
        .set_names(Some(batch.to_vec()))
        .with_decryption(true)
        .send()
        .await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            out.fail(batch.to_vec(), DisplayErrorContext(&e).to_string());
            return;
        }
    };
    let mut found = HashMap::new();
    for p in resp.parameters() {
        let (Some(name), Some(value)) = (p.name(), p.value()) else {
            continue;
        };
        // A `name:3` or `name:label` request comes back as `name` plus its selector.
        let asked = format!("{name}{}", p.selector().unwrap_or(""));
        found.insert(asked, value.to_string());
        if let Some(arn) = p.arn() {
            found.insert(arn.to_string(), value.to_string());
        }
        found.entry(name.to_string()).or_insert_with(|| value.to_string());
    }
    for name in batch {
        match found.get(name) {
            Some(v) => {
                out.values.insert(name.clone(), v.clone());
            }
            // InvalidParameters, or anything SSM left out: the parameter does not exist.
            None => {
                out.missing.insert(name.clone());
            }
        }
    }
}

async fn get_parameters_by_path(client: &Client, path: &str, out: &mut Fetched) {
    let pages = client
        .get_parameters_by_path()
        .path(path)
        .recursive(true)
        .with_decryption(true)
        .into_paginator()
        .send()
        .try_collect()
        .await;
    match pages {
        Ok(pages) => {
            let found = pages
                .iter()
                .flat_map(|page| page.parameters())
                .filter_map(|p| Some((p.name()?.to_string(), p.value()?.to_string())))
                .collect();
            out.paths.insert(path.to_string(), found);
        }
        Err(e) => out.fail(vec![path.to_string()], DisplayErrorContext(&e).to_string()),
    }
}
