//! Config diagnostics: `FILE:LINE:COL: message`, byte offsets turned into line and
//! column, and "did you mean" suggestions. Knows nothing about which keys exist.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Converts a byte offset into `src` to a 1-based (line, column) pair. Offsets past the
/// end or inside a multi-byte character are clamped, never a panic.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while offset > 0 && !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = src.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Levenshtein distance, for suggestions only (inputs are short key names).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let best = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur[j + 1] = best;
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase().replace('-', "_");
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = if c.contains(word.as_str()) || word.contains(c) {
            1
        } else {
            distance(&word, c)
        };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (word.chars().count() / 3).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let s = "a = 1\nbb = 2\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 6), (2, 1));
        assert_eq!(line_col(s, 8), (2, 3));
        assert_eq!(line_col(s, 999), (3, 1));
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let s = "é = 1";
        assert_eq!(line_col(s, 2), (1, 2));
        // Inside the two-byte é: clamped to its start.
        assert_eq!(line_col(s, 1), (1, 1));
    }

    #[test]
    fn suggestions() {
        let keys = ["max_connections", "max_connections_per_ip", "hostname"];
        assert_eq!(closest("max_conections", &keys), Some("max_connections"));
        assert_eq!(closest("hostnme", &keys), Some("hostname"));
        assert_eq!(closest("zzzzzz", &keys), None);
    }

    #[test]
    fn display_format() {
        let d = Diagnostic {
            file: "conf/loft.toml".into(),
            line: 3,
            col: 7,
            message: "boom".into(),
        };
        assert_eq!(d.to_string(), "conf/loft.toml:3:7: boom");
    }
}
