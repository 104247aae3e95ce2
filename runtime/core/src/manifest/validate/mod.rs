//! Stage 2: checks that need only the raw values — ranges, routes, config sources, SSM names, outbound
//! rules, bucket names, the `task` and `websocket` sections — each turning a raw value into its typed form
//! or a [`Problem`] that names the key and points at the value. Nothing here knows the manifest's directory
//! or inherits from `[defaults]`: that is [`super::resolve`], which calls these in the file's order.

mod websocket;

pub(super) use websocket::websocket;

use super::error::Problem;
use super::raw::{RawConfigKey, RawLimits, RawTask};
use super::{ByteSize, Count, Dur};
use super::{ConfigSource, MANIFEST_VERSION, MAX_OUTBOUND_CONCURRENCY, MIN_CONFIG_REFRESH, OutboundRule, RouteSpec};
use std::fmt::Display;
use std::time::Duration;
use toml::Spanned;

/// `v` if it lies in `lo..=hi`; else a problem naming the value and the range.
pub(super) fn in_range<T: Copy + PartialOrd + Display>(
    v: &Spanned<T>,
    lo: T,
    hi: T,
    key: String,
    name: &str,
) -> Result<T, Problem> {
    let x = *v.get_ref();
    if x < lo || x > hi {
        return Err(Problem::at(
            v.span(),
            key,
            format!("{name} = {x} is out of range: use {lo}..={hi}"),
        ));
    }
    Ok(x)
}

/// `manifest_version` is one this build understands.
pub(super) fn version(v: &Spanned<Count>) -> Result<(), Problem> {
    if v.get_ref().0 != MANIFEST_VERSION {
        return Err(Problem::at(
            v.span(),
            "manifest_version",
            format!(
                "unsupported manifest_version {}: this nimbus understands version {MANIFEST_VERSION}",
                v.get_ref()
            ),
        ));
    }
    Ok(())
}

/// A function name is a kebab-case id: it becomes a Lambda name, a log field and a URL segment.
pub(super) fn function_name(name: &str, span: std::ops::Range<usize>) -> Result<(), Problem> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        return Err(Problem::at(
            span,
            format!("function.{name}"),
            "function names must be kebab-case: lowercase letters, digits and '-', starting with a letter \
             and not ending with '-'",
        ));
    }
    Ok(())
}

/// Each limit set (in `[defaults]` or a function, named by `prefix`) is within its range.
pub(super) fn limits(o: &RawLimits, prefix: &str) -> Result<(), Problem> {
    let key = |name: &str| format!("{prefix}.{name}");
    if let Some(m) = &o.memory {
        in_range(m, ByteSize(1 << 20), ByteSize(4 << 30), key("memory"), "memory")?;
    }
    if let Some(t) = &o.timeout {
        let (lo, hi) = (Dur(Duration::from_millis(1)), Dur(Duration::from_secs(15 * 60)));
        in_range(t, lo, hi, key("timeout"), "timeout")?;
    }
    if let Some(c) = &o.concurrency {
        in_range(c, Count(1), Count(10_000), key("concurrency"), "concurrency")?;
    }
    if let Some(c) = &o.outbound_concurrency {
        let name = "outbound_concurrency";
        in_range(c, Count(1), Count(MAX_OUTBOUND_CONCURRENCY), key(name), name)?;
    }
    for (name, body) in [
        ("max_request_body", &o.max_request_body),
        ("max_response_body", &o.max_response_body),
    ] {
        if let Some(b) = body {
            in_range(b, ByteSize(0), ByteSize(1 << 30), key(name), name)?;
        }
    }
    Ok(())
}

/// Parses `"GET /a/{id}"`, `"ANY /x/{*rest}"` or `"/path"` (its `line` is left for the caller).
pub(super) fn route(r: &Spanned<String>, prefix: &str) -> Result<RouteSpec, Problem> {
    let bad = |m: String| Problem::at(r.span(), format!("{prefix}.routes"), m);
    let text = r.get_ref().trim();
    let (method, path) = match text.split_once(char::is_whitespace) {
        Some((m, p)) => (Some(m), p.trim()),
        None => (None, text),
    };
    let method = match method {
        None | Some("ANY") | Some("*") => None,
        Some(m) => {
            const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
            if !KNOWN.contains(&m) {
                return Err(bad(format!(
                    "unknown method {m:?} in route {text:?}: use one of {KNOWN:?} or ANY"
                )));
            }
            Some(http::Method::from_bytes(m.as_bytes()).map_err(|e| bad(e.to_string()))?)
        }
    };
    if !path.starts_with('/') {
        return Err(bad(format!("route path must start with '/': {text:?}")));
    }
    crate::router::check_path(path).map_err(|e| bad(format!("bad route {text:?}: {e}")))?;
    Ok(RouteSpec {
        method,
        path: path.to_string(),
        line: 0,
    })
}

/// A config key's name and its one source. A `file` source stays relative here; the manifest's
/// directory anchors it later.
pub(super) fn config_key(name: &str, spec: &Spanned<RawConfigKey>, prefix: &str) -> Result<ConfigSource, Problem> {
    let at = |m: String| Problem::at(spec.span(), format!("{prefix}.config.{name}"), m);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err(at("config keys may use letters, digits, '_', '-' and '.' only".into()));
    }
    let s = spec.get_ref();
    let sources = [
        ("value", &s.value),
        ("env", &s.env),
        ("file", &s.file),
        ("ssm", &s.ssm),
        ("ssm_path", &s.ssm_path),
        ("oos", &s.oos),
        ("oos_path", &s.oos_path),
    ];
    let given: Vec<(&str, &String)> = sources
        .into_iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
        .collect();
    const ONE: &str = "give exactly one source: `value`, `env`, `file`, `ssm`, `ssm_path`, `oos` or `oos_path`";
    let no_path_default = |key: &str| {
        at(format!(
            "an `{key}` key has no single value to default: use `required = false` to allow an empty path"
        ))
    };
    match given[..] {
        [("value", v)] => Ok(ConfigSource::Value(v.clone())),
        [("env", v)] => Ok(ConfigSource::Env(v.clone())),
        [("file", v)] => Ok(ConfigSource::File(v.into())),
        [("ssm", v)] => Ok(ConfigSource::Ssm(ssm_name(v).map_err(at)?)),
        [("ssm_path", _)] if s.default.is_some() => Err(no_path_default("ssm_path")),
        [("ssm_path", v)] => Ok(ConfigSource::SsmPath(ssm_path(v).map_err(at)?)),
        [("oos", v)] => Ok(ConfigSource::Oos(oos_name(v).map_err(at)?)),
        [("oos_path", _)] if s.default.is_some() => Err(no_path_default("oos_path")),
        [("oos_path", v)] => Ok(ConfigSource::OosPath(oos_path(v).map_err(at)?)),
        [] => Err(at(format!("the key has no source: {ONE}"))),
        _ => {
            let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
            Err(at(format!(
                "the key has {} sources (`{}`): {ONE}",
                names.len(),
                names.join("`, `")
            )))
        }
    }
}

/// The longest OOS parameter name or path (OOS's limit: fewer than 200 characters).
const OOS_NAME_MAX: usize = 199;

/// Whether `c` may appear in an OOS parameter name: letters, digits, `_`, `-` and `/` (OOS's alphabet).
fn oos_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-/".contains(c)
}

/// OOS parameter names: 1 to 199 characters of OOS's alphabet. A name either OOS API accepts (plain or
/// secret), e.g. `/shop/db-url` or `shop-token`.
fn oos_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > OOS_NAME_MAX || !name.chars().all(oos_char) {
        return Err(format!(
            "invalid OOS parameter name {name:?}: use 1 to {OOS_NAME_MAX} letters, digits and `_-/` \
             (e.g. \"/shop/db-url\")"
        ));
    }
    Ok(name.to_string())
}

/// An OOS path: starts with `/`, OOS's alphabet, no empty segment; returned with a trailing `/`.
fn oos_path(path: &str) -> Result<String, String> {
    let ok = path.starts_with('/') && path.len() <= OOS_NAME_MAX && !path.contains("//") && path.chars().all(oos_char);
    if !ok {
        return Err(format!(
            "invalid OOS path {path:?}: it starts with '/', has no empty segment ('//') and uses at most \
             {OOS_NAME_MAX} letters, digits and `_-/` (e.g. \"/shop/db/\")"
        ));
    }
    Ok(format!("{}/", path.trim_end_matches('/')))
}

/// SSM parameter names: letters, digits, `_.-/` (AWS's alphabet), plus `:` for ARNs and
/// `name:version` / `name:label` selectors.
fn ssm_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 2048
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/:".contains(c));
    if !ok {
        return Err(format!(
            "invalid SSM parameter name {name:?}: use 1 to 2048 letters, digits and `_.-/`, plus `:` in an ARN \
             or a `name:version` selector (e.g. \"/shop/db-url\")"
        ));
    }
    Ok(name.to_string())
}

/// An SSM path: starts with `/`, SSM's alphabet, no empty segment; returned with a trailing `/`.
fn ssm_path(path: &str) -> Result<String, String> {
    let ok = path.starts_with('/')
        && path.len() <= 2048
        && !path.contains("//")
        && path.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if !ok {
        return Err(format!(
            "invalid SSM path {path:?}: it starts with '/', has no empty segment ('//') and uses letters, digits \
             and `_.-/` (e.g. \"/shop/db/\")"
        ));
    }
    Ok(format!("{}/", path.trim_end_matches('/')))
}

/// One `allowed_outbound_hosts` entry.
pub(super) fn outbound(h: &Spanned<String>, prefix: &str) -> Result<OutboundRule, Problem> {
    OutboundRule::parse(h.get_ref()).map_err(|m| Problem::at(h.span(), format!("{prefix}.allowed_outbound_hosts"), m))
}

/// `config_refresh` is `"0s"` (never) or not so short that refreshes would flood SSM.
pub(super) fn config_refresh(d: &Spanned<Dur>, prefix: &str) -> Result<(), Problem> {
    let v = d.get_ref().0;
    if !v.is_zero() && v < MIN_CONFIG_REFRESH {
        return Err(Problem::at(
            d.span(),
            format!("{prefix}.config_refresh"),
            format!(
                "config_refresh is too short: use \"0s\" (never refresh) or at least {}ms",
                MIN_CONFIG_REFRESH.as_millis()
            ),
        ));
    }
    Ok(())
}

/// A `task` section's ranges, and its `yield_margin` against the function's `timeout` (inherited or its own).
pub(super) fn task(t: &RawTask, timeout: Duration, prefix: &str) -> Result<(), Problem> {
    let key = |name: &str| format!("{prefix}.task.{name}");
    if let Some(m) = &t.max_checkpoint {
        in_range(
            m,
            ByteSize(1 << 10),
            ByteSize(1 << 30),
            key("max_checkpoint"),
            "max_checkpoint",
        )?;
    }
    if let Some(y) = &t.yield_margin
        && y.get_ref().0 >= timeout
    {
        return Err(Problem::at(
            y.span(),
            key("yield_margin"),
            format!(
                "yield_margin must be shorter than the function's timeout ({}ms), or should-yield is always true",
                timeout.as_millis()
            ),
        ));
    }
    if let Some(a) = &t.max_attempts {
        in_range(a, Count(1), Count(100), key("max_attempts"), "max_attempts")?;
    }
    Ok(())
}

/// A `keyvalue` bucket name: what every backend can store as a key prefix.
pub(super) fn bucket(b: &Spanned<String>, prefix: &str) -> Result<String, Problem> {
    let name = b.get_ref();
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(Problem::at(
            b.span(),
            format!("{prefix}.keyvalue"),
            format!("bad bucket name {name:?}: use 1-64 ASCII letters, digits, `-` or `_`"),
        ));
    }
    Ok(name.clone())
}
