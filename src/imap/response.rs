//! Response encoding helpers (RFC 3501 §4.3 strings, §7 responses), the response codes
//! the server sends ([`ResponseCode`]) and the single place where storage error kinds
//! become response codes ([`code_for`]).

use std::fmt;

use crate::mailbox::ErrorKind;

/// A response code: the text between `[` and `]` of an OK/NO/BAD response. Display gives
/// the atom and its arguments exactly as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseCode {
    // RFC 3501 §7.1
    /// `BADCHARSET (US-ASCII UTF-8)`: the charsets SEARCH supports.
    BadCharset,
    Capability(String),
    /// `PERMANENTFLAGS (...)`; the list as sent, with its parentheses.
    PermanentFlags(String),
    ReadOnly,
    ReadWrite,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unseen(u32),
    // RFC 4315 §3 (UIDPLUS)
    AppendUid {
        uid_validity: u32,
        uid: u32,
    },
    /// `COPYUID validity source-set dest-set`; the sets already compact (`1:3,7`).
    CopyUid {
        uid_validity: u32,
        source: String,
        dest: String,
    },
    // RFC 5530 §3
    Unavailable,
    AuthenticationFailed,
    PrivacyRequired,
    NoPerm,
    InUse,
    ExpungeIssued,
    Cannot,
    Limit,
    OverQuota,
    AlreadyExists,
    NonExistent,
    /// RFC 4469 §5 (used by RFC 7889 APPENDLIMIT): the message is too large.
    TooBig,
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ResponseCode::*;
        let atom = match self {
            BadCharset => "BADCHARSET (US-ASCII UTF-8)",
            Capability(caps) => return write!(f, "CAPABILITY {caps}"),
            PermanentFlags(list) => return write!(f, "PERMANENTFLAGS {list}"),
            ReadOnly => "READ-ONLY",
            ReadWrite => "READ-WRITE",
            TryCreate => "TRYCREATE",
            UidNext(n) => return write!(f, "UIDNEXT {n}"),
            UidValidity(n) => return write!(f, "UIDVALIDITY {n}"),
            Unseen(n) => return write!(f, "UNSEEN {n}"),
            AppendUid { uid_validity, uid } => return write!(f, "APPENDUID {uid_validity} {uid}"),
            CopyUid {
                uid_validity,
                source,
                dest,
            } => return write!(f, "COPYUID {uid_validity} {source} {dest}"),
            Unavailable => "UNAVAILABLE",
            AuthenticationFailed => "AUTHENTICATIONFAILED",
            PrivacyRequired => "PRIVACYREQUIRED",
            NoPerm => "NOPERM",
            InUse => "INUSE",
            ExpungeIssued => "EXPUNGEISSUED",
            Cannot => "CANNOT",
            Limit => "LIMIT",
            OverQuota => "OVERQUOTA",
            AlreadyExists => "ALREADYEXISTS",
            NonExistent => "NONEXISTENT",
            TooBig => "TOOBIG",
        };
        f.write_str(atom)
    }
}

/// Appends an untagged `* OK [code] text` line (RFC 3501 §7.1).
pub fn push_untagged_ok(out: &mut Vec<u8>, code: &ResponseCode, text: &str) {
    out.extend_from_slice(format!("* OK [{code}] {text}\r\n").as_bytes());
}

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

/// The response code (RFC 5530 and RFC 3501) for a storage error kind.
pub fn code_for(kind: ErrorKind) -> ResponseCode {
    match kind {
        ErrorKind::NonExistent => ResponseCode::NonExistent,
        ErrorKind::AlreadyExists => ResponseCode::AlreadyExists,
        ErrorKind::BadName => ResponseCode::Cannot,
        ErrorKind::NoPerm => ResponseCode::NoPerm,
        ErrorKind::Limit => ResponseCode::Limit,
        ErrorKind::OverQuota => ResponseCode::OverQuota,
        ErrorKind::HasChildren | ErrorKind::InUse => ResponseCode::InUse,
        ErrorKind::Expunged => ResponseCode::ExpungeIssued,
        ErrorKind::Temporary => ResponseCode::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_rfc_atoms() {
        let cases = [
            (ResponseCode::ReadOnly, "READ-ONLY"),
            (ResponseCode::BadCharset, "BADCHARSET (US-ASCII UTF-8)"),
            (ResponseCode::UidNext(7), "UIDNEXT 7"),
            (
                ResponseCode::AppendUid {
                    uid_validity: 38505,
                    uid: 3955,
                },
                "APPENDUID 38505 3955",
            ),
            (
                ResponseCode::CopyUid {
                    uid_validity: 38505,
                    source: "304,319:320".into(),
                    dest: "3956:3958".into(),
                },
                "COPYUID 38505 304,319:320 3956:3958",
            ),
            (
                ResponseCode::PermanentFlags("()".into()),
                "PERMANENTFLAGS ()",
            ),
            (ResponseCode::AuthenticationFailed, "AUTHENTICATIONFAILED"),
            (ResponseCode::TooBig, "TOOBIG"),
        ];
        for (code, text) in cases {
            assert_eq!(code.to_string(), text);
        }
        assert_eq!(code_for(ErrorKind::HasChildren).to_string(), "INUSE");
        let mut out = Vec::new();
        push_untagged_ok(&mut out, &ResponseCode::UidValidity(3), "UIDs valid");
        assert_eq!(out, b"* OK [UIDVALIDITY 3] UIDs valid\r\n");
    }

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
