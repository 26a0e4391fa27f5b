//! Multi-line response bodies (RFC 1939 §3): byte-stuffing of lines that begin with the
//! termination octet ".", the final CRLF when a message lacks one, and the part of a
//! message TOP sends. Pure functions over bytes.

use memchr::memmem;

/// Offsets of the lines of `data` that begin with "." (each needs one more "." in front).
pub fn dot_lines(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let first = (data.first() == Some(&b'.')).then_some(0);
    first
        .into_iter()
        .chain(memmem::find_iter(data, b"\n.").map(|p| p + 1))
}

/// The byte-stuffed form of `data` plus the CRLF that completes an unterminated last
/// line (the terminating ".\r\n" is the caller's). The session writes the same pieces
/// straight from the message buffer instead; this copy is for small bodies and tests.
pub fn stuffed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    let mut start = 0;
    for p in dot_lines(data) {
        out.extend_from_slice(data.get(start..p).unwrap_or_default());
        out.push(b'.');
        start = p;
    }
    out.extend_from_slice(data.get(start..).unwrap_or_default());
    if needs_crlf(data) {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// True when the last line of a non-empty `data` has no line end, so the multi-line
/// response needs a CRLF before its terminator.
pub fn needs_crlf(data: &[u8]) -> bool {
    !data.is_empty() && !data.ends_with(b"\n")
}

/// The part of a message TOP sends (RFC 1939 §7): the whole header, the empty line after
/// it, and the first `lines` lines of the body. A message without an empty line is all
/// header.
pub fn top(data: &[u8], lines: u64) -> &[u8] {
    let Some(body) = crate::quirks::pop3::body_start(data) else {
        return data;
    };
    let mut end = body;
    for _ in 0..lines {
        match data.get(end..).and_then(|rest| memchr::memchr(b'\n', rest)) {
            Some(lf) => end += lf + 1,
            None => return data,
        }
    }
    data.get(..end).unwrap_or(data)
}

/// The inverse a client applies (RFC 1939 §3): strip one leading "." from each line.
pub fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing() {
        assert_eq!(
            stuffed(b".a\r\nb\r\n.\r\n..c\r\n"),
            b"..a\r\nb\r\n..\r\n...c\r\n"
        );
        assert_eq!(stuffed(b"no dots\r\n"), b"no dots\r\n");
        assert_eq!(stuffed(b"a.b\r\n"), b"a.b\r\n");
        assert_eq!(stuffed(b"last line"), b"last line\r\n");
        assert_eq!(stuffed(b"x\r\n."), b"x\r\n..\r\n");
        assert_eq!(stuffed(b""), b"");
    }

    #[test]
    fn top_parts() {
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3";
        assert_eq!(top(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(m, 1), b"A: 1\r\nB: 2\r\n\r\nl1\r\n");
        assert_eq!(top(m, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
        assert_eq!(top(m, 3), &m[..]);
        assert_eq!(top(m, u64::MAX), &m[..]);
        assert_eq!(top(b"A: 1\r\n", 5), b"A: 1\r\n");
    }

    proptest::proptest! {
        #[test]
        fn unstuff_inverts_stuff(lines in proptest::collection::vec("[.a-z]{0,4}", 0..8), tail in proptest::bool::ANY) {
            let mut data = lines.join("\r\n").into_bytes();
            if tail && !data.is_empty() {
                data.extend_from_slice(b"\r\n");
            }
            let s = stuffed(&data);
            // No line of the stuffed body is the terminator.
            proptest::prop_assert!(!s.split(|&b| b == b'\n').any(|l| l == b".\r" ));
            let mut want = data.clone();
            if !want.is_empty() && !want.ends_with(b"\n") {
                want.extend_from_slice(b"\r\n");
            }
            proptest::prop_assert_eq!(unstuff(&s), want);
        }
    }
}
