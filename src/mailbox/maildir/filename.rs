//! Maildir file names: `<base>[:2,<flags>]` where `<base>` is
//! `<unique>[,S=<size>][,W=<vsize>][,...]`.
//!
//! Flag letters (Maildir spec, kept in ASCII order): `D` Draft, `F` Flagged, `P` Passed,
//! `R` Replied (= `\Answered`), `S` Seen, `T` Trashed (= `\Deleted`); lowercase `a`–`z`
//! are keywords numbered by the folder's `dovecot-keywords` file. Letters we do not know
//! (e.g. `P`) are kept untouched when a file is renamed.
//!
//! This module must not know about directories, uid lists or keyword names.

use crate::mailbox::SysFlags;

/// A parsed file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailName {
    /// Everything before `:` — the stable identity of the message.
    pub base: String,
    /// `S=`: the physical file size.
    pub fsize: Option<u64>,
    /// `W=`: the size with CRLF line ends (RFC822.SIZE).
    pub vsize: Option<u64>,
    /// System flags from the info part.
    pub sys: SysFlags,
    /// Keyword letters, `b'a'..=b'z'`, ascending.
    pub keyword_letters: Vec<u8>,
    /// Other flag letters we keep as they are.
    pub other_letters: Vec<u8>,
}

const SYS_LETTERS: [(u8, SysFlags); 5] = [
    (b'D', SysFlags::DRAFT),
    (b'F', SysFlags::FLAGGED),
    (b'R', SysFlags::ANSWERED),
    (b'S', SysFlags::SEEN),
    (b'T', SysFlags::DELETED),
];

/// Parses a file name from `new/` or `cur/`. `None` for names that cannot be a message
/// (hidden files, empty base, line breaks, path separators).
pub fn parse(name: &str) -> Option<MailName> {
    if name.is_empty() || name.starts_with('.') || name.contains(['\n', '\r', '/', '\0']) {
        return None;
    }
    let (base, info) = match name.split_once(':') {
        Some((b, i)) => (b, Some(i)),
        None => (name, None),
    };
    if base.is_empty() {
        return None;
    }
    let mut out = MailName {
        base: base.to_string(),
        fsize: None,
        vsize: None,
        sys: SysFlags::default(),
        keyword_letters: Vec::new(),
        other_letters: Vec::new(),
    };
    for field in base.split(',').skip(1) {
        if let Some(v) = field.strip_prefix("S=") {
            out.fsize = v.parse().ok();
        } else if let Some(v) = field.strip_prefix("W=") {
            out.vsize = v.parse().ok();
        }
    }
    // Only the "2," info semantics are defined; other info parts carry no flags.
    if let Some(flags) = info.and_then(|i| i.strip_prefix("2,")) {
        for &b in flags.as_bytes() {
            if let Some((_, f)) = SYS_LETTERS.iter().find(|(l, _)| *l == b) {
                out.sys.insert(*f);
            } else if b.is_ascii_lowercase() {
                out.keyword_letters.push(b);
            } else if b.is_ascii_graphic() && b != b',' {
                out.other_letters.push(b);
            }
        }
        out.keyword_letters.sort_unstable();
        out.keyword_letters.dedup();
        out.other_letters.sort_unstable();
        out.other_letters.dedup();
    }
    Some(out)
}

/// The flag letters for the info part, ASCII-sorted.
pub fn flag_letters(sys: SysFlags, keyword_letters: &[u8], other_letters: &[u8]) -> String {
    let mut letters: Vec<u8> = Vec::new();
    for (l, f) in SYS_LETTERS {
        if sys.contains(f) {
            letters.push(l);
        }
    }
    letters.extend_from_slice(keyword_letters);
    letters.extend(
        other_letters
            .iter()
            .filter(|l| !SYS_LETTERS.iter().any(|(s, _)| s == *l)),
    );
    letters.sort_unstable();
    letters.dedup();
    String::from_utf8_lossy(&letters).into_owned()
}

/// The name of a message in `cur/`.
pub fn cur_name(base: &str, letters: &str) -> String {
    format!("{base}:2,{letters}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_full_name() {
        let n = parse("1700000000.M1P2Q3.host,S=1200,W=1234:2,FRSac").unwrap();
        assert_eq!(n.base, "1700000000.M1P2Q3.host,S=1200,W=1234");
        assert_eq!(n.fsize, Some(1200));
        assert_eq!(n.vsize, Some(1234));
        assert!(n.sys.contains(SysFlags::FLAGGED) && n.sys.contains(SysFlags::ANSWERED));
        assert!(n.sys.contains(SysFlags::SEEN) && !n.sys.contains(SysFlags::DELETED));
        assert_eq!(n.keyword_letters, b"ac");
    }

    #[test]
    fn parse_odd_names() {
        let n = parse("plainname").unwrap();
        assert_eq!(n.base, "plainname");
        assert_eq!(n.sys, SysFlags::default());
        let n = parse("x,S=abc:1,whatever").unwrap();
        assert_eq!((n.fsize, n.sys), (None, SysFlags::default()));
        assert!(parse(".hidden").is_none());
        assert!(parse(":2,S").is_none());
        assert!(parse("a\nb").is_none());
    }

    #[test]
    fn letters_sorted_and_unknown_kept() {
        let n = parse("b:2,TPSz").unwrap();
        assert_eq!(n.other_letters, b"P");
        let mut sys = n.sys;
        sys.insert(SysFlags::DRAFT);
        assert_eq!(flag_letters(sys, b"zb", &n.other_letters), "DPSTbz");
        assert_eq!(cur_name("b", "S"), "b:2,S");
    }
}
