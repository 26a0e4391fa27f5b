//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding of non-ASCII mailbox names on the wire
//! and (like Dovecot) in Maildir++ folder names on disk.
//!
//! Printable US-ASCII (0x20–0x7e) stands for itself except `&`, which is written `&-`.
//! Everything else is UTF-16BE in a modified BASE64 (`,` instead of `/`, no padding)
//! between `&` and `-`. [`decode`] accepts only the canonical form: no encoded printable
//! ASCII, no two adjacent encoded runs, no leftover non-zero bits, valid surrogate pairs.
//!
//! This module must not know about IMAP commands or files.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn is_direct(c: char) -> bool {
    ('\u{20}'..='\u{7e}').contains(&c)
}

/// Encodes a UTF-8 string in modified UTF-7.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run: Vec<u16> = Vec::new();
    for c in s.chars() {
        if is_direct(c) {
            flush_run(&mut out, &mut run);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush_run(&mut out, &mut run);
    out
}

fn flush_run(out: &mut String, run: &mut Vec<u16>) {
    if run.is_empty() {
        return;
    }
    out.push('&');
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    for unit in run.iter() {
        bits = (bits << 16) | u32::from(*unit);
        nbits += 16;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(ALPHABET[((bits >> nbits) & 0x3f) as usize]));
        }
        bits &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(char::from(
            ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize],
        ));
    }
    out.push('-');
    run.clear();
}

fn b64_value(b: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == b).map(|p| p as u32)
}

/// Decodes modified UTF-7; `None` for anything malformed or not in canonical form.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    // true right after an encoded run closed: a second run directly after is non-canonical.
    let mut after_run = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !(0x20..=0x7e).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(char::from(b));
            i += 1;
            after_run = false;
            continue;
        }
        let start = i + 1;
        let end = start + bytes[start..].iter().position(|&c| c == b'-')?;
        if end == start {
            out.push('&');
            i = end + 1;
            after_run = false;
            continue;
        }
        if after_run {
            return None;
        }
        let mut units: Vec<u16> = Vec::new();
        let mut bits: u32 = 0;
        let mut nbits = 0u32;
        for &c in &bytes[start..end] {
            bits = (bits << 6) | b64_value(c)?;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push(((bits >> nbits) & 0xffff) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        // Canonical: fewer than 6 leftover bits, all zero.
        if nbits >= 6 || bits != 0 || units.is_empty() {
            return None;
        }
        let decoded: String = char::decode_utf16(units.iter().copied())
            .collect::<std::result::Result<String, _>>()
            .ok()?;
        if decoded.chars().any(is_direct) {
            return None;
        }
        out.push_str(&decoded);
        i = end + 1;
        after_run = true;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        let utf8 = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(decode(wire).as_deref(), Some(utf8));
        assert_eq!(encode(utf8), wire);
    }

    #[test]
    fn ampersand_and_ascii() {
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode("A&-B").as_deref(), Some("A&B"));
        assert_eq!(encode("Entw\u{fc}rfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entw\u{fc}rfe"));
        // Astral plane: surrogate pair.
        let s = "x\u{1F600}y";
        assert_eq!(decode(&encode(s)).as_deref(), Some(s));
    }

    #[test]
    fn rejects_non_canonical() {
        assert_eq!(decode("&AGE-"), None); // encoded printable ASCII 'a'
        assert_eq!(decode("&APw-&APw-"), None); // two adjacent runs
        assert_eq!(decode("&APw"), None); // unterminated
        assert_eq!(decode("&APx-"), None); // non-zero leftover bits
        assert_eq!(decode("&APwA-"), None); // too many characters
        assert_eq!(decode("&2D0-"), None); // lone surrogate
        assert_eq!(decode("a\u{e9}"), None); // raw 8-bit
        assert_eq!(decode("&U/BTFw-"), None); // '/' is not in the alphabet
        assert_eq!(decode("a\tb"), None);
    }

    #[test]
    fn round_trip_many() {
        for s in [
            "",
            "INBOX",
            "Caf\u{e9} & Bar",
            "\u{65e5}\u{672c}",
            "a~b",
            "\u{7f}x",
        ] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s), "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_round_trip(s in "\\PC{0,40}") {
            let e = encode(&s);
            proptest::prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            proptest::prop_assert_eq!(decode(&e), Some(s));
        }

        #[test]
        fn prop_decode_is_canonical(s in "[ -~]{0,24}") {
            // Whatever decodes must encode back to exactly the same text.
            if let Some(d) = decode(&s) {
                proptest::prop_assert_eq!(encode(&d), s);
            }
        }
    }
}
