//! The environment being read, and the typed readers every setting goes through: one place decides what
//! "unset", "empty", "not UTF-8" and "unparsable" mean.

use super::SettingsError;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;

/// The prefix of the variables that are Nimbus's own (an unknown one is warned about).
pub(super) const NIMBUS_PREFIX: &str = "NIMBUS_";

/// The platforms' memory sizes (MB), which the memory-pressure watchdog reads.
pub(super) const MEMORY_VARIABLES: [&str; 2] = ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "FC_FUNCTION_MEMORY_SIZE"];

/// The prefix of the OpenTelemetry variables.
const OTEL_PREFIX: &str = "OTEL_";

/// The `NIMBUS_*` and `OTEL_*` variables of an environment, the variables that mark a platform
/// ([`super::platform::is_platform_variable`]), the Alibaba Cloud ones OOS reads ([`super::oos::VARIABLES`])
/// and Cloud Run / Knative's ([`super::knative::VARIABLES`]; others are not kept), the names read so far, and
/// the values ignored the way the OpenTelemetry SDK ignores them.
pub(super) struct Vars {
    vars: BTreeMap<String, OsString>,
    /// `NIMBUS_*` variables whose name is not UTF-8 (never a setting).
    odd_names: Vec<String>,
    read: RefCell<BTreeSet<&'static str>>,
    ignored: RefCell<Vec<String>>,
}

impl Vars {
    /// Keeps the `NIMBUS_*`, `OTEL_*`, platform and OOS variables of `env`.
    pub(super) fn new(env: impl IntoIterator<Item = (OsString, OsString)>) -> Vars {
        let mut vars = BTreeMap::new();
        let mut odd_names = Vec::new();
        for (name, value) in env {
            match name.into_string() {
                Ok(name)
                    if name.starts_with(NIMBUS_PREFIX)
                        || name.starts_with(OTEL_PREFIX)
                        || super::platform::is_platform_variable(&name)
                        || super::oos::VARIABLES.contains(&name.as_str())
                        || super::knative::VARIABLES.contains(&name.as_str())
                        || MEMORY_VARIABLES.contains(&name.as_str()) =>
                {
                    vars.insert(name, value);
                }
                Ok(_) => {}
                Err(name) => {
                    let name = name.to_string_lossy().into_owned();
                    if name.starts_with(NIMBUS_PREFIX) {
                        odd_names.push(name);
                    }
                }
            }
        }
        Vars {
            vars,
            odd_names,
            read: RefCell::default(),
            ignored: RefCell::default(),
        }
    }

    /// The raw value of `name`, if set.
    fn raw(&self, name: &'static str) -> Option<&OsString> {
        self.read.borrow_mut().insert(name);
        self.vars.get(name)
    }

    /// The value of `name` as text, if set; a value that is not UTF-8 is an error.
    pub(super) fn text(&self, name: &'static str, expected: &'static str) -> Result<Option<String>, SettingsError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|v| Some(v.to_owned()))
                .ok_or_else(|| SettingsError::NotUnicode {
                    name,
                    value: v.to_string_lossy().into_owned(),
                    expected: Cow::Borrowed(expected),
                }),
        }
    }

    /// [`Vars::text`], with an empty or blank value counted as unset.
    pub(super) fn non_empty(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<String>, SettingsError> {
        Ok(self.text(name, expected)?.filter(|v| !v.trim().is_empty()))
    }

    /// A platform's port variable: 1 to 65535, spaces around it ignored; empty or blank is unset.
    pub(super) fn port(&self, name: &'static str) -> Result<Option<u16>, SettingsError> {
        const PORT: &str = "a TCP port from 1 to 65535";
        Ok(self
            .parse_with(name, PORT, |v| match v.trim() {
                "" => Ok(None),
                v => match v.parse::<u16>() {
                    Ok(p) if p > 0 => Ok(Some(p)),
                    _ => Err(std::borrow::Cow::Borrowed(PORT)),
                },
            })?
            .flatten())
    }

    /// The value of `name` parsed (spaces around it are ignored), if set; a value that does not parse is an
    /// error saying what was `expected`.
    pub(super) fn parse<T: FromStr>(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, SettingsError> {
        self.parse_with(name, expected, |v| {
            v.trim().parse::<T>().map_err(|_| Cow::Borrowed(expected))
        })
    }

    /// The value of `name` as `parse` reads it, if set; `parse`'s error says what is wrong.
    pub(super) fn parse_with<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Result<T, Cow<'static, str>>,
    ) -> Result<Option<T>, SettingsError> {
        let Some(value) = self.text(name, expected)? else {
            return Ok(None);
        };
        parse(&value)
            .map(Some)
            .map_err(|expected| SettingsError::Invalid { name, value, expected })
    }

    /// The value of `name` as a whole number, if set and one; otherwise it is ignored (with a warning), as
    /// the OpenTelemetry SDK ignores it. A value that is not UTF-8 is still an error.
    pub(super) fn lenient_number(&self, name: &'static str) -> Result<Option<u64>, SettingsError> {
        let Some(value) = self.text(name, "a whole number")? else {
            return Ok(None);
        };
        match value.trim().parse::<u64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => {
                self.ignore(format!("{name}={value:?} is ignored: it is not a whole number"));
                Ok(None)
            }
        }
    }

    /// Records a value ignored as the OpenTelemetry SDK ignores it, to be warned about.
    pub(super) fn ignore(&self, why: String) {
        self.ignored.borrow_mut().push(why);
    }

    /// Whether `name` is set to something other than blanks (any bytes).
    pub(super) fn is_set(&self, name: &'static str) -> bool {
        self.raw(name).is_some_and(|v| !v.to_string_lossy().trim().is_empty())
    }

    /// The path `name` gives, if set and not empty (any bytes make a path).
    pub(super) fn path(&self, name: &'static str) -> Option<PathBuf> {
        self.raw(name).filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// The `NIMBUS_*` variables set but never read (no setting has them), each with the setting its name
    /// is closest to, if one is close; and the values ignored.
    pub(super) fn finish(self) -> (Vec<(String, Option<&'static str>)>, Vec<String>) {
        let read = self.read.into_inner();
        let unknown = self
            .vars
            .into_keys()
            .filter(|name| name.starts_with(NIMBUS_PREFIX) && !read.contains(name.as_str()))
            .chain(self.odd_names)
            .map(|name| {
                let like = closest(&name, &read);
                (name, like)
            })
            .collect();
        (unknown, self.ignored.into_inner())
    }
}

/// The name in `known` that `name` is most likely a misspelling of: at most 3 edits away.
fn closest(name: &str, known: &BTreeSet<&'static str>) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edits(name, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// The Levenshtein distance between two names (ASCII in practice).
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_names_find_their_setting() {
        let known: BTreeSet<&'static str> = ["NIMBUS_KEEP_RESIDENT", "NIMBUS_POOLING", "NIMBUS_POOL_INSTANCES"].into();
        assert_eq!(edits("NIMBUS_KEEP_RESIDNET", "NIMBUS_KEEP_RESIDENT"), 2);
        assert_eq!(closest("NIMBUS_KEEP_RESIDNET", &known), Some("NIMBUS_KEEP_RESIDENT"));
        assert_eq!(closest("NIMBUS_POOL_INSTANCE", &known), Some("NIMBUS_POOL_INSTANCES"));
        assert_eq!(closest("NIMBUS_TEST_SEED", &known), None);
    }
}
