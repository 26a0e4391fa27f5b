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
