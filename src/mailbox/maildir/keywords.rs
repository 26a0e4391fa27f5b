//! The per-folder `dovecot-keywords` file: which lowercase flag letter means which keyword.
//!
//! Format (shared with Dovecot so both can work on one Maildir): one line per keyword,
//! `<index> <name>`, index 0 = letter `a` … 25 = `z`. Lines that do not parse are skipped
//! with a warning. A 27th keyword has no letter: [`Keywords::letter_for`] reports
//! [`ErrorKind::Limit`] and the STORE/APPEND is refused rather than silently dropping it.
//!
//! This module must not know about uid lists or message files.

use std::path::{Path, PathBuf};

use super::fsio;
use crate::config::FsyncMode;
use crate::mailbox::{Error, ErrorKind, Result};

pub const FILE: &str = "dovecot-keywords";
pub const MAX: usize = 26;

/// Keyword names by index (`None` = unused slot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keywords {
    pub slots: Vec<Option<String>>,
}

impl Keywords {
    pub fn load(folder: &Path) -> Keywords {
        let path = folder.join(FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Keywords::default(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read keywords file; keywords shown without names");
                return Keywords::default();
            }
        };
        Keywords::parse(&String::from_utf8_lossy(&text), &path)
    }

    pub fn parse(text: &str, path: &Path) -> Keywords {
        let mut kw = Keywords::default();
        let mut bad = 0usize;
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = line
                .split_once(' ')
                .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.trim())));
            match parsed {
                Some((i, n)) if i < MAX && !n.is_empty() && valid_keyword(n) => {
                    if kw.slots.len() <= i {
                        kw.slots.resize(i + 1, None);
                    }
                    kw.slots[i] = Some(n.to_string());
                }
                _ => bad += 1,
            }
        }
        if bad > 0 {
            tracing::warn!(file = %path.display(), lines = bad, "ignored malformed lines in keywords file");
        }
        kw
    }

    pub fn name_of(&self, letter: u8) -> Option<&str> {
        let idx = usize::from(letter.checked_sub(b'a')?);
        self.slots.get(idx)?.as_deref()
    }

    fn find(&self, name: &str) -> Option<u8> {
        self.slots
            .iter()
            .position(|s| s.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|i| b'a' + i as u8)
    }

    /// The letter of `name`, allocating a free slot when `create` (the caller then saves).
    /// Returns `Ok(None)` only when `create` is false and the keyword is unknown.
    pub fn letter_for(&mut self, name: &str, create: bool) -> Result<Option<u8>> {
        if let Some(l) = self.find(name) {
            return Ok(Some(l));
        }
        if !create {
            return Ok(None);
        }
        if !valid_keyword(name) {
            return Err(Error::new(ErrorKind::BadName, "Invalid keyword"));
        }
        let idx = match self.slots.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None if self.slots.len() < MAX => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Limit,
                    "Too many keywords in this mailbox (max 26)",
                ))
            }
        };
        self.slots[idx] = Some(name.to_string());
        Ok(Some(b'a' + idx as u8))
    }

    pub fn names(&self) -> Vec<String> {
        self.slots.iter().flatten().cloned().collect()
    }

    pub fn save(&self, folder: &Path, fsync: FsyncMode) -> Result<()> {
        let mut text = String::new();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(n) = s {
                text.push_str(&format!("{i} {n}\n"));
            }
        }
        let path: PathBuf = folder.join(FILE);
        fsio::write_atomic(&path, text.as_bytes(), fsync)
    }
}

/// A keyword must be usable as a flag atom and must not break the line format.
fn valid_keyword(n: &str) -> bool {
    !n.starts_with('\\') && n.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_allocate() {
        let mut kw = Keywords::parse("0 $Label1\n2 Work\ngarbage\n99 x\n", Path::new("k"));
        assert_eq!(kw.name_of(b'a'), Some("$Label1"));
        assert_eq!(kw.name_of(b'b'), None);
        assert_eq!(kw.name_of(b'c'), Some("Work"));
        assert_eq!(kw.letter_for("work", false).unwrap(), Some(b'c'));
        assert_eq!(kw.letter_for("New", false).unwrap(), None);
        assert_eq!(kw.letter_for("New", true).unwrap(), Some(b'b'));
        assert_eq!(kw.letter_for("Next", true).unwrap(), Some(b'd'));
        for i in 0..22 {
            kw.letter_for(&format!("k{i}"), true).unwrap();
        }
        assert_eq!(
            kw.letter_for("overflow", true).unwrap_err().kind,
            ErrorKind::Limit
        );
    }

    #[test]
    fn save_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut kw = Keywords::default();
        kw.letter_for("$Junk", true).unwrap();
        kw.letter_for("Later", true).unwrap();
        kw.save(dir.path(), FsyncMode::Never).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, "0 $Junk\n1 Later\n");
        assert_eq!(Keywords::load(dir.path()), kw);
    }
}
