//! Adopting UIDs from other servers' uid lists, so clients keep their caches when a
//! Maildir moves from Dovecot or Courier to Loft.
//!
//! Read (never written) when a folder has no `loft-uidlist` yet:
//!
//! * Dovecot `dovecot-uidlist` version 3: header `3 V<uidvalidity> N<uidnext> G<guid> …`,
//!   lines `<uid> [<ext fields like W1234 S1200 …>] :<file name>`; version 1: header
//!   `1 <uidvalidity> <uidnext>`, lines `<uid> <file name>`.
//! * Courier `courierimapuiddb` (also accepted as `courierimapuidlist`): header
//!   `1 <uidvalidity> <uidnext>`, lines `<uid> <file name>`.
//!
//! File names are cut at `:` to get the base name. Keyword letters need no conversion:
//! Loft reads the same `dovecot-keywords` file.
//!
//! This module must not know about directory scanning or locking.

use std::path::Path;

use super::uidlist::UidList;

pub const DOVECOT: &str = "dovecot-uidlist";
pub const COURIER: [&str; 2] = ["courierimapuiddb", "courierimapuidlist"];

/// The first foreign uid list that parses, converted.
pub fn adopt(folder: &Path) -> Option<UidList> {
    let mut candidates = vec![DOVECOT];
    candidates.extend(COURIER);
    for name in candidates {
        let path = folder.join(name);
        let Ok(bytes) = super::fsio::read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        match parse(&text) {
            Some(list) => {
                tracing::info!(file = %path.display(), uidvalidity = list.uid_validity, messages = list.entries.len(), "adopted UIDs from foreign uid list");
                return Some(list);
            }
            None => {
                tracing::warn!(file = %path.display(), "foreign uid list has an unknown or garbled header; ignored");
            }
        }
    }
    None
}

/// Parses a Dovecot (v1/v3) or Courier (v1) uid list.
pub fn parse(text: &str) -> Option<UidList> {
    let mut lines = text.split('\n');
    let header = lines.next()?;
    let words: Vec<&str> = header.split_whitespace().collect();
    let (version, uidv, next) = match words.first().copied() {
        Some("3") => {
            let mut v = None;
            let mut n = None;
            for w in &words[1..] {
                if let Some(x) = w.strip_prefix('V') {
                    v = x.parse::<u32>().ok();
                } else if let Some(x) = w.strip_prefix('N') {
                    n = x.parse::<u32>().ok();
                }
            }
            (3, v?, n.unwrap_or(1))
        }
        Some("1") if words.len() >= 3 => (1, words[1].parse::<u32>().ok()?, words[2].parse().ok()?),
        _ => return None,
    };
    if uidv == 0 {
        return None;
    }
    let mut list = UidList::new(uidv);
    list.uid_next = next.max(1);
    let mut bases = std::collections::HashSet::new();
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let parsed = if version == 3 {
            line.split_once(" :").and_then(|(fields, name)| {
                let mut ws = fields.split(' ');
                let uid: u32 = ws.next()?.parse().ok()?;
                // `W<vsize>` is Dovecot's RFC822.SIZE; keep it.
                let vsize =
                    ws.find_map(|w| w.strip_prefix('W').and_then(|x| x.parse::<u64>().ok()));
                Some((uid, name, vsize))
            })
        } else {
            line.split_once(' ')
                .and_then(|(u, name)| Some((u.parse::<u32>().ok()?, name, None)))
        };
        let Some((uid, name, vsize)) = parsed else {
            continue;
        };
        let base = name.split(':').next().unwrap_or("");
        if uid == 0
            || base.is_empty()
            || list.entries.contains_key(&uid)
            || !bases.insert(base.to_string())
        {
            continue;
        }
        list.entries.insert(
            uid,
            super::uidlist::Entry {
                base: base.to_string(),
                size: vsize,
            },
        );
    }
    list.fix_next();
    // Everything already listed was seen by the old server: not \Recent any more.
    list.recent = list.uid_next - 1;
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_v3() {
        let text = "3 V1234567 N20 Gabcdef0123\n5 W1234 S1200 :100.M1P1.host,S=1200,W=1234:2,S\n7 :200.M2P2.host\n";
        let l = parse(text).unwrap();
        assert_eq!((l.uid_validity, l.uid_next, l.recent), (1234567, 20, 19));
        assert_eq!(l.entries[&5].base, "100.M1P1.host,S=1200,W=1234");
        assert_eq!(l.entries[&5].size, Some(1234));
        assert_eq!(l.entries[&7].base, "200.M2P2.host");
    }

    #[test]
    fn dovecot_v1_and_courier() {
        let l = parse("1 99 4\n1 a.host:2,S\n3 b.host\n").unwrap();
        assert_eq!((l.uid_validity, l.uid_next), (99, 4));
        assert_eq!(l.entries[&1].base, "a.host");
        assert_eq!(l.entries[&3].base, "b.host");
        let l = parse("1 42 2\n9 c.host:2,\n").unwrap();
        assert_eq!(l.uid_next, 10);
        assert!(parse("2 1 2\n").is_none());
        assert!(parse("3 N5\n").is_none());
        assert!(parse("").is_none());
    }
}
