//! Where each section and key of a loaded file was written, so that checks made after
//! loading (`loft check-config`, the privilege checks of `serve`) can point at
//! `FILE:LINE:COL` like the loader's own diagnostics.

use std::path::Path;

use super::Diagnostic;

/// `(section, key)` -> 1-based (line, column) of the value; `key` empty for a section header.
#[derive(Clone, Debug, Default)]
pub struct Positions {
    at: Vec<(String, String, usize, usize)>,
}

impl Positions {
    pub(super) fn record(&mut self, section: &str, key: &str, line: usize, col: usize) {
        self.at.push((section.into(), key.into(), line, col));
    }

    /// Where `[section] key` was written; a key left out points at its section header,
    /// a section left out at the start of the file.
    pub fn of(&self, section: &str, key: &str) -> (usize, usize) {
        let find = |k: &str| {
            self.at
                .iter()
                .find(|(s, kk, _, _)| s == section && kk == k)
                .map(|(_, _, l, c)| (*l, *c))
        };
        find(key).or_else(|| find("")).unwrap_or((1, 1))
    }

    /// A diagnostic about `[section] key` of the file at `file`.
    pub fn diagnostic(
        &self,
        file: &Path,
        section: &str,
        key: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, col) = self.of(section, key);
        Diagnostic {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }
}
