//! What `loft index show` prints of one mailbox's index, for every format: the header,
//! counts, each cache field's decision and last use, and file sizes.
//!
//! This module must not know about mail formats or IMAP.

use std::fmt::Write as _;
use std::path::Path;

use crate::index::{self, Index};
use crate::mailbox::Result;

fn day(d: u32) -> String {
    if d == 0 {
        return "never".into();
    }
    let date = crate::mailbox::date::Date::from_days(i64::from(d));
    format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
}

/// The header, counts, cache decisions and sizes of the index `ix` of mailbox `name`
/// (stored at `path`, its index files in `index_dir`).
pub fn show_index(name: &str, path: &Path, index_dir: &Path, ix: &Index) -> Result<String> {
    let snap = ix.refresh()?;
    let h = &snap.header;
    let mut s = String::new();
    let _ = writeln!(s, "mailbox {name} ({})", path.display());
    let _ = writeln!(
        s,
        "header: UIDVALIDITY {} UIDNEXT {} HIGHESTMODSEQ {} recent from UID {}",
        h.uid_validity, h.uid_next, h.highest_modseq, h.recent_uid
    );
    let dirty = snap.records.iter().filter(|r| r.dirty).count();
    let _ = writeln!(
        s,
        "counts: {} messages, {} unseen, {} deleted, {} with flags not yet in the mail files, {} keywords ({})",
        h.messages,
        h.unseen,
        h.deleted,
        dirty,
        snap.keywords.len(),
        snap.keywords.join(" ")
    );
    let _ = writeln!(s, "cache fields:");
    let fields = ix.cache().decisions();
    if fields.is_empty() {
        let _ = writeln!(s, "  (none yet)");
    }
    for fi in fields {
        let _ = writeln!(
            s,
            "  {:<28} {:<5} last used {}  {} values, {} bytes",
            fi.name,
            format!("{:?}", fi.decision).to_lowercase(),
            day(fi.last_used_day),
            fi.records,
            fi.bytes
        );
    }
    let _ = writeln!(s, "files:");
    let mut mail = 0u64;
    for r in snap
        .records
        .iter()
        .filter(|r| r.size != index::UNKNOWN_SIZE)
    {
        mail += r.size;
    }
    let mut total = 0u64;
    for name in [index::INDEX_FILE, index::LOG_FILE, index::CACHE_FILE] {
        let len = std::fs::metadata(index_dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        total += len;
        let _ = writeln!(s, "  {name:<18} {len} bytes");
    }
    let share = if mail > 0 {
        total as f64 * 100.0 / mail as f64
    } else {
        0.0
    };
    let _ = writeln!(
        s,
        "  total {total} bytes, {share:.1}% of {mail} bytes of mail"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_days() {
        assert_eq!(super::day(0), "never");
        assert_eq!(super::day(1), "1970-01-02");
        assert_eq!(super::day(20_000), "2024-10-04");
    }
}
