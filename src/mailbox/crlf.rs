//! Line ends as IMAP serves them: every bare LF of stored mail is sent as CRLF
//! (RFC 5322 §2.1: lines end in CRLF); shared by every format.
//!
//! This module must not know about mail formats.

/// The LFs of `bytes` not preceded by a CR: each adds one octet to RFC822.SIZE.
pub fn bare_lfs(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes)
        .filter(|&i| i == 0 || bytes.get(i - 1) != Some(&b'\r'))
        .count() as u64
}

/// Copies `data` with every bare LF turned into CRLF, a line at a time (memchr), not a
/// byte at a time: most Maildirs store LF line ends, so this runs on nearly every fetch.
pub fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    let mut start = 0;
    for lf in memchr::memchr_iter(b'\n', data) {
        let bare = lf == 0 || data[lf - 1] != b'\r';
        if bare {
            out.extend_from_slice(&data[start..lf]);
            out.extend_from_slice(b"\r\n");
            start = lf + 1;
        }
    }
    out.extend_from_slice(&data[start..]);
    out
}
