//! ENVELOPE encoding (RFC 3501 §7.4.2) from a message header.
//!
//! Values are the raw header text, unfolded, with encoded words left as they are (as Dovecot
//! does); absent fields are NIL; Sender and Reply-To default to From (RFC 3501 §7.4.2).
//! Address parsing and its error handling live in [`crate::mailbox::message::address`].

use crate::imap::response::{push_nstring, push_string};
use crate::mailbox::message::address::{self, Address};
use crate::mailbox::message::{header, Part};

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
