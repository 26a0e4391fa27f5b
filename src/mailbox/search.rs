//! SEARCH criteria (RFC 3501 §6.4.4) as a format-neutral tree, and their evaluation over a
//! message's metadata and (only when a key needs it) its content.
//!
//! The IMAP parser builds [`SearchKey`]s; strings in it are already UTF-8 (the parser
//! converted from the command's CHARSET).

use super::date::Date;
use super::message::address::{self, Address};
use super::message::decode::{to_utf8, transfer_decode};
use super::message::encoded_word::decode_header;
use super::message::{self, header, rfc5322date, Body, Part};
use super::{MessageMeta, SysFlags};

/// A set of numbers (message sequence numbers or UIDs), as sent: ranges may be reversed and
/// `*` is [`NumSet::STAR`] until resolved against the mailbox (RFC 3501 §9 `sequence-set`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumSet {
    /// Inclusive ranges exactly as sent (`a:b` with a > b allowed, `*` = `STAR`).
    pub ranges: Vec<(u32, u32)>,
}

impl NumSet {
    /// Stands for `*`: the largest number in use. 0 is never a valid `nz-number`, so it
    /// cannot be confused with a number a client sent; 4294967295 is such a number (RFC
    /// 3501 §9 `seq-number`; RFC 9051 §9 notes that it is not a synonym for `*`).
    pub const STAR: u32 = 0;

    /// Does the set contain `n`, with `*` meaning `max`? RFC 3501 §6.4.8: `*` is the
    /// largest number in use; for `n:*` with n > max it still matches max.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        self.ranges.iter().any(|&(a, b)| {
            let a = if a == Self::STAR { max } else { a };
            let b = if b == Self::STAR { max } else { b };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            lo <= n && n <= hi
        })
    }
}

/// One search key. `And` is the implicit conjunction of a parenthesized list or of the
/// top-level keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    /// Message sequence numbers.
    SeqSet(NumSet),
    Uid(NumSet),
    Answered,
    Deleted,
    Draft,
    Flagged,
    Seen,
    Recent,
    New,
    Old,
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unseen,
    Keyword(String),
    Unkeyword(String),
    /// Internal date (date only, timezone ignored: RFC 3501 §6.4.4).
    Before(Date),
    On(Date),
    Since(Date),
    /// The Date: header.
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Larger(u64),
    Smaller(u64),
    /// `HEADER name value`: the text after the colon of any field of that name.
    Header(String, String),
    /// FROM/TO/CC/BCC/SUBJECT: "the specified string in the envelope structure's FROM
    /// field" (RFC 3501 §6.4.4), so addresses are matched as `name <mailbox@host>` with
    /// the name decoded (comments and quoting are not part of it), as Dovecot does.
    Envelope(EnvField, String),
    Body(String),
    Text(String),
}

/// The envelope fields SEARCH keys look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvField {
    From,
    To,
    Cc,
    Bcc,
    Subject,
}

impl EnvField {
    pub fn header_name(self) -> &'static str {
        match self {
            EnvField::From => "From",
            EnvField::To => "To",
            EnvField::Cc => "Cc",
            EnvField::Bcc => "Bcc",
            EnvField::Subject => "Subject",
        }
    }
}

/// The parts of a message's envelope SEARCH reads, raw as the ENVELOPE carries them
/// (Subject unfolded, encoded words not decoded; `None`/empty: NIL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvelopeData {
    pub subject: Option<Vec<u8>>,
    pub from: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
}

impl EnvelopeData {
    /// The searchable text of one field; `None` when the envelope has NIL there.
    pub fn text(&self, field: EnvField) -> Option<String> {
        let list = match field {
            EnvField::Subject => return self.subject.as_deref().map(decode_header),
            EnvField::From => &self.from,
            EnvField::To => &self.to,
            EnvField::Cc => &self.cc,
            EnvField::Bcc => &self.bcc,
        };
        (!list.is_empty()).then(|| address::addresses_text(list))
    }
}

/// The text of `field` as the ENVELOPE of a message with this header has it (the first
/// field of the name, as RFC 3501 §7.4.2 builds the envelope).
fn envelope_text_from_header(hdr: &[u8], field: EnvField) -> Option<String> {
    let value = header::first(hdr, field.header_name())?;
    if field == EnvField::Subject {
        return Some(decode_header(&header::unfold(value)));
    }
    let list = address::parse_list(value);
    (!list.is_empty()).then(|| address::addresses_text(&list))
}

/// What evaluation needs to know about one message besides its content.
pub struct MessageContext<'a> {
    pub seq: u32,
    pub max_seq: u32,
    pub max_uid: u32,
    pub meta: &'a MessageMeta,
    pub recent: bool,
    /// The envelope, when the caller has it (from the index cache): envelope keys use it
    /// instead of the content.
    pub envelope: Option<&'a EnvelopeData>,
}

/// Whether every content key of `key` is an envelope key (the cached ENVELOPE answers).
pub fn envelope_only(key: &SearchKey) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().all(envelope_only),
        SearchKey::Or(a, b) => envelope_only(a) && envelope_only(b),
        SearchKey::Not(k) => envelope_only(k),
        SearchKey::Envelope(..) => true,
        k => !needs_content(k),
    }
}

/// A needle that must occur in a message's ENVELOPE text for `key` to match, when one
/// can be told from the key: `key` is an envelope key, or an AND with one, whose string
/// is plain ASCII without spaces or address punctuation (so any occurrence in the
/// searchable text lies within one name, mailbox or host). Lowercase.
pub fn envelope_needle(key: &SearchKey) -> Option<String> {
    match key {
        SearchKey::Envelope(_, s) => {
            let plain = !s.is_empty()
                && s.bytes().all(|c| {
                    c.is_ascii_graphic() && !matches!(c, b'<' | b'>' | b'@' | b':' | b'"' | b'\\')
                });
            plain.then(|| s.to_ascii_lowercase())
        }
        SearchKey::And(keys) => keys.iter().find_map(envelope_needle),
        _ => None,
    }
}

/// Does evaluating `key` need the message content (headers, body or the Date: header)?
pub fn needs_content(key: &SearchKey) -> bool {
    any_leaf(key, &|k| {
        matches!(
            k,
            SearchKey::SentBefore(_)
                | SearchKey::SentOn(_)
                | SearchKey::SentSince(_)
                | SearchKey::Header(..)
                | SearchKey::Envelope(..)
                | SearchKey::Body(_)
                | SearchKey::Text(_)
        )
    })
}

/// Whether `leaf` holds for any key below the AND/OR/NOT structure of `key`.
fn any_leaf(key: &SearchKey, leaf: &dyn Fn(&SearchKey) -> bool) -> bool {
    match key {
        SearchKey::And(keys) => keys.iter().any(|k| any_leaf(k, leaf)),
        SearchKey::Or(a, b) => any_leaf(a, leaf) || any_leaf(b, leaf),
        SearchKey::Not(k) => any_leaf(k, leaf),
        k => leaf(k),
    }
}

/// True if any key may look at the internal date (BEFORE/ON/SINCE, and the SENT* keys
/// for a message without a usable Date: header).
pub fn needs_internal_date(key: &SearchKey) -> bool {
    any_leaf(key, &|k| {
        matches!(
            k,
            SearchKey::Before(_)
                | SearchKey::On(_)
                | SearchKey::Since(_)
                | SearchKey::SentBefore(_)
                | SearchKey::SentOn(_)
                | SearchKey::SentSince(_)
        )
    })
}

/// True if any key looks at RFC822.SIZE (LARGER, SMALLER).
pub fn needs_size(key: &SearchKey) -> bool {
    any_leaf(key, &|k| {
        matches!(k, SearchKey::Larger(_) | SearchKey::Smaller(_))
    })
}

/// True if any key looks past the header block (BODY, TEXT); otherwise the header alone
/// (`Mailbox::fetch_header`) is enough content.
pub fn needs_body(key: &SearchKey) -> bool {
    any_leaf(key, &|k| {
        matches!(k, SearchKey::Body(_) | SearchKey::Text(_))
    })
}

/// The answer for `key` when the message content cannot change it: `Some(false)` when a
/// conjunct that needs no content fails (`UID 1:500` of `UID 1:500 FROM x`), `Some(true)`
/// when an alternative that needs none holds; `None`: the content decides. Keys on the
/// internal date count as content when `ctx.meta`'s date is not known yet.
pub fn decide_without_content(key: &SearchKey, ctx: &MessageContext) -> Option<bool> {
    match key {
        SearchKey::And(keys) => {
            let mut all = Some(true);
            for k in keys {
                match decide_without_content(k, ctx) {
                    Some(false) => return Some(false),
                    None => all = None,
                    Some(true) => {}
                }
            }
            all
        }
        SearchKey::Or(a, b) => {
            match (
                decide_without_content(a, ctx),
                decide_without_content(b, ctx),
            ) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }
        }
        SearchKey::Not(k) => decide_without_content(k, ctx).map(|b| !b),
        k if needs_content(k) => None,
        k if needs_internal_date(k) && ctx.meta.internal_date == super::UNKNOWN_DATE => None,
        k => Some(matches(k, ctx, None)),
    }
}

/// Evaluates `key` for one message. `content` must be `Some` whenever [`needs_content`] is
/// true; content keys are false without it. The message is parsed at most once, and only
/// if a content key is actually reached.
pub fn matches(key: &SearchKey, ctx: &MessageContext, content: Option<&[u8]>) -> bool {
    let mut ev = Evaluator::new(ctx, content, None);
    ev.eval(key)
}

/// Like [`matches`], with a [`Part`] tree already parsed from `content` (e.g. cached).
pub fn matches_parsed(key: &SearchKey, ctx: &MessageContext, content: &[u8], root: &Part) -> bool {
    let mut ev = Evaluator::new(ctx, Some(content), Some(root));
    ev.eval(key)
}

/// Case-insensitive substring test on Unicode text (simple lowercase folding).
/// `text` lowercased for case-insensitive matching. Mostly ASCII in practice: lowered in
/// place, without a second copy of a whole message body.
fn fold_case(mut text: String) -> String {
    if text.is_ascii() {
        text.make_ascii_lowercase();
        text
    } else {
        text.to_lowercase()
    }
}

fn contains_folded(haystack_folded: &str, needle: &str) -> bool {
    haystack_folded.contains(&needle.to_lowercase())
}

struct Evaluator<'a> {
    ctx: &'a MessageContext<'a>,
    data: Option<&'a [u8]>,
    given: Option<&'a Part>,
    parsed: Option<Part>,
    /// Lowercased decoded text of all text parts.
    body_text: Option<String>,
    /// Lowercased decoded headers of the message and of every part.
    header_text: Option<String>,
}

impl<'a> Evaluator<'a> {
    fn new(ctx: &'a MessageContext<'a>, data: Option<&'a [u8]>, given: Option<&'a Part>) -> Self {
        Evaluator {
            ctx,
            data,
            given,
            parsed: None,
            body_text: None,
            header_text: None,
        }
    }

    fn root(&mut self) -> Option<(&'a [u8], &Part)> {
        let data = self.data?;
        if let Some(p) = self.given {
            return Some((data, p));
        }
        let p = self.parsed.get_or_insert_with(|| message::parse(data));
        Some((data, p))
    }

    fn eval(&mut self, key: &SearchKey) -> bool {
        let meta = self.ctx.meta;
        let sys = meta.flags.sys;
        let internal = Date::from_unix(meta.internal_date);
        match key {
            SearchKey::All => true,
            SearchKey::And(keys) => keys.iter().all(|k| self.eval(k)),
            SearchKey::Or(a, b) => self.eval(a) || self.eval(b),
            SearchKey::Not(k) => !self.eval(k),
            SearchKey::SeqSet(set) => set.contains(self.ctx.seq, self.ctx.max_seq),
            SearchKey::Uid(set) => set.contains(meta.uid, self.ctx.max_uid),
            SearchKey::Answered => sys.contains(SysFlags::ANSWERED),
            SearchKey::Deleted => sys.contains(SysFlags::DELETED),
            SearchKey::Draft => sys.contains(SysFlags::DRAFT),
            SearchKey::Flagged => sys.contains(SysFlags::FLAGGED),
            SearchKey::Seen => sys.contains(SysFlags::SEEN),
            SearchKey::Recent => self.ctx.recent,
            SearchKey::New => self.ctx.recent && !sys.contains(SysFlags::SEEN),
            SearchKey::Old => !self.ctx.recent,
            SearchKey::Unanswered => !sys.contains(SysFlags::ANSWERED),
            SearchKey::Undeleted => !sys.contains(SysFlags::DELETED),
            SearchKey::Undraft => !sys.contains(SysFlags::DRAFT),
            SearchKey::Unflagged => !sys.contains(SysFlags::FLAGGED),
            SearchKey::Unseen => !sys.contains(SysFlags::SEEN),
            SearchKey::Keyword(k) => meta.flags.has_keyword(k),
            SearchKey::Unkeyword(k) => !meta.flags.has_keyword(k),
            SearchKey::Before(d) => internal < *d,
            SearchKey::On(d) => internal == *d,
            SearchKey::Since(d) => internal >= *d,
            SearchKey::SentBefore(d) => self.sent_date().is_some_and(|s| s < *d),
            SearchKey::SentOn(d) => self.sent_date().is_some_and(|s| s == *d),
            SearchKey::SentSince(d) => self.sent_date().is_some_and(|s| s >= *d),
            SearchKey::Larger(n) => meta.size > *n,
            SearchKey::Smaller(n) => meta.size < *n,
            SearchKey::Header(name, value) => self.header_matches(name, value),
            SearchKey::Envelope(field, value) => self.envelope_matches(*field, value),
            SearchKey::Body(s) => self.body_text().is_some_and(|t| contains_folded(t, s)),
            SearchKey::Text(s) => {
                self.header_text().is_some_and(|t| contains_folded(t, s))
                    || self.body_text().is_some_and(|t| contains_folded(t, s))
            }
        }
    }

    /// The Date: header's date as written (RFC 3501 §6.4.4 disregards time and timezone),
    /// or the internal date when the header is missing or unparsable.
    fn sent_date(&mut self) -> Option<Date> {
        let internal = Date::from_unix(self.ctx.meta.internal_date);
        let (data, root) = self.root()?;
        Some(
            header::first(root.header_bytes(data), "Date")
                .and_then(rfc5322date::parse)
                .map_or(internal, |d| d.date),
        )
    }

    fn envelope_matches(&mut self, field: EnvField, value: &str) -> bool {
        let text = match self.ctx.envelope {
            Some(env) => env.text(field),
            None => {
                let Some((data, root)) = self.root() else {
                    return false;
                };
                envelope_text_from_header(root.header_bytes(data), field)
            }
        };
        text.is_some_and(|t| value.is_empty() || t.to_lowercase().contains(&value.to_lowercase()))
    }

    fn header_matches(&mut self, name: &str, value: &str) -> bool {
        let Some((data, root)) = self.root() else {
            return false;
        };
        let needle = value.to_lowercase();
        let address = ["from", "to", "cc", "bcc", "sender", "reply-to"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name));
        header::fields(root.header_bytes(data))
            .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .any(|f| {
                needle.is_empty()
                    || decode_header(f.value).to_lowercase().contains(&needle)
                    || (address
                        && address::search_text(f.value)
                            .to_lowercase()
                            .contains(&needle))
            })
    }

    fn header_text(&mut self) -> Option<&str> {
        if self.header_text.is_none() {
            let (data, root) = self.root()?;
            let mut text = String::new();
            root.walk(&mut |p| {
                for f in header::fields(p.header_bytes(data)) {
                    text.push_str(&String::from_utf8_lossy(f.name));
                    text.push_str(": ");
                    text.push_str(&decode_header(f.value));
                    text.push('\n');
                }
            });
            self.header_text = Some(fold_case(text));
        }
        self.header_text.as_deref()
    }

    fn body_text(&mut self) -> Option<&str> {
        if self.body_text.is_none() {
            let (data, root) = self.root()?;
            let mut text = String::new();
            root.walk(&mut |p| {
                if p.kind == Body::Single && p.content_type.is_type("text") {
                    let raw = transfer_decode(p.encoding.as_deref(), p.body_bytes(data));
                    text.push_str(&to_utf8(p.content_type.param("charset"), &raw));
                    text.push('\n');
                }
            });
            self.body_text = Some(fold_case(text));
        }
        self.body_text.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Flags;

    const MSG: &[u8] = b"Date: Sun, 31 Dec 2023 23:30:00 -0500\r\n\
From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n\
To: Team: bob@example.com;\r\n\
Subject: =?UTF-8?B?w4ljaGVj?= du\r\n plan\r\n\
X-Empty:\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Voil=E0 le r=E9sum=\r\n=E9.\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PGI+R3LDvMOfZTwvYj4=\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
secretword\r\n\
--b--\r\n";

    fn meta(flags: SysFlags) -> MessageMeta {
        MessageMeta {
            uid: 7,
            flags: Flags {
                sys: flags,
                keywords: vec!["$Work".into()],
            },
            size: MSG.len() as u64,
            // 2024-01-02 10:00:00 UTC
            internal_date: Date::new(2024, 1, 2).unwrap().to_days() * 86400 + 36000,
        }
    }

    /// The context of a mailbox holding only this message (as UID 9's, sequence 1).
    fn only(meta: &MessageMeta) -> MessageContext<'_> {
        MessageContext {
            seq: 1,
            max_seq: 1,
            max_uid: 9,
            meta,
            recent: false,
            envelope: None,
        }
    }

    fn m(key: SearchKey, flags: SysFlags, recent: bool) -> bool {
        let meta = meta(flags);
        let ctx = MessageContext {
            seq: 3,
            max_seq: 5,
            max_uid: 9,
            meta: &meta,
            recent,
            envelope: None,
        };
        let content = needs_content(&key).then_some(MSG);
        matches(&key, &ctx, content)
    }

    fn yes(key: SearchKey) -> bool {
        m(key, SysFlags::default(), false)
    }

    fn d(y: i32, mo: u8, day: u8) -> Date {
        Date::new(y, mo, day).unwrap()
    }

    fn h(n: &str, v: &str) -> SearchKey {
        SearchKey::Header(n.into(), v.into())
    }

    #[test]
    fn flags_and_numbers() {
        assert!(m(SearchKey::New, SysFlags::default(), true));
        assert!(!m(SearchKey::New, SysFlags::SEEN, true));
        assert!(m(SearchKey::Old, SysFlags::SEEN, false));
        assert!(!m(SearchKey::Old, SysFlags::SEEN, true));
        assert!(m(SearchKey::Seen, SysFlags::SEEN, false));
        assert!(yes(SearchKey::Unseen));
        assert!(yes(SearchKey::Keyword("$work".into())));
        assert!(!yes(SearchKey::Unkeyword("$WORK".into())));
        assert!(yes(SearchKey::SeqSet(NumSet {
            ranges: vec![(NumSet::STAR, 3)]
        })));
        assert!(!yes(SearchKey::SeqSet(NumSet {
            ranges: vec![(4, NumSet::STAR)]
        })));
        assert!(yes(SearchKey::Uid(NumSet {
            ranges: vec![(7, 7)]
        })));
        assert!(!yes(SearchKey::Uid(NumSet {
            ranges: vec![(8, NumSet::STAR)]
        })));
        let size = MSG.len() as u64;
        assert!(yes(SearchKey::Larger(size - 1)) && !yes(SearchKey::Larger(size)));
        assert!(yes(SearchKey::Smaller(size + 1)) && !yes(SearchKey::Smaller(size)));
        assert!(yes(SearchKey::Or(
            Box::new(SearchKey::Deleted),
            Box::new(SearchKey::Not(Box::new(SearchKey::Draft)))
        )));
        assert!(!yes(SearchKey::And(vec![
            SearchKey::All,
            SearchKey::Flagged
        ])));
    }

    #[test]
    fn dates() {
        assert!(yes(SearchKey::On(d(2024, 1, 2))));
        assert!(yes(SearchKey::Since(d(2024, 1, 2))));
        assert!(!yes(SearchKey::Before(d(2024, 1, 2))));
        assert!(yes(SearchKey::Before(d(2024, 1, 3))));
        // Sent date is taken as written (31 Dec 2023, although that is 1 Jan in UTC).
        assert!(yes(SearchKey::SentOn(d(2023, 12, 31))));
        assert!(yes(SearchKey::SentBefore(d(2024, 1, 1))));
        assert!(!yes(SearchKey::SentSince(d(2024, 1, 1))));
        // No Date: header: internal date is used.
        let meta = meta(SysFlags::default());
        let ctx = only(&meta);
        assert!(matches(
            &SearchKey::SentOn(d(2024, 1, 2)),
            &ctx,
            Some(b"Subject: x\r\n\r\n")
        ));
        assert!(!matches(&SearchKey::SentOn(d(2024, 1, 2)), &ctx, None));
    }

    #[test]
    fn headers() {
        assert!(yes(h("subject", "échec du")));
        assert!(yes(h("SUBJECT", "ÉCHEC DU PLAN")));
        assert!(!yes(h("subject", "secretword")));
        assert!(yes(h("from", "andré")));
        assert!(yes(h("from", "ANDRE@EXAMPLE")));
        assert!(yes(h("to", "bob@")));
        assert!(yes(h("x-empty", "")));
        assert!(!yes(h("x-missing", "")));
        assert!(!yes(h("cc", "bob")));
    }

    #[test]
    fn body_and_text() {
        assert!(yes(SearchKey::Body("résumé.".into())));
        assert!(yes(SearchKey::Body("VOILÀ".into())));
        assert!(yes(SearchKey::Body("grüße".into())));
        assert!(!yes(SearchKey::Body("secretword".into())));
        assert!(!yes(SearchKey::Body("échec".into())));
        assert!(yes(SearchKey::Text("échec".into())));
        assert!(yes(SearchKey::Text("voilà".into())));
        assert!(yes(SearchKey::Text("application/octet".into())));
        assert!(!yes(SearchKey::Text("nowhere".into())));
        let root = message::parse(MSG);
        let meta = meta(SysFlags::default());
        let ctx = only(&meta);
        assert!(matches_parsed(
            &SearchKey::Body("résumé".into()),
            &ctx,
            MSG,
            &root
        ));
    }

    /// Content keys give the same answers on the message as stored with bare LF line
    /// ends (a Maildir written by an LDA) as on the CRLF form FETCH serves: SEARCH reads
    /// the stored form (`Mailbox::fetch_for_search`).
    #[test]
    fn content_keys_same_on_lf_storage() {
        let lf: Vec<u8> = String::from_utf8_lossy(MSG)
            .replace("\r\n", "\n")
            .into_bytes();
        let meta = meta(SysFlags::default());
        let ctx = only(&meta);
        let keys = [
            SearchKey::Body("résumé.".into()),
            SearchKey::Body("grüße".into()),
            SearchKey::Body("secretword".into()),
            SearchKey::Body("le r".into()),
            SearchKey::Text("échec".into()),
            SearchKey::Text("application/octet".into()),
            SearchKey::Text("nowhere".into()),
            h("subject", "échec du plan"),
            h("from", "andré"),
            h("x-empty", ""),
            h("content-type", "multipart"),
            SearchKey::SentBefore(d(2024, 1, 1)),
            SearchKey::SentOn(d(2023, 12, 31)),
        ];
        for k in keys {
            assert_eq!(
                matches(&k, &ctx, Some(&lf)),
                matches(&k, &ctx, Some(MSG)),
                "{k:?}"
            );
        }
    }

    #[test]
    fn needs_content_only_for_content_keys() {
        assert!(!needs_content(&SearchKey::And(vec![
            SearchKey::Seen,
            SearchKey::Larger(1)
        ])));
        assert!(needs_content(&SearchKey::Not(Box::new(h("a", "b")))));
        assert!(needs_content(&SearchKey::Or(
            Box::new(SearchKey::All),
            Box::new(SearchKey::SentOn(d(2020, 1, 1)))
        )));
    }
}

#[cfg(test)]
mod decide_tests {
    use super::*;
    use crate::mailbox::{Flags, MessageMeta};

    fn ctx(meta: &MessageMeta) -> MessageContext<'_> {
        MessageContext {
            seq: 1,
            max_seq: 10,
            max_uid: 10,
            meta,
            recent: false,
            envelope: None,
        }
    }

    #[test]
    fn cheap_conjuncts_decide_before_content() {
        let meta = MessageMeta {
            uid: 7,
            flags: Flags::default(),
            size: 10,
            internal_date: 1_700_000_000,
        };
        let uids = |a, b| {
            SearchKey::Uid(NumSet {
                ranges: vec![(a, b)],
            })
        };
        let from = SearchKey::Envelope(EnvField::From, "x".into());
        let c = ctx(&meta);
        let and = |ks: Vec<SearchKey>| SearchKey::And(ks);
        assert_eq!(
            decide_without_content(&and(vec![uids(1, 5), from.clone()]), &c),
            Some(false)
        );
        assert_eq!(
            decide_without_content(&and(vec![uids(1, 9), from.clone()]), &c),
            None
        );
        assert_eq!(
            decide_without_content(&and(vec![uids(1, 9), SearchKey::Unseen]), &c),
            Some(true)
        );
        let or = SearchKey::Or(Box::new(SearchKey::Unseen), Box::new(from.clone()));
        assert_eq!(decide_without_content(&or, &c), Some(true));
        let or = SearchKey::Or(Box::new(SearchKey::Seen), Box::new(from.clone()));
        assert_eq!(decide_without_content(&or, &c), None);
        let not = SearchKey::Not(Box::new(uids(1, 5)));
        assert_eq!(decide_without_content(&not, &c), Some(true));
        // A date key with the date not known yet waits for the real date.
        let unknown = MessageMeta {
            internal_date: crate::mailbox::UNKNOWN_DATE,
            ..meta.clone()
        };
        let since = SearchKey::Since(Date::new(2020, 1, 1).unwrap());
        assert_eq!(decide_without_content(&since, &ctx(&unknown)), None);
        assert_eq!(decide_without_content(&since, &c), Some(true));
        // Whenever it decides, it agrees with the full evaluation on any content.
        for key in [and(vec![uids(1, 9), SearchKey::Unseen]), not] {
            let d = decide_without_content(&key, &c);
            assert_eq!(d, Some(matches(&key, &c, Some(b"From: x\r\n\r\n"))));
        }
    }
}
