//! Maildir file names: `<base>[:2,<flags>]` where `<base>` is
//! `<unique>[,S=<size>][,W=<vsize>][,...]`.
//!
//! Flag letters (Maildir spec, kept in ASCII order): `D` Draft, `F` Flagged, `P` Passed,
//! `R` Replied (= `\Answered`), `S` Seen, `T` Trashed (= `\Deleted`); lowercase `a`–`z`
//! are keywords numbered by the folder's `dovecot-keywords` file. Letters we do not know
//! (e.g. `P`) are kept untouched when a file is renamed.
//!
//! This module must not know about directories, uid lists or keyword names.

use crate::index::Key;
use crate::mailbox::SysFlags;

/// A message file's name as a folder keeps it (one per message): inside the value when
/// short, as nearly every Maildir name is (64 bytes in all, no allocation), shared when
/// longer. A `Box<str>` cost 16 bytes plus an allocation of 64 for a name of 50 bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Name(Key);

impl Name {
    pub fn new(name: &str) -> Name {
        Name(Key::new(name.as_bytes()))
    }

    /// Asked for every name a sync compares, so not validated again each time.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: a `Name` is made only by `Name::new` from a `str` (the field is
        // private), and a `Key` reads back exactly the bytes it was made from: valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::new(&s)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// A parsed file name, eight bytes without heap data (a folder keeps one per message):
/// the base name is the first [`MailName::base`] bytes of the name it was parsed from;
/// the sizes in the base are read from that name again when asked ([`MailName::fsize`]),
/// and so are flag letters other than system flags and keywords when it is renamed
/// ([`other_letters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MailName {
    /// Length of the base: everything before `:`, the stable identity of the message.
    base_len: u16,
    /// System flags from the info part.
    pub sys: SysFlags,
    /// Keyword letters from the info part: bit `i` is letter `a + i`.
    pub keywords: u32,
}

impl MailName {
    /// The base name of `name`, the name this was parsed from.
    pub fn base<'a>(&self, name: &'a str) -> &'a str {
        name.get(..usize::from(self.base_len)).unwrap_or(name)
    }

    /// `S=` of `name` (the name this was parsed from): the physical file size.
    pub fn fsize(&self, name: &str) -> Option<u64> {
        self.size_field(name, b"S=")
    }

    /// `W=` of `name`: the size with CRLF line ends (RFC822.SIZE).
    pub fn vsize(&self, name: &str) -> Option<u64> {
        self.size_field(name, b"W=")
    }

    /// The value of the last `,<tag><digits>` field of the base (a field given twice:
    /// the last counts; one that is not a number of at most 19 digits: none).
    fn size_field(&self, name: &str, tag: &[u8]) -> Option<u64> {
        let base = self.base(name).as_bytes();
        let fields = &base[base.iter().position(|&c| c == b',')? + 1..];
        let field = fields.rsplit(|&c| c == b',').find(|f| f.starts_with(tag))?;
        number(&field[tag.len()..])
    }

    /// The parse of `<key>` alone (`info == false`) or of `<key>:2,<letters>` with the
    /// letters of `sys` and `keywords` (what [`canonical_info`] accepted).
    pub fn of_key(key_len: usize, sys: SysFlags, keywords: u32) -> MailName {
        MailName {
            base_len: key_len.min(usize::from(u16::MAX)) as u16,
            sys,
            keywords,
        }
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
        sys: SysFlags::default(),
        keywords: 0,
    };
    for &c in info_flags(b) {
        if let Some((_, f)) = SYS_LETTERS.iter().find(|(l, _)| *l == c) {
            out.sys.insert(*f);
        } else if c.is_ascii_lowercase() {
            out.keywords |= 1 << (c - b'a');
        }
    }
    Some(out)
}

/// How `name` (parsed into `parsed`) follows from its base and its flags: `Some(false)`
/// when it is the base alone, `Some(true)` when it is `<base>:2,<letters>` with exactly
/// the letters of its system flags and keywords in ASCII order (what [`flag_letters`]
/// and [`cur_name`] make from them), `None` for any other name (other letters such as
/// `P`, letters out of order or twice, another info part): such a name cannot be made
/// again from its flags and must be kept whole.
pub fn canonical_info(name: &str, parsed: &MailName) -> Option<bool> {
    let info = name.as_bytes().get(usize::from(parsed.base_len)..)?;
    if info.is_empty() {
        return Some(false);
    }
    let letters = info.strip_prefix(b":2,")?;
    let known = |c: u8| c.is_ascii_lowercase() || SYS_LETTERS.iter().any(|(l, _)| *l == c);
    let ascending = letters.windows(2).all(|w| w[0] < w[1]);
    (ascending && letters.iter().all(|&c| known(c))).then_some(true)
}

/// The letters of `sys` and `keywords` in ASCII order (the upper-case system letters
/// come before the keyword letters).
fn canonical_letters(sys: SysFlags, keywords: u32) -> impl Iterator<Item = u8> {
    let system = SYS_LETTERS
        .into_iter()
        .filter(move |(_, f)| sys.contains(*f))
        .map(|(l, _)| l);
    system.chain(
        (0..26u8)
            .filter(move |i| keywords & (1 << i) != 0)
            .map(|i| b'a' + i),
    )
}

/// The name [`canonical_info`] recognised, made again from its base (`key`) and flags.
pub fn canonical_name(key: &str, info: bool, sys: SysFlags, keywords: u32) -> String {
    let mut name = String::with_capacity(key.len() + 12);
    name.push_str(key);
    if info {
        name.push_str(":2,");
        name.extend(canonical_letters(sys, keywords).map(char::from));
    }
    name
}

/// Whether `name` is what [`canonical_name`] makes of the same arguments (no allocation).
pub fn is_canonical_name(
    key: &[u8],
    info: bool,
    sys: SysFlags,
    keywords: u32,
    name: &[u8],
) -> bool {
    let Some(rest) = name.strip_prefix(key) else {
        return false;
    };
    if !info {
        return rest.is_empty();
    }
    rest.strip_prefix(b":2,")
        .is_some_and(|l| l.iter().copied().eq(canonical_letters(sys, keywords)))
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
        assert_eq!(n.fsize(name), Some(1200));
        assert_eq!(n.vsize(name), Some(1234));
        assert!(n.sys.contains(SysFlags::FLAGGED) && n.sys.contains(SysFlags::ANSWERED));
        assert!(n.sys.contains(SysFlags::SEEN) && !n.sys.contains(SysFlags::DELETED));
        assert_eq!(n.keyword_letters(), b"ac");
    }

    #[test]
    fn parse_odd_names() {
        let n = parse("plainname").unwrap();
        assert_eq!(n.base("plainname"), "plainname");
        assert_eq!(n.sys, SysFlags::default());
        let name = "x,S=abc:1,whatever";
        let n = parse(name).unwrap();
        assert_eq!((n.fsize(name), n.sys), (None, SysFlags::default()));
        assert!(parse(".hidden").is_none());
        assert!(parse(":2,S").is_none());
        assert!(parse("a\nb").is_none());
        assert!(parse("a/b").is_none() && parse("a\0b").is_none() && parse("").is_none());
        // Sizes that do not fit (or are not numbers) are unknown, not wrapped.
        let name = "x,S=99999999999999999999,W=12a:2,";
        let n = parse(name).unwrap();
        assert_eq!((n.fsize(name), n.vsize(name)), (None, None));
        let name = "x,W=18446744073709551615";
        assert_eq!(parse(name).unwrap().vsize(name), None, "20 digits");
        let name = "x,W=1844674407370955161";
        assert_eq!(
            parse(name).unwrap().vsize(name),
            Some(1_844_674_407_370_955_161)
        );
        // A field given twice: the last counts; sizes after the base are not read.
        let name = "x,S=1,W=2,S=3:2,S=9";
        let n = parse(name).unwrap();
        assert_eq!((n.fsize(name), n.vsize(name)), (Some(3), Some(2)));
        assert_eq!(std::mem::size_of::<MailName>(), 8);
    }

    #[test]
    fn canonical_names_are_made_again_from_their_flags() {
        for name in [
            "1700000000.M1P2Q3.host,S=1200",
            "1700000000.M1P2Q3.host,S=1200:2,",
            "1700000000.M1P2Q3.host,S=1200:2,S",
            "1700000000.M1P2Q3.host,S=1200:2,DFRSTabz",
            "x:2,Tc",
        ] {
            let p = parse(name).unwrap();
            let info = canonical_info(name, &p).unwrap();
            assert_eq!(canonical_name(p.base(name), info, p.sys, p.keywords), name);
            let key = p.base(name).as_bytes();
            assert!(is_canonical_name(
                key,
                info,
                p.sys,
                p.keywords,
                name.as_bytes()
            ));
            let longer = format!("{name}x");
            assert!(!is_canonical_name(
                key,
                info,
                p.sys,
                p.keywords,
                longer.as_bytes()
            ));
            assert!(!is_canonical_name(
                key,
                !info,
                p.sys,
                p.keywords,
                name.as_bytes()
            ));
            assert_eq!(MailName::of_key(p.base(name).len(), p.sys, p.keywords), p);
        }
        // Kept whole: another letter, disorder, a letter twice, another info part.
        for name in [
            "x:2,PS", "x:2,SF", "x:2,SS", "x:1,S", "x:2,S:", "x:", "x:2,S,",
        ] {
            assert_eq!(canonical_info(name, &parse(name).unwrap()), None, "{name}");
        }
    }

    #[test]
    fn names_read_back_as_given_short_or_long() {
        for n in [
            "",
            "1.x:2,S",
            &"y".repeat(62),
            &"z".repeat(63),
            &"ü".repeat(40),
        ] {
            let name = Name::new(n);
            assert_eq!((&*name, name.to_string()), (n, n.to_string()));
            assert_eq!(name, Name::from(n.to_string()));
        }
        assert_eq!(std::mem::size_of::<Name>(), 64);
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
