//! Loft's former per-folder uid list, `loft-uidlist`: since the index engine holds the
//! UIDs (`uidstore`), it is only read, once, to import its UIDs into a folder that has no
//! index yet, and then left in place, unused. Its parsed form, [`UidList`], is what an
//! import or a repair of damaged index files hands to the scan (as `uidstore::Known`);
//! a scan of a folder with a working index reads the index records themselves.
//!
//! Format (UTF-8 text, `\n` line ends):
//!
//! ```text
//! loft-uidlist 1 V<uidvalidity> N<uidnext> R<recent-threshold>
//! <uid> [S<rfc822-size>] :<base name>
//! ...
//! ```
//!
//! One line per message, ascending UID. `<base name>` is the file name part before `:`
//! (stable across flag changes and the `new/` → `cur/` move), so a message renamed by
//! another program keeps its UID. `S` is the RFC822.SIZE (CRLF-normalised size) once
//! computed, for files whose name carries no `W=`. `R` is the highest UID ever announced
//! as `\Recent` (RFC 3501 §2.3.2): UIDs above it are recent for the next read-write
//! session. Unknown `X<value>` fields are ignored so the format can grow.
//!
//! A file that does not parse is never fatal: lines that do not parse are dropped with a
//! warning (the messages get new UIDs at the next scan); an unreadable header means the
//! UIDVALIDITY is lost and the caller starts a new one (logged). Every line ends in `\n`:
//! a header without one was cut short and counts as unreadable (its `N` may have lost
//! digits); a last entry line without one is used (with a warning): its UID is complete
//! and a cut base name matches no file.
//!
//! This module must not know about directory scanning or locking.

use std::collections::BTreeMap;
use std::path::Path;

use crate::mailbox::Uid;

pub const FILE: &str = "loft-uidlist";
const MAGIC: &str = "loft-uidlist";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub base: String,
    pub size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidList {
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub recent: Uid,
    pub entries: BTreeMap<Uid, Entry>,
}

/// What reading the file gave.
pub enum Loaded {
    Missing,
    /// The header was unreadable: UIDVALIDITY is lost.
    Garbled,
    Ok(UidList),
}

impl UidList {
    pub fn new(uid_validity: u32) -> UidList {
        UidList {
            uid_validity,
            uid_next: 1,
            recent: 0,
            entries: BTreeMap::new(),
        }
    }

    pub fn load(folder: &Path) -> Loaded {
        let path = folder.join(FILE);
        match super::fsio::read(&path) {
            Ok(bytes) => match UidList::parse(&String::from_utf8_lossy(&bytes), &path) {
                Some(l) => Loaded::Ok(l),
                None => Loaded::Garbled,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Missing,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read uid list");
                Loaded::Garbled
            }
        }
    }

    pub fn parse(text: &str, path: &Path) -> Option<UidList> {
        let all: Vec<&str> = text.split('\n').collect();
        // Every line Loft writes ends in `\n`: a last line without one was cut short.
        let cut_tail = all.last().is_some_and(|l| !l.is_empty());
        if all.len() < 2 {
            // A header cut short may still parse, with a wrong UIDNEXT (`N14` cut to
            // `N1`): handing out UIDs below the real UIDNEXT under the same UIDVALIDITY
            // would make clients act on the wrong messages. Treat it as unreadable.
            tracing::warn!(file = %path.display(), "uid list header is cut short");
            return None;
        }
        if cut_tail {
            // Its UID and size are complete (they precede ` :`); a cut base name just
            // matches no file, so the line is still used.
            tracing::warn!(file = %path.display(), "uid list does not end with a line end; it may have been cut short");
        }
        let mut lines = all.into_iter();
        let header = lines.next().unwrap_or("");
        let mut words = header.split(' ');
        if words.next() != Some(MAGIC) || words.next() != Some("1") {
            tracing::warn!(file = %path.display(), "uid list header is missing or garbled");
            return None;
        }
        let (mut v, mut n, mut r) = (None, None, None);
        for w in words {
            let (Some(k), Some(val)) = (w.get(..1), w.get(1..)) else {
                continue;
            };
            match k {
                "V" => v = val.parse::<u32>().ok(),
                "N" => n = val.parse::<u32>().ok(),
                "R" => r = val.parse::<u32>().ok(),
                _ => {}
            }
        }
        let uid_validity = v.filter(|v| *v != 0);
        let Some(uid_validity) = uid_validity else {
            tracing::warn!(file = %path.display(), "uid list header has no valid UIDVALIDITY");
            return None;
        };
        let mut list = UidList {
            uid_validity,
            uid_next: n.unwrap_or(1).max(1),
            recent: r.unwrap_or(0),
            entries: BTreeMap::new(),
        };
        let mut bad = 0usize;
        let mut seen_bases = std::collections::HashSet::new();
        for line in lines {
            if line.is_empty() {
                continue;
            }
            match parse_line(line) {
                Some((uid, e))
                    if !list.entries.contains_key(&uid) && seen_bases.insert(e.base.clone()) =>
                {
                    list.entries.insert(uid, e);
                }
                _ => bad += 1,
            }
        }
        if bad > 0 {
            tracing::warn!(file = %path.display(), lines = bad, "dropped malformed or duplicate uid list lines; those messages get new UIDs");
        }
        list.fix_next();
        Some(list)
    }

    /// UIDNEXT above every UID in use; never goes down.
    pub fn fix_next(&mut self) {
        if let Some((&max, _)) = self.entries.iter().next_back() {
            if self.uid_next <= max {
                self.uid_next = max.saturating_add(1);
            }
        }
        if self.recent >= self.uid_next {
            self.recent = self.uid_next - 1;
        }
    }

    #[cfg(test)]
    pub fn serialize(&self) -> String {
        let mut out = format!(
            "{MAGIC} 1 V{} N{} R{}\n",
            self.uid_validity, self.uid_next, self.recent
        );
        for (uid, e) in &self.entries {
            match e.size {
                Some(s) => out.push_str(&format!("{uid} S{s} :{}\n", e.base)),
                None => out.push_str(&format!("{uid} :{}\n", e.base)),
            }
        }
        out
    }

    /// Adds a message with the next UID.
    #[cfg(test)]
    pub fn push(&mut self, base: String, size: Option<u64>) -> Uid {
        let uid = self.uid_next;
        self.entries.insert(uid, Entry { base, size });
        self.uid_next = self.uid_next.saturating_add(1);
        uid
    }
}

fn parse_line(line: &str) -> Option<(Uid, Entry)> {
    let (fields, base) = line.split_once(" :")?;
    if base.is_empty() || base.contains(':') {
        return None;
    }
    let mut words = fields.split(' ');
    let uid: Uid = words.next()?.parse().ok().filter(|u| *u != 0)?;
    let mut size = None;
    for w in words {
        if let Some(s) = w.strip_prefix('S') {
            size = Some(s.parse().ok()?);
        }
    }
    Some((
        uid,
        Entry {
            base: base.to_string(),
            size,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut l = UidList::new(1234);
        l.push("a.M1".into(), Some(10));
        l.push("b.M2,W=5".into(), None);
        l.recent = 1;
        let text = l.serialize();
        assert_eq!(
            text,
            "loft-uidlist 1 V1234 N3 R1\n1 S10 :a.M1\n2 :b.M2,W=5\n"
        );
        assert_eq!(UidList::parse(&text, Path::new("x")), Some(l));
    }

    #[test]
    fn garbage_lines_dropped_header_kept() {
        let text = "loft-uidlist 1 V77 N5 R2\n1 :a\nzzz\n3 Sxx :c\n2 :b\n2 :dup\n4 :b\n9";
        let l = UidList::parse(text, Path::new("x")).unwrap();
        assert_eq!(l.uid_validity, 77);
        assert_eq!(l.entries.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(l.uid_next, 5);
        assert!(UidList::parse("garbage", Path::new("x")).is_none());
        assert!(UidList::parse("", Path::new("x")).is_none());
        assert!(UidList::parse("loft-uidlist 1 V0 N1", Path::new("x")).is_none());
        // Cut short: the header (N14 -> N1) is unusable; a last entry without a line end
        // is kept, UIDNEXT too.
        assert!(UidList::parse("loft-uidlist 1 V9 N1", Path::new("x")).is_none());
        let l = UidList::parse("loft-uidlist 1 V9 N14\n3 :a\n13 :bas", Path::new("x")).unwrap();
        assert_eq!(l.entries.keys().copied().collect::<Vec<_>>(), vec![3, 13]);
        assert_eq!(l.uid_next, 14);
    }

    #[test]
    fn uid_next_never_below_max() {
        let l = UidList::parse("loft-uidlist 1 V1 N2 R9\n7 :x\n", Path::new("x")).unwrap();
        assert_eq!(l.uid_next, 8);
        assert_eq!(l.recent, 7);
    }

    proptest::proptest! {
        /// Garbage in any of the on-disk text formats never panics, and what the uid list
        /// parser accepts survives a write/read cycle.
        #[test]
        fn parsers_never_panic(text in "(\\PC|\n| |:|[0-9VNRSW]){0,200}") {
            let p = Path::new("fuzz");
            if let Some(l) = UidList::parse(&text, p) {
                proptest::prop_assert_eq!(UidList::parse(&l.serialize(), p), Some(l));
            }
            let _ = super::super::migrate::parse(&text);
            let _ = super::super::keywords::Keywords::parse(&text, p);
            let _ = super::super::filename::parse(&text);
            let _ = super::super::names::from_dir(&text);
        }
    }
}
