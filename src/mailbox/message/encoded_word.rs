//! RFC 2047 encoded-word decoding for header text, used by SEARCH.
//!
//! Whitespace between two adjacent encoded words is dropped (§6.2), and the octets of
//! adjacent words in the same charset are joined before conversion so that a multi-byte
//! character split across words survives. Malformed words are left as they are.

use super::decode;

/// One parsed encoded word: (charset, decoded octets, length in the input).
fn encoded_word(s: &[u8]) -> Option<(&[u8], Vec<u8>, usize)> {
    let rest = s.strip_prefix(b"=?")?;
    let q1 = memchr::memchr(b'?', rest)?;
    let charset = &rest[..q1];
    let enc = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let text_len = memchr::memmem::find(rest.get(text_start..)?, b"?=")?;
    let text = &rest[text_start..text_start + text_len];
    if charset.is_empty() || charset.iter().chain(text).any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let octets = match enc {
        b'B' | b'b' => decode::base64(text),
        b'Q' | b'q' => decode::quoted_printable(text, true),
        _ => return None,
    };
    // RFC 2231 §5: charset*language.
    let charset = charset.split(|&c| c == b'*').next().unwrap_or(charset);
    Some((charset, octets, 2 + text_start + text_len + 2))
}

/// Unfolds a raw header value and decodes its encoded words to UTF-8. Octets outside
/// encoded words are read as UTF-8 (invalid sequences become U+FFFD).
pub fn decode_header(value: &[u8]) -> String {
    let v = super::header::unfold(value);
    let mut out = String::with_capacity(v.len());
    let mut plain_start = 0;
    // Pending encoded-word octets: (charset, bytes).
    let mut pending: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'=' && v.get(i + 1) == Some(&b'?') {
            if let Some((cs, octets, len)) = encoded_word(&v[i..]) {
                let between = &v[plain_start..i];
                let only_ws = between.iter().all(|c| c.is_ascii_whitespace());
                match &mut pending {
                    Some((pcs, bytes)) if only_ws && pcs.eq_ignore_ascii_case(cs) => {
                        bytes.extend_from_slice(&octets)
                    }
                    _ => {
                        if let Some((pcs, bytes)) = pending.take() {
                            out.push_str(&decode::to_utf8(Some(&pcs), &bytes));
                            if !only_ws {
                                out.push_str(&String::from_utf8_lossy(between));
                            }
                        } else {
                            out.push_str(&String::from_utf8_lossy(between));
                        }
                        pending = Some((cs.to_vec(), octets));
                    }
                }
                i += len;
                plain_start = i;
                continue;
            }
        }
        i += 1;
    }
    if let Some((pcs, bytes)) = pending.take() {
        out.push_str(&decode::to_utf8(Some(&pcs), &bytes));
    }
    out.push_str(&String::from_utf8_lossy(&v[plain_start.min(v.len())..]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_words() {
        assert_eq!(
            decode_header(b" =?ISO-8859-1?Q?caf=E9?= ok"),
            "caf\u{e9} ok"
        );
        assert_eq!(decode_header(b"=?utf-8?B?w6k=?="), "\u{e9}");
        assert_eq!(
            decode_header(b"a =?UTF-8?Q?x_y?=\r\n =?utf-8?q?z?= b"),
            "a x yz b"
        );
        // U+00E9 = C3 A9 split across two words.
        assert_eq!(decode_header(b"=?UTF-8?B?w6?= =?UTF-8?Q?=A9?="), "\u{e9}");
        assert_eq!(decode_header(b"=?UTF-8*en?Q?hi?="), "hi");
        assert_eq!(decode_header(b"=?bad =?x?Z?y?= =?"), "=?bad =?x?Z?y?= =?");
        assert_eq!(
            decode_header(b"=?us-ascii?q?a?= - =?us-ascii?q?b?="),
            "a - b"
        );
    }
}
