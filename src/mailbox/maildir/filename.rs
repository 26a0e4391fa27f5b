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

/// A parsed file name, small and without heap data (a folder keeps one per message):
/// the base name is the first [`MailName::base`] bytes of the name it was parsed from;
/// flag letters other than system flags and keywords are read from the name again when
/// it is renamed ([`other_letters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MailName {
    /// Length of the base: everything before `:`, the stable identity of the message.
    base_len: u16,
    /// `S=`: the physical file size; [`NO_SIZE`] when the name has none.
    fsize: u64,
    /// `W=`: the size with CRLF line ends (RFC822.SIZE); [`NO_SIZE`] when none.
    vsize: u64,
    /// System flags from the info part.
    pub sys: SysFlags,
    /// Keyword letters from the info part: bit `i` is letter `a + i`.
    pub keywords: u32,
}

/// A size the name does not give (parsed sizes have at most 19 digits, below this).
const NO_SIZE: u64 = u64::MAX;

impl MailName {
    /// The base name of `name`, the name this was parsed from.
    pub fn base<'a>(&self, name: &'a str) -> &'a str {
        name.get(..usize::from(self.base_len)).unwrap_or(name)
    }

    /// `S=`: the physical file size.
    pub fn fsize(&self) -> Option<u64> {
        (self.fsize != NO_SIZE).then_some(self.fsize)
    }

    /// `W=`: the size with CRLF line ends (RFC822.SIZE).
    pub fn vsize(&self) -> Option<u64> {
        (self.vsize != NO_SIZE).then_some(self.vsize)
    }

    /// The keyword letters, ascending.
    pub fn keyword_letters(&self) -> Vec<u8> {
        (0..26u8)
            .filter(|i| self.keywords & (1 << i) != 0)
            .map(|i| b'a' + i)
            .collect()
    }
}

const SYS_LETTERS: [(u8, SysFlags); 5] = [
    (b'D', SysFlags::DRAFT),
    (b'F', SysFlags::FLAGGED),
    (b'R', SysFlags::ANSWERED),
    (b'S', SysFlags::SEEN),
    (b'T', SysFlags::DELETED),
];

/// A decimal number of up to 19 digits (larger or empty: `None`).
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The info part's flags (`2,` only: other info parts carry no flags).
fn info_flags(name: &[u8]) -> &[u8] {
    match name.iter().position(|&c| c == b':') {
        Some(i) => name[i + 1..].strip_prefix(b"2,").unwrap_or(&[]),
        None => &[],
    }
}

/// Parses a file name from `new/` or `cur/`. `None` for names that cannot be a message
/// (hidden files, empty base, line breaks, path separators, longer than any file system
/// allows). Runs once per file of every listing, so it works on bytes in one pass.
pub fn parse(name: &str) -> Option<MailName> {
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() > usize::from(u16::MAX)
        || b[0] == b'.'
        || b.iter().any(|c| matches!(c, b'\n' | b'\r' | b'/' | 0))
    {
        return None;
    }
    let base_len = b.iter().position(|&c| c == b':').unwrap_or(b.len());
    if base_len == 0 {
        return None;
    }
    let mut out = MailName {
        base_len: base_len as u16,
        fsize: NO_SIZE,
        vsize: NO_SIZE,
        sys: SysFlags::default(),
        keywords: 0,
    };
    for field in b[..base_len].split(|&c| c == b',').skip(1) {
        if let Some(v) = field.strip_prefix(b"S=") {
            out.fsize = number(v).unwrap_or(NO_SIZE);
        } else if let Some(v) = field.strip_prefix(b"W=") {
            out.vsize = number(v).unwrap_or(NO_SIZE);
        }
    }
    for &c in info_flags(b) {
        if let Some((_, f)) = SYS_LETTERS.iter().find(|(l, _)| *l == c) {
            out.sys.insert(*f);
        } else if c.is_ascii_lowercase() {
            out.keywords |= 1 << (c - b'a');
        }
    }
    Some(out)
}

/// The flag letters of `name` that are neither system flags nor keywords (e.g. `P`,
/// passed), ascending: kept as they are when the file is renamed.
pub fn other_letters(name: &str) -> Vec<u8> {
    let mut v: Vec<u8> = info_flags(name.as_bytes())
        .iter()
        .copied()
        .filter(|&c| {
            !c.is_ascii_lowercase()
                && c.is_ascii_graphic()
                && c != b','
                && !SYS_LETTERS.iter().any(|(l, _)| *l == c)
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
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
        let name = "1700000000.M1P2Q3.host,S=1200,W=1234:2,FRSac";
        let n = parse(name).unwrap();
        assert_eq!(n.base(name), "1700000000.M1P2Q3.host,S=1200,W=1234");
        assert_eq!(n.fsize(), Some(1200));
        assert_eq!(n.vsize(), Some(1234));
        assert!(n.sys.contains(SysFlags::FLAGGED) && n.sys.contains(SysFlags::ANSWERED));
        assert!(n.sys.contains(SysFlags::SEEN) && !n.sys.contains(SysFlags::DELETED));
        assert_eq!(n.keyword_letters(), b"ac");
    }

    #[test]
    fn parse_odd_names() {
        let n = parse("plainname").unwrap();
        assert_eq!(n.base("plainname"), "plainname");
        assert_eq!(n.sys, SysFlags::default());
        let n = parse("x,S=abc:1,whatever").unwrap();
        assert_eq!((n.fsize(), n.sys), (None, SysFlags::default()));
        assert!(parse(".hidden").is_none());
        assert!(parse(":2,S").is_none());
        assert!(parse("a\nb").is_none());
        assert!(parse("a/b").is_none() && parse("a\0b").is_none() && parse("").is_none());
        // Sizes that do not fit (or are not numbers) are unknown, not wrapped.
        let n = parse("x,S=99999999999999999999,W=12a:2,").unwrap();
        assert_eq!((n.fsize(), n.vsize()), (None, None));
        let n = parse("x,W=18446744073709551615").unwrap();
        assert_eq!(n.vsize(), None, "20 digits");
        let n = parse("x,W=1844674407370955161").unwrap();
        assert_eq!(n.vsize(), Some(1_844_674_407_370_955_161));
    }

    #[test]
    fn letters_sorted_and_unknown_kept() {
        let n = parse("b:2,TPSz").unwrap();
        assert_eq!(other_letters("b:2,TPSz"), b"P");
        assert_eq!(other_letters("b:1,TPSz"), b"", "only 2, info carries flags");
        assert_eq!(n.keyword_letters(), b"z");
        let mut sys = n.sys;
        sys.insert(SysFlags::DRAFT);
        assert_eq!(
            flag_letters(sys, b"zb", &other_letters("b:2,TPSz")),
            "DPSTbz"
        );
        assert_eq!(cur_name("b", "S"), "b:2,S");
    }
}
