//! The SSM overrides file: parameter values on disk, so `nimbus serve` needs
//! no AWS account. A TOML (any extension but `.json`) or JSON map of
//! parameter name to value; a StringList may be written as an array of
//! strings, which is joined with `,` as SSM returns it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the overrides file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    /// The file cannot be read.
    #[error("cannot read the SSM overrides file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a map of parameter name to string (or list of strings).
    #[error("SSM overrides file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Value {
    One(String),
    List(Vec<String>),
}

/// Reads and parses the file: parameter name to value.
pub(super) fn load(path: &Path) -> Result<BTreeMap<String, String>, OverridesError> {
    let text = std::fs::read_to_string(path).map_err(|source| OverridesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<BTreeMap<String, String>, OverridesError> {
    let bad = |message: String| OverridesError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let raw: BTreeMap<String, Value> = if json {
        serde_json::from_str(text).map_err(|e| bad(format!("{e} (expected {{\"/name\": \"value\", ...}})")))?
    } else {
        toml::from_str(text).map_err(|e| bad(format!("{e} (expected lines like \"/name\" = \"value\")")))?
    };
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        if name.is_empty() {
            return Err(bad("empty parameter name".into()));
        }
        let value = match value {
            Value::One(v) => v,
            Value::List(items) => items.join(","),
        };
        out.insert(name, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_give_the_same_map() {
        let t = parse(
            "\"/shop/db-url\" = \"postgres://x\"\n\"/shop/hosts\" = [\"a\", \"b\"]\n",
            Path::new("o.toml"),
        )
        .unwrap();
        let j = parse(
            r#"{"/shop/db-url": "postgres://x", "/shop/hosts": ["a", "b"]}"#,
            Path::new("o.json"),
        )
        .unwrap();
        assert_eq!(t, j);
        assert_eq!(t["/shop/hosts"], "a,b");
    }

    #[test]
    fn non_string_values_are_refused_naming_the_file() {
        let e = parse("\"/a\" = 3\n", Path::new("o.toml")).unwrap_err().to_string();
        assert!(e.contains("o.toml"), "{e}");
        let e = parse(r#"{"/a": {"b": 1}}"#, Path::new("o.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("o.json"), "{e}");
    }
}
