//! BODY / BODYSTRUCTURE encoding (RFC 3501 §7.4.2, grammar in §9 `body`).
//!
//! Follows Dovecot's spelling: type, subtype and parameter names as sent; a text part
//! without a charset parameter gets `("charset" "us-ascii")` (RFC 2045 §5.2 default); a
//! missing Content-Transfer-Encoding is `"7bit"`; Content-Language is always a list.
//! A multipart in which no part was found is written with one empty text/plain part, since
//! the grammar requires at least one. Only message/rfc822 gets the envelope form;
//! message/global and parts cut off by the nesting limit are written as basic parts (a
//! message/rfc822 or multipart beyond the limit as application/octet-stream, to keep the
//! output parseable).

use crate::imap::response::{push_nstring, push_string};
use crate::mailbox::message::{mime::Params, Body, Part};

use super::envelope::envelope;

const EMPTY_TEXT_PART: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";

/// Appends the BODYSTRUCTURE (`extended`) or BODY (not extended) of `part`.
pub fn bodystructure(data: &[u8], part: &Part, extended: bool, out: &mut Vec<u8>) {
    match &part.kind {
        Body::Multipart(children) => {
            out.push(b'(');
            if children.is_empty() {
                out.extend_from_slice(EMPTY_TEXT_PART);
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
mod tests;
