//! SEARCH arguments (RFC 3501 §6.4.4): `[CHARSET name] key *(SP key)` into a
//! [`SearchKey`] tree, with strings converted to UTF-8 from the charset.
//!
//! Nesting (parentheses, NOT, OR) is bounded by [`MAX_DEPTH`] so no input can exhaust the
//! stack. An unknown charset fails with [`ParseErrorKind::BadCharset`] so the session can
//! answer `NO [BADCHARSET (US-ASCII UTF-8)]` (RFC 3501 §6.4.4, §7.1).

use std::borrow::Cow;

use encoding_rs::Encoding;

use super::cursor::{bad, shown, Cursor, Fail, PResult};
use crate::imap::command::{Command, ParseErrorKind};
use crate::imap::syntax::datetime::parse_date;
use crate::mailbox::date::Date;
use crate::mailbox::search::{EnvField, SearchKey};

/// Deepest nesting of parenthesized lists / NOT / OR accepted.
/// Default nesting limit, used when the caller gives none.
pub(super) const MAX_DEPTH: usize = 64;

/// How strings in the command are turned into UTF-8.
#[derive(Clone, Copy)]
enum Charset {
    /// US-ASCII and UTF-8. Invalid octets become U+FFFD (harmless for matching).
    Utf8,
    Other(&'static Encoding),
}

impl Charset {
    fn resolve(name: &str) -> PResult<Charset> {
        if name.eq_ignore_ascii_case("US-ASCII") || name.eq_ignore_ascii_case("UTF-8") {
            return Ok(Charset::Utf8);
        }
        match Encoding::for_label(name.as_bytes()) {
            Some(enc) if enc == encoding_rs::UTF_8 => Ok(Charset::Utf8),
            // The "replacement" encoding stands for labels that must not be decoded.
            Some(enc) if enc != encoding_rs::REPLACEMENT => Ok(Charset::Other(enc)),
            _ => Err(Fail {
                message: format!("Unknown charset {}", shown(name.as_bytes())).into(),
                kind: ParseErrorKind::BadCharset,
            }),
        }
    }

    fn decode(self, bytes: &[u8]) -> String {
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Charset::Other(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
        }
    }
}

/// `SEARCH [SP "CHARSET" SP astring] 1*(SP search-key)`; several top-level keys become
/// [`SearchKey::And`].
pub(super) fn search(c: &mut Cursor<'_>, uid: bool) -> PResult<Command> {
    c.sp()?;
    let mut charset = None;
    let mut conv = Charset::Utf8;
    let start = c.pos();
    if c.peek().is_some_and(|b| b.is_ascii_alphabetic()) && c.keyword()? == "CHARSET" {
        c.sp()?;
        let name = String::from_utf8_lossy(&c.astring()?).into_owned();
        conv = Charset::resolve(&name)?;
        charset = Some(name);
        c.sp()?;
    } else {
        c.reset(start);
    }
    let mut p = KeyParser { c, conv };
    let mut keys = vec![p.key(0)?];
    while !p.c.at_end() {
        p.c.sp()?;
        keys.push(p.key(0)?);
    }
    let key = if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    };
    Ok(Command::Search { uid, charset, key })
}

struct KeyParser<'c, 'a> {
    c: &'c mut Cursor<'a>,
    conv: Charset,
}

impl KeyParser<'_, '_> {
    fn string(&mut self) -> PResult<String> {
        self.c.sp()?;
        let s: Cow<'_, [u8]> = self.c.astring()?;
        Ok(self.conv.decode(&s))
    }

    /// `date = date-text / DQUOTE date-text DQUOTE`.
    fn date(&mut self) -> PResult<Date> {
        self.c.sp()?;
        let text: Cow<'_, [u8]> = if self.c.peek() == Some(b'"') {
            Cow::Owned(self.c.quoted()?)
        } else {
            Cow::Borrowed(self.c.atom()?)
        };
        parse_date(&text).ok_or_else(|| bad("Invalid date"))
    }

    fn number(&mut self) -> PResult<u64> {
        self.c.sp()?;
        self.c.number64()
    }

    /// `flag-keyword` (an atom).
    fn keyword_flag(&mut self) -> PResult<String> {
        self.c.sp()?;
        Ok(String::from_utf8_lossy(self.c.atom()?).into_owned())
    }

    /// One `search-key`; `depth` counts enclosing lists / NOT / OR.
    fn key(&mut self, depth: usize) -> PResult<SearchKey> {
        if depth > self.c.max_depth {
            return Err(bad("Search nesting too deep"));
        }
        match self.c.peek() {
            Some(b'(') => {
                self.c.eat(b'(');
                let mut keys = vec![self.key(depth + 1)?];
                while !self.c.eat(b')') {
                    self.c.sp()?;
                    keys.push(self.key(depth + 1)?);
                }
                return Ok(if keys.len() == 1 {
                    keys.pop().unwrap_or(SearchKey::All)
                } else {
                    SearchKey::And(keys)
                });
            }
            Some(b) if b.is_ascii_digit() || b == b'*' => {
                return Ok(SearchKey::SeqSet(self.c.seqset()?));
            }
            _ => {}
        }
        let name = self.c.keyword()?;
        use SearchKey as K;
        Ok(match name.as_str() {
            "ALL" => K::All,
            "ANSWERED" => K::Answered,
            "DELETED" => K::Deleted,
            "DRAFT" => K::Draft,
            "FLAGGED" => K::Flagged,
            "SEEN" => K::Seen,
            "RECENT" => K::Recent,
            "NEW" => K::New,
            "OLD" => K::Old,
            "UNANSWERED" => K::Unanswered,
            "UNDELETED" => K::Undeleted,
            "UNDRAFT" => K::Undraft,
            "UNFLAGGED" => K::Unflagged,
            "UNSEEN" => K::Unseen,
            "KEYWORD" => K::Keyword(self.keyword_flag()?),
            "UNKEYWORD" => K::Unkeyword(self.keyword_flag()?),
            "BEFORE" => K::Before(self.date()?),
            "ON" => K::On(self.date()?),
            "SINCE" => K::Since(self.date()?),
            "SENTBEFORE" => K::SentBefore(self.date()?),
            "SENTON" => K::SentOn(self.date()?),
            "SENTSINCE" => K::SentSince(self.date()?),
            "LARGER" => K::Larger(self.number()?),
            "SMALLER" => K::Smaller(self.number()?),
            "FROM" => K::Envelope(EnvField::From, self.string()?),
            "TO" => K::Envelope(EnvField::To, self.string()?),
            "CC" => K::Envelope(EnvField::Cc, self.string()?),
            "BCC" => K::Envelope(EnvField::Bcc, self.string()?),
            "SUBJECT" => K::Envelope(EnvField::Subject, self.string()?),
            "HEADER" => {
                let field = self.string()?;
                K::Header(field, self.string()?)
            }
            "BODY" => K::Body(self.string()?),
            "TEXT" => K::Text(self.string()?),
            "UID" => {
                self.c.sp()?;
                K::Uid(self.c.seqset()?)
            }
            "NOT" => {
                self.c.sp()?;
                K::Not(Box::new(self.key(depth + 1)?))
            }
            "OR" => {
                self.c.sp()?;
                let a = self.key(depth + 1)?;
                self.c.sp()?;
                K::Or(Box::new(a), Box::new(self.key(depth + 1)?))
            }
            _ => {
                return Err(bad(format!(
                    "Unknown search key {}",
                    shown(name.as_bytes())
                )))
            }
        })
    }
}
