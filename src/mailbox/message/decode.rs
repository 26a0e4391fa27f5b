//! Content decoding for SEARCH: Content-Transfer-Encoding (RFC 2045 §6.7 quoted-printable,
//! §6.8 base64), tolerant of garbage, and charset conversion to UTF-8 via `encoding_rs`.
//!
//! Knows nothing about MIME structure or IMAP.

use std::borrow::Cow;

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Base64 that skips characters outside the alphabet (RFC 2045 §6.8 says to ignore them)
/// and stops at padding.
pub fn base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in input {
        if c == b'=' {
            break;
        }
        let Some(v) = b64_value(c) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable; `underscore_space` for RFC 2047 "Q" words. Malformed `=` sequences are
/// kept literally; `=` before (trailing whitespace and) a line end is a soft line break.
pub fn quoted_printable(input: &[u8], underscore_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if c == b'_' && underscore_space {
            out.push(b' ');
            i += 1;
            continue;
        }
        if c != b'=' {
            out.push(c);
            i += 1;
            continue;
        }
        if let (Some(h), Some(l)) = (
            input.get(i + 1).and_then(|&c| hex(c)),
            input.get(i + 2).and_then(|&c| hex(c)),
        ) {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        let mut j = i + 1;
        while matches!(input.get(j), Some(b' ') | Some(b'\t')) {
            j += 1;
        }
        match (input.get(j), input.get(j + 1)) {
            (Some(b'\r'), Some(b'\n')) => i = j + 2,
            (Some(b'\n'), _) => i = j + 1,
            (None, _) => i = j,
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

/// Undoes a Content-Transfer-Encoding; unknown or identity encodings return the input.
pub fn transfer_decode<'a>(encoding: Option<&[u8]>, body: &'a [u8]) -> Cow<'a, [u8]> {
    match encoding {
        Some(e) if e.eq_ignore_ascii_case(b"base64") => Cow::Owned(base64(body)),
        Some(e) if e.eq_ignore_ascii_case(b"quoted-printable") => {
            Cow::Owned(quoted_printable(body, false))
        }
        _ => Cow::Borrowed(body),
    }
}

/// Converts text in `charset` to UTF-8. Unknown charsets (and none) are read as UTF-8 with
/// replacement characters.
pub fn to_utf8(charset: Option<&[u8]>, bytes: &[u8]) -> String {
    // Mail without a charset (RFC 2045's us-ascii default) that carries 8-bit text is, in
    // practice, UTF-8; encoding_rs would read "us-ascii" as windows-1252. Valid UTF-8 wins
    // there, as in Dovecot.
    let ascii_label = charset.is_none_or(|c| {
        let c = String::from_utf8_lossy(c).to_ascii_lowercase();
        matches!(
            c.trim(),
            "us-ascii" | "ascii" | "us_ascii" | "ansi_x3.4-1968" | "iso646-us"
        )
    });
    if ascii_label {
        if let Ok(s) = std::str::from_utf8(bytes) {
            return s.to_string();
        }
    }
    match charset.and_then(encoding_rs::Encoding::for_label) {
        Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_and_qp() {
        assert_eq!(base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(base64(b"!!aGVsbG8"), b"hello");
        assert_eq!(
            quoted_printable(b"a=3Db=\r\nc= \r\nd=ZZ=", false),
            b"a=bcd=ZZ"
        );
        assert_eq!(quoted_printable(b"a_b=5F", true), b"a b_");
        assert_eq!(to_utf8(Some(b"ISO-8859-1"), b"caf\xe9"), "caf\u{e9}");
        assert_eq!(to_utf8(Some(b"x-unknown"), b"ok"), "ok");
        assert_eq!(to_utf8(Some(b"us-ascii"), "Café".as_bytes()), "Café");
        assert_eq!(to_utf8(None, "Café".as_bytes()), "Café");
        assert_eq!(to_utf8(Some(b"US-ASCII"), b"caf\xe9"), "caf\u{e9}");
    }
}
