//! The lexical layer of the command parser: a cursor over the bytes of one framed command
//! and the RFC 3501 §9 tokens (SP, atom, quoted, literal, astring, nstring, number,
//! sequence-set, list-mailbox).
//!
//! It knows nothing about commands; every method either consumes a whole token or fails
//! with a short human reason (a [`Fail`]), never panicking on any input.

use std::borrow::Cow;

use crate::imap::command::{ParseError, ParseErrorKind};
use crate::imap::syntax::seqset::{self, SeqSetError};
use crate::mailbox::search::NumSet;

/// A parse failure before the tag is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub message: Cow<'static, str>,
    pub kind: ParseErrorKind,
}

impl Fail {
    pub fn into_error(self, tag: Option<String>) -> ParseError {
        ParseError {
            tag,
            message: self.message.into_owned(),
            kind: self.kind,
        }
    }
}

pub(crate) type PResult<T> = Result<T, Fail>;

/// A `BAD` failure.
pub(crate) fn bad(message: impl Into<Cow<'static, str>>) -> Fail {
    Fail {
        message: message.into(),
        kind: ParseErrorKind::Bad,
    }
}

/// Shortens client-supplied text quoted in an error message.
pub(crate) fn shown(bytes: &[u8]) -> String {
    let mut s: String = String::from_utf8_lossy(bytes).chars().take(40).collect();
    s.retain(|c| !c.is_control());
    s
}

/// RFC 3501 `ATOM-CHAR`: any CHAR except atom-specials.
pub(crate) fn is_atom_char(c: u8) -> bool {
    (0x21..0x7f).contains(&c)
        && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// RFC 3501 `ASTRING-CHAR`: ATOM-CHAR or `]`.
pub(crate) fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']'
}

/// RFC 3501 `list-char`: ATOM-CHAR, `%`, `*` or `]`.
fn is_list_char(c: u8) -> bool {
    is_astring_char(c) || c == b'%' || c == b'*'
}

/// Strict UTF-8 conversion for names, passwords and other strings kept as `String`.
pub(crate) fn utf8(bytes: Cow<'_, [u8]>) -> PResult<String> {
    String::from_utf8(bytes.into_owned()).map_err(|_| bad("String is not valid UTF-8"))
}

/// Reads a literal marker `{n}` / `{n+}` at the start of `s`: (length, non-sync, octets used).
pub(crate) fn literal_marker(s: &[u8]) -> Option<(u64, bool, usize)> {
    let rest = s.strip_prefix(b"{")?;
    let ndigits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if ndigits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in rest.get(..ndigits)? {
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    let after = rest.get(ndigits..)?;
    let (non_sync, close) = match after {
        [b'+', b'}', ..] => (true, 2),
        [b'}', ..] => (false, 1),
        _ => return None,
    };
    Some((n, non_sync, 1 + ndigits + close))
}

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Deepest SEARCH nesting accepted (`[imap] max_nesting`).
    pub max_depth: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            max_depth: super::search::MAX_DEPTH,
        }
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn reset(&mut self, pos: usize) {
        self.pos = pos.min(self.buf.len());
    }

    /// Consumes `c` if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Requires `c` next.
    pub fn expect(&mut self, c: u8) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else if self.at_end() {
            Err(bad("Missing argument"))
        } else {
            Err(bad(format!("Expected '{}'", c as char)))
        }
    }

    /// Exactly one space between arguments.
    pub fn sp(&mut self) -> PResult<()> {
        match self.peek() {
            Some(b' ') => {
                self.pos += 1;
                Ok(())
            }
            None => Err(bad("Missing argument")),
            Some(_) => Err(bad("Expected space")),
        }
    }

    /// Fails on anything left after a complete command.
    pub fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(bad("Unexpected extra arguments"))
        }
    }

    pub fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.rest();
        let n = rest.iter().take_while(|&&c| pred(c)).count();
        self.pos += n;
        rest.get(..n).unwrap_or_default()
    }

    /// A non-empty run of octets accepted by `pred`.
    fn token(&mut self, pred: impl Fn(u8) -> bool, what: &'static str) -> PResult<&'a [u8]> {
        let t = self.take_while(pred);
        if !t.is_empty() {
            Ok(t)
        } else if self.at_end() {
            Err(bad("Missing argument"))
        } else {
            Err(bad(what))
        }
    }

    /// RFC 3501 `atom`.
    pub fn atom(&mut self) -> PResult<&'a [u8]> {
        self.token(is_atom_char, "Expected atom")
    }

    /// An atom upper-cased, for keywords (command names, FETCH items, SEARCH keys).
    pub fn keyword(&mut self) -> PResult<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// RFC 3501 `quoted`: `"` *QUOTED-CHAR `"` with `\"` and `\\` escapes. 8-bit octets are
    /// accepted (many clients send raw UTF-8); CR, LF and NUL are not.
    pub fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(bad("Unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err(bad("Invalid escape in quoted string")),
                    }
                    self.pos += 1;
                }
                Some(b'\r' | b'\n' | 0) => return Err(bad("Invalid character in quoted string")),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// RFC 3501 `literal` (and RFC 7888 `{n+}`), with its octets inline after CRLF.
    pub fn literal(&mut self) -> PResult<&'a [u8]> {
        let (n, _, used) = literal_marker(self.rest()).ok_or_else(|| bad("Invalid literal"))?;
        self.pos += used;
        if !self.rest().starts_with(b"\r\n") {
            return Err(bad("Literal marker must end the line"));
        }
        self.pos += 2;
        let n = usize::try_from(n).map_err(|_| bad("Literal too large"))?;
        let data = self
            .rest()
            .get(..n)
            .ok_or_else(|| bad("Literal is shorter than announced"))?;
        // CHAR8 excludes NUL (RFC 3501 §9).
        if data.contains(&0) {
            return Err(bad("NUL in literal"));
        }
        self.pos += n;
        Ok(data)
    }

    /// RFC 3501 `string`: quoted or literal.
    pub fn string(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"') => Ok(Cow::Owned(self.quoted()?)),
            Some(b'{') => Ok(Cow::Borrowed(self.literal()?)),
            None => Err(bad("Missing argument")),
            Some(_) => Err(bad("Expected string")),
        }
    }

    /// RFC 3501 `astring`: 1*ASTRING-CHAR or string.
    pub fn astring(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => Ok(Cow::Borrowed(
                self.token(is_astring_char, "Expected string")?,
            )),
        }
    }

    /// RFC 3501 `nstring`: `NIL` or string.
    pub fn nstring(&mut self) -> PResult<Option<Cow<'a, [u8]>>> {
        match self.peek() {
            Some(b'"' | b'{') => Ok(Some(self.string()?)),
            _ => {
                if self.atom()?.eq_ignore_ascii_case(b"NIL") {
                    Ok(None)
                } else {
                    Err(bad("Expected string or NIL"))
                }
            }
        }
    }

    /// RFC 3501 `mailbox` (an astring), as UTF-8 text in wire form.
    pub fn mailbox(&mut self) -> PResult<String> {
        utf8(self.astring()?)
    }

    /// RFC 3501 `list-mailbox`: 1*list-char or string.
    pub fn list_mailbox(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"' | b'{') => utf8(self.string()?),
            _ => utf8(Cow::Borrowed(
                self.token(is_list_char, "Expected mailbox pattern")?,
            )),
        }
    }

    /// RFC 3501 `number` as u64 (callers narrow it).
    pub fn number64(&mut self) -> PResult<u64> {
        let digits = self.token(|c| c.is_ascii_digit(), "Expected number")?;
        let mut n: u64 = 0;
        for &c in digits {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .ok_or_else(|| bad("Number too large"))?;
        }
        Ok(n)
    }

    /// RFC 3501 `number`: unsigned 32-bit.
    pub fn number(&mut self) -> PResult<u32> {
        u32::try_from(self.number64()?).map_err(|_| bad("Number too large"))
    }

    /// RFC 3501 `nz-number`.
    pub fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => Err(bad("Number must not be zero")),
            n => Ok(n),
        }
    }

    /// RFC 3501 `sequence-set`.
    pub fn seqset(&mut self) -> PResult<NumSet> {
        let text = self.token(
            |c| c.is_ascii_digit() || matches!(c, b':' | b',' | b'*'),
            "Invalid sequence set",
        )?;
        seqset::parse(text).map_err(|e| match e {
            SeqSetError::TooLarge => bad("Number too large in sequence set"),
            _ => bad("Invalid sequence set"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let mut c = Cursor::new(b"abc \"q\\\"x\\\\\" {3}\r\nl t{2+}\r\nok NIL 12 4294967296");
        assert_eq!(c.atom().unwrap(), b"abc");
        c.sp().unwrap();
        assert_eq!(c.astring().unwrap().as_ref(), b"q\"x\\");
        c.sp().unwrap();
        assert_eq!(c.astring().unwrap().as_ref(), b"l t");
        assert_eq!(c.astring().unwrap().as_ref(), b"ok");
        c.sp().unwrap();
        assert_eq!(c.nstring().unwrap(), None);
        c.sp().unwrap();
        assert_eq!(c.number().unwrap(), 12);
        c.sp().unwrap();
        assert_eq!(c.number().unwrap_err().message, "Number too large");
    }

    #[test]
    fn literal_errors() {
        assert!(Cursor::new(b"{5}\r\nabc").literal().is_err());
        assert!(Cursor::new(b"{5}abcde").literal().is_err());
        assert!(Cursor::new(b"{99999999999999999999999}\r\n")
            .literal()
            .is_err());
        assert!(Cursor::new(b"{1}\r\n\0").literal().is_err());
        assert!(Cursor::new(b"{}\r\n").literal().is_err());
        assert_eq!(Cursor::new(b"{0}\r\n").literal().unwrap(), b"");
        assert_eq!(literal_marker(b"{12+}"), Some((12, true, 5)));
        assert_eq!(literal_marker(b"{12-}"), None);
    }

    #[test]
    fn quoted_rules() {
        assert_eq!(
            Cursor::new("\"h\u{e9}\"".as_bytes()).quoted().unwrap(),
            "h\u{e9}".as_bytes()
        );
        assert!(Cursor::new(b"\"a\\b\"").quoted().is_err());
        assert!(Cursor::new(b"\"a\r\"").quoted().is_err());
        assert!(Cursor::new(b"\"abc").quoted().is_err());
    }
}
