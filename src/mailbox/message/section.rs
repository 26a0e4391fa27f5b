//! FETCH body sections (RFC 3501 §6.4.5): resolving part numbers against the [`Part`] tree
//! and cutting out HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME or the whole part.
//!
//! Knows the section model but not how FETCH responses are encoded.

use std::borrow::Cow;

use super::header;
use super::mime::{Body, Part};
use super::{Section, SectionText};

/// Part `n` (1-based) of a message whose top-level part is `msg`: a child when it is a
/// multipart, the message body itself (n = 1) otherwise.
fn sub_of_message(msg: &Part, n: u32) -> Option<&Part> {
    match &msg.kind {
        Body::Multipart(ch) => ch.get((n as usize).checked_sub(1)?),
        _ if n == 1 => Some(msg),
        _ => None,
    }
}

/// Resolves a part path. A message/rfc822 part's sub-parts are those of the message it
/// encapsulates. A message that is not multipart has only a part 1, itself (RFC 3501
/// §6.4.5); so, once, does a leaf child of a multipart, as Dovecot resolves it:
/// `BODY[2.1]` of a text/plain part 2 is part 2's body, `BODY[2.1.1]` and `BODY[1.1]` of
/// a single-part message are empty (checked against Dovecot in tests/dovecot_diff.rs).
pub fn find_part<'p>(root: &'p Part, path: &[u32]) -> Option<&'p Part> {
    let (&first, rest) = path.split_first()?;
    let mut cur = sub_of_message(root, first)?;
    let mut child = matches!(root.kind, Body::Multipart(_));
    for &n in rest {
        (cur, child) = match &cur.kind {
            Body::Multipart(ch) => (ch.get((n as usize).checked_sub(1)?)?, true),
            Body::Message(inner) => (
                sub_of_message(inner, n)?,
                matches!(inner.kind, Body::Multipart(_)),
            ),
            Body::Single if n == 1 && child => (cur, false),
            Body::Single => return None,
        };
    }
    Some(cur)
}

/// The octets of a section, or `None` when it does not exist (e.g. `[3]` of a two-part
/// message, `[1.HEADER]` of a part that is not message/rfc822).
pub fn section<'a>(data: &'a [u8], root: &Part, s: &Section) -> Option<Cow<'a, [u8]>> {
    // The message whose header/text a HEADER*/TEXT specifier refers to.
    let (target, msg) = if s.part.is_empty() {
        (root, Some(root))
    } else {
        let p = find_part(root, &s.part)?;
        let m = match &p.kind {
            Body::Message(inner) => Some(&**inner),
            _ => None,
        };
        (p, m)
    };
    let bytes = match &s.text {
        None if s.part.is_empty() => target.full_bytes(data),
        None => target.body_bytes(data),
        Some(SectionText::Mime) if !s.part.is_empty() => target.header_bytes(data),
        Some(SectionText::Mime) => return None,
        Some(SectionText::Header) => msg?.header_bytes(data),
        Some(SectionText::Text) => msg?.body_bytes(data),
        Some(SectionText::HeaderFields(names)) => {
            return Some(Cow::Owned(header_fields(
                msg?.header_bytes(data),
                names,
                true,
            )))
        }
        Some(SectionText::HeaderFieldsNot(names)) => {
            return Some(Cow::Owned(header_fields(
                msg?.header_bytes(data),
                names,
                false,
            )))
        }
    };
    Some(Cow::Borrowed(bytes))
}

/// The fields of `hdr` whose names are (`keep`) or are not (`!keep`) in `names`, as they
/// appear (folding kept), followed by the empty line — unless the header had none
/// (RFC 3501 §6.4.5: "the blank line is included in all header fetches, except in the case
/// of a message which has no body and no blank line").
pub fn header_fields(hdr: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let blank_line =
        hdr == b"\n" || hdr == b"\r\n" || hdr.ends_with(b"\n\n") || hdr.ends_with(b"\n\r\n");
    let mut out = Vec::new();
    for f in header::fields(hdr) {
        let listed = names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(f.name));
        // A line without a colon has an empty name and is never "listed".
        if listed == keep {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if blank_line {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// RFC822.HEADER: the message header with its empty line.
pub fn header_bytes<'a>(data: &'a [u8], root: &Part) -> &'a [u8] {
    root.header_bytes(data)
}

/// RFC822.TEXT: the message body.
pub fn text_bytes<'a>(data: &'a [u8], root: &Part) -> &'a [u8] {
    root.body_bytes(data)
}
