//! Stage 3: from the raw manifest to [`Manifest`]. Walks the file in order — `manifest_version`, `[defaults]`,
//! then each function section by section — running each value's check ([`super::validate`]) as it goes, so
//! the first mistake in the file is the one reported. What happens only here: limits inherited from
//! `[defaults]` (themselves over [`Limits::default`]), the defaults that depend on them (a task's yield
//! margin), paths anchored at the manifest's directory, route line numbers, and the checks across
//! functions (one WebSocket path per function).

use super::error::{Problem, line_of};
use super::raw::{RawFunction, RawLimits, RawManifest, RawTask};
use super::{ConfigKeySpec, DEFAULT_CONFIG_REFRESH, FunctionSpec, Limits, Manifest, RouteSpec, TaskSpec, validate};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `app.name` when the manifest has no `[app]`.
pub(super) const DEFAULT_APP_NAME: &str = "nimbus";

/// The manifest `raw` describes; `text` is its source (for line numbers), `file` its path and `dir` the
/// directory relative paths start from.
pub(super) fn manifest(raw: RawManifest, text: &str, file: &Path, dir: &Path) -> Result<Manifest, Problem> {
    validate::version(&raw.manifest_version)?;
    validate::limits(&raw.defaults, "defaults")?;
    let defaults = inherit(Limits::default(), &raw.defaults);

    let mut functions = Vec::with_capacity(raw.function.len());
    // WebSocket paths seen so far, with their function: two functions cannot share one.
    let mut ws_paths: BTreeMap<String, String> = BTreeMap::new();
    for (name, f) in raw.function {
        validate::function_name(&name, f.span())?;
        let spec = function(name, f.get_ref(), defaults, text, dir)?;
        let path = f.get_ref().websocket.as_ref().and_then(|w| w.get_ref().path.as_ref());
        if let Some(p) = path
            && let Some(other) = ws_paths.insert(p.get_ref().clone(), spec.name.clone())
        {
            return Err(Problem::at(
                p.span(),
                format!("function.{}.websocket.path", spec.name),
                format!("websocket path {:?} is already function `{other}`'s", p.get_ref()),
            ));
        }
        functions.push(spec);
    }

    let faults = match raw.faults {
        None => None,
        Some(f) => {
            let span = f.span();
            let plan = crate::faults::FaultPlan::from_raw(f.into_inner(), "[faults]", crate::faults::plan::draw_seed)
                .map_err(|e| Problem::at(span.clone(), "faults", e.to_string()))?;
            if let Some(unknown) = plan
                .rules
                .iter()
                .find_map(|r| r.function.as_ref().filter(|n| !functions.iter().any(|f| &f.name == *n)))
            {
                return Err(Problem::at(
                    span,
                    "faults",
                    format!("a fault rule names function `{unknown}`, which the manifest does not declare"),
                ));
            }
            Some(plan)
        }
    };
    Ok(Manifest {
        path: file.to_path_buf(),
        dir: dir.to_path_buf(),
        app_name: raw.app.map_or_else(|| DEFAULT_APP_NAME.into(), |a| a.name),
        functions,
        faults,
    })
}

/// One function, its limits over `defaults`.
fn function(name: String, f: &RawFunction, defaults: Limits, text: &str, dir: &Path) -> Result<FunctionSpec, Problem> {
    let prefix = format!("function.{name}");
    let overrides = f.limits();
    validate::limits(&overrides, &prefix)?;
    let limits = inherit(defaults, &overrides);

    let mut routes = Vec::with_capacity(f.routes.len());
    for r in &f.routes {
        routes.push(RouteSpec {
            line: line_of(text, r.span().start),
            ..validate::route(r, &prefix)?
        });
    }

    let mut config = BTreeMap::new();
    for (key, spec) in &f.config {
        let source = match validate::config_key(key, spec, &prefix)? {
            super::ConfigSource::File(relative) => super::ConfigSource::File(dir.join(relative)),
            other => other,
        };
        let spec = spec.get_ref();
        config.insert(
            key.clone(),
            ConfigKeySpec {
                source,
                default: spec.default.clone(),
                required: spec.required.unwrap_or(true),
                secret: spec.secret.unwrap_or(false),
            },
        );
    }

    let allowed_outbound_hosts = f
        .allowed_outbound_hosts
        .iter()
        .map(|h| validate::outbound(h, &prefix))
        .collect::<Result<Vec<_>, _>>()?;

    let config_refresh = match &f.config_refresh {
        None => Some(DEFAULT_CONFIG_REFRESH),
        Some(d) => {
            validate::config_refresh(d, &prefix)?;
            // "0s": fetched once at boot, never again.
            Some(d.get_ref().0).filter(|d| !d.is_zero())
        }
    };

    let task = match &f.task {
        None => None,
        Some(t) => {
            validate::task(t.get_ref(), limits.timeout, &prefix)?;
            Some(task(t.get_ref(), limits.timeout))
        }
    };

    let keyvalue = f
        .keyvalue
        .iter()
        .map(|b| validate::bucket(b, &prefix))
        .collect::<Result<_, _>>()?;

    let websocket = match &f.websocket {
        None => None,
        Some(w) => Some(validate::websocket(w.get_ref(), &prefix)?),
    };

    let breaker = match &f.breaker {
        None => None,
        Some(b) => Some(
            super::breaker::resolve(b.get_ref(), &allowed_outbound_hosts, &prefix)
                .map_err(|(key, message)| Problem::at(b.span(), key, message))?,
        ),
    };

    let degradation = match &f.degradation {
        None => None,
        Some(d) => Some(
            super::degradation::resolve(d.get_ref(), breaker.is_some(), &prefix)
                .map_err(|(key, message)| Problem::at(d.span(), key, message))?,
        ),
    };

    Ok(FunctionSpec {
        component: dir.join(&f.component),
        precompiled: f.precompiled.as_ref().map(|p| dir.join(p)),
        name,
        routes,
        limits,
        config,
        allowed_outbound_hosts,
        reuse: f.reuse,
        config_refresh,
        task,
        keyvalue,
        websocket,
        breaker,
        degradation,
    })
}

/// `base` with the limits `o` sets (already checked) replacing its own.
fn inherit(mut base: Limits, o: &RawLimits) -> Limits {
    if let Some(m) = &o.memory {
        base.memory = m.get_ref().0;
    }
    if let Some(t) = &o.timeout {
        base.timeout = t.get_ref().0;
    }
    if let Some(c) = &o.concurrency {
        base.concurrency = c.get_ref().0;
    }
    if let Some(c) = &o.outbound_concurrency {
        base.outbound_concurrency = c.get_ref().0;
    }
    if let Some(b) = &o.max_request_body {
        base.max_request_body = b.get_ref().0;
    }
    if let Some(b) = &o.max_response_body {
        base.max_response_body = b.get_ref().0;
    }
    base
}

/// A task section (already checked) over the defaults for the function's `timeout`.
fn task(t: &RawTask, timeout: Duration) -> TaskSpec {
    let mut spec = TaskSpec::defaults(timeout);
    if let Some(m) = &t.max_checkpoint {
        spec.max_checkpoint = m.get_ref().0;
    }
    if let Some(y) = &t.yield_margin {
        spec.yield_margin = y.get_ref().0;
    }
    if let Some(a) = &t.max_attempts {
        spec.max_attempts = a.get_ref().0;
    }
    spec
}
