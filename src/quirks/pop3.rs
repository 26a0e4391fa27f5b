//! POP3 workarounds, applied to a message's bytes just before RETR or TOP sends them (after
//! the store returned them, before byte-stuffing). Nothing else in the server sees their
//! effect: STAT/LIST octet counts, UIDL and the stored message are untouched.

use std::borrow::Cow;

use super::{Quirk, QuirkSet};

/// `outlook-no-nuls`. Client: Outlook / Outlook Express. Symptom: a NUL (0x00) in a
/// message — legal in RFC 1939's octet stream, but not in RFC 5322 text — makes the
/// download hang. Bends RFC 1939 §3 (the message is transferred as is): every NUL is sent
/// as 0x80 instead, one octet for one octet, so the size LIST announced stays exact.
pub fn outlook_no_nuls(data: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(0, data).is_none() {
        return Cow::Borrowed(data);
    }
    Cow::Owned(
        data.iter()
            .map(|&b| if b == 0 { 0x80 } else { b })
            .collect(),
    )
}

/// Where the header ends: the offset just after the empty line that separates header and
/// body (RFC 5322 §2.1), or `None` when the message has no such line.
pub fn body_start(data: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while pos < data.len() {
        let rest = data.get(pos..)?;
        if rest.starts_with(b"\r\n") {
            return Some(pos + 2);
        }
        if rest.starts_with(b"\n") {
            return Some(pos + 1);
        }
        match memchr::memchr(b'\n', rest) {
            Some(lf) => pos += lf + 1,
            None => return None,
        }
    }
    None
}

/// `oe-ns-eoh`. Client: Outlook Express and Netscape Mail. Symptom: a message made only
/// of a header (no empty line after it, which RFC 5322 allows) is displayed empty or
/// garbled, and TOP output is misread. Bends RFC 1939 §7/§11 (RETR and TOP send the
/// message as stored): an empty line is appended to such a message, so it arrives
/// 2 octets (3 when its last line lacked a CRLF) longer than LIST announced — as with
/// Dovecot's switch of the same name.
pub fn oe_ns_eoh(data: &[u8]) -> Cow<'_, [u8]> {
    if body_start(data).is_some() {
        return Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len() + 4);
    out.extend_from_slice(data);
    if !data.is_empty() && !data.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Cow::Owned(out)
}

/// Applies the enabled workarounds to a message about to be sent by RETR or TOP.
pub fn apply(set: QuirkSet, data: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Cow::Borrowed(data);
    if set.contains(Quirk::OeNsEoh) {
        if let Cow::Owned(v) = oe_ns_eoh(&out) {
            out = Cow::Owned(v);
        }
    }
    if set.contains(Quirk::OutlookNoNuls) {
        if let Cow::Owned(v) = outlook_no_nuls(&out) {
            out = Cow::Owned(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuls_become_0x80_and_length_is_kept() {
        let m = b"Subject: a\r\n\r\nx\0y\0\r\n";
        let out = outlook_no_nuls(m);
        assert_eq!(&*out, b"Subject: a\r\n\r\nx\x80y\x80\r\n");
        assert_eq!(out.len(), m.len());
        assert!(matches!(outlook_no_nuls(b"clean\r\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn eoh_added_only_when_missing() {
        assert_eq!(&*oe_ns_eoh(b"Subject: a\r\n"), b"Subject: a\r\n\r\n");
        assert_eq!(&*oe_ns_eoh(b"Subject: a"), b"Subject: a\r\n\r\n");
        assert!(matches!(
            oe_ns_eoh(b"Subject: a\r\n\r\nbody\r\n"),
            Cow::Borrowed(_)
        ));
        // An empty header (message starting with the separator) has one.
        assert!(matches!(oe_ns_eoh(b"\r\nbody"), Cow::Borrowed(_)));
        assert_eq!(&*oe_ns_eoh(b""), b"\r\n");
    }

    #[test]
    fn body_start_finds_the_separator() {
        assert_eq!(body_start(b"A: b\r\n\r\nc"), Some(8));
        assert_eq!(body_start(b"\r\nc"), Some(2));
        assert_eq!(body_start(b"A: b\r\nC: d\r\n"), None);
        assert_eq!(body_start(b"A: b\n\nc"), Some(6));
    }

    #[test]
    fn apply_respects_the_set() {
        let m = b"Subject: \0";
        assert_eq!(&*apply(QuirkSet::default(), m), m);
        let mut s = QuirkSet::default();
        s.insert(Quirk::OutlookNoNuls);
        assert_eq!(&*apply(s, m), b"Subject: \x80");
        s.insert(Quirk::OeNsEoh);
        assert_eq!(&*apply(s, m), b"Subject: \x80\r\n\r\n");
    }
}
