//! Response encoding helpers (RFC 3501 §4.3 strings, §7 responses) and the single place where
//! storage error kinds become response codes.

use crate::mailbox::ErrorKind;

/// Appends `s` as an IMAP string: quoted when it is short and contains no CR, LF, NUL or
/// 8-bit octets, otherwise as a literal (RFC 3501 §4.3).
pub fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= 1024
        && s.iter()
            .all(|&c| c != 0 && c != b'\r' && c != b'\n' && c < 0x80);
    if quotable {
        out.push(b'"');
        for &c in s {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        push_literal(out, s);
    }
}

/// Appends `{n}\r\n` and the octets.
pub fn push_literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// `NIL` or a string (RFC 3501 `nstring`).
pub fn push_nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => push_string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// An astring: an atom when every octet is an ATOM-CHAR (plus `]`), else a string.
pub fn push_astring(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty() && s.iter().all(|&c| is_astring_char(c)) && !s.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(s);
    } else {
        push_string(out, s);
    }
}

/// RFC 3501 §9 ATOM-CHAR: any CHAR except atom-specials.
pub fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// ASTRING-CHAR = ATOM-CHAR / resp-specials (`]`).
pub fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']'
}

/// The response code (RFC 5530 and RFC 3501) for a storage error kind, without brackets.
pub fn code_for(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::NonExistent => Some("NONEXISTENT"),
        ErrorKind::AlreadyExists => Some("ALREADYEXISTS"),
        ErrorKind::BadName => Some("CANNOT"),
        ErrorKind::NoPerm => Some("NOPERM"),
        ErrorKind::Limit => Some("LIMIT"),
        ErrorKind::OverQuota => Some("OVERQUOTA"),
        ErrorKind::HasChildren => Some("INUSE"),
        ErrorKind::Expunged => Some("EXPUNGEISSUED"),
        ErrorKind::Temporary => Some("UNAVAILABLE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let mut out = Vec::new();
        push_string(&mut out, b"a \"q\" \\");
        assert_eq!(out, b"\"a \\\"q\\\" \\\\\"");
        out.clear();
        push_string(&mut out, b"two\r\nlines");
        assert_eq!(out, b"{10}\r\ntwo\r\nlines");
        out.clear();
        push_astring(&mut out, b"INBOX");
        push_astring(&mut out, b"NIL");
        push_astring(&mut out, b"");
        assert_eq!(out, b"INBOX\"NIL\"\"\"");
    }
}
