//! One FETCH response line (RFC 3501 §7.4.2) built from a [`Message`]: the items in the
//! plan's order, written straight into the connection's output buffer; big literals are
//! set aside to be sent from their own buffer.

use std::borrow::Cow;

use super::plan::{section_of, FetchPlan};
use crate::imap::command::FetchAtt;
use crate::imap::response::{push_astring, push_literal};
use crate::imap::session::view::View;
use crate::mailbox::access::Message;
use crate::mailbox::message::{Section, SectionText};
use crate::mailbox::{date, Result, UidHashSet};

/// Literals this long are not copied into the output buffer: `(offset in it, octets)`,
/// sent between the text before and after.
pub(super) const BIG_LITERAL: usize = 8192;
pub(super) type Literals = Vec<(usize, Vec<u8>)>;

/// `n` in decimal, without allocating.
pub(super) fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// What one response line needs besides the message.
pub(super) struct Line<'a> {
    pub view: &'a View,
    pub plan: &'a FetchPlan,
    /// Messages whose `\Seen` this command set: their FLAGS are reported.
    pub seen_set: &'a UidHashSet,
}

impl Line<'_> {
    /// `* seq FETCH (…)` for `msg`. On an error the caller removes what was written.
    pub fn encode(
        &self,
        msg: &Message,
        seq: u64,
        out: &mut Vec<u8>,
        lits: &mut Literals,
    ) -> Result<()> {
        out.extend_from_slice(b"* ");
        push_num(out, seq);
        out.extend_from_slice(b" FETCH (");
        for (n, item) in self.plan.items.iter().enumerate() {
            if n > 0 {
                out.push(b' ');
            }
            self.item(msg, n, item, out, lits)?;
        }
        if !self.plan.wants_flags && self.seen_set.contains(&msg.uid()) {
            out.extend_from_slice(b" FLAGS ");
            self.view.flag_list(msg.meta(), out);
        }
        out.extend_from_slice(b")\r\n");
        Ok(())
    }

    fn item(
        &self,
        msg: &Message,
        n: usize,
        item: &FetchAtt,
        out: &mut Vec<u8>,
        lits: &mut Literals,
    ) -> Result<()> {
        match item {
            FetchAtt::Uid => {
                out.extend_from_slice(b"UID ");
                push_num(out, u64::from(msg.uid()));
            }
            FetchAtt::Flags => {
                out.extend_from_slice(b"FLAGS ");
                self.view.flag_list(msg.meta(), out);
            }
            FetchAtt::InternalDate => {
                out.extend_from_slice(b"INTERNALDATE \"");
                date::push_imap_datetime(out, msg.internal_date());
                out.push(b'"');
            }
            FetchAtt::Rfc822Size => {
                out.extend_from_slice(b"RFC822.SIZE ");
                push_num(out, msg.size());
            }
            FetchAtt::Envelope | FetchAtt::Body | FetchAtt::BodyStructure => {
                out.extend_from_slice(match item {
                    FetchAtt::Envelope => b"ENVELOPE ",
                    FetchAtt::Body => b"BODY ",
                    _ => b"BODYSTRUCTURE ",
                });
                if let Some(f) = self.plan.derived.get(n).copied().flatten() {
                    msg.derived_into(f, out)?;
                }
            }
            _ => {
                if let Some((section, partial)) = section_of(item) {
                    out.extend_from_slice(item_name(item, &section, partial).as_bytes());
                    out.push(b' ');
                    let body = without_nuls(msg.section(&section, partial)?);
                    push_body(body, out, lits);
                }
            }
        }
        Ok(())
    }
}

/// A section's octets: `""` when empty (a section the message does not have is an empty
/// string, as Dovecot answers; clients treat NIL here as an error), a literal otherwise.
fn push_body(body: Cow<'_, [u8]>, out: &mut Vec<u8>, lits: &mut Literals) {
    if body.len() >= BIG_LITERAL {
        out.push(b'{');
        push_num(out, body.len() as u64);
        out.extend_from_slice(b"}\r\n");
        lits.push((out.len(), body.into_owned()));
    } else if body.is_empty() {
        out.extend_from_slice(b"\"\"");
    } else {
        push_literal(out, &body);
    }
}

fn item_name(item: &FetchAtt, section: &Section, partial: Option<(u32, u32)>) -> String {
    match item {
        FetchAtt::Rfc822 => "RFC822".into(),
        FetchAtt::Rfc822Header => "RFC822.HEADER".into(),
        FetchAtt::Rfc822Text => "RFC822.TEXT".into(),
        _ => section_name(section, partial),
    }
}

/// RFC 3501 §9: literal octets are CHAR8 (%x01-ff), so a NUL in a message is sent as 0x80,
/// which keeps every octet count (RFC822.SIZE, partial offsets) exact. Dovecot does the same.
fn without_nuls(c: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    if memchr::memchr(0, &c).is_none() {
        return c;
    }
    Cow::Owned(c.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect())
}

/// `BODY[1.HEADER.FIELDS (A B)]<0>` as echoed in the response (RFC 3501 §7.4.2: only the
/// origin of a partial fetch is returned).
pub(super) fn section_name(section: &Section, partial: Option<(u32, u32)>) -> String {
    let mut s = String::from("BODY[");
    let parts: Vec<String> = section.part.iter().map(|p| p.to_string()).collect();
    s.push_str(&parts.join("."));
    if let Some(text) = &section.text {
        if !section.part.is_empty() {
            s.push('.');
        }
        let fields = |names: &Vec<String>| {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                push_astring(&mut out, n.as_bytes());
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        match text {
            SectionText::Header => s.push_str("HEADER"),
            SectionText::HeaderFields(f) => s.push_str(&format!("HEADER.FIELDS ({})", fields(f))),
            SectionText::HeaderFieldsNot(f) => {
                s.push_str(&format!("HEADER.FIELDS.NOT ({})", fields(f)))
            }
            SectionText::Text => s.push_str("TEXT"),
            SectionText::Mime => s.push_str("MIME"),
        }
    }
    s.push(']');
    if let Some((origin, _)) = partial {
        s.push_str(&format!("<{origin}>"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for n in [0u64, 7, 10, 99, 100, 4_294_967_295, u64::MAX] {
            let mut out = b"x".to_vec();
            push_num(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn section_names() {
        let s = Section {
            part: vec![1, 2],
            text: Some(SectionText::HeaderFields(vec!["From".into(), "X Y".into()])),
        };
        assert_eq!(
            section_name(&s, Some((10, 5))),
            "BODY[1.2.HEADER.FIELDS (From \"X Y\")]<10>"
        );
        assert_eq!(section_name(&Section::default(), None), "BODY[]");
        let t = Section {
            part: vec![],
            text: Some(SectionText::Text),
        };
        assert_eq!(section_name(&t, None), "BODY[TEXT]");
    }

    #[test]
    fn big_bodies_are_set_aside_small_ones_inline() {
        let (mut out, mut lits) = (b"x ".to_vec(), Vec::new());
        push_body(Cow::Borrowed(b""), &mut out, &mut lits);
        out.push(b' ');
        push_body(Cow::Borrowed(b"abc"), &mut out, &mut lits);
        out.push(b' ');
        let big = vec![b'a'; BIG_LITERAL];
        push_body(Cow::Borrowed(&big), &mut out, &mut lits);
        out.extend_from_slice(b" y");
        assert_eq!(out, b"x \"\" {3}\r\nabc {8192}\r\n y");
        assert_eq!(lits.len(), 1);
        assert_eq!(lits[0].0, out.len() - 2);
        assert_eq!(lits[0].1, big);
    }
}
