//! The header fields in which mbox files keep IMAP state, as Dovecot (and UW-IMAP before
//! it) writes them, and which are hidden from clients (FETCH, SEARCH, RFC822.SIZE):
//!
//! * `X-IMAPbase: <uidvalidity> <uidnext> [<keyword> ...]` on the first message;
//!   `X-IMAP:` the same in UW-IMAP's pseudo message ("DON'T DELETE THIS MESSAGE");
//! * `X-UID: <uid>`;
//! * `Status:` `R` = `\Seen`, `O` = no longer new (not `\Recent`);
//! * `X-Status:` `A` = `\Answered`, `F` = `\Flagged`, `T` = `\Draft`, `D` = `\Deleted`;
//! * `X-Keywords: <keyword> ...` (writers pad it with spaces to leave room);
//! * `Content-Length: <bytes of the body>`.
//!
//! Values are parsed leniently (what does not parse is as if absent) and bounded.
//!
//! This module knows header values, nothing of files.

use crate::mailbox::SysFlags;

/// Which of the hidden fields a header line starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    ImapBase,
    /// UW-IMAP's pseudo message.
    Imap,
    Uid,
    Status,
    XStatus,
    Keywords,
    ContentLength,
}

const FIELDS: [(&str, Field); 7] = [
    ("X-IMAPbase", Field::ImapBase),
    ("X-IMAP", Field::Imap),
    ("X-UID", Field::Uid),
    ("Status", Field::Status),
    ("X-Status", Field::XStatus),
    ("X-Keywords", Field::Keywords),
    ("Content-Length", Field::ContentLength),
];

/// At most this many keywords are read from one field (IMAP allows any number; a
/// folder's index holds 64).
pub const MAX_KEYWORDS: usize = 64;

/// The field a header line (`Name: value`) starts, if it is one of ours.
pub fn field_of(line: &[u8]) -> Option<Field> {
    let colon = line.iter().take(16).position(|&c| c == b':')?;
    let name = &line[..colon];
    FIELDS
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        .map(|(_, f)| *f)
}

/// The `X-IMAPbase` (or `X-IMAP`) values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Base {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub keywords: Vec<String>,
}

/// What a message's hidden fields say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub uid: Option<u32>,
    /// System flags from `Status` and `X-Status`.
    pub flags: SysFlags,
    /// `Status` has `O`: a reader has seen the message arrive.
    pub old: bool,
    pub keywords: Vec<String>,
    pub base: Option<Base>,
    /// The message is UW-IMAP's pseudo message (it has `X-IMAP`): not a message to show.
    pub pseudo: bool,
    pub content_length: Option<u64>,
}

impl Meta {
    /// Takes in the (unfolded) value of `field`.
    pub fn take(&mut self, field: Field, value: &[u8]) {
        let Ok(v) = std::str::from_utf8(value) else {
            return;
        };
        let v = v.trim();
        match field {
            Field::ImapBase => self.base = self.base.take().or_else(|| base(v)),
            Field::Imap => {
                self.pseudo = true;
                self.base = self.base.take().or_else(|| base(v));
            }
            Field::Uid => {
                self.uid = number(v)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|&n| n > 0)
            }
            Field::Status => {
                for c in v.bytes() {
                    match c {
                        b'R' => self.flags.insert(SysFlags::SEEN),
                        b'O' => self.old = true,
                        _ => {}
                    }
                }
            }
            Field::XStatus => {
                for c in v.bytes() {
                    match c {
                        b'A' => self.flags.insert(SysFlags::ANSWERED),
                        b'F' => self.flags.insert(SysFlags::FLAGGED),
                        b'T' => self.flags.insert(SysFlags::DRAFT),
                        b'D' => self.flags.insert(SysFlags::DELETED),
                        _ => {}
                    }
                }
            }
            Field::Keywords => keywords_into(v.split_ascii_whitespace(), &mut self.keywords),
            Field::ContentLength => self.content_length = number(v),
        }
    }
}

fn base(v: &str) -> Option<Base> {
    let mut words = v.split_ascii_whitespace();
    let uid_validity = u32::try_from(number(words.next()?)?).ok()?;
    let uid_next = u32::try_from(number(words.next()?)?).ok()?;
    let mut b = Base {
        uid_validity,
        uid_next,
        keywords: Vec::new(),
    };
    keywords_into(words, &mut b.keywords);
    Some(b)
}

/// Keywords that are IMAP atoms (RFC 3501 §9 `flag-keyword`), each once, at most
/// [`MAX_KEYWORDS`].
fn keywords_into<'a>(words: impl Iterator<Item = &'a str>, out: &mut Vec<String>) {
    for w in words {
        if out.len() >= MAX_KEYWORDS {
            return;
        }
        let atom = w.len() <= 200
            && w.bytes().all(|c| {
                c.is_ascii_graphic()
                    && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
            });
        if atom && !out.iter().any(|k| k.eq_ignore_ascii_case(w)) {
            out.push(w.to_string());
        }
    }
}

/// A decimal number of 1 to 19 digits.
fn number(v: &str) -> Option<u64> {
    (!v.is_empty() && v.len() <= 19 && v.bytes().all(|c| c.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

/// The hidden fields Loft writes for a message, each line ending in `\n`: `X-IMAPbase`
/// (first message only), `Status`, `X-Status` (when it has letters), `X-Keywords` padded
/// with `pad` spaces (room for later keywords without moving the message), `X-UID`, and
/// `Content-Length` (`body_len`, the stored body's length).
pub fn format(out: &mut Vec<u8>, base: Option<&Base>, meta: &Meta, pad: usize, body_len: u64) {
    use std::io::Write;
    if let Some(b) = base {
        let _ = write!(out, "X-IMAPbase: {:010} {:010}", b.uid_validity, b.uid_next);
        for k in &b.keywords {
            let _ = write!(out, " {k}");
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"Status: ");
    if meta.flags.contains(SysFlags::SEEN) {
        out.push(b'R');
    }
    out.extend_from_slice(b"O\n");
    let letters: Vec<u8> = [
        (SysFlags::ANSWERED, b'A'),
        (SysFlags::FLAGGED, b'F'),
        (SysFlags::DRAFT, b'T'),
        (SysFlags::DELETED, b'D'),
    ]
    .iter()
    .filter(|(f, _)| meta.flags.contains(*f))
    .map(|(_, l)| *l)
    .collect();
    if !letters.is_empty() {
        out.extend_from_slice(b"X-Status: ");
        out.extend_from_slice(&letters);
        out.push(b'\n');
    }
    out.extend_from_slice(b"X-Keywords:");
    for k in &meta.keywords {
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
    }
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    if let Some(uid) = meta.uid {
        let _ = writeln!(out, "X-UID: {uid}");
    }
    let _ = writeln!(out, "Content-Length: {body_len}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_of(fields: &[(&str, &str)]) -> Meta {
        let mut m = Meta::default();
        for (line, _) in fields {
            let f = field_of(line.as_bytes()).unwrap_or_else(|| panic!("{line}"));
            let v = &line[line.find(':').unwrap() + 1..];
            m.take(f, v.as_bytes());
        }
        m
    }

    #[test]
    fn dovecot_fields_read() {
        let m = meta_of(&[
            ("X-IMAPbase: 1733590154 0000000042 $Forwarded Junk", ""),
            ("x-uid: 17", ""),
            ("Status: RO", ""),
            ("X-Status: AFD", ""),
            (
                "X-Keywords: $Forwarded   Junk junk (bad)                ",
                "",
            ),
            ("Content-Length: 1234", ""),
        ]);
        assert_eq!(m.uid, Some(17));
        let want = SysFlags(
            SysFlags::SEEN.0 | SysFlags::ANSWERED.0 | SysFlags::FLAGGED.0 | SysFlags::DELETED.0,
        );
        assert_eq!(m.flags, want);
        assert!(m.old && !m.pseudo);
        assert_eq!(m.keywords, ["$Forwarded", "Junk"]);
        let b = m.base.unwrap();
        assert_eq!((b.uid_validity, b.uid_next), (1_733_590_154, 42));
        assert_eq!(b.keywords, ["$Forwarded", "Junk"]);
        assert_eq!(m.content_length, Some(1234));
    }

    #[test]
    fn odd_values_are_as_if_absent() {
        let m = meta_of(&[
            ("X-UID: 0", ""),
            ("X-IMAPbase: 12", ""),
            ("Content-Length: -1", ""),
            ("Status: xyz", ""),
        ]);
        assert_eq!(m, Meta { ..Meta::default() });
        let m = meta_of(&[("X-UID: 99999999999", "")]);
        assert_eq!(m.uid, None);
        assert_eq!(field_of(b"Subject: X-UID: 3"), None);
        assert_eq!(field_of(b"X-UIDL: 3"), None);
        assert_eq!(field_of(b"X-IMAP: 1 2"), Some(Field::Imap));
        let many: String = (0..100).map(|i| format!(" k{i}")).collect();
        assert_eq!(
            meta_of(&[(&format!("X-Keywords:{many}"), "")])
                .keywords
                .len(),
            MAX_KEYWORDS
        );
    }

    #[test]
    fn written_fields_read_back() {
        let meta = Meta {
            uid: Some(7),
            flags: SysFlags(SysFlags::SEEN.0 | SysFlags::DRAFT.0),
            old: true,
            keywords: vec!["Work".into(), "$Label1".into()],
            ..Meta::default()
        };
        let base = Base {
            uid_validity: 5,
            uid_next: 8,
            keywords: vec!["Work".into()],
        };
        let mut out = Vec::new();
        format(&mut out, Some(&base), &meta, 30, 99);
        let text = String::from_utf8(out).unwrap();
        let mut back = Meta::default();
        for line in text.lines() {
            let f = field_of(line.as_bytes()).unwrap();
            back.take(f, &line.as_bytes()[line.find(':').unwrap() + 1..]);
        }
        assert_eq!(back.uid, meta.uid);
        assert_eq!(back.flags, meta.flags);
        assert_eq!(back.keywords, meta.keywords);
        assert_eq!(back.base, Some(base));
        assert_eq!(back.content_length, Some(99));
        assert!(text.contains(&format!("$Label1{}\n", " ".repeat(30))));
    }
}
