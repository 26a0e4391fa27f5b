//! BODY / BODYSTRUCTURE encoding (RFC 3501 §7.4.2, grammar in §9 `body`).
//!
//! Follows Dovecot's spelling: type, subtype and parameter names as sent; a text part
//! without a charset parameter gets `("charset" "us-ascii")` (RFC 2045 §5.2 default); a
//! missing Content-Transfer-Encoding is `"7bit"`; Content-Language is always a list.
//! A multipart in which no delimiter was found has one empty text/plain part (the scanner
//! makes it, as Dovecot does), since the grammar requires at least one. Only message/rfc822 gets the envelope form;
//! message/global and parts cut off by the nesting limit are written as basic parts (a
//! message/rfc822 or multipart beyond the limit as application/octet-stream, to keep the
//! output parseable).

use crate::imap::response::{push_nstring, push_string};
use crate::mailbox::message::{mime::Params, Body, Part};

use super::envelope::envelope;

const EMPTY_TEXT_PART: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0";

/// Appends the BODYSTRUCTURE (`extended`) or BODY (not extended) of `part`.
pub fn bodystructure(data: &[u8], part: &Part, extended: bool, out: &mut Vec<u8>) {
    match &part.kind {
        Body::Multipart(children) => {
            out.push(b'(');
            // The scanner always yields a part; this only guards hand-built trees.
            if children.is_empty() {
                out.extend_from_slice(EMPTY_TEXT_PART);
                if extended {
                    out.extend_from_slice(b" NIL NIL NIL NIL");
                }
                out.push(b')');
            }
            for c in children {
                bodystructure(data, c, extended, out);
            }
            out.push(b' ');
            push_string(out, &part.content_type.subtype);
            if extended {
                out.push(b' ');
                push_params(out, &part.content_type.params, false);
                push_extension(out, part);
            }
            out.push(b')');
        }
        _ => single(data, part, extended, out),
    }
}

fn single(data: &[u8], part: &Part, extended: bool, out: &mut Vec<u8>) {
    let ct = &part.content_type;
    let message = match &part.kind {
        Body::Message(inner) if ct.is("message", "rfc822") => Some(inner),
        _ => None,
    };
    let opaque_container =
        message.is_none() && (ct.is("message", "rfc822") || ct.is_type("multipart"));
    let text = ct.is_type("text");
    out.push(b'(');
    if opaque_container {
        out.extend_from_slice(b"\"application\" \"octet-stream\" NIL");
    } else {
        push_string(out, &ct.kind);
        out.push(b' ');
        push_string(out, &ct.subtype);
        out.push(b' ');
        push_params(out, &ct.params, text);
    }
    out.push(b' ');
    push_nstring(out, part.content_id.as_deref());
    out.push(b' ');
    push_nstring(out, part.description.as_deref());
    out.push(b' ');
    push_string(out, part.encoding.as_deref().unwrap_or(b"7bit"));
    out.extend_from_slice(format!(" {}", part.body_octets()).as_bytes());
    if let Some(inner) = message {
        out.push(b' ');
        envelope(data, inner, out);
        out.push(b' ');
        bodystructure(data, inner, extended, out);
        out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
    } else if text {
        out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
    }
    if extended {
        out.push(b' ');
        push_nstring(out, part.md5.as_deref());
        push_extension(out, part);
    }
    out.push(b')');
}

/// ` disposition language location` (each preceded by a space).
fn push_extension(out: &mut Vec<u8>, part: &Part) {
    out.push(b' ');
    match &part.disposition {
        Some(d) => {
            out.push(b'(');
            push_string(out, &d.kind);
            out.push(b' ');
            push_params(out, &d.params, false);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    if part.language.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, l) in part.language.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            push_string(out, l);
        }
        out.push(b')');
    }
    out.push(b' ');
    push_nstring(out, part.location.as_deref());
}

/// `("name" "value" ...)` or NIL; `default_charset` adds charset=us-ascii when missing.
fn push_params(out: &mut Vec<u8>, params: &Params, default_charset: bool) {
    let has_charset = params
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"charset"));
    if params.is_empty() && !default_charset {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    let mut first = true;
    for (n, v) in params {
        if !first {
            out.push(b' ');
        }
        first = false;
        push_string(out, n);
        out.push(b' ');
        push_string(out, v);
    }
    if default_charset && !has_charset {
        if !first {
            out.push(b' ');
        }
        out.extend_from_slice(b"\"charset\" \"us-ascii\"");
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::message::mime::tests as samples;
    use crate::mailbox::message::parse;
    use imap_codec::decode::Decoder;
    use imap_codec::ResponseCodec;

    fn bs(m: &[u8], extended: bool) -> String {
        let mut out = Vec::new();
        bodystructure(m, &parse(m), extended, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// imap-codec as an independent oracle: the whole FETCH response line must parse.
    pub(crate) fn assert_valid_fetch(item: &str, value: &[u8]) {
        let mut line = format!("* 1 FETCH ({item} ").into_bytes();
        line.extend_from_slice(value);
        line.extend_from_slice(b")\r\n");
        match ResponseCodec::default().decode(&line) {
            Ok((rest, _)) => assert!(rest.is_empty(), "trailing bytes"),
            Err(e) => panic!(
                "imap-codec rejects {:?}: {e:?}",
                String::from_utf8_lossy(&line)
            ),
        }
    }

    #[test]
    fn oracle_rejects_invalid() {
        // (imap-codec reads a text part without line count as a basic part, so the oracle
        // cannot catch that; it does catch missing fields and bad nesting.)
        let bad = b"* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\"))\r\n";
        assert!(ResponseCodec::default().decode(bad).is_err());
        let bad = b"* 1 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 0)))\r\n";
        assert!(ResponseCodec::default().decode(bad).is_err());
        let good = b"* 1 FETCH (BODYSTRUCTURE (\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 0))\r\n";
        assert!(ResponseCodec::default().decode(good).is_ok());
    }

    fn check_both(m: &[u8]) {
        for ext in [true, false] {
            let mut out = Vec::new();
            bodystructure(m, &parse(m), ext, &mut out);
            assert_valid_fetch(if ext { "BODYSTRUCTURE" } else { "BODY" }, &out);
        }
    }

    #[test]
    fn simple() {
        assert_eq!(
            bs(samples::SIMPLE, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)"
        );
        assert_eq!(
            bs(samples::SIMPLE, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)"
        );
        check_both(samples::SIMPLE);
    }

    #[test]
    fn mixed_with_attachment() {
        assert_eq!(
            bs(samples::MIXED, true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1 NIL NIL NIL NIL)\
             (\"application\" \"pdf\" (\"name\" \"a.pdf\") \"<id1>\" \"A file\" \"base64\" 8 \
             \"Q2hlY2s=\" (\"attachment\" (\"filename\" \"a.pdf\")) (\"en\" \"de\") \
             \"http://x/a.pdf\") \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)"
        );
        assert_eq!(
            bs(samples::MIXED, false),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1)\
             (\"application\" \"pdf\" (\"name\" \"a.pdf\") \"<id1>\" \"A file\" \"base64\" 8) \
             \"mixed\")"
        );
        check_both(samples::MIXED);
    }

    #[test]
    fn alternative() {
        assert_eq!(
            bs(samples::ALTERNATIVE, false),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 0)\
             (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)\
             (\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"quoted-printable\" 11 0) \
             \"alternative\")"
        );
        check_both(samples::ALTERNATIVE);
    }

    #[test]
    fn nested_message() {
        let inner_env =
            "(NIL \"inner\" ((\"Inner\" NIL \"in\" \"ner\")) ((\"Inner\" NIL \"in\" \"ner\")) \
                         ((\"Inner\" NIL \"in\" \"ner\")) NIL NIL NIL NIL NIL)";
        let expected = format!(
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 160 {inner_env} \
             ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0)\
             (\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0) \"alternative\") 11) \
             \"mixed\")"
        );
        assert_eq!(bs(samples::NESTED, false), expected);
        check_both(samples::NESTED);
    }

    #[test]
    fn digest_and_empty_multipart() {
        assert_eq!(
            bs(samples::DIGEST, false),
            "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 24 \
             (NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 8 0) 2)\
             (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 13 0) \"digest\")"
        );
        check_both(samples::DIGEST);
        let m = b"Content-Type: multipart/mixed\r\n\r\nno parts\r\n";
        assert_eq!(
            bs(m, true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \
             \"mixed\" NIL NIL NIL NIL)"
        );
        check_both(m);
    }

    #[test]
    fn odd_values_are_still_valid() {
        let m = "Content-Type: Text/Plain; Charset=\"a\\\"b\"; name*=utf-8''%C3%A9\r\n\
                 Content-Description: caf\u{e9} \"q\"\r\n\r\nx"
            .as_bytes();
        assert_eq!(
            bs(m, false),
            "(\"Text\" \"Plain\" (\"Charset\" \"a\\\"b\" \"name*\" \"utf-8''%C3%A9\") NIL \
             {9}\r\ncaf\u{e9} \"q\" \"7bit\" 1 0)"
        );
        check_both(m);
    }
}
