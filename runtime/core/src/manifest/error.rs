//! What a manifest error says: the file, the line, the key and the message.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A manifest problem, pointing at the file, line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `function.hello.memory`, when known.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ManifestError {}

/// A problem found in the manifest text, before it is tied to a file: where (a byte span of the text) and
/// which key. Every stage reports these; [`Problem::locate`] turns one into the [`ManifestError`] users see.
#[derive(Debug)]
pub(super) struct Problem {
    span: Option<Range<usize>>,
    key: Option<String>,
    message: String,
}

impl Problem {
    /// A problem with the value at `span`, under `key`.
    pub(super) fn at(span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            span: Some(span),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// A problem the TOML reader found, where it knows the span and key.
    pub(super) fn from_reader(span: Option<Range<usize>>, key: Option<String>, message: String) -> Problem {
        Problem { span, key, message }
    }

    /// The error for `file`, whose text is `text`.
    pub(super) fn locate(self, file: &Path, text: &str) -> ManifestError {
        ManifestError {
            file: file.to_path_buf(),
            line: self.span.map(|s| line_of(text, s.start)),
            key: self.key,
            message: self.message,
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
