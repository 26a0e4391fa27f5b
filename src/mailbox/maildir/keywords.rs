//! The per-folder `dovecot-keywords` file: which lowercase flag letter means which keyword.
//!
//! Format (shared with Dovecot so both can work on one Maildir): one line per keyword,
//! `<index> <name>`, index 0 = letter `a` … 25 = `z`. Lines that do not parse are skipped
//! with a warning. A 27th keyword has no letter: [`Keywords::allocate`] reports
//! [`ErrorKind::Limit`] and the STORE/APPEND is refused rather than silently dropping it.
//!
//! Crash rule: a letter may appear in a file name only after the line naming it is on
//! disk, so callers allocate and [`Keywords::save`] before renaming any file. A letter
//! found in file names without a name (file lost or hand-edited) is never reused.
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
        let text = match super::fsio::read(&path) {
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

    /// The letter of a keyword that already has one (matched without regard to case).
    pub fn find(&self, name: &str) -> Option<u8> {
        self.slots
            .iter()
            .position(|s| s.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|i| b'a' + i as u8)
    }

    /// Bit `i` set for every index that has a name.
    fn named_mask(&self) -> u32 {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .fold(0, |m, (i, _)| m | (1 << i))
    }

    /// Gives `name` a letter (its existing one if it has one). `in_use` has bit `i` set for
    /// every letter `a + i` found in a message file name of the folder: a letter in use
    /// without a name (its `dovecot-keywords` line was lost) is reserved, because handing
    /// it out would make the new keyword appear on messages that never had it. Such letters
    /// are logged, naming `path`. The caller saves the file before any file gets the letter.
    pub fn allocate(&mut self, name: &str, in_use: u32, path: &Path) -> Result<u8> {
        if let Some(l) = self.find(name) {
            return Ok(l);
        }
        if !valid_keyword(name) {
            return Err(Error::new(ErrorKind::BadName, "Invalid keyword"));
        }
        let reserved = in_use & !self.named_mask();
        if reserved != 0 {
            let letters: String = (0..MAX as u8)
                .filter(|i| reserved & (1 << i) != 0)
                .map(|i| char::from(b'a' + i))
                .collect();
            tracing::warn!(file = %path.join(FILE).display(), letters = %letters, keyword = name, "keyword letters in message file names have no name in the keywords file; kept reserved, the new keyword gets another letter");
        }
        let idx = (0..MAX)
            .find(|&i| reserved & (1 << i) == 0 && self.slots.get(i).is_none_or(|s| s.is_none()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Limit,
                    "Too many keywords in this mailbox (max 26)",
                )
            })?;
        if self.slots.len() <= idx {
            self.slots.resize(idx + 1, None);
        }
        self.slots[idx] = Some(name.to_string());
        Ok(b'a' + idx as u8)
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
        let p = Path::new("k");
        assert_eq!(kw.find("work"), Some(b'c'));
        assert_eq!(kw.find("New"), None);
        assert_eq!(kw.allocate("New", 0, p).unwrap(), b'b');
        assert_eq!(kw.allocate("Next", 0, p).unwrap(), b'd');
        assert_eq!(kw.allocate("next", 0, p).unwrap(), b'd');
        for i in 0..22 {
            kw.allocate(&format!("k{i}"), 0, p).unwrap();
        }
        assert_eq!(
            kw.allocate("overflow", 0, p).unwrap_err().kind,
            ErrorKind::Limit
        );
    }

    #[test]
    fn letters_in_use_without_name_are_reserved() {
        let p = Path::new("k");
        // The file was lost: `a` and `c` are still in file names.
        let mut kw = Keywords::default();
        let in_use = (1 << 0) | (1 << 2);
        assert_eq!(kw.allocate("$Other", in_use, p).unwrap(), b'b');
        assert_eq!(kw.allocate("$Next", in_use, p).unwrap(), b'd');
        // A named letter in use is not reserved: it is simply taken.
        let mut kw = Keywords::parse("0 $Work\n", p);
        assert_eq!(kw.allocate("$New", 1, p).unwrap(), b'b');
        // 24 free letters once two are reserved.
        let mut kw = Keywords::default();
        for i in 0..24 {
            kw.allocate(&format!("k{i}"), in_use, p).unwrap();
        }
        assert_eq!(
            kw.allocate("x", in_use, p).unwrap_err().kind,
            ErrorKind::Limit
        );
    }

    #[test]
    fn save_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut kw = Keywords::default();
        kw.allocate("$Junk", 0, dir.path()).unwrap();
        kw.allocate("Later", 0, dir.path()).unwrap();
        kw.save(dir.path(), FsyncMode::Never).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, "0 $Junk\n1 Later\n");
        assert_eq!(Keywords::load(dir.path()), kw);
    }
}
