//! ENVELOPE encoding (RFC 3501 §7.4.2) from a message header.
//!
//! Values are the raw header text, unfolded, with encoded words left as they are (as Dovecot
//! does); absent fields are NIL; Sender and Reply-To default to From (RFC 3501 §7.4.2).
//! Address parsing and its error handling live in [`crate::mailbox::message::address`].

use crate::imap::response::{push_nstring, push_string};
use crate::mailbox::message::address::{self, Address};
use crate::mailbox::message::{header, Part};
use crate::mailbox::search::EnvelopeData;

/// Appends the parenthesized ENVELOPE of the message whose top-level part is `part`.
pub fn envelope(data: &[u8], part: &Part, out: &mut Vec<u8>) {
    let hdr = part.header_bytes(data);
    let field = |name: &str| header::first(hdr, name).map(header::unfold);
    let addrs = |name: &str| {
        header::first(hdr, name)
            .map(address::parse_list)
            .filter(|l| !l.is_empty())
    };
    out.push(b'(');
    push_nstring(out, field("Date").as_deref());
    out.push(b' ');
    push_nstring(out, field("Subject").as_deref());
    let from = addrs("From");
    for list in [
        from.clone(),
        addrs("Sender").or_else(|| from.clone()),
        addrs("Reply-To").or_else(|| from.clone()),
        addrs("To"),
        addrs("Cc"),
        addrs("Bcc"),
    ] {
        out.push(b' ');
        push_addresses(out, list.as_deref());
    }
    out.push(b' ');
    push_nstring(out, field("In-Reply-To").as_deref());
    out.push(b' ');
    push_nstring(out, field("Message-ID").as_deref());
    out.push(b')');
}

fn push_addresses(out: &mut Vec<u8>, list: Option<&[Address]>) {
    let Some(list) = list else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    for a in list {
        out.push(b'(');
        push_nstring(out, a.name.as_deref());
        out.push(b' ');
        push_nstring(out, a.adl.as_deref());
        out.push(b' ');
        push_nstring(out, a.mailbox.as_deref());
        out.push(b' ');
        match &a.host {
            Some(h) => push_string(out, h),
            None => out.extend_from_slice(b"NIL"),
        }
        out.push(b')');
    }
    out.push(b')');
}

/// `false` when `envelope` (an ENVELOPE as written by [`envelope`]) cannot contain
/// `needle` (from [`crate::mailbox::search::envelope_needle`]) in any field's searchable
/// text: it is plain ASCII without literals or encoded words (so every name, mailbox and
/// host appears in it verbatim) and `needle` is not in it, ignoring ASCII case. `true`:
/// maybe. It lives here, not in `mailbox::search`, because it reads the IMAP text.
pub fn may_contain(envelope: &[u8], needle: &str) -> bool {
    let verbatim = envelope.is_ascii()
        && !envelope.contains(&b'{')
        && memchr::memmem::find(envelope, b"=?").is_none();
    if !verbatim {
        return true;
    }
    let n = needle.as_bytes();
    let Some(&first) = n.first() else {
        return true;
    };
    // Candidates start with the needle's first letter in either case.
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lo, up, envelope).any(|i| {
        envelope
            .get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

/// Reads back what [`envelope`] wrote (a cached ENVELOPE) as far as SEARCH needs it.
/// `None` on anything else: the caller falls back to the message header.
pub fn parse_for_search(text: &[u8]) -> Option<EnvelopeData> {
    let mut r = Reader { s: text, i: 0 };
    r.byte(b'(')?;
    let _date = r.nstring()?;
    r.byte(b' ')?;
    let subject = r.nstring()?;
    let mut lists = Vec::with_capacity(6);
    for _ in 0..6 {
        r.byte(b' ')?;
        lists.push(r.addresses()?);
    }
    for _ in 0..2 {
        r.byte(b' ')?;
        r.nstring()?;
    }
    r.byte(b')')?;
    if r.i != text.len() {
        return None;
    }
    let mut lists = lists.into_iter();
    let from = lists.next()?;
    let (_sender, _reply_to) = (lists.next()?, lists.next()?);
    Some(EnvelopeData {
        subject,
        from,
        to: lists.next()?,
        cc: lists.next()?,
        bcc: lists.next()?,
    })
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn byte(&mut self, b: u8) -> Option<()> {
        (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
    }

    fn nstring(&mut self) -> Option<Option<Vec<u8>>> {
        let rest = self.s.get(self.i..)?;
        if rest.starts_with(b"NIL") {
            self.i += 3;
            return Some(None);
        }
        match rest.first()? {
            b'"' => {
                let mut out = Vec::new();
                let mut j = 1;
                loop {
                    match *rest.get(j)? {
                        b'"' => break,
                        b'\\' => {
                            out.push(*rest.get(j + 1)?);
                            j += 2;
                        }
                        c => {
                            out.push(c);
                            j += 1;
                        }
                    }
                }
                self.i += j + 1;
                Some(Some(out))
            }
            b'{' => {
                let close = rest.iter().position(|&c| c == b'}')?;
                let n: usize = std::str::from_utf8(rest.get(1..close)?)
                    .ok()?
                    .parse()
                    .ok()?;
                let start = close.checked_add(3)?;
                if rest.get(close + 1..start)? != b"\r\n" {
                    return None;
                }
                let v = rest.get(start..start.checked_add(n)?)?.to_vec();
                self.i += start + n;
                Some(Some(v))
            }
            _ => None,
        }
    }

    /// `NIL` or `((name adl mailbox host) ...)`.
    fn addresses(&mut self) -> Option<Vec<Address>> {
        if self.nstring_nil() {
            return Some(Vec::new());
        }
        self.byte(b'(')?;
        let mut out = Vec::new();
        while self.byte(b')').is_none() {
            self.byte(b'(')?;
            let name = self.nstring()?;
            self.byte(b' ')?;
            let adl = self.nstring()?;
            self.byte(b' ')?;
            let mailbox = self.nstring()?;
            self.byte(b' ')?;
            let host = self.nstring()?;
            self.byte(b')')?;
            out.push(Address {
                name,
                adl,
                mailbox,
                host,
            });
        }
        Some(out)
    }

    fn nstring_nil(&mut self) -> bool {
        if self.s.get(self.i..).is_some_and(|r| r.starts_with(b"NIL")) {
            self.i += 3;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::message::parse;

    fn env(m: &[u8]) -> String {
        let mut out = Vec::new();
        envelope(m, &parse(m), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn full_envelope() {
        let m = b"Date: Mon, 2 Jan 2006 15:04:05 -0700\r\nSubject: =?utf-8?q?hi?=\r\n \
                  there\r\nFrom: \"Ann O\" <ann@example.org>\r\nTo: bob@example.com (Bob B), \
                  team: c@x.y, <d@z>;\r\nMessage-ID: <1@x>\r\n\r\nbody";
        assert_eq!(
            env(m),
            "(\"Mon, 2 Jan 2006 15:04:05 -0700\" \"=?utf-8?q?hi?= there\" \
             ((\"Ann O\" NIL \"ann\" \"example.org\")) ((\"Ann O\" NIL \"ann\" \"example.org\")) \
             ((\"Ann O\" NIL \"ann\" \"example.org\")) ((\"Bob B\" NIL \"bob\" \"example.com\")\
             (NIL NIL \"team\" NIL)(NIL NIL \"c\" \"x.y\")(NIL NIL \"d\" \"z\")(NIL NIL NIL NIL)) \
             NIL NIL NIL \"<1@x>\")"
        );
    }

    #[test]
    fn empty_and_missing() {
        assert_eq!(env(b""), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        assert_eq!(
            env(b"Subject:\r\nTo: undisclosed-recipients:;\r\nCc: foo\r\nBcc: <>\r\n\r\n"),
            "(NIL \"\" NIL NIL NIL ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) \
             ((NIL NIL \"foo\" \"MISSING_DOMAIN\")) \
             ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) NIL NIL)"
        );
    }
}

#[cfg(test)]
mod fuzz {
    use super::super::bodystructure::bodystructure;
    use super::*;
    use crate::mailbox::message::{parse, section, Section, SectionText};
    use imap_codec::decode::Decoder;
    use imap_codec::ResponseCodec;
    use proptest::prelude::*;

    /// Message-like garbage: random picks from MIME-ish fragments and random bytes.
    fn messageish() -> impl Strategy<Value = Vec<u8>> {
        let frag = prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"--b".to_vec()),
            Just(b"--b--".to_vec()),
            Just(b"--".to_vec()),
            Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
            Just(b"Content-Type: message/rfc822\r\n".to_vec()),
            Just(b"Content-Type: multipart/digest; boundary=\"b\"\r\n".to_vec()),
            Just(b"Content-Type: text/plain; charset=\"x\r\n".to_vec()),
            Just(b"Content-Disposition: inline; a=(b\r\n".to_vec()),
            Just(b"Content-Language: en, (c) de\r\n".to_vec()),
            Just(b"From: \"a\\\" <b@c>, g: <@x:y@z> (c;\r\n".to_vec()),
            Just(b"To: =?utf-8?q?=C3?= <x@[1.2\r\n".to_vec()),
            Just(b"Date: Mon, 2 Jan 06 1:2 Z\r\n".to_vec()),
            Just(b" folded\r\n".to_vec()),
            Just(b":;<>@,\"()\\".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ];
        proptest::collection::vec(frag, 0..40).prop_map(|v| v.concat())
    }

    fn fetch_line(item: &str, v: &[u8]) -> Vec<u8> {
        let mut line = format!("* 1 FETCH ({item} ").into_bytes();
        line.extend_from_slice(v);
        line.extend_from_slice(b")\r\n");
        line
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// SEARCH FROM/TO/CC/BCC/SUBJECT give the same answer from a cached ENVELOPE as
        /// from the header, and the quick reject never drops a match.
        #[test]
        fn search_by_cached_envelope_agrees_with_the_header(
            data in messageish(),
            needle in prop_oneof![
                Just("a".to_string()), Just("b".to_string()), Just("c".to_string()),
                Just("x".to_string()), Just("MISSING".to_string()), Just("=?".to_string()),
                Just("b@c".to_string()), Just("a\" <b".to_string()), Just("".to_string()),
                "[a-z@<> ]{1,4}",
            ],
        ) {
            use crate::mailbox::search::{self, EnvField, MessageContext, SearchKey};
            use crate::mailbox::{Flags, MessageMeta};
            let root = parse(&data);
            let mut env = Vec::new();
            envelope(&data, &root, &mut env);
            let parsed = parse_for_search(&env);
            prop_assert!(parsed.is_some(), "unreadable envelope {:?}", String::from_utf8_lossy(&env));
            let meta = MessageMeta { uid: 1, flags: Flags::default(), size: 0, internal_date: 0 };
            let ctx = MessageContext { seq: 1, max_seq: 1, max_uid: 1, meta: &meta, recent: false, envelope: None };
            let env_ctx = MessageContext { envelope: parsed.as_ref(), ..ctx };
            for field in [EnvField::From, EnvField::To, EnvField::Cc, EnvField::Bcc, EnvField::Subject] {
                let key = SearchKey::Envelope(field, needle.clone());
                let by_header = search::matches(&key, &ctx, Some(&data));
                let by_env = search::matches(&key, &env_ctx, None);
                prop_assert_eq!(by_header, by_env, "{:?} {:?}", field, String::from_utf8_lossy(&env));
                if let Some(n) = search::envelope_needle(&key) {
                    if by_header {
                        prop_assert!(may_contain(&env, &n));
                    }
                }
            }
        }

        #[test]
        fn never_panics_and_stays_parseable(data in messageish()) {
            let root = parse(&data);
            for path in [vec![], vec![1], vec![1, 1], vec![2, 1, 1], vec![0], vec![3, 2]] {
                for text in [
                    None,
                    Some(SectionText::Header),
                    Some(SectionText::Text),
                    Some(SectionText::Mime),
                    Some(SectionText::HeaderFields(vec!["from".into()])),
                    Some(SectionText::HeaderFieldsNot(vec!["to".into()])),
                ] {
                    let whole = path.is_empty() && text.is_none();
                    let s = section(&data, &root, &Section { part: path.clone(), text });
                    if whole {
                        prop_assert_eq!(s.as_deref(), Some(&data[..]));
                    }
                }
            }
            let mut env = Vec::new();
            envelope(&data, &root, &mut env);
            let codec = ResponseCodec::default();
            prop_assert!(codec.decode(&fetch_line("ENVELOPE", &env)).is_ok(),
                "envelope {:?}", String::from_utf8_lossy(&env));
            for ext in [false, true] {
                let mut bs = Vec::new();
                bodystructure(&data, &root, ext, &mut bs);
                prop_assert!(codec.decode(&fetch_line("BODYSTRUCTURE", &bs)).is_ok(),
                    "bodystructure {:?}", String::from_utf8_lossy(&bs));
            }
            let _ = crate::mailbox::message::encoded_word::decode_header(&data);
            let _ = crate::mailbox::message::rfc5322date::parse(&data);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let root = parse(&data);
            let mut out = Vec::new();
            envelope(&data, &root, &mut out);
            bodystructure(&data, &root, true, &mut out);
            let _ = section(&data, &root, &Section { part: vec![1], text: None });
            let _ = crate::mailbox::message::address::parse_list(&data);
        }
    }
}
